import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import {
  ConflictError,
  ListenerSet,
  StoreError,
  TASK_STATES,
  type TaskState,
  type Unsubscribe,
} from '@exec-kernel/core';
import Database from 'better-sqlite3';
import type {
  AgentRow,
  EscalationRow,
  EscalationStatus,
  EventRow,
  NewEscalationRow,
  NewEvent,
  NewTaskRow,
  TaskRow,
} from '../model.js';
import {
  type ChangeSignal,
  type ClaimEvent,
  type ClaimRequest,
  claimEventFor,
  type Expectation,
  type FollowingClaim,
  type SpendingDelta,
  type Storage,
  type TaskChanges,
  type TaskFilter,
  type TaskUpdate,
  type UpdateExtras,
} from './storage.js';
import {
  AGENTS as AGENT_TABLE,
  ESCALATIONS as ESCALATION_TABLE,
  type Table as SharedTable,
  TASKS as TASK_TABLE,
} from './tables.js';

/** Options of {@link SqliteStorage}. */
export interface SqliteStorageOptions {
  /**
   * The database file, created (with its directory) if missing. A relative path resolves against
   * the current directory. Only one process may have it open at a time.
   */
  path: string;
  /**
   * Type: `'normal' | 'full'`
   *
   * Default: `'normal'`
   *
   * `normal` commits with WAL and `synchronous = NORMAL`: a commit survives a crash of the process,
   * but the last commits can be lost on an OS crash or power loss. `full` uses `synchronous = FULL`:
   * every commit survives power loss, at several times the cost per write.
   */
  durability?: 'normal' | 'full' | undefined;
}

/** How an open {@link SqliteStorage} runs, read back from SQLite (for health checks and tests). */
export interface SqliteDiagnostics {
  /** `wal`. */
  journalMode: string;
  /** `exclusive`: the lock that keeps every other process out of the file. */
  lockingMode: string;
  /** `NORMAL` or `FULL`. */
  synchronous: string;
  /** `PRAGMA user_version`: the schema the file holds. */
  schemaVersion: number;
  /** `EXPLAIN QUERY PLAN` of the claim statement, one line per step. */
  claimPlan: string[];
}

type Statement = Database.Statement<unknown[], unknown>;

