import { ConflictError, type TaskState } from '@exec-kernel/core';
import type Database from 'better-sqlite3';
import type { EscalationRow, EventRow, NewEscalationRow, NewEvent, TaskRow } from '../../model.js';
import {
  AGENTS as AGENT_TABLE,
  ESCALATIONS as ESCALATION_TABLE,
  type Table as SharedTable,
  TASKS as TASK_TABLE,
} from '../tables.js';

/** A prepared statement of this engine. */
export type Statement = Database.Statement<unknown[], unknown>;

/** A shared table with its select list, aliased back to field names. */
export interface Table extends SharedTable {
  select: string;
}

function withSelect(table: SharedTable, seq: boolean): Table {
  const fields = Object.entries(table.columns).map(([field, column]) =>
    field === column ? column : `${column} AS ${field}`,
  );
  return { ...table, select: (seq ? ['seq', ...fields] : fields).join(', ') };
}

export const TASKS: Table = withSelect(TASK_TABLE, true);
export const AGENTS: Table = withSelect(AGENT_TABLE, false);
export const ESCALATIONS: Table = withSelect(ESCALATION_TABLE, true);

/** Where `tasks_parked` applies; a query must repeat it word for word for SQLite to use the index. */
export const PARKED = "state NOT IN ('todo', 'in_progress', 'done')";

/** The rows of one state, through the index that holds them (state literals come from TASK_STATES). */
export function tasksInState(state: TaskState): string {
  // A rowid walk avoids the sort and the planner prefers it, but it steps over every finished task.
  if (state === 'todo') return "tasks INDEXED BY tasks_claim WHERE state = 'todo'";
  if (state === 'in_progress') return "tasks INDEXED BY tasks_expiry WHERE state = 'in_progress'";
  // Finished tasks are most of the table: the rowid walk finds them at once.
  if (state === 'done') return "tasks WHERE state = 'done'";
  return `tasks WHERE state = '${state}' AND ${PARKED}`;
}

export const EVENT_SELECT = 'seq, type, task_id AS taskId, agent_id AS agentId, data, at';

export type TaskRecord = Omit<TaskRow, 'admission' | 'payload' | 'limits' | 'warned'> & {
  admission: string | null;
  payload: string | null;
  limits: string;
  warned: string;
};
export type EscalationRecord = Omit<EscalationRow, 'violation'> & { violation: string | null };
export type EventRecord = Omit<EventRow, 'data'> & { data: string };

export const toTask = (r: TaskRecord): TaskRow => ({
  ...r,
  admission: r.admission === null ? null : JSON.parse(r.admission),
  payload: r.payload === null ? null : JSON.parse(r.payload),
  limits: JSON.parse(r.limits),
  warned: JSON.parse(r.warned),
});

export const toEscalation = (r: EscalationRecord): EscalationRow => ({
  ...r,
  violation: r.violation === null ? null : JSON.parse(r.violation),
});

export const toEvent = (r: EventRecord): EventRow => ({ ...r, data: JSON.parse(r.data) });

export function encode(value: unknown, json: boolean): unknown {
  if (value === undefined || value === null) return null;
  return json ? JSON.stringify(value) : value;
}

export function values(t: Table, row: object): unknown[] {
  const fields = row as Record<string, unknown>;
  return Object.keys(t.columns).map((field) => encode(fields[field], t.json.has(field)));
}

export function insertSql(t: Table): string {
  const columns = Object.values(t.columns);
  return `INSERT INTO ${t.name} (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')}) RETURNING ${t.select}`;
}

export const CLAIM_SET =
  "state = 'in_progress', lease_owner = ?, lease_id = ?, lease_until = ?, attempts = attempts + 1, started_at = coalesce(started_at, ?), updated_at = ?";

/** The claim: one statement, the next open task in the partial index's order. */
export function claimNextSql(typeCount: number | null, except = false): string {
  const types = typeCount === null ? '' : ` AND type IN (${Array(typeCount).fill('?').join(', ')})`;
  // The ids to pass over, as one JSON array: one statement serves any number of them.
  const passOver = except ? ' AND id NOT IN (SELECT value FROM json_each(?))' : '';
  // INDEXED BY pins the plan: statistics from a later ANALYZE can never move the claim onto a
  // primary-key walk over finished tasks, and a schema that breaks the index fails at open().
  return `UPDATE tasks SET ${CLAIM_SET} WHERE seq = (SELECT seq FROM tasks INDEXED BY tasks_claim WHERE state = 'todo'${types}${passOver} ORDER BY priority DESC, seq LIMIT 1) RETURNING ${TASKS.select}`;
}

