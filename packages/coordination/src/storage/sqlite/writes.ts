import { ConflictError } from '@exec-kernel/core';
import type {
  EscalationRow,
  EscalationStatus,
  JsonValue,
  NewEvent,
  NewTaskRow,
  TaskRow,
} from '../../model.js';
import {
  type ActionStep,
  type ClaimEvent,
  type ClaimRequest,
  claimEventFor,
  type Expectation,
  type SpendingDelta,
  type TaskContext,
  type TaskNote,
  type TaskUpdate,
} from '../storage.js';
import {
  AGENTS,
  appendEvent,
  type Connection,
  cached,
  claimNextSql,
  ESCALATIONS,
  type EscalationRecord,
  insertEscalation,
  TASKS,
  type TaskRecord,
  toEscalation,
  toTask,
  update,
  values,
} from './statements.js';

// The writes of the SQLite engine, each to run inside the caller's transaction.

/** A new task and its event, or the task its agent's idempotency key already names. */
export function insertTask(
  c: Connection,
  task: NewTaskRow,
  event: NewEvent,
): { task: TaskRow; created: boolean } {
  if (task.idempotencyKey !== null) {
    const existing = c.taskByIdempotencyKey.get(task.agentId, task.idempotencyKey);
    if (existing !== undefined) return { task: toTask(existing as TaskRecord), created: false };
  }
  if (c.taskIdExists.get(task.id) !== undefined) {
    throw new ConflictError(
      { resource: `task ${task.id}` },
      { message: `Task ${task.id} already exists` },
    );
  }
  const row = toTask(c.insertTask.get(...values(TASKS, task)) as TaskRecord);
  appendEvent(c, event);
  return { task: row, created: true };
}

/** A compare-and-set on an escalation's status, with its event. */
export function updateEscalation(
  c: Connection,
  id: string,
  expectStatuses: readonly EscalationStatus[],
  changes: Partial<Omit<EscalationRow, 'id' | 'seq' | 'createdAt'>>,
  event: NewEvent,
): EscalationRow | undefined {
  if (expectStatuses.length === 0) return undefined;
  const where = `id = ? AND status IN (${expectStatuses.map(() => '?').join(', ')})`;
  const record = update(c, ESCALATIONS, changes, where, [id, ...expectStatuses]);
  if (record === undefined) return undefined;
  appendEvent(c, event);
  return toEscalation(record as EscalationRecord);
}

/** The WHERE of a compare-and-set on a task (`id = ?` and what `expect` checks), with its params. */
export function expectationWhere(
  id: string,
  expect: Expectation,
): { where: string; params: unknown[] } {
  let where = 'id = ? AND state = ?';
  const params: unknown[] = [id, expect.state];
  if (expect.leaseOwner !== undefined) {
    where += ' AND lease_owner IS ?';
    params.push(expect.leaseOwner);
  }
  if (expect.leaseId !== undefined) {
    where += ' AND lease_id IS ?';
    params.push(expect.leaseId);
  }
  if (expect.leaseLiveAt !== undefined) {
    where += ' AND lease_until >= ?';
    params.push(expect.leaseLiveAt);
  }
  if (expect.leaseEndedBefore !== undefined) {
    where += ' AND lease_until < ?';
    params.push(expect.leaseEndedBefore);
  }
  return { where, params };
}

/** One compare-and-set and what goes with it. */
export function updateOne(
  c: Connection,
  { id, expect, changes, extras }: TaskUpdate,
): TaskRow | undefined {
  const { where, params } = expectationWhere(id, expect);
  const record = update(c, TASKS, changes, where, params) as TaskRecord | undefined;
  if (record === undefined) return undefined;
  for (const e of extras.events) appendEvent(c, e);
  if (extras.escalation !== undefined) insertEscalation(c, extras.escalation);
  return toTask(record);
}

/** One claim statement and its event. */
export function claimOne(
  c: Connection,
  request: ClaimRequest,
  event: ClaimEvent,
  except: readonly string[] = [],
): TaskRow | undefined {
  const lease = [request.agentId, request.leaseId, request.leaseUntil, request.now, request.now];
  let record: unknown;
  if (request.taskId !== undefined) {
    record = c.claimNamed.get(...lease, request.taskId);
  } else if (request.types === null && except.length === 0) {
    record = c.claimNext.get(...lease);
  } else {
    const types = request.types ?? [];
    const passOver = except.length === 0 ? [] : [JSON.stringify(except)];
    record = cached(
      c,
      claimNextSql(request.types === null ? null : types.length, passOver.length > 0),
    ).get(...lease, ...types, ...passOver);
  }
  if (record === undefined) return undefined;
  const task = toTask(record as TaskRecord);
  appendEvent(c, claimEventFor(event, task));
  return task;
}