/** The schema, one entry per version; `PRAGMA user_version` says how many have been applied. */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    title TEXT,
    state TEXT NOT NULL,
    priority INTEGER NOT NULL,
    agent_id TEXT NOT NULL,
    parent_id TEXT,
    created_by_id TEXT,
    depth INTEGER NOT NULL,
    admission TEXT,
    payload TEXT,
    idempotency_key TEXT,
    attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    lease_owner TEXT,
    lease_id TEXT,
    lease_until INTEGER,
    limits TEXT NOT NULL,
    steps_taken INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    warned TEXT NOT NULL,
    started_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  -- Exactly the claim's ORDER BY, only open tasks: finished tasks leave the index, and the order
  -- cannot be served by the primary key alone. type rides along so a typed claim reads no rows.
  CREATE INDEX tasks_claim ON tasks (priority DESC, seq, type) WHERE state = 'todo';
  CREATE UNIQUE INDEX tasks_idempotency ON tasks (agent_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
  CREATE INDEX tasks_expiry ON tasks (lease_until) WHERE state = 'in_progress';
  -- No index on all of state, nor on lease_owner: they change on every claim and completion, and
  -- each index changed is one page more per commit (1.8x claims/s without them, measured). The
  -- partial indexes cover the open states; this one the rest but done, which claims never touch.
  CREATE INDEX tasks_parked ON tasks (state) WHERE state NOT IN ('todo', 'in_progress', 'done');
  CREATE INDEX tasks_agent ON tasks (agent_id);

  CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL,
    sleep_until INTEGER,
    sleep_reason TEXT,
    sleep_since INTEGER,
    created_at INTEGER NOT NULL
  );
  CREATE INDEX agents_token_hash ON agents (token_hash);

  CREATE TABLE escalations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    task_id TEXT,
    agent_id TEXT,
    violation TEXT,
    comment TEXT,
    created_at INTEGER NOT NULL,
    acknowledged_at INTEGER,
    acknowledged_by TEXT,
    resolved_at INTEGER,
    resolved_by TEXT,
    resolution TEXT
  );
  CREATE INDEX escalations_status ON escalations (status);

  -- A cursor must never see a seq twice. A plain rowid is max + 1, so it cannot come back while
  -- the newest event stays; the trigger keeps it, at no cost to the inserts on every write that
  -- AUTOINCREMENT's sqlite_sequence page would add.
  CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    type TEXT NOT NULL,
    task_id TEXT,
    agent_id TEXT,
    data TEXT NOT NULL,
    at INTEGER NOT NULL
  );
  CREATE TRIGGER events_keep_newest BEFORE DELETE ON events
    WHEN old.seq = (SELECT max(seq) FROM events)
  BEGIN
    SELECT RAISE(ABORT, 'the newest event holds the event sequence and cannot be deleted');
  END;
  `,
];

/** A shared table with its select list, aliased back to field names. */
interface Table extends SharedTable {
  select: string;
}

function withSelect(table: SharedTable, seq: boolean): Table {
  const fields = Object.entries(table.columns).map(([field, column]) =>
    field === column ? column : `${column} AS ${field}`,
  );
  return { ...table, select: (seq ? ['seq', ...fields] : fields).join(', ') };
}

const TASKS = withSelect(TASK_TABLE, true);
const AGENTS = withSelect(AGENT_TABLE, false);
const ESCALATIONS = withSelect(ESCALATION_TABLE, true);

/** Where `tasks_parked` applies; a query must repeat it word for word for SQLite to use the index. */
const PARKED = "state NOT IN ('todo', 'in_progress', 'done')";

/** The rows of one state, through the index that holds them (state literals come from TASK_STATES). */
function tasksInState(state: TaskState): string {
  // A rowid walk avoids the sort and the planner prefers it, but it steps over every finished task.
  if (state === 'todo') return "tasks INDEXED BY tasks_claim WHERE state = 'todo'";
  if (state === 'in_progress') return "tasks INDEXED BY tasks_expiry WHERE state = 'in_progress'";
  // Finished tasks are most of the table: the rowid walk finds them at once.
  if (state === 'done') return "tasks WHERE state = 'done'";
  return `tasks WHERE state = '${state}' AND ${PARKED}`;
}

const EVENT_SELECT = 'seq, type, task_id AS taskId, agent_id AS agentId, data, at';

type TaskRecord = Omit<TaskRow, 'admission' | 'payload' | 'limits' | 'warned'> & {
  admission: string | null;
  payload: string | null;
  limits: string;
  warned: string;
};
type EscalationRecord = Omit<EscalationRow, 'violation'> & { violation: string | null };
type EventRecord = Omit<EventRow, 'data'> & { data: string };

const toTask = (r: TaskRecord): TaskRow => ({
  ...r,
  admission: r.admission === null ? null : JSON.parse(r.admission),
  payload: r.payload === null ? null : JSON.parse(r.payload),
  limits: JSON.parse(r.limits),
  warned: JSON.parse(r.warned),
});

const toEscalation = (r: EscalationRecord): EscalationRow => ({
  ...r,
  violation: r.violation === null ? null : JSON.parse(r.violation),
});

const toEvent = (r: EventRecord): EventRow => ({ ...r, data: JSON.parse(r.data) });

function encode(value: unknown, json: boolean): unknown {
  if (value === undefined || value === null) return null;
  return json ? JSON.stringify(value) : value;
}

function values(t: Table, row: object): unknown[] {
  const fields = row as Record<string, unknown>;
  return Object.keys(t.columns).map((field) => encode(fields[field], t.json.has(field)));
}

function insertSql(t: Table): string {
  const columns = Object.values(t.columns);
  return `INSERT INTO ${t.name} (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')}) RETURNING ${t.select}`;
}

