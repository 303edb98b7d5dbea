import { InvalidInputError, MAX_ID_LENGTH } from '@exec-kernel/core';
import type { ArgRule } from '../args.js';
import { type CliIO, type Command, jsonLine, quote, refusal } from '../context.js';

/** Protocol revisions this server speaks, newest first. */
const PROTOCOL_VERSIONS = ['2025-06-18', '2025-03-26', '2024-11-05'];

/** Commands that are not tools: they serve, and would take over the server's stdio. */
const NOT_TOOLS = new Set(['serve', 'mcp']);

/** Flags every command has, which the server sets itself. */
const SERVER_FLAGS = new Set(['json', 'config', 'help']);

const ERRORS = {
  parse: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
} as const;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

interface Argument {
  /** The camelCase property of the tool's input. */
  property: string;
  /** The command-line flag (without `--`), or undefined for a positional. */
  flag: string | undefined;
  kind: 'string' | 'boolean' | 'strings';
  required: boolean;
  /** How the command checks it, if it does: ids and text take strings, numbers numbers too. */
  rule: ArgRule | undefined;
}

interface Tool {
  name: string;
  command: string;
  description: string;
  arguments: Argument[];
  inputSchema: JsonObject;
}

/** What a tool call asks `main` to run, and how to give the answer back. */
type CommandRunner = (argv: string[], io: CliIO) => Promise<number>;

const camel = (kebab: string): string =>
  kebab.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** The JSON Schema of one value under its rule. */
function valueSchema(rule: ArgRule | undefined): JsonObject {
  switch (rule?.kind) {
    case 'id':
      return { type: 'string', minLength: 1, maxLength: MAX_ID_LENGTH };
    case 'text':
      return { type: 'string', maxLength: rule.max };
    case 'number': {
      const min = rule.min ?? 0;
      return {
        type: rule.integer === true ? 'integer' : 'number',
        ...(rule.exclusiveMin === true ? { exclusiveMinimum: min } : { minimum: min }),
        maximum: rule.max ?? Number.MAX_SAFE_INTEGER,
      };
    }
    default:
      return { type: 'string' };
  }
}

/** A tool for a command: its flags and positionals become the input's properties. */
function toolFor(command: string, summary: string, spec: Command): Tool {
  const args: Argument[] = [];
  const names = [...spec.positionals.names.matchAll(/[<[]([a-z-]+)(\.\.\.)?[>\]]/g)];
  names.forEach((match, index) => {
    args.push({
      property: camel(match[1] as string),
      flag: undefined,
      kind: 'string',
      required: index < spec.positionals.min,
      rule: spec.args?.[match[1] as string],
    });
  });
  for (const [flag, option] of Object.entries(spec.options)) {
    if (SERVER_FLAGS.has(flag)) continue;
    args.push({
      property: camel(flag),
      flag,
      kind: option.type === 'boolean' ? 'boolean' : option.multiple ? 'strings' : 'string',
      required: false,
      rule: spec.args?.[flag],
    });
  }
  const properties: JsonObject = {};
  for (const arg of args) {
    const description = arg.flag === undefined ? `<${arg.property}>` : `--${arg.flag}`;
    properties[arg.property] =
      arg.kind === 'boolean'
        ? { type: 'boolean', description }
        : arg.kind === 'strings'
          ? { type: 'array', items: valueSchema(arg.rule), description }
          : { ...valueSchema(arg.rule), description };
  }
  const usage = spec.usage.trim().split('\n');
  const about = usage.slice(1).join('\n').trim();
  return {
    name: command.replaceAll(' ', '_').replaceAll('-', '_'),
    command,
    description: [summary.charAt(0).toUpperCase() + summary.slice(1), usage[0], about]
      .filter((part) => part !== undefined && part !== '')
      .join('\n\n'),
    arguments: args,
    inputSchema: {
      type: 'object',
      properties,
      required: args.filter((a) => a.required).map((a) => a.property),
      additionalProperties: false,
    },
  };
}

/** A value of the wrong JSON type for its argument. */
function wrongType(arg: Argument, expected: string): InvalidInputError {
  return new InvalidInputError({ field: arg.property, problem: `must be ${expected}` });
}

