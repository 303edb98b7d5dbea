import { TASK_STATES, type TaskState } from '@exec-kernel/core';
import type { AgentRow, EscalationRow, EscalationStatus, TaskRow } from '../../model.js';
import type { AgentHolding, AgentListFilter, TaskFilter } from '../storage.js';
import {
  AGENTS,
  type Connection,
  cached,
  ESCALATIONS,
  type EscalationRecord,
  type Statement,
  TASKS,
  type TaskRecord,
  tasksInState,
  toEscalation,
  toTask,
} from './statements.js';

// The reads of the SQLite engine that take more than one statement or build their SQL.

/** The tasks with these ids that exist. */
export function getTasks(c: Connection, ids: readonly string[]): TaskRow[] {
  const out: TaskRow[] = [];
  for (const id of new Set(ids)) {
    const row = c.taskById.get(id) as TaskRecord | undefined;
    if (row !== undefined) out.push(toTask(row));
  }
  return out;
}

/** The tasks `filter` selects, in seq order, through the index that holds its state. */
export function listTasks(c: Connection, filter: TaskFilter): TaskRow[] {
  let source = 'tasks WHERE 1';
  if (filter.state !== undefined) {
    if (!TASK_STATES.includes(filter.state)) return [];
    source = tasksInState(filter.state);
  }
  const params: unknown[] = [];
  for (const [condition, value] of [
    ['type = ?', filter.type],
    ['agent_id = ?', filter.agentId],
    ['lease_owner = ?', filter.leaseOwner],
    ['seq > ?', filter.afterSeq],
  ] as const) {
    if (value === undefined) continue;
    source += ` AND ${condition}`;
    params.push(value);
  }
  const sql = `SELECT ${TASKS.select} FROM ${source} ORDER BY seq LIMIT ?`;
  return (cached(c, sql).all(...params, filter.limit) as TaskRecord[]).map(toTask);
}

/** The tasks with these ids and every ancestor along both links, once each. */
export function lineage(c: Connection, ids: readonly string[]): TaskRow[] {
  const found = new Map<string, TaskRow>();
  const queue = [...ids];
  // Synchronous reads on the only connection: no write can land between them.
  for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
    if (found.has(id)) continue;
    const record = c.taskById.get(id) as TaskRecord | undefined;
    if (record === undefined) continue;
    const task = toTask(record);
    found.set(id, task);
    if (task.parentId !== null) queue.push(task.parentId);
    if (task.createdById !== null) queue.push(task.createdById);
  }
  return [...found.values()];
}

/** How many tasks are in each state. */
export function countTasks(c: Connection): Record<TaskState, number> {
  const counts = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Record<TaskState, number>;
  // Every count walks an index (no GROUP BY over the whole table): done is what is left over.
  const count = (statement: Statement): number => (statement.get() as { n: number }).n;
  counts.todo = count(c.countTodo);
  counts.in_progress = count(c.countInProgress);
  let rest = count(c.countAll) - counts.todo - counts.in_progress;
  for (const { state, n } of c.countParked.all() as Array<{ state: TaskState; n: number }>) {
    if (Object.hasOwn(counts, state)) counts[state] = n;
    rest -= n;
  }
  counts.done = rest;
  return counts;
}

/** Escalations by status, after a seq, in seq order. */
export function listEscalations(
  c: Connection,
  filter: { status?: EscalationStatus | undefined; afterSeq?: number | undefined; limit: number },
): EscalationRow[] {
  const where: string[] = [];
  const params: unknown[] = [];
  if (filter.status !== undefined) {
    where.push('status = ?');
    params.push(filter.status);
  }
  if (filter.afterSeq !== undefined) {
    where.push('seq > ?');
    params.push(filter.afterSeq);
  }
  const condition = where.length === 0 ? '' : ` WHERE ${where.join(' AND ')}`;
  const sql = `SELECT ${ESCALATIONS.select} FROM escalations${condition} ORDER BY seq LIMIT ?`;
  return (cached(c, sql).all(...params, filter.limit) as EscalationRecord[]).map(toEscalation);
}

/** A page of agents by id, then the tasks they hold under a live lease, in one query. */
export function listAgentsHolding(c: Connection, filter: AgentListFilter): AgentHolding[] {
  const after = filter.afterId === undefined ? '' : ' WHERE id > ?';
  const page = cached(c, `SELECT ${AGENTS.select} FROM agents${after} ORDER BY id LIMIT ?`);
  const params = filter.afterId === undefined ? [filter.limit] : [filter.afterId, filter.limit];
  const agents = page.all(...params) as AgentRow[];
  if (agents.length === 0) return [];
  const holding = new Map<string, string[]>(agents.map((agent) => [agent.id, []]));
  // Through tasks_expiry: the live leases are the in_progress rows from `now` on.
  const leased = c.liveLeases.all(filter.now, JSON.stringify([...holding.keys()])) as Array<{
    id: string;
    owner: string;
  }>;
  for (const row of leased) holding.get(row.owner)?.push(row.id);
  return agents.map((agent) => ({ agent, holding: holding.get(agent.id) ?? [] }));
}