const CLAIM_SET =
  "state = 'in_progress', lease_owner = ?, lease_id = ?, lease_until = ?, attempts = attempts + 1, started_at = coalesce(started_at, ?), updated_at = ?";

/** The claim: one statement, the next open task in the partial index's order. */
function claimNextSql(typeCount: number | null, except = false): string {
  const types = typeCount === null ? '' : ` AND type IN (${Array(typeCount).fill('?').join(', ')})`;
  // The ids to pass over, as one JSON array: one statement serves any number of them.
  const passOver = except ? ' AND id NOT IN (SELECT value FROM json_each(?))' : '';
  // INDEXED BY pins the plan: statistics from a later ANALYZE can never move the claim onto a
  // primary-key walk over finished tasks, and a schema that breaks the index fails at open().
  return `UPDATE tasks SET ${CLAIM_SET} WHERE seq = (SELECT seq FROM tasks INDEXED BY tasks_claim WHERE state = 'todo'${types}${passOver} ORDER BY priority DESC, seq LIMIT 1) RETURNING ${TASKS.select}`;
}

const SYNCHRONOUS = ['OFF', 'NORMAL', 'FULL', 'EXTRA'];

/** How long `open()` waits for a lock held by someone else before refusing. */
const BUSY_TIMEOUT_MS = 100;

/** The prepared statements of one open connection. */
interface Connection {
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
  putAgent: Statement;
  agentById: Statement;
  agentByTokenHash: Statement;
  listAgents: Statement;
  insertEscalation: Statement;
  escalationById: Statement;
  countOpenEscalations: Statement;
}

/**
 * The embedded engine: one SQLite file (better-sqlite3, WAL) owned by one service process.
 *
 * `open()` takes SQLite's exclusive lock for the connection's lifetime (`locking_mode = EXCLUSIVE`),
 * so a second service, or any other reader or writer, is refused with a {@link ConflictError}
 * instead of sharing the file. The operating system drops the lock when the process ends, so a
 * crashed service never leaves a stale lock behind. better-sqlite3 is synchronous: every method does
 * its work in one transaction before it returns, which is what makes each one atomic.
 *
 * Do not open the database file by any other means inside the service process (a copy, a backup
 * read): closing such a descriptor drops the process's POSIX locks, SQLite's included.
 *
 * Indexes serve the claim, the lease reaper, listings by state or agent and the counts; a listing
 * by `leaseOwner` alone reads the whole table (add `state: 'in_progress'` to use an index).
 *
 * @example
 * ```ts
 * const storage = new SqliteStorage({ path: '.exec-kernel/coordination.db' });
 * await storage.open(); // ConflictError if another process has the file open
 * ```
 */
export class SqliteStorage implements Storage {
  readonly engine = 'sqlite' as const;
  readonly location: string;
  readonly #path: string;
  readonly #synchronous: 'NORMAL' | 'FULL';
  readonly #signals = new ListenerSet<ChangeSignal>();
  #connection: Connection | undefined;

  constructor(options: SqliteStorageOptions) {
    this.#path = resolve(options.path);
    this.#synchronous = options.durability === 'full' ? 'FULL' : 'NORMAL';
    this.location = `sqlite:${this.#path}`;
  }