/** One argument's value as command-line text, or why its JSON type is wrong. */
function textOf(arg: Argument, value: unknown): string {
  if (typeof value === 'string') return value;
  if (arg.rule?.kind === 'number') {
    if (typeof value === 'number') return String(value);
    throw wrongType(arg, 'a number');
  }
  throw wrongType(arg, arg.kind === 'strings' ? 'a list of strings' : 'a string');
}

/**
 * The command line for a call: flags first as `--flag=value`, then `--` and the positionals, so
 * that a value starting with `-` is never read as a flag. Throws a message for input that does
 * not fit, and an `InvalidInputError` for a value of the wrong type.
 */
function argvFor(tool: Tool, input: unknown, config: string | undefined): string[] {
  if (input === undefined || input === null) input = {};
  if (typeof input !== 'object' || Array.isArray(input))
    throw new Error('arguments must be an object');
  const given = input as Record<string, unknown>;
  const known = new Set(tool.arguments.map((a) => a.property));
  const unknown = Object.keys(given).filter((key) => !known.has(key));
  if (unknown.length > 0)
    throw new Error(`unknown argument ${unknown.map((k) => quote(k)).join(', ')}`);
  const flags: string[] = [];
  const positionals: string[] = [];
  let positionalGap: string | undefined;
  for (const arg of tool.arguments) {
    const value = given[arg.property];
    if (value === undefined || value === null) {
      if (arg.required) throw new Error(`missing argument '${arg.property}'`);
      if (arg.flag === undefined) positionalGap ??= arg.property;
      continue;
    }
    if (arg.kind === 'boolean') {
      if (typeof value !== 'boolean') throw wrongType(arg, 'true or false');
      if (value) flags.push(`--${arg.flag}`);
      continue;
    }
    const values = arg.kind === 'strings' && Array.isArray(value) ? value : [value];
    for (const v of values) {
      const text = textOf(arg, v);
      if (arg.flag !== undefined) flags.push(`--${arg.flag}=${text}`);
      else if (positionalGap !== undefined)
        throw new Error(`'${arg.property}' needs '${positionalGap}' before it`);
      else positionals.push(text);
    }
  }
  return [
    ...tool.command.split(' '),
    ...flags,
    '--json',
    ...(config === undefined ? [] : ['--config', config]),
    '--',
    ...positionals,
  ];
}

/** Runs one command with its output captured, and turns it into a tool result. */
async function callTool(
  run: CommandRunner,
  argv: string[],
  io: CliIO,
  signal: AbortSignal,
): Promise<JsonObject> {
  let stdout = '';
  let stderr = '';
  const status = await run(argv, {
    stdout: { write: (text: string) => (stdout += text), isTTY: false },
    stderr: { write: (text: string) => (stderr += text) },
    env: io.env,
    cwd: io.cwd,
    signal,
  });
  const lines = stdout.split('\n').filter((line) => line !== '');
  const parsed = lines.map((line) => {
    try {
      return JSON.parse(line) as Json;
    } catch {
      return line;
    }
  });
  // A refusal's one line comes first, then its Violation; a success's data, then any warnings.
  const content: JsonObject[] = [];
  if (status !== 0 && stderr.trim() !== '') content.push({ type: 'text', text: stderr.trim() });
  if (lines.length > 0) content.push({ type: 'text', text: lines.join('\n') });
  if (status === 0 && stderr.trim() !== '') content.push({ type: 'text', text: stderr.trim() });
  if (content.length === 0) content.push({ type: 'text', text: status === 0 ? 'OK' : 'failed' });
  const result: JsonObject = { content, isError: status !== 0 };
  // One JSON object (a result, or the Violation of a refusal) is also given as structured data.
  const [only] = parsed;
  if (parsed.length === 1 && only !== null && typeof only === 'object' && !Array.isArray(only))
    result.structuredContent = only;
  return result;
}

