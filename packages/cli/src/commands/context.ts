import { NotFoundError } from '@exec-kernel/core';
import type { JsonValue, MemorySession, TaskRecord } from '@exec-kernel/memory';
import { stringFlag } from '../args.js';
import type { Command } from '../context.js';
import { memoryFor } from '../services.js';

function requireTask(s: MemorySession, taskId: string): TaskRecord {
  const task = s.task(taskId);
  if (task === undefined) throw new NotFoundError({ resource: 'task', id: taskId });
  return task;
}

/** A value as typed on the command line: JSON when it parses as JSON, else the text itself. */
function parseValue(text: string): JsonValue {
  try {
    return JSON.parse(text) as JsonValue;
  } catch {
    return text;
  }
}

export const contextGet: Command = {
  usage: `Usage: exec-kernel context get <task-id> [key]

Prints a task's context: one value as JSON, or every key as key=value lines.
`,
  options: {},
  positionals: { min: 1, max: 2, names: '<task-id> [key]' },
  async run(ctx) {
    const [taskId, key] = ctx.positionals as [string, string | undefined];
    const task = requireTask(await (await memoryFor(ctx)).snapshot(), taskId);
    if (key !== undefined) {
      if (!Object.hasOwn(task.context, key)) {
        throw new NotFoundError(
          { resource: 'context key', id: key },
          { message: `Task ${taskId} has no context key '${key}'` },
        );
      }
      const value = task.context[key] as JsonValue;
      ctx.out.result(JSON.stringify(value), { taskId, key, value });
      return 0;
    }
    const lines = Object.entries(task.context).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
    ctx.out.result(lines.length === 0 ? `(no context on ${taskId})` : lines.join('\n'), {
      taskId,
      context: task.context,
    });
    return 0;
  },
};

export const contextSet: Command = {
  usage: `Usage: exec-kernel context set <task-id> <key> <value>

Sets a context value on a task. A value that parses as JSON is stored as JSON (42, true,
{"a":1}); anything else is stored as text.
`,
  options: {},
  positionals: { min: 3, max: 3, names: '<task-id> <key> <value>' },
  async run(ctx) {
    const [taskId, key, text] = ctx.positionals as [string, string, string];
    const value = parseValue(text);
    await (await memoryFor(ctx)).transaction((s) => {
      requireTask(s, taskId);
      s.setContext(taskId, key, value);
    });
    ctx.out.result(`OK: ${taskId} context ${key}=${JSON.stringify(value)}`, { taskId, key, value });
    return 0;
  },
};

export const contextNote: Command = {
  usage: `Usage: exec-kernel context note <task-id> <text...> [--author <name>]

Adds a note to a task; the words after the task id are the note.
`,
  options: { author: { type: 'string' } },
  positionals: { min: 2, max: Number.POSITIVE_INFINITY, names: '<task-id> <text...>' },
  async run(ctx) {
    const [taskId, ...words] = ctx.positionals as [string, ...string[]];
    const author = stringFlag(ctx.values, 'author');
    const note = await (await memoryFor(ctx)).transaction((s) => {
      requireTask(s, taskId);
      return s.note(taskId, words.join(' '), author);
    });
    ctx.out.result(`OK: note added to ${taskId}`, { taskId, note });
    return 0;
  },
};
