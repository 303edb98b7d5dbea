import { resolve } from 'node:path';
import {
  ConflictError,
  ListenerSet,
  StoreError,
  type TaskState,
  type Unsubscribe,
} from '@exec-kernel/core';
import type {
  AgentRow,
  EscalationRow,
  EscalationStatus,
  EventRow,
  JsonValue,
  NewEscalationRow,
  NewEvent,
  NewTaskRow,
  TaskRow,
} from '../../model.js';
import type {
  ActionStep,
  AgentHolding,
  AgentListFilter,
  ChangeSignal,
  ClaimEvent,
  ClaimRequest,
  Expectation,
  FollowingClaim,
  SpendingDelta,
  Storage,
  TaskChanges,
  TaskContext,
  TaskFilter,
  TaskNote,
  TaskUpdate,
  UpdateExtras,
} from '../storage.js';
import { unavailableCode, unavailableError } from '../unavailable.js';
import { openFile } from './file.js';
import * as reads from './reads.js';
import {
  AGENTS,
  appendEvent,
  type Connection,
  claimNextSql,
  type EscalationRecord,
  type EventRecord,
  insertEscalation,
  prepare,
  type TaskRecord,
  toEscalation,
  toEvent,
  toTask,
  update,
  values,
} from './statements.js';
import * as writes from './writes.js';

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

