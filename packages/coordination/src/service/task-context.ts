import {
  checkId,
  ForbiddenError,
  InvalidInputError,
  NotFoundError,
  textProblem,
} from '@exec-kernel/core';
import type { JsonValue } from '../model.js';
import type { TaskContext, TaskNote } from '../storage/storage.js';
import { eventNow, type ServiceContext } from './context.js';
import { agentOf } from './rules.js';
import type { Caller } from './types.js';

/** At most this many keys in one task's context. */
export const MAX_CONTEXT_KEYS = 100;
/** At most this many notes on one task. */
export const MAX_TASK_NOTES = 1000;
/** The longest note, in characters (the CLI's cap). */
export const MAX_NOTE_LENGTH = 10_000;
/** The largest context value, as JSON characters (the CLI's cap). */
export const MAX_CONTEXT_VALUE = 65_536;
const MAX_NESTING = 64;

function nesting(value: JsonValue, depth = 0): number {
  if (depth > MAX_NESTING || value === null || typeof value !== 'object') return depth;
  let deepest = depth + 1;
  for (const item of Object.values(value)) deepest = Math.max(deepest, nesting(item, depth + 1));
  return deepest;
}

/**
 * Checks a JSON value an agent stores or has digested (a context value, an action's arguments or
 * result): at most {@link MAX_CONTEXT_VALUE} characters as JSON, nested at most 64 levels.
 *
 * @throws InvalidInputError naming `field`.
 */
export function checkJsonValue(field: string, value: JsonValue): void {
  if (JSON.stringify(value).length > MAX_CONTEXT_VALUE) {
    throw new InvalidInputError({
      field,
      problem: `must be at most ${MAX_CONTEXT_VALUE} characters as JSON`,
    });
  }
  if (nesting(value) > MAX_NESTING) {
    throw new InvalidInputError({
      field,
      problem: `must not nest deeper than ${MAX_NESTING} levels`,
    });
  }
}

async function contextOf(ctx: ServiceContext, taskId: string): Promise<TaskContext> {
  checkId(taskId, 'task id');
  const found = await ctx.storage.getContext(taskId);
  if (found === undefined) throw new NotFoundError({ resource: 'task', id: taskId });
  return found;
}

/** A task's key/value context and its notes, oldest first. Any caller may read them. */
export function getContext(ctx: ServiceContext, taskId: string): Promise<TaskContext> {
  return contextOf(ctx, taskId);
}

// Context steers the work, so only who owns or holds the task (or the admin) changes it.
async function mayWrite(ctx: ServiceContext, caller: Caller, taskId: string): Promise<void> {
  if (caller.kind === 'admin') return;
  const task = await ctx.storage.getTask(taskId);
  if (task === undefined) throw new NotFoundError({ resource: 'task', id: taskId });
  if (task.agentId !== caller.agentId && task.leaseOwner !== caller.agentId) {
    throw new ForbiddenError({
      agentId: caller.agentId,
      action: `change the context of task ${taskId}: it is neither its agent nor its lease holder`,
      taskId,
    });
  }
}

/**
 * Sets one key of a task's context (`undefined` removes it) and returns the whole context.
 *
 * @throws InvalidInputError for a key the id rule refuses, a value too large or nested too deep, or
 *   a new key past {@link MAX_CONTEXT_KEYS}.
 * @throws ForbiddenError for an agent that neither enqueued nor holds the task.
 * @throws NotFoundError for an unknown task.
 */
export async function setContext(
  ctx: ServiceContext,
  caller: Caller,
  taskId: string,
  key: string,
  value: JsonValue | undefined,
): Promise<Record<string, JsonValue>> {
  checkId(taskId, 'task id');
  checkId(key, 'context key');
  if (value !== undefined) checkJsonValue('context value', value);
  await mayWrite(ctx, caller, taskId);
  if (value !== undefined) {
    // A soft bound: two writers adding a new key at the same moment may pass it by one.
    const { context } = await contextOf(ctx, taskId);
    if (!Object.hasOwn(context, key) && Object.keys(context).length >= MAX_CONTEXT_KEYS) {
      throw new InvalidInputError({
        field: 'context key',
        problem: `task ${taskId} already has ${MAX_CONTEXT_KEYS} context keys, the most it may hold`,
      });
    }
  }
  const event = eventNow(ctx, 'task.context', {
    taskId,
    agentId: agentOf(caller),
    data: { key, removed: value === undefined },
  });
  const written = await ctx.storage.setContext(taskId, key, value, event);
  if (written === undefined) throw new NotFoundError({ resource: 'task', id: taskId });
  return written;
}

/**
 * Adds a note to a task, written by the caller. Any agent may add one (its author is recorded).
 *
 * @throws InvalidInputError for text the text rule refuses, too long, or past {@link MAX_TASK_NOTES}.
 * @throws NotFoundError for an unknown task.
 */
export async function addNote(
  ctx: ServiceContext,
  caller: Caller,
  taskId: string,
  text: string,
): Promise<TaskNote> {
  checkId(taskId, 'task id');
  const problem =
    text.trim() === ''
      ? 'must not be blank'
      : text.length > MAX_NOTE_LENGTH
        ? `must be at most ${MAX_NOTE_LENGTH} characters`
        : textProblem(text);
  if (problem !== undefined) throw new InvalidInputError({ field: 'note', problem });
  const { notes } = await contextOf(ctx, taskId);
  if (notes.length >= MAX_TASK_NOTES) {
    throw new InvalidInputError({
      field: 'note',
      problem: `task ${taskId} already has ${MAX_TASK_NOTES} notes, the most it may hold`,
    });
  }
  const agentId = agentOf(caller);
  const note: TaskNote = { at: ctx.clock.now(), agentId, text };
  const event = eventNow(ctx, 'task.note', { taskId, agentId, data: { length: text.length } });
  const written = await ctx.storage.addNote(taskId, note, event);
  if (written === undefined) throw new NotFoundError({ resource: 'task', id: taskId });
  return written;
}