  /**
   * Opens the file, takes the exclusive lock and creates or migrates the schema.
   *
   * @throws ConflictError when another process (or another storage in this one) has the file open.
   */
  async open(): Promise<void> {
    if (this.#connection !== undefined) return;
    mkdirSync(dirname(this.#path), { recursive: true });
    const db = new Database(this.#path, { timeout: BUSY_TIMEOUT_MS });
    try {
      // Exclusive before the first access: SQLite then keeps the WAL index in process memory (no
      // -shm file) and holds its lock on the database file until close.
      db.pragma('locking_mode = EXCLUSIVE');
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (mode !== 'wal') throw new Error(`${this.location} cannot use WAL (journal_mode ${mode})`);
      db.pragma(`synchronous = ${this.#synchronous}`);
      // The WAL is reset after each checkpoint but keeps its size; cap what a burst leaves on disk.
      db.pragma('journal_size_limit = 67108864');
      // Checkpoints are where NORMAL syncs; every 10k pages (40 MiB) rather than 1k measured
      // 10-20% more claims/s. A crash of the process still loses nothing committed.
      db.pragma('wal_autocheckpoint = 10000');
      migrate(db, this.location);
      this.#connection = prepare(db);
    } catch (error) {
      db.close();
      if (isBusy(error)) throw this.#inUse(error);
      throw error;
    }
  }

  /** Closes the file and releases the lock. Harmless when not open. */
  async close(): Promise<void> {
    const connection = this.#connection;
    this.#connection = undefined;
    connection?.db.close();
  }

  async ping(): Promise<void> {
    this.#open().db.prepare('SELECT 1').get();
  }

  /** The pragmas in effect and the claim's query plan (`types` as a claim would pass them). */
  async diagnostics(types: readonly string[] | null = null): Promise<SqliteDiagnostics> {
    const { db } = this.#open();
    const params = Array<null>(5 + (types?.length ?? 0)).fill(null);
    const plan = db
      .prepare(`EXPLAIN QUERY PLAN ${claimNextSql(types === null ? null : types.length)}`)
      .all(...params) as Array<{ detail: string }>;
    return {
      journalMode: String(db.pragma('journal_mode', { simple: true })),
      lockingMode: String(db.pragma('locking_mode', { simple: true })),
      synchronous: SYNCHRONOUS[Number(db.pragma('synchronous', { simple: true }))] ?? 'UNKNOWN',
      schemaVersion: Number(db.pragma('user_version', { simple: true })),
      claimPlan: plan.map((step) => step.detail),
    };
  }

  async insertTask(
    task: NewTaskRow,
    event: NewEvent,
  ): Promise<{ task: TaskRow; created: boolean }> {
    const c = this.#open();
    const result = this.#write(c, () => {
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
    });
    if (result.created) this.#signal(result.task.state === 'todo' ? 'task' : 'event');
    return result;
  }

  async getTask(id: string): Promise<TaskRow | undefined> {
    const row = this.#open().taskById.get(id) as TaskRecord | undefined;
    return row === undefined ? undefined : toTask(row);
  }

  async getTasks(ids: readonly string[]): Promise<TaskRow[]> {
    const { taskById } = this.#open();
    const out: TaskRow[] = [];
    for (const id of new Set(ids)) {
      const row = taskById.get(id) as TaskRecord | undefined;
      if (row !== undefined) out.push(toTask(row));
    }
    return out;
  }

  async listTasks(filter: TaskFilter): Promise<TaskRow[]> {
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
    return (this.#statement(sql).all(...params, filter.limit) as TaskRecord[]).map(toTask);
  }

  async lineage(ids: readonly string[]): Promise<TaskRow[]> {
    const c = this.#open();
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

  async countTasks(): Promise<Record<TaskState, number>> {
    const c = this.#open();
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

  async claim(request: ClaimRequest, event: ClaimEvent): Promise<TaskRow | undefined> {
    const c = this.#open();
    if (request.types?.length === 0) return undefined;
    const claimed = this.#write(c, () => {
      const task = this.#claimOne(c, request, event);
      if (task !== undefined) this.#wakeClaimant(c, request);
      return task;
    });
    if (claimed !== undefined) this.#signal('event');
    return claimed;
  }

  async claimMany(request: ClaimRequest, max: number, event: ClaimEvent): Promise<TaskRow[]> {
    const c = this.#open();
    if (request.types?.length === 0) return [];
    const claimed = this.#write(c, () =>
      this.#claimMany(c, request, max, event, request.exceptIds ?? []),
    );
    if (claimed.length > 0) this.#signal('event');
    return claimed;
  }

  /** Up to `max` claims (never of the tasks in `except`), inside the caller's transaction. */
  #claimMany(
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
      let task = this.#claimOne(c, next, event, except);
      task !== undefined;
      task = this.#claimOne(c, next, event, except)
    ) {
      out.push(task);
      if (out.length >= max) break;
    }
    if (out.length > 0) this.#wakeClaimant(c, request);
    return out;
  }