const SYNCHRONOUS = ['OFF', 'NORMAL', 'FULL', 'EXTRA'];

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
   * @throws StoreError `newer_version` when a newer build migrated the file.
   */
  async open(): Promise<void> {
    if (this.#connection !== undefined) return;
    this.#connection = prepare(openFile(this.#path, this.#synchronous, this.location));
  }

  /** Closes the file and releases the lock. Harmless when not open. */
  async close(): Promise<void> {
    const connection = this.#connection;
    this.#connection = undefined;
    connection?.db.close();
  }

  async ping(): Promise<void> {
    this.#read((c) => c.db.prepare('SELECT 1').get());
  }

  /** The pragmas in effect and the claim's query plan (`types` as a claim would pass them). */
  async diagnostics(types: readonly string[] | null = null): Promise<SqliteDiagnostics> {
    return this.#read(({ db }) => {
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
    });
  }

  async insertTask(
    task: NewTaskRow,
    event: NewEvent,
  ): Promise<{ task: TaskRow; created: boolean }> {
    const result = this.#write((c) => writes.insertTask(c, task, event));
    if (result.created) this.#signal(result.task.state === 'todo' ? 'task' : 'event');
    return result;
  }

  async getTask(id: string): Promise<TaskRow | undefined> {
    const row = this.#read((c) => c.taskById.get(id)) as TaskRecord | undefined;
    return row === undefined ? undefined : toTask(row);
  }

  async getTasks(ids: readonly string[]): Promise<TaskRow[]> {
    return this.#read((c) => reads.getTasks(c, ids));
  }

  async listTasks(filter: TaskFilter): Promise<TaskRow[]> {
    return this.#read((c) => reads.listTasks(c, filter));
  }

  async lineage(ids: readonly string[]): Promise<TaskRow[]> {
    return this.#read((c) => reads.lineage(c, ids));
  }

  async countTasks(): Promise<Record<TaskState, number>> {
    return this.#read(reads.countTasks);
  }

  async claim(request: ClaimRequest, event: ClaimEvent): Promise<TaskRow | undefined> {
    if (request.types?.length === 0) return undefined;
    const claimed = this.#write((c) => {
      const task = writes.claimOne(c, request, event);
      if (task !== undefined) writes.wakeClaimant(c, request);
      return task;
    });
    if (claimed !== undefined) this.#signal('event');
    return claimed;
  }

  async claimMany(request: ClaimRequest, max: number, event: ClaimEvent): Promise<TaskRow[]> {
    if (request.types?.length === 0) return [];
    const claimed = this.#write((c) =>
      writes.claimMany(c, request, max, event, request.exceptIds ?? []),
    );
    if (claimed.length > 0) this.#signal('event');
    return claimed;
  }

  async updateTask(
    id: string,
    expect: Expectation,
    changes: TaskChanges,
    extras: UpdateExtras,
  ): Promise<TaskRow | undefined> {
    const updated = this.#write((c) => writes.updateOne(c, { id, expect, changes, extras }));
    if (updated !== undefined) this.#signal(updated.state === 'todo' ? 'task' : 'event');
    return updated;
  }

  async updateTasks(updates: readonly TaskUpdate[]): Promise<Array<TaskRow | undefined>> {
    const results = this.#write((c) => updates.map((u) => writes.updateOne(c, u)));
    this.#signalUpdates(results);
    return results;
  }

  async updateThenClaim(
    updates: readonly TaskUpdate[],
    claim: FollowingClaim,
  ): Promise<{ tasks: Array<TaskRow | undefined>; claimed: TaskRow[] | undefined }> {
    const result = this.#write((c) => {
      const tasks = updates.map((u) => writes.updateOne(c, u));
      if (tasks.every((task) => task === undefined)) return { tasks, claimed: undefined };
      const named = [...(claim.request.exceptIds ?? []), ...updates.map((u) => u.id)];
      const claimed = writes.claimMany(c, claim.request, claim.max, claim.event, named);
      return { tasks, claimed };
    });
    this.#signalUpdates(result.tasks);
    return result;
  }

  async addSpending(
    ids: readonly string[],
    delta: SpendingDelta,
    now: number,
    event: NewEvent,
    expect?: Expectation | undefined,
  ): Promise<TaskRow[] | undefined> {
    const rows = this.#write((c) => writes.addSpending(c, ids, delta, now, event, expect));
    if (rows !== undefined) this.#signal('event');
    return rows;
  }

  async getContext(taskId: string): Promise<TaskContext | undefined> {
    return this.#read((c) => writes.readContext(c, taskId));
  }

  async setContext(
    taskId: string,
    key: string,
    value: JsonValue | undefined,
    event: NewEvent,
  ): Promise<Record<string, JsonValue> | undefined> {
    const context = this.#write((c) => writes.setContext(c, taskId, key, value, event));
    if (context !== undefined) this.#signal('event');
    return context;
  }

  async addNote(taskId: string, note: TaskNote, event: NewEvent): Promise<TaskNote | undefined> {
    const added = this.#write((c) => writes.addNote(c, taskId, note, event));
    if (added !== undefined) this.#signal('event');
    return added;
  }

  async recordAction<T>(
    taskId: string,
    expect: Expectation,
    step: ActionStep<T>,
  ): Promise<{ value: T } | undefined> {
    const done = this.#write((c) => writes.recordAction(c, taskId, expect, step));
    if (done === undefined) return undefined;
    if (done.events > 0) this.#signal('event');
    return { value: done.value };
  }

  async getActions(taskId: string): Promise<JsonValue | undefined> {
    return this.#read((c) => writes.readActions(c, taskId));
  }

  async listExpiredLeases(now: number, limit: number): Promise<TaskRow[]> {
    const rows = this.#read((c) => c.expiredLeases.all(now, limit)) as TaskRecord[];
    return rows.map(toTask);
  }

  async putAgent(agent: AgentRow): Promise<void> {
    this.#read((c) => c.putAgent.run(...values(AGENTS, agent)));
  }

  async getAgent(id: string): Promise<AgentRow | undefined> {
    return this.#read((c) => c.agentById.get(id)) as AgentRow | undefined;
  }

  async findAgentByTokenHash(tokenHash: string): Promise<AgentRow | undefined> {
    return this.#read((c) => c.agentByTokenHash.get(tokenHash)) as AgentRow | undefined;
  }

  async listAgents(): Promise<AgentRow[]> {
    return this.#read((c) => c.listAgents.all()) as AgentRow[];
  }

  async listAgentsHolding(filter: AgentListFilter): Promise<AgentHolding[]> {
    return this.#read((c) => reads.listAgentsHolding(c, filter));
  }

  async updateAgent(
    id: string,
    changes: Partial<Omit<AgentRow, 'id' | 'createdAt'>>,
    event: NewEvent | undefined,
  ): Promise<AgentRow | undefined> {
    const agent = this.#write((c) => {
      const row = update(c, AGENTS, changes, 'id = ?', [id]) as AgentRow | undefined;
      if (row !== undefined && event !== undefined) appendEvent(c, event);
      return row;
    });
    if (agent !== undefined && event !== undefined) this.#signal('event');
    return agent;
  }

  async insertEscalation(escalation: NewEscalationRow, event: NewEvent): Promise<EscalationRow> {
    const row = this.#write((c) => {
      const row = insertEscalation(c, escalation);
      appendEvent(c, event);
      return row;
    });
    this.#signal('event');
    return row;
  }

  async getEscalation(id: string): Promise<EscalationRow | undefined> {
    const record = this.#read((c) => c.escalationById.get(id)) as EscalationRecord | undefined;
    return record === undefined ? undefined : toEscalation(record);
  }

  async listEscalations(filter: {
    status?: EscalationStatus | undefined;
    afterSeq?: number | undefined;
    limit: number;
  }): Promise<EscalationRow[]> {
    return this.#read((c) => reads.listEscalations(c, filter));
  }

  async updateEscalation(
    id: string,
    expectStatuses: readonly EscalationStatus[],
    changes: Partial<Omit<EscalationRow, 'id' | 'seq' | 'createdAt'>>,
    event: NewEvent,
  ): Promise<EscalationRow | undefined> {
    const row = this.#write((c) => writes.updateEscalation(c, id, expectStatuses, changes, event));
    if (row !== undefined) this.#signal('event');
    return row;
  }

  async countOpenEscalations(): Promise<number> {
    return (this.#read((c) => c.countOpenEscalations.get()) as { n: number }).n;
  }

  async appendEvent(event: NewEvent): Promise<EventRow> {
    const row = this.#read((c) => appendEvent(c, event));
    this.#signal('event');
    return row;
  }

  async readEvents(
    afterSeq: number,
    limit: number,
    taskId?: string | undefined,
  ): Promise<EventRow[]> {
    const rows = this.#read((c) =>
      taskId === undefined
        ? c.readEvents.all(afterSeq, limit)
        : c.readTaskEvents.all(taskId, afterSeq, limit),
    ) as EventRecord[];
    return rows.map(toEvent);
  }

  /** In this process only: a SQLite file has one service process by design. */
  onChange(listener: (signal: ChangeSignal) => void): Unsubscribe {
    return this.#signals.add(listener);
  }

  /**
   * Runs `work` on the open connection. A closed storage, and SQLite's busy and locked, become a
   * {@link StoreError} `unavailable`; every other error passes as it is.
   */
  #read<T>(work: (c: Connection) => T): T {
    const c = this.#connection;
    if (c === undefined) throw this.#unavailable('closed');
    try {
      return work(c);
    } catch (error) {
      throw this.#translate(error);
    }
  }

  /** {@link #read} in one transaction. */
  #write<T>(work: (c: Connection) => T): T {
    return this.#read((c) => c.transaction(() => work(c)) as T);
  }

  #translate(error: unknown): unknown {
    if (StoreError.is(error)) return error;
    // better-sqlite3's answer to a statement on a handle closed under it: a TypeError, no code.
    if (error instanceof TypeError && /database connection is not open/i.test(error.message)) {
      return this.#unavailable('closed', error);
    }
    const code = unavailableCode(error);
    return code === undefined ? error : this.#unavailable(code, error);
  }

  #unavailable(reason: string, cause?: unknown): StoreError {
    return unavailableError({ location: this.location, engine: 'sqlite', reason }, cause);
  }

  /** After updates: `task` when one went back to the queue, else `event` when any applied. */
  #signalUpdates(results: ReadonlyArray<TaskRow | undefined>): void {
    if (results.some((r) => r?.state === 'todo')) this.#signal('task');
    else if (results.some((r) => r !== undefined)) this.#signal('event');
  }

  #signal(signal: ChangeSignal): void {
    if (this.#signals.isEmpty) return;
    // After the commit and never inside the caller's await chain, as the memory engine does.
    queueMicrotask(() => this.#signals.emit(signal));
  }
}