/** A JSON-RPC error to answer with (unknown method or tool). */
class RpcError extends Error {
  readonly code: number;

  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

export const mcp: Command = {
  usage: `Usage: exec-kernel mcp [--config <file>]

Serves the exec-kernel commands as Model Context Protocol tools over stdio, for agent harnesses
that speak MCP (newline-delimited JSON-RPC on stdin and stdout). Each tool is one command, run
as with --json: validate, check_loop, check_budget, sleep, wake, step, task_create,
task_transition, task_show, task_list, task_checkout, task_claim, task_release, context_get,
context_set, context_note, config_show, config_validate. A refusal is a tool result with isError
set, the one-line reason and the Violation record. Runs until stdin ends.

Example harness entry:
  { "command": "exec-kernel", "args": ["mcp"] }
`,
  options: {},
  positionals: { min: 0, max: 0, names: '' },
  async run(ctx) {
    const { commandEntries, main, version } = await import('../main.js');
    const tools = new Map<string, Tool>();
    for (const [command, entry] of Object.entries(commandEntries())) {
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
          let argv: string[];
          try {
            argv = argvFor(tool, params.arguments, config);
          } catch (error) {
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
            return {
              content: [{ type: 'text', text: `ERROR: ${(error as Error).message}` }],
              isError: true,
            };
          }
          const abort = new AbortController();
          const stop = () => abort.abort();
          ctx.io.signal?.addEventListener('abort', stop, { once: true });
          running.set(id, abort);
          try {
            return await callTool(main, argv, ctx.io, abort.signal);
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
    return 0;
  },
};

/** The longest message (one line of JSON-RPC) the server reads; past it the line is skipped. */
const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
const TOO_LONG: unique symbol = Symbol('too long');

/**
 * The lines of `input`, without their `\n` (and a `\r` before it). A line longer than `maxBytes`
 * is dropped as it arrives, never held whole, and stands as {@link TOO_LONG}: readline would buffer
 * a client's endless line until the process runs out of memory.
 */
async function* readLines(
  input: NodeJS.ReadableStream,
  maxBytes: number,
  signal: AbortSignal,
): AsyncGenerator<string | typeof TOO_LONG> {
  let parts: Buffer[] = [];
  let size = 0;
  let skipping = false;
  const lineOf = (tail: Buffer): string => {
    const line = Buffer.concat([...parts, tail]).toString('utf8');
    parts = [];
    size = 0;
    return line.endsWith('\r') ? line.slice(0, -1) : line;
  };
  const chunks = input[Symbol.asyncIterator]();
  const aborted = new Promise<IteratorResult<never>>((resolve) => {
    if (signal.aborted) resolve({ done: true, value: undefined as never });
    signal.addEventListener('abort', () => resolve({ done: true, value: undefined as never }), {
      once: true,
    });
  });
  try {
    yield* splitLines();
  } finally {
    // Stops reading stdin, so an abort ends the process as the end of input does.
    await chunks.return?.();
  }

  async function* splitLines(): AsyncGenerator<string | typeof TOO_LONG> {
    for (;;) {
      const next = (await Promise.race([chunks.next(), aborted])) as IteratorResult<
        Buffer | string
      >;
      if (next.done) break;
      let chunk = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
      for (let end = chunk.indexOf(10); end >= 0; end = chunk.indexOf(10)) {
        const head = chunk.subarray(0, end);
        chunk = chunk.subarray(end + 1);
        if (skipping || size + head.length > maxBytes) {
          parts = [];
          size = 0;
          skipping = false;
          yield TOO_LONG;
        } else {
          yield lineOf(head);
        }
      }
      if (skipping) continue;
      if (size + chunk.length > maxBytes) {
        parts = [];
        size = 0;
        skipping = true;
      } else if (chunk.length > 0) {
        parts.push(chunk);
        size += chunk.length;
      }
    }
    if (skipping) yield TOO_LONG;
    else if (size > 0) yield lineOf(Buffer.alloc(0));
  }
}

function rpcError(id: unknown, code: number, message: string): JsonObject {
  return {
    jsonrpc: '2.0',
    id: typeof id === 'string' || typeof id === 'number' ? id : null,
    error: { code, message },
  };
}