  /** One claim statement and its event, inside the caller's transaction. */
  #claimOne(
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
      record = this.#statement(
        claimNextSql(request.types === null ? null : types.length, passOver.length > 0),
      ).get(...lease, ...types, ...passOver);
    }
    if (record === undefined) return undefined;
    const task = toTask(record as TaskRecord);
    appendEvent(c, claimEventFor(event, task));
    return task;
  }

  /** After a claim took work, inside its transaction: wakes the claimant if it sleeps. */
  #wakeClaimant(c: Connection, request: ClaimRequest): void {
    if (request.wake === undefined) return;
    const woken = this.#update(
      AGENTS,
      { sleepUntil: null, sleepReason: null, sleepSince: null },
      'id = ? AND sleep_until > ?',
      [request.agentId, request.now],
    );
    if (woken !== undefined) appendEvent(c, request.wake);
  }

  async updateTask(
    id: string,
    expect: Expectation,
    changes: TaskChanges,
    extras: UpdateExtras,
  ): Promise<TaskRow | undefined> {
    const c = this.#open();
    const updated = this.#write(c, () => this.#updateOne(c, { id, expect, changes, extras }));
    if (updated !== undefined) this.#signal(updated.state === 'todo' ? 'task' : 'event');
    return updated;
  }

  async updateTasks(updates: readonly TaskUpdate[]): Promise<Array<TaskRow | undefined>> {
    const c = this.#open();
    const results = this.#write(c, () => updates.map((u) => this.#updateOne(c, u)));
    if (results.some((r) => r?.state === 'todo')) this.#signal('task');
    else if (results.some((r) => r !== undefined)) this.#signal('event');
    return results;
  }

  async updateThenClaim(
    updates: readonly TaskUpdate[],
    claim: FollowingClaim,
  ): Promise<{ tasks: Array<TaskRow | undefined>; claimed: TaskRow[] | undefined }> {
    const c = this.#open();
    const result = this.#write(c, () => {
      const tasks = updates.map((u) => this.#updateOne(c, u));
      if (tasks.every((task) => task === undefined)) return { tasks, claimed: undefined };
      const named = [...(claim.request.exceptIds ?? []), ...updates.map((u) => u.id)];
      return { tasks, claimed: this.#claimMany(c, claim.request, claim.max, claim.event, named) };
    });
    const { tasks } = result;
    if (tasks.some((r) => r?.state === 'todo')) this.#signal('task');
    else if (tasks.some((r) => r !== undefined)) this.#signal('event');
    return result;
  }

  /** One compare-and-set and what goes with it, inside the caller's transaction. */
  #updateOne(c: Connection, { id, expect, changes, extras }: TaskUpdate): TaskRow | undefined {
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
    const record = this.#update(TASKS, changes, where, params) as TaskRecord | undefined;
    if (record === undefined) return undefined;
    for (const e of extras.events) appendEvent(c, e);
    if (extras.escalation !== undefined) insertEscalation(c, extras.escalation);
    return toTask(record);
  }

  async addSpending(
    ids: readonly string[],
    delta: SpendingDelta,
    now: number,
    event: NewEvent,
  ): Promise<TaskRow[]> {
    const c = this.#open();
    const rows = this.#write(c, () => {
      const out: TaskRow[] = [];
      for (const id of new Set(ids)) {
        const record = c.addSpending.get(delta.steps, delta.tokens, delta.costUsd, now, id);
        if (record !== undefined) out.push(toTask(record as TaskRecord));
      }
      appendEvent(c, event);
      return out;
    });
    this.#signal('event');
    return rows;
  }

  async listExpiredLeases(now: number, limit: number): Promise<TaskRow[]> {
    return (this.#open().expiredLeases.all(now, limit) as TaskRecord[]).map(toTask);
  }

  async putAgent(agent: AgentRow): Promise<void> {
    this.#open().putAgent.run(...values(AGENTS, agent));
  }

  async getAgent(id: string): Promise<AgentRow | undefined> {
    return this.#open().agentById.get(id) as AgentRow | undefined;
  }

  async findAgentByTokenHash(tokenHash: string): Promise<AgentRow | undefined> {
    return this.#open().agentByTokenHash.get(tokenHash) as AgentRow | undefined;
  }

  async listAgents(): Promise<AgentRow[]> {
    return this.#open().listAgents.all() as AgentRow[];
  }

  async updateAgent(
    id: string,
    changes: Partial<Omit<AgentRow, 'id' | 'createdAt'>>,
    event: NewEvent | undefined,
  ): Promise<AgentRow | undefined> {
    const c = this.#open();
    const agent = this.#write(c, () => {
      const row = this.#update(AGENTS, changes, 'id = ?', [id]) as AgentRow | undefined;
      if (row !== undefined && event !== undefined) appendEvent(c, event);
      return row;
    });
    if (agent !== undefined && event !== undefined) this.#signal('event');
    return agent;
  }

  async insertEscalation(escalation: NewEscalationRow, event: NewEvent): Promise<EscalationRow> {
    const c = this.#open();
    const row = this.#write(c, () => {
      const row = insertEscalation(c, escalation);
      appendEvent(c, event);
      return row;
    });
    this.#signal('event');
    return row;
  }

  async getEscalation(id: string): Promise<EscalationRow | undefined> {
    const record = this.#open().escalationById.get(id) as EscalationRecord | undefined;
    return record === undefined ? undefined : toEscalation(record);
  }

  async listEscalations(filter: {
    status?: EscalationStatus | undefined;
    afterSeq?: number | undefined;
    limit: number;
  }): Promise<EscalationRow[]> {
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
    const records = this.#statement(sql).all(...params, filter.limit) as EscalationRecord[];
    return records.map(toEscalation);
  }

  async updateEscalation(
    id: string,
    expectStatuses: readonly EscalationStatus[],
    changes: Partial<Omit<EscalationRow, 'id' | 'seq' | 'createdAt'>>,
    event: NewEvent,
  ): Promise<EscalationRow | undefined> {
    const c = this.#open();
    if (expectStatuses.length === 0) return undefined;
    const where = `id = ? AND status IN (${expectStatuses.map(() => '?').join(', ')})`;
    const row = this.#write(c, () => {
      const record = this.#update(ESCALATIONS, changes, where, [id, ...expectStatuses]);
      if (record === undefined) return undefined;
      appendEvent(c, event);
      return toEscalation(record as EscalationRecord);
    });
    if (row !== undefined) this.#signal('event');
    return row;
  }

  async countOpenEscalations(): Promise<number> {
    return (this.#open().countOpenEscalations.get() as { n: number }).n;
  }

  async appendEvent(event: NewEvent): Promise<EventRow> {
    const row = appendEvent(this.#open(), event);
    this.#signal('event');
    return row;
  }

  async readEvents(afterSeq: number, limit: number): Promise<EventRow[]> {
    return (this.#open().readEvents.all(afterSeq, limit) as EventRecord[]).map(toEvent);
  }

  /** In this process only: a SQLite file has one service process by design. */
  onChange(listener: (signal: ChangeSignal) => void): Unsubscribe {
    return this.#signals.add(listener);
  }

  #open(): Connection {
    if (this.#connection === undefined) throw new Error(`${this.location} is not open`);
    return this.#connection;
  }

  #write<T>(c: Connection, work: () => T): T {
    return c.transaction(work) as T;
  }

  #statement(sql: string): Statement {
    const { db, cache } = this.#open();
    let statement = cache.get(sql);
    if (statement === undefined) {
      // The shapes in use are few; a caller inventing new ones forever must not grow this forever.
      if (cache.size >= 256) cache.clear();
      statement = db.prepare(sql);
      cache.set(sql, statement);
    }
    return statement;
  }

  /** `UPDATE … SET <changes> WHERE <where> RETURNING *`: the row after the change, or `undefined`. */
  #update(t: Table, changes: object, where: string, whereParams: unknown[]): unknown {
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
    return this.#statement(sql).get(...params, ...whereParams);
  }

  #inUse(cause: unknown): ConflictError {
    const pid = lockHolder(this.#path);
    const message =
      pid === undefined
        ? `${this.location} is already in use by another exec-kernel service`
        : pid === process.pid
          ? `${this.location} is already open in this process (pid ${pid})`
          : `${this.location} is already in use by another exec-kernel service (pid ${pid})`;
    const holder = pid === undefined ? {} : { holder: `pid ${pid}` };
    return new ConflictError({ resource: this.location, ...holder }, { message, cause });
  }

  #signal(signal: ChangeSignal): void {
    if (this.#signals.isEmpty) return;
    // After the commit and never inside the caller's await chain, as the memory engine does.
    queueMicrotask(() => this.#signals.emit(signal));
  }
}