/** The prepared statements of one open connection. */
export interface Connection {
  db: Database.Database;
  transaction: (work: () => unknown) => unknown;
  /** Statements whose text depends on the call (updates, filters), by SQL text. */
  cache: Map<string, Statement>;
  insertTask: Statement;
  taskById: Statement;
  taskIdExists: Statement;
  taskByIdempotencyKey: Statement;
  claimNext: Statement;
  claimNamed: Statement;
  addSpending: Statement;
  expiredLeases: Statement;
  countTodo: Statement;
  countInProgress: Statement;
  countParked: Statement;
  countAll: Statement;
  insertEvent: Statement;
  readEvents: Statement;
  readTaskEvents: Statement;
  liveLeases: Statement;
  putAgent: Statement;
  agentById: Statement;
  agentByTokenHash: Statement;
  listAgents: Statement;
  insertEscalation: Statement;
  escalationById: Statement;
  countOpenEscalations: Statement;
  contextOf: Statement;
  setContext: Statement;
  deleteContext: Statement;
  notesOf: Statement;
  insertNote: Statement;
}

export function prepare(db: Database.Database): Connection {
  const task = (where: string): Statement =>
    db.prepare(`SELECT ${TASKS.select} FROM tasks WHERE ${where}`);
  const agentColumns = Object.values(AGENTS.columns);
  return {
    db,
    transaction: db.transaction((work: () => unknown) => work()),
    cache: new Map(),
    insertTask: db.prepare(insertSql(TASKS)),
    taskById: task('id = ?'),
    taskIdExists: db.prepare('SELECT 1 FROM tasks WHERE id = ?'),
    taskByIdempotencyKey: task('agent_id = ? AND idempotency_key = ?'),
    claimNext: db.prepare(claimNextSql(null)),
    claimNamed: db.prepare(
      `UPDATE tasks SET ${CLAIM_SET} WHERE id = ? AND state = 'todo' RETURNING ${TASKS.select}`,
    ),
    addSpending: db.prepare(
      `UPDATE tasks SET steps_taken = steps_taken + ?, tokens = tokens + ?, cost_usd = cost_usd + ?, updated_at = ? WHERE id = ? RETURNING ${TASKS.select}`,
    ),
    expiredLeases: task(
      "state = 'in_progress' AND lease_until < ? ORDER BY lease_until, seq LIMIT ?",
    ),
    countTodo: db.prepare("SELECT count(*) AS n FROM tasks WHERE state = 'todo'"),
    countInProgress: db.prepare("SELECT count(*) AS n FROM tasks WHERE state = 'in_progress'"),
    countParked: db.prepare(
      `SELECT state, count(*) AS n FROM tasks WHERE ${PARKED} GROUP BY state`,
    ),
    countAll: db.prepare('SELECT count(*) AS n FROM tasks'),
    insertEvent: db.prepare(
      'INSERT INTO events (type, task_id, agent_id, data, at) VALUES (?, ?, ?, ?, ?)',
    ),
    readEvents: db.prepare(`SELECT ${EVENT_SELECT} FROM events WHERE seq > ? ORDER BY seq LIMIT ?`),
    readTaskEvents: db.prepare(
      `SELECT ${EVENT_SELECT} FROM events WHERE task_id = ? AND seq > ? ORDER BY seq LIMIT ?`,
    ),
    liveLeases: db.prepare(
      "SELECT id, lease_owner AS owner FROM tasks INDEXED BY tasks_expiry WHERE state = 'in_progress' AND lease_until >= ? AND lease_owner IN (SELECT value FROM json_each(?)) ORDER BY id",
    ),
    // An upsert, not INSERT OR REPLACE: the row keeps its place in listAgents.
    putAgent: db.prepare(
      `INSERT INTO agents (${agentColumns.join(', ')}) VALUES (${agentColumns.map(() => '?').join(', ')}) ON CONFLICT (id) DO UPDATE SET ${agentColumns
        .filter((column) => column !== 'id')
        .map((column) => `${column} = excluded.${column}`)
        .join(', ')}`,
    ),
    agentById: db.prepare(`SELECT ${AGENTS.select} FROM agents WHERE id = ?`),
    agentByTokenHash: db.prepare(
      `SELECT ${AGENTS.select} FROM agents WHERE token_hash = ? ORDER BY rowid LIMIT 1`,
    ),
    listAgents: db.prepare(`SELECT ${AGENTS.select} FROM agents ORDER BY rowid`),
    insertEscalation: db.prepare(insertSql(ESCALATIONS)),
    escalationById: db.prepare(`SELECT ${ESCALATIONS.select} FROM escalations WHERE id = ?`),
    countOpenEscalations: db.prepare(
      "SELECT count(*) AS n FROM escalations WHERE status IN ('open', 'acknowledged')",
    ),
    contextOf: db.prepare('SELECT key, value FROM task_context WHERE task_id = ? ORDER BY key'),
    setContext: db.prepare(
      'INSERT INTO task_context (task_id, key, value) VALUES (?, ?, ?) ON CONFLICT (task_id, key) DO UPDATE SET value = excluded.value',
    ),
    deleteContext: db.prepare('DELETE FROM task_context WHERE task_id = ? AND key = ?'),
    notesOf: db.prepare(
      'SELECT at, agent_id AS agentId, text FROM task_notes WHERE task_id = ? ORDER BY seq',
    ),
    insertNote: db.prepare(
      'INSERT INTO task_notes (task_id, at, agent_id, text) VALUES (?, ?, ?, ?)',
    ),
  };
}