/** Up to `max` claims, never of the tasks in `except`; wakes the claimant if any was made. */
export function claimMany(
  c: Connection,
  request: ClaimRequest,
  max: number,
  event: ClaimEvent,
  except: readonly string[],
): TaskRow[] {
  const next = { ...request, taskId: undefined };
  const out: TaskRow[] = [];
  if (request.types?.length === 0) return out;
  for (
    let task = claimOne(c, next, event, except);
    task !== undefined;
    task = claimOne(c, next, event, except)
  ) {
    out.push(task);
    if (out.length >= max) break;
  }
  if (out.length > 0) wakeClaimant(c, request);
  return out;
}

/** After a claim took work: wakes the claimant if it sleeps. */
export function wakeClaimant(c: Connection, request: ClaimRequest): void {
  if (request.wake === undefined) return;
  const woken = update(
    c,
    AGENTS,
    { sleepUntil: null, sleepReason: null, sleepSince: null },
    'id = ? AND sleep_until > ?',
    [request.agentId, request.now],
  );
  if (woken !== undefined) appendEvent(c, request.wake);
}

/**
 * Spending on each task, the first only if it matches `expect` (else nothing is written and the
 * result is `undefined`).
 */
export function addSpending(
  c: Connection,
  ids: readonly string[],
  delta: SpendingDelta,
  now: number,
  event: NewEvent,
  expect: Expectation | undefined,
): TaskRow[] | undefined {
  const unique = [...new Set(ids)];
  const out: TaskRow[] = [];
  for (const [i, id] of unique.entries()) {
    let record: unknown;
    if (i === 0 && expect !== undefined) {
      const { where, params } = expectationWhere(id, expect);
      const sql = `UPDATE tasks SET steps_taken = steps_taken + ?, tokens = tokens + ?, cost_usd = cost_usd + ?, updated_at = ? WHERE ${where} RETURNING ${TASKS.select}`;
      record = cached(c, sql).get(delta.steps, delta.tokens, delta.costUsd, now, ...params);
      if (record === undefined) return undefined;
    } else {
      record = c.addSpending.get(delta.steps, delta.tokens, delta.costUsd, now, id);
    }
    if (record !== undefined) out.push(toTask(record as TaskRecord));
  }
  appendEvent(c, event);
  return out;
}

/** A task's context, or `undefined` for an unknown task. */
export function readContext(c: Connection, taskId: string): TaskContext | undefined {
  if (c.taskIdExists.get(taskId) === undefined) return undefined;
  return {
    context: contextOf(c, taskId),
    notes: c.notesOf.all(taskId) as TaskNote[],
  };
}

/** A task's key/value context alone. */
export function contextOf(c: Connection, taskId: string): Record<string, JsonValue> {
  const context: Record<string, JsonValue> = {};
  for (const row of c.contextOf.all(taskId) as Array<{ key: string; value: string }>) {
    context[row.key] = JSON.parse(row.value);
  }
  return context;
}

/** Sets (or, with `undefined`, deletes) one key; `undefined` for an unknown task. */
export function setContext(
  c: Connection,
  taskId: string,
  key: string,
  value: JsonValue | undefined,
  event: NewEvent,
): Record<string, JsonValue> | undefined {
  if (c.taskIdExists.get(taskId) === undefined) return undefined;
  if (value === undefined) c.deleteContext.run(taskId, key);
  else c.setContext.run(taskId, key, JSON.stringify(value));
  appendEvent(c, event);
  return contextOf(c, taskId);
}

/** Appends a note; `undefined` for an unknown task. */
export function addNote(
  c: Connection,
  taskId: string,
  note: TaskNote,
  event: NewEvent,
): TaskNote | undefined {
  if (c.taskIdExists.get(taskId) === undefined) return undefined;
  c.insertNote.run(taskId, note.at, note.agentId, note.text);
  appendEvent(c, event);
  return { at: note.at, agentId: note.agentId, text: note.text };
}

/**
 * One step of a task's action history under the write transaction: `undefined` (nothing run or
 * written) when the task does not match `expect`; otherwise what `step` returned, and how many
 * events it wrote.
 */
export function recordAction<T>(
  c: Connection,
  taskId: string,
  expect: Expectation,
  step: ActionStep<T>,
): { value: T; events: number } | undefined {
  const { where, params } = expectationWhere(taskId, expect);
  if (cached(c, `SELECT 1 FROM tasks WHERE ${where}`).get(...params) === undefined)
    return undefined;
  const saved = cached(c, 'SELECT history FROM task_actions WHERE task_id = ?').get(taskId) as
    | { history: string }
    | undefined;
  const { history, events, value } = step(
    saved === undefined ? undefined : (JSON.parse(saved.history) as JsonValue),
  );
  cached(
    c,
    'INSERT INTO task_actions (task_id, history) VALUES (?, ?) ON CONFLICT (task_id) DO UPDATE SET history = excluded.history',
  ).run(taskId, JSON.stringify(history));
  for (const e of events) appendEvent(c, e);
  return { value, events: events.length };
}

/** A task's saved action history. */
export function readActions(c: Connection, taskId: string): JsonValue | undefined {
  const saved = cached(c, 'SELECT history FROM task_actions WHERE task_id = ?').get(taskId) as
    | { history: string }
    | undefined;
  return saved === undefined ? undefined : (JSON.parse(saved.history) as JsonValue);
}