function migrate(db: Database.Database, location: string): void {
  const version = Number(db.pragma('user_version', { simple: true }));
  if (version > MIGRATIONS.length) {
    throw new StoreError(
      { path: location, problem: 'newer_version', version },
      {
        message: `${location} has schema version ${version}, newer than this exec-kernel reads (${MIGRATIONS.length}); upgrade @exec-kernel/coordination`,
      },
    );
  }
  if (version === MIGRATIONS.length) return;
  db.transaction(() => {
    for (let v = version; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v] as string);
    db.pragma(`user_version = ${MIGRATIONS.length}`);
  })();
}

function prepare(db: Database.Database): Connection {
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
  };
}

/** Inserts an escalation; an id that exists is a {@link ConflictError} (the write rolls back). */
function insertEscalation(c: Connection, escalation: NewEscalationRow): EscalationRow {
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

function appendEvent(c: Connection, event: NewEvent): EventRow {
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

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

/**
 * The pid holding a POSIX lock on `path`, from Linux's /proc/locks; `undefined` elsewhere or when
 * it cannot be told. Only for the message: the lock itself is SQLite's.
 */
function lockHolder(path: string): number | undefined {
  try {
    const { dev, ino } = statSync(path, { bigint: true });
    // Linux dev_t → the major:minor pair /proc/locks prints in hex.
    const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
    const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
    for (const line of readFileSync('/proc/locks', 'utf8').split('\n')) {
      // "1: POSIX  ADVISORY  WRITE 8430 fe:00:2146477 1073741824 1073742335"; waiters show "->".
      const m = /^\d+:\s+POSIX\s+\S+\s+\S+\s+(\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s/.exec(line);
      if (m === null) continue;
      const [, pid, lockMajor, lockMinor, lockIno] = m as unknown as [
        string,
        string,
        string,
        string,
        string,
      ];
      if (
        BigInt(lockIno) === ino &&
        BigInt(`0x${lockMajor}`) === major &&
        BigInt(`0x${lockMinor}`) === minor &&
        Number(pid) > 0
      ) {
        return Number(pid);
      }
    }
  } catch {
    // No /proc/locks (not Linux) or the file vanished: refuse without a pid.
  }
  return undefined;
}