/** Inserts an escalation; an id that exists is a {@link ConflictError} (the write rolls back). */
export function insertEscalation(c: Connection, escalation: NewEscalationRow): EscalationRow {
  if (c.escalationById.get(escalation.id) !== undefined) {
    throw new ConflictError(
      { resource: `escalation ${escalation.id}` },
      { message: `Escalation ${escalation.id} already exists` },
    );
  }
  return toEscalation(
    c.insertEscalation.get(...values(ESCALATIONS, escalation)) as EscalationRecord,
  );
}

export function appendEvent(c: Connection, event: NewEvent): EventRow {
  const data = JSON.stringify(event.data) ?? 'null';
  const { lastInsertRowid } = c.insertEvent.run(
    event.type,
    event.taskId,
    event.agentId,
    data,
    event.at,
  );
  return {
    seq: Number(lastInsertRowid),
    type: event.type,
    taskId: event.taskId,
    agentId: event.agentId,
    data: JSON.parse(data),
    at: event.at,
  };
}

/** A statement whose text depends on the call (updates, filters), prepared once per text. */
export function cached(c: Connection, sql: string): Statement {
  let statement = c.cache.get(sql);
  if (statement === undefined) {
    // The shapes in use are few; a caller inventing new ones forever must not grow this forever.
    if (c.cache.size >= 256) c.cache.clear();
    statement = c.db.prepare(sql);
    c.cache.set(sql, statement);
  }
  return statement;
}

/** `UPDATE … SET <changes> WHERE <where> RETURNING *`: the row after the change, or `undefined`. */
export function update(
  c: Connection,
  t: Table,
  changes: object,
  where: string,
  whereParams: unknown[],
): unknown {
  const sets: string[] = [];
  const params: unknown[] = [];
  for (const [field, value] of Object.entries(changes)) {
    if (value === undefined) continue;
    const column = Object.hasOwn(t.columns, field) ? t.columns[field] : undefined;
    if (column === undefined || t.fixed.has(field)) {
      throw new TypeError(`${t.name}.${field} cannot be updated`);
    }
    sets.push(`${column} = ?`);
    params.push(encode(value, t.json.has(field)));
  }
  // Nothing to change still has to check the expectation and return the row.
  if (sets.length === 0) sets.push('id = id');
  const sql = `UPDATE ${t.name} SET ${sets.join(', ')} WHERE ${where} RETURNING ${t.select}`;
  return cached(c, sql).get(...params, ...whereParams);
}
