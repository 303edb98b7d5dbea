import { InvalidInputError, NotFoundError } from '@exec-kernel/core';
import type { JsonValue } from '@exec-kernel/memory';
import { idArg, stringFlag, textArg } from '../args.js';
import { backendFor } from '../backends/select.js';
import type { Command } from '../context.js';

// Context is small by design: it is kept in the state file every call reads and rewrites.
const MAX_VALUE = 65_536;
const MAX_NESTING = 64;
const MAX_NOTE = 10_000;

function nesting(value: JsonValue): number {
  let deepest = 0;
  const stack: Array<[JsonValue, number]> = [[value, 0]];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const [node, depth] = next;
    if (node === null || typeof node !== 'object') continue;
    deepest = Math.max(deepest, depth + 1);
    for (const child of Object.values(node)) stack.push([child, depth + 1]);
  }
  return deepest;
}

/** A value as typed on the command line: JSON when it parses as JSON, else the text itself. */
function parseValue(text: string): JsonValue {
  let value: JsonValue;
  try {
    value = JSON.parse(text) as JsonValue;
  } catch {
    return text;
  }
  // Deeper than this, writing the state file would run out of stack: refuse it here, by name.
  if (nesting(value) > MAX_NESTING) {
    const problem = `must not nest deeper than ${MAX_NESTING} levels`;
    throw new InvalidInputError({ field: 'context value', problem });
  }
  return value;
}

export const contextGet: Command = {
  usage: `Usage: exec-kernel context get <task-id> [key]

Prints a task's context: one value as JSON, or every key as key=value lines.
`,
  options: {},
  positionals: { min: 1, max: 2, names: '<task-id> [key]' },
  args: { 'task-id': idArg('task id'), key: idArg('context key') },
  async run(ctx) {
    const [taskId, key] = ctx.positionals as [string, string | undefined];
    const context = await (await backendFor(ctx)).getContext(taskId);
    if (key !== undefined) {
      if (!Object.hasOwn(context, key)) {
        throw new NotFoundError(
          { resource: 'context key', id: key },
          { message: `Task ${taskId} has no context key '${key}'` },
        );
      }
      const value = context[key] as JsonValue;
      return { line: JSON.stringify(value), data: { taskId, key, value } };
    }
    const lines = Object.entries(context).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
    const data = { taskId, context };
    return lines.length === 0 ? { line: `(no context on ${taskId})`, data } : { lines, data };
  },
};

export const contextSet: Command = {
  usage: `Usage: exec-kernel context set <task-id> <key> <value>

Sets a context value on a task. A value that parses as JSON is stored as JSON (42, true,
{"a":1}); anything else is stored as text.
`,
  options: {},
  positionals: { min: 3, max: 3, names: '<task-id> <key> <value>' },
  args: {
    'task-id': idArg('task id'),
    key: idArg('context key'),
    value: textArg('context value', MAX_VALUE),
  },
  async run(ctx) {
    const [taskId, key, text] = ctx.positionals as [string, string, string];
    const value = parseValue(text);
    await (await backendFor(ctx)).setContext(taskId, key, value);
    return {
      line: `OK: ${taskId} context ${key}=${JSON.stringify(value)}`,
      data: { taskId, key, value },
    };
  },
};

export const contextNote: Command = {
  usage: `Usage: exec-kernel context note <task-id> <text...> [--author <name>]

Adds a note to a task; the words after the task id are the note.
`,
  options: { author: { type: 'string' } },
  positionals: { min: 2, max: Number.POSITIVE_INFINITY, names: '<task-id> <text...>' },
  args: { 'task-id': idArg('task id'), text: textArg('note', MAX_NOTE), author: idArg('author') },
  async run(ctx) {
    const [taskId, ...words] = ctx.positionals as [string, ...string[]];
    const author = stringFlag(ctx.values, 'author');
    const note = await (await backendFor(ctx)).addNote(taskId, words.join(' '), author);
    return { line: `OK: note added to ${taskId}`, data: { taskId, note } };
  },
};
