import { InvalidInputError, MAX_ID_LENGTH } from '@exec-kernel/core';
import type { ArgRule } from '../args.js';
import type { CliIO, Command, CommandContext, CommandResult, Sink } from '../context.js';
import { invoke } from '../invoke.js';
import { jsonLine, printable, quote } from '../render.js';

/** Flags every command has, which the server sets itself. */
const SERVER_FLAGS = new Set(['json', 'config', 'help']);

/** A JSON value, as tool inputs and results are. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
/** A JSON object. */
export type JsonObject = { [key: string]: Json };

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

/** One command as an MCP tool. */
export interface Tool {
  name: string;
  command: string;
  spec: Command;
  description: string;
  arguments: Argument[];
  inputSchema: JsonObject;
}

/** A tool input that does not fit the tool (unknown or missing arguments): answered as `ERROR:`. */
export class InputError extends Error {
  override name = 'InputError';
}

const camel = (kebab: string): string =>
  kebab.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** The JSON Schema of one value under its rule. */
function valueSchema(rule: ArgRule | undefined): JsonObject {
  switch (rule?.kind) {
    case 'id':
      return { type: 'string', minLength: 1, maxLength: MAX_ID_LENGTH };
    case 'text':
      return { type: 'string', maxLength: rule.max };
    case 'json':
      // Any JSON value: the tool takes the value itself, not its text.
      return {};
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
export function toolFor(command: string, summary: string, spec: Command): Tool {
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
    spec,
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
  // A JSON argument is given as the value itself (a string too), and reaches the command as text.
  if (arg.rule?.kind === 'json') return JSON.stringify(value);
  if (typeof value === 'string') return value;
  if (arg.rule?.kind === 'number') {
    if (typeof value === 'number') return String(value);
    throw wrongType(arg, 'a number');
  }
  throw wrongType(arg, arg.kind === 'strings' ? 'a list of strings' : 'a string');
}

/** A tool call's input as the command's flag values and positionals, as a command line gives them. */
export interface ToolRequest {
  values: CommandContext['values'];
  positionals: string[];
}

/**
 * The flag values and positionals of a call. Values stay text, so the command checks them by the
 * same rules as on the command line.
 *
 * @throws InputError for input that does not fit; InvalidInputError for a value of the wrong type.
 */
export function requestFor(tool: Tool, input: unknown): ToolRequest {
  if (input === undefined || input === null) input = {};
  if (typeof input !== 'object' || Array.isArray(input))
    throw new InputError('arguments must be an object');
  const given = input as Record<string, unknown>;
  const known = new Set(tool.arguments.map((a) => a.property));
  const unknown = Object.keys(given).filter((key) => !known.has(key));
  if (unknown.length > 0)
    throw new InputError(`unknown argument ${unknown.map((k) => quote(k)).join(', ')}`);
  const values: CommandContext['values'] = {};
  const positionals: string[] = [];
  let positionalGap: string | undefined;
  for (const arg of tool.arguments) {
    const value = given[arg.property];
    if (value === undefined || value === null) {
      if (arg.required) throw new InputError(`missing argument '${arg.property}'`);
      if (arg.flag === undefined) positionalGap ??= arg.property;
      continue;
    }
    if (arg.kind === 'boolean') {
      if (typeof value !== 'boolean') throw wrongType(arg, 'true or false');
      if (value && arg.flag !== undefined) values[arg.flag] = true;
      continue;
    }
    const texts = (arg.kind === 'strings' && Array.isArray(value) ? value : [value]).map((v) =>
      textOf(arg, v),
    );
    if (arg.flag !== undefined) {
      values[arg.flag] = arg.kind === 'strings' ? texts : texts[0];
    } else if (positionalGap !== undefined) {
      throw new InputError(`'${arg.property}' needs '${positionalGap}' before it`);
    } else positionals.push(...texts);
  }
  return { values, positionals };
}

/**
 * Runs a tool's command directly and turns its results into a tool result: the data of each as a
 * JSON text (and, when there is one object, as structured content), a refusal as its one line and
 * its Violation, warnings as text. `isError` is set when the command did not succeed.
 */
export async function callTool(
  tool: Tool,
  request: ToolRequest,
  call: { io: CliIO; config: string | undefined; signal: AbortSignal },
): Promise<JsonObject> {
  const results: CommandResult[] = [];
  const stderr: string[] = [];
  const out: Sink = {
    progress: (result) => results.push(result),
    warn: (line) => stderr.push(printable(line)),
  };
  const outcome = await invoke({
    name: tool.command,
    command: tool.spec,
    ...request,
    flags: { json: true, config: call.config },
    io: {
      stdout: { write: () => true, isTTY: false },
      stderr: { write: (text: string) => stderr.push(text.trimEnd()) },
      env: call.io.env,
      cwd: call.io.cwd,
      signal: call.signal,
    },
    out,
  });
  const data: unknown[] = results.map((r) => r.data);
  switch (outcome.kind) {
    case 'done':
      data.push(outcome.result.data);
      break;
    case 'refused':
      data.push(outcome.violation);
      stderr.push(printable(outcome.line));
      break;
    case 'usage':
      stderr.push(outcome.line);
      break;
    case 'internal':
      stderr.push(outcome.line);
      if (call.io.env.EXEC_KERNEL_DEBUG) stderr.push(outcome.stack ?? '');
      break;
  }
  const ok = outcome.status === 0;
  const lines = data.map(jsonLine);
  const warnings = stderr.join('\n').trim();
  // A refusal's one line comes first, then its Violation; a success's data, then any warnings.
  const content: JsonObject[] = [];
  if (!ok && warnings !== '') content.push({ type: 'text', text: warnings });
  if (lines.length > 0) content.push({ type: 'text', text: lines.join('\n') });
  if (ok && warnings !== '') content.push({ type: 'text', text: warnings });
  if (content.length === 0) content.push({ type: 'text', text: ok ? 'OK' : 'failed' });
  const result: JsonObject = { content, isError: !ok };
  // One JSON object (a result, or the Violation of a refusal) is also given as structured data.
  const [only] = data;
  if (data.length === 1 && only !== null && typeof only === 'object' && !Array.isArray(only))
    result.structuredContent = only as JsonObject;
  return result;
}
