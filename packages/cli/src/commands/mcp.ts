import { InvalidInputError } from '@exec-kernel/core';
import type { Command, Entry } from '../context.js';
import { MAX_MESSAGE_BYTES, readLines, TOO_LONG } from '../mcp/read-lines.js';
import {
  callTool,
  InputError,
  type JsonObject,
  requestFor,
  type Tool,
  type ToolRequest,
  toolFor,
} from '../mcp/tools.js';
import { jsonLine, refusal } from '../render.js';
import { version } from '../version.js';

/** Protocol revisions this server speaks, newest first. */
const PROTOCOL_VERSIONS = ['2025-06-18', '2025-03-26', '2024-11-05'];

/**
 * Commands that are not tools: those that serve (they would take over the server's stdio), and
 * the operator's, which act with the admin token on the service for a person at a shell.
 */
const NOT_TOOLS = new Set([
  'serve',
  'mcp',
  'escalation list',
  'escalation ack',
  'escalation resolve',
  'events',
  'agent add',
  'agent list',
]);

const ERRORS = {
  parse: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
} as const;

/** A JSON-RPC error to answer with (unknown method or tool). */
class RpcError extends Error {
  readonly code: number;

  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

function rpcError(id: unknown, code: number, message: string): JsonObject {
  return {
    jsonrpc: '2.0',
    id: typeof id === 'string' || typeof id === 'number' ? id : null,
    error: { code, message },
  };
}

/** The tool result of input that does not fit the tool, before anything runs. */
function badInput(error: unknown): JsonObject {
  if (InvalidInputError.is(error)) {
    const { line, violation } = refusal(error);
    return {
      content: [
        { type: 'text', text: line },
        { type: 'text', text: jsonLine(violation) },
      ],
      isError: true,
      structuredContent: violation as unknown as JsonObject,
    };
  }
  if (error instanceof InputError)
    return { content: [{ type: 'text', text: `ERROR: ${error.message}` }], isError: true };
  throw error;
}

const USAGE = `Usage: exec-kernel mcp [--config <file>]

Serves the exec-kernel commands as Model Context Protocol tools over stdio, for agent harnesses
that speak MCP (newline-delimited JSON-RPC on stdin and stdout). Each tool is one command, run
as with --json: validate, check_loop, check_budget, sleep, wake, step, task_create,
task_transition, task_show, task_list, task_checkout, task_claim, task_release, context_get,
context_set, context_note, config_show, config_validate. A refusal is a tool result with isError
set, the one-line reason and the Violation record. Runs until stdin ends.

Example harness entry:
  { "command": "exec-kernel", "args": ["mcp"] }
`;

/**
 * The `mcp` command over `commands` (the registry's table, given by the registry itself so this
 * module imports nothing that leads back to it). Each tool call runs its command directly and
 * answers with the command's data.
 */
export function mcpServer(commands: Readonly<Record<string, Entry>>): Command {
  return {
    usage: USAGE,
    options: {},
    positionals: { min: 0, max: 0, names: '' },
    async run(ctx) {
      const tools = new Map<string, Tool>();
      for (const [command, entry] of Object.entries(commands)) {
        if (NOT_TOOLS.has(command)) continue;
        const tool = toolFor(command, entry.summary, await entry.load());
        tools.set(tool.name, tool);
      }
      const config = ctx.flags.config;
      const running = new Map<string | number, AbortController>();
      const send = (message: JsonObject | JsonObject[]) =>
        ctx.io.stdout.write(`${JSON.stringify(message)}\n`);

      const handle = async (method: string, params: JsonObject, id: string | number) => {
        switch (method) {
          case 'initialize': {
            const asked = params.protocolVersion;
            return {
              protocolVersion:
                typeof asked === 'string' && PROTOCOL_VERSIONS.includes(asked)
                  ? asked
                  : (PROTOCOL_VERSIONS[0] as string),
              capabilities: { tools: { listChanged: false } },
              serverInfo: { name: 'exec-kernel', version: version() },
            };
          }
          case 'ping':
            return {};
          case 'tools/list':
            return {
              tools: [...tools.values()].map((t) => ({
                name: t.name,
                description: t.description,
                inputSchema: t.inputSchema,
              })),
            };
          case 'tools/call': {
            const tool = typeof params.name === 'string' ? tools.get(params.name) : undefined;
            if (tool === undefined)
              throw new RpcError(ERRORS.invalidParams, `Unknown tool: ${String(params.name)}`);
            let request: ToolRequest;
            try {
              request = requestFor(tool, params.arguments);
            } catch (error) {
              return badInput(error);
            }
            const abort = new AbortController();
            const stop = () => abort.abort();
            ctx.io.signal?.addEventListener('abort', stop, { once: true });
            running.set(id, abort);
            try {
              return await callTool(tool, request, { io: ctx.io, config, signal: abort.signal });
            } finally {
              running.delete(id);
              ctx.io.signal?.removeEventListener('abort', stop);
            }
          }
          default:
            throw new RpcError(ERRORS.methodNotFound, `Method not found: ${method}`);
        }
      };

      /** Answers one message; undefined for a notification or a response. */
      const answer = async (message: unknown): Promise<JsonObject | undefined> => {
        if (message === null || typeof message !== 'object' || Array.isArray(message))
          return rpcError(null, ERRORS.invalidRequest, 'Invalid request');
        const { id, method, params } = message as {
          id?: unknown;
          method?: unknown;
          params?: unknown;
        };
        const hasId = typeof id === 'string' || typeof id === 'number';
        if (typeof method !== 'string') {
          // A response (we send no requests, so it answers nothing) is ignored.
          if (hasId && ('result' in message || 'error' in message)) return undefined;
          return rpcError(hasId ? id : null, ERRORS.invalidRequest, 'Invalid request: no method');
        }
        if (!hasId) {
          if (method === 'notifications/cancelled') {
            const target = (params as { requestId?: string | number } | undefined)?.requestId;
            if (target !== undefined) running.get(target)?.abort();
          }
          return undefined;
        }
        if (
          params !== undefined &&
          (params === null || typeof params !== 'object' || Array.isArray(params))
        )
          return rpcError(id, ERRORS.invalidParams, 'params must be an object');
        try {
          const result = await handle(method, (params ?? {}) as JsonObject, id);
          return { jsonrpc: '2.0', id, result };
        } catch (error) {
          if (error instanceof RpcError) return rpcError(id, error.code, error.message);
          return rpcError(id, -32603, `Internal error: ${(error as Error).message}`);
        }
      };

      const pending = new Set<Promise<void>>();
      const stop = new AbortController();
      ctx.io.signal?.addEventListener('abort', () => stop.abort(), { once: true });
      for await (const line of readLines(process.stdin, MAX_MESSAGE_BYTES, stop.signal)) {
        if (line === TOO_LONG) {
          send(
            rpcError(
              null,
              ERRORS.invalidRequest,
              `Invalid request: a message longer than ${MAX_MESSAGE_BYTES} bytes`,
            ),
          );
          continue;
        }
        if (line.trim() === '') continue;
        let message: unknown;
        try {
          message = JSON.parse(line);
        } catch {
          send(rpcError(null, ERRORS.parse, 'Parse error: not JSON'));
          continue;
        }
        // Each message is answered when it is done, so a blocking call (sleep) holds up nothing.
        const work = (async () => {
          if (Array.isArray(message)) {
            if (message.length === 0) {
              send(rpcError(null, ERRORS.invalidRequest, 'Invalid request: empty batch'));
              return;
            }
            const answers = (await Promise.all(message.map(answer))).filter(
              (a): a is JsonObject => a !== undefined,
            );
            if (answers.length > 0) send(answers);
            return;
          }
          const reply = await answer(message);
          if (reply !== undefined) send(reply);
        })();
        pending.add(work);
        void work.finally(() => pending.delete(work));
      }
      await Promise.all(pending);
      // Everything went out as JSON-RPC; a line more on stdout would break the protocol.
      return { lines: [], data: undefined };
    },
  };
}
