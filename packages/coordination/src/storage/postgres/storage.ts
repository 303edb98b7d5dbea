import {
  ConflictError,
  StoreError,
  TASK_STATES,
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
import { ESCALATIONS, TASKS } from '../tables.js';
import { describe, type PostgresStorageOptions, type Row, withTimeout } from './connection.js';
import { type ClaimPlan, explainClaim } from './explain.js';
import * as lk from './lookups.js';
import { ChangeChannel } from './notifications.js';
import { Pool } from './pool.js';
import * as q from './queries.js';
import { toAgent, toEscalation, toEvent, toNote, toTask } from './rows.js';

const DEFAULT_SCHEMA = 'exec_kernel';
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,47}$/;
/** How long `ping()` waits for an answer. */
const PING_TIMEOUT_MS = 2_000;

const byClaimOrder = (a: TaskRow, b: TaskRow): number => b.priority - a.priority || a.seq - b.seq;

/**
 * The scale-out engine: PostgreSQL (≥ 15) through the `postgres` driver, every table in one
 * schema. Any number of service instances may share the schema: claims use `FOR UPDATE SKIP
 * LOCKED`, updates compare-and-set in their `WHERE`, and each method is one transaction (most are
 * one statement, with data-modifying CTEs for the events they write).
 *
 * `open()` creates or migrates the schema under a transaction-scoped advisory lock, so instances
 * starting together never race, and subscribes to the schema's notification channel
 * (`exec_kernel_<schema>`). `onChange` listeners hear this instance's writes as they commit and
 * every other instance's through that channel: each instance sends `NOTIFY` just after its
 * commits, at most one at a time (writes meanwhile fold into the next), from a connection of its
 * own. Notifications are lost while a connection is down, or when an instance dies between a
 * commit and its `NOTIFY`; the listen connection resubscribes by itself and then signals `task`,
 * but callers should keep polling as a backstop. The pool reconnects lazily after a server
 * restart: the next query after the server is back succeeds without reopening.
 *
 * `readEvents` holds back events while a transaction that took a lower seq is still in flight, so
 * a reader tailing the log by seq never skips one that commits late; it lags by a write at most.
 * One task's events (`taskId`) are held back the same way.
 *
 * @example
 * ```ts
 * const storage = new PostgresStorage({ url: 'postgres://app@db.internal:5432/app' });
 * await storage.open(); // creates or migrates the exec_kernel schema
 * ```
 */ export class PostgresStorage implements Storage {
  readonly engine = 'postgres' as const;
  readonly location: string;
  /** The schema that holds the tables. */
  readonly schema: string;
  /** The `LISTEN` / `NOTIFY` channel of the schema. */
  readonly channel: string;
  readonly #changes: ChangeChannel;
  readonly #pool: Pool;

  constructor(options: PostgresStorageOptions) {
    const schema = options.schema ?? DEFAULT_SCHEMA;
    if (!SCHEMA_NAME.test(schema)) {
      throw new TypeError(
        `Schema '${schema}' is not a plain name: use lowercase letters, digits and _, at most 48 characters`,
      );
    }
    this.schema = schema;
    this.channel = `exec_kernel_${schema}`;
    this.#changes = new ChangeChannel(this.channel);
    this.location = describe(options.url);
    const { url, max = 10, durability } = options;
    this.#pool = new Pool({ url, schema, max, durability }, this.location, this.#changes);
  }

  /**
   * Connects, creates or migrates the schema, and subscribes to change notifications. Harmless
   * when already open.
   *
   * @throws StoreError `newer_version` when the schema was migrated by a newer build,
   * `unavailable` when the server cannot be reached, `io` when it refuses the migration.
   */
  async open(): Promise<void> {
    await this.#pool.open();
  }

  /**
   * Sends the last notification, unsubscribes and ends the connections, letting running queries
   * finish for a few seconds. Harmless when not open.
   */
  async close(): Promise<void> {
    await this.#pool.close();
  }

  /** Runs `select 1`; rejects with a {@link StoreError} within 2 s when the server does not answer. */
  async ping(): Promise<void> {
    await this.#pool.run((sql) => withTimeout(sql`select 1`.execute(), PING_TIMEOUT_MS));
  }

  async insertTask(
    task: NewTaskRow,
    event: NewEvent,
  ): Promise<{ task: TaskRow; created: boolean }> {
    return this.#pool.run(async (sql) => {
      // Any unique violation (id, or agent + idempotency key) inserts nothing; which one it was is
      // read afterwards, in a fresh snapshot that sees a concurrent insert that won the race.
      const [inserted] = await q.insertOnceQuery(sql, TASKS, task, event);
      if (inserted !== undefined) {
        this.#changes.emit(task.state === 'todo' ? 'task' : 'event');
        return { task: toTask(inserted), created: true };
      }
      if (task.idempotencyKey !== null) {
        const [existing] = await sql`
          select * from tasks where agent_id = ${task.agentId} and idempotency_key = ${task.idempotencyKey}`;
        if (existing !== undefined) return { task: toTask(existing), created: false };
      }
      throw new ConflictError(
        { resource: `task ${task.id}` },
        { message: `Task ${task.id} already exists` },
      );
    });
  }

  async getTask(id: string): Promise<TaskRow | undefined> {
    const [row] = await this.#pool.run((sql) => sql`select * from tasks where id = ${id}`);
    return row === undefined ? undefined : toTask(row);
  }

  async getTasks(ids: readonly string[]): Promise<TaskRow[]> {
    if (ids.length === 0) return [];
    // One statement: a query per id would wake a backend per id on the pool's connections.
    const rows = await this.#pool.run(
      (sql) => sql`select * from tasks where id = any(${[...new Set(ids)]}::text[])`,
    );
    return rows.map(toTask);
  }

  async listTasks(filter: TaskFilter): Promise<TaskRow[]> {
    return (await this.#pool.run((sql) => lk.listTasksQuery(sql, filter))).map(toTask);
  }

  async lineage(ids: readonly string[]): Promise<TaskRow[]> {
    return (await this.#pool.run((sql) => lk.lineageQuery(sql, ids))).map(toTask);
  }

  async countTasks(): Promise<Record<TaskState, number>> {
    const rows = await this.#pool.run(
      (sql) => sql`select state, count(*)::int as n from tasks group by state`,
    );
    const counts = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Record<TaskState, number>;
    for (const row of rows) counts[row.state as TaskState] = row.n;
    return counts;
  }

  async claim(request: ClaimRequest, event: ClaimEvent): Promise<TaskRow | undefined> {
    if (request.taskId === undefined) return (await this.claimMany(request, 1, event))[0];
    const id = request.taskId;
    const rows = await this.#pool.run((sql) =>
      q.claimQuery(sql, sql`id = ${id} and state = 'todo'`, request, event),
    );
    if (rows.length === 0) return undefined;
    this.#changes.emit('event');
    return toTask(rows[0] as Row);
  }

  async claimMany(request: ClaimRequest, max: number, event: ClaimEvent): Promise<TaskRow[]> {
    if (request.types?.length === 0 || max < 1) return this.#pool.run(async () => []);
    const rows = await this.#pool.run((sql) => {
      // `= any(array(…))` runs the locking subquery once, whatever plan the UPDATE gets.
      const next = q.nextTodo(sql, request.types, max, request.exceptIds);
      const which = sql`id = any(array(${next} for update skip locked))`;
      return q.claimQuery(sql, which, request, event);
    });
    if (rows.length === 0) return [];
    this.#changes.emit('event');
    return rows.map(toTask).sort(byClaimOrder);
  }

  async updateTask(
    id: string,
    expect: Expectation,
    changes: TaskChanges,
    extras: UpdateExtras,
  ): Promise<TaskRow | undefined> {
    const [row] = await this.#pool.run((sql) =>
      q.updateQuery(sql, { id, expect, changes, extras }),
    );
    if (row === undefined) return undefined;
    this.#changes.emit((changes.state ?? expect.state) === 'todo' ? 'task' : 'event');
    return toTask(row);
  }

  async updateTasks(updates: readonly TaskUpdate[]): Promise<Array<TaskRow | undefined>> {
    if (updates.length === 0) return this.#pool.run(async () => []);
    const rows = await this.#pool.run(async (sql) =>
      updates.length > 1 && q.alike(updates)
        ? q.byItem(updates.length, await q.alikeQuery(sql, updates, undefined))
        : sql.begin((tx) => q.updateEach(tx, updates)),
    );
    return this.#updated(rows);
  }

  async updateThenClaim(
    updates: readonly TaskUpdate[],
    claim: FollowingClaim,
  ): Promise<{ tasks: Array<TaskRow | undefined>; claimed: TaskRow[] | undefined }> {
    const { rows, claimed } = await this.#pool.run(async (sql) => {
      const [only] = updates;
      if (only !== undefined && (updates.length === 1 || q.alike(updates))) {
        const stages =
          updates.length === 1
            ? await q.updateThenClaimQuery(sql, only, claim)
            : await q.alikeQuery(sql, updates, claim);
        const rows = q.byItem(updates.length, stages);
        const applied = rows.some((row) => row !== undefined);
        return { rows, claimed: applied ? stages.filter((row) => row.stage === 'c') : undefined };
      }
      return q.updateThenClaimEach(sql, updates, claim);
    });
    return { tasks: this.#updated(rows), claimed: claimed?.map(toTask).sort(byClaimOrder) };
  }

  /** The tasks updates returned, signalled: `task` when one went back to the queue. */
  #updated(rows: ReadonlyArray<Row | undefined>): Array<TaskRow | undefined> {
    const tasks = rows.map((row) => (row === undefined ? undefined : toTask(row)));
    if (tasks.some((task) => task?.state === 'todo')) this.#changes.emit('task');
    else if (tasks.some((task) => task !== undefined)) this.#changes.emit('event');
    return tasks;
  }

  async addSpending(
    ids: readonly string[],
    delta: SpendingDelta,
    now: number,
    event: NewEvent,
    expect?: Expectation | undefined,
  ): Promise<TaskRow[] | undefined> {
    const unique = [...new Set(ids)];
    const rows = await this.#pool.run((sql) =>
      q.addSpendingQuery(sql, unique, delta, now, event, expect),
    );
    if (expect !== undefined && !rows.some((r) => r.id === unique[0])) return undefined;
    this.#changes.emit('event');
    const byId = new Map(rows.map((r) => [r.id as string, toTask(r)]));
    return unique.flatMap((id) => {
      const task = byId.get(id);
      return task === undefined ? [] : [task];
    });
  }

  async getContext(taskId: string): Promise<TaskContext | undefined> {
    return this.#pool.run((sql) => lk.readContext(sql, taskId));
  }

  async setContext(
    taskId: string,
    key: string,
    value: JsonValue | undefined,
    event: NewEvent,
  ): Promise<Record<string, JsonValue> | undefined> {
    const context = await this.#pool.run((sql) => lk.writeContext(sql, taskId, key, value, event));
    if (context !== undefined) this.#changes.emit('event');
    return context;
  }

  async addNote(taskId: string, note: TaskNote, event: NewEvent): Promise<TaskNote | undefined> {
    const [row] = await this.#pool.run((sql) => lk.addNoteQuery(sql, taskId, note, event));
    if (row === undefined) return undefined;
    this.#changes.emit('event');
    return toNote(row);
  }

  async recordAction<T>(
    taskId: string,
    expect: Expectation,
    step: ActionStep<T>,
  ): Promise<{ value: T } | undefined> {
    const done = await this.#pool.run((sql) => lk.recordActionTx(sql, taskId, expect, step));
    if (done === undefined) return undefined;
    if (done.events > 0) this.#changes.emit('event');
    return { value: done.value };
  }

  async getActions(taskId: string): Promise<JsonValue | undefined> {
    return this.#pool.run((sql) => lk.readActions(sql, taskId));
  }

  async listExpiredLeases(now: number, limit: number): Promise<TaskRow[]> {
    return (await this.#pool.run((sql) => lk.expiredLeasesQuery(sql, now, limit))).map(toTask);
  }

  async putAgent(agent: AgentRow): Promise<void> {
    await this.#pool.run((sql) => lk.putAgentQuery(sql, agent));
  }

  async getAgent(id: string): Promise<AgentRow | undefined> {
    const [row] = await this.#pool.run((sql) => sql`select * from agents where id = ${id}`);
    return row === undefined ? undefined : toAgent(row);
  }

  async findAgentByTokenHash(tokenHash: string): Promise<AgentRow | undefined> {
    const [row] = await this.#pool.run(
      (sql) => sql`
        select * from agents where token_hash = ${tokenHash} order by created_at, id limit 1`,
    );
    return row === undefined ? undefined : toAgent(row);
  }

  async listAgents(): Promise<AgentRow[]> {
    const rows = await this.#pool.run((sql) => sql`select * from agents order by created_at, id`);
    return rows.map(toAgent);
  }

  async listAgentsHolding(filter: AgentListFilter): Promise<AgentHolding[]> {
    const rows = await this.#pool.run((sql) => lk.listAgentsHoldingQuery(sql, filter));
    return rows.map((row) => ({ agent: toAgent(row), holding: row.holding as string[] }));
  }

  async updateAgent(
    id: string,
    changes: Partial<Omit<AgentRow, 'id' | 'createdAt'>>,
    event: NewEvent | undefined,
  ): Promise<AgentRow | undefined> {
    const [row] = await this.#pool.run((sql) => lk.updateAgentQuery(sql, id, changes, event));
    if (row === undefined) return undefined;
    if (event !== undefined) this.#changes.emit('event');
    return toAgent(row);
  }

  async insertEscalation(escalation: NewEscalationRow, event: NewEvent): Promise<EscalationRow> {
    const [row] = await this.#pool.run((sql) =>
      q.insertOnceQuery(sql, ESCALATIONS, escalation, event),
    );
    if (row === undefined) throw q.escalationExists(escalation.id);
    this.#changes.emit('event');
    return toEscalation(row);
  }

  async getEscalation(id: string): Promise<EscalationRow | undefined> {
    const [row] = await this.#pool.run((sql) => sql`select * from escalations where id = ${id}`);
    return row === undefined ? undefined : toEscalation(row);
  }

  async listEscalations(filter: {
    status?: EscalationStatus | undefined;
    afterSeq?: number | undefined;
    limit: number;
  }): Promise<EscalationRow[]> {
    return (await this.#pool.run((sql) => lk.listEscalationsQuery(sql, filter))).map(toEscalation);
  }

  async updateEscalation(
    id: string,
    expectStatuses: readonly EscalationStatus[],
    changes: Partial<Omit<EscalationRow, 'id' | 'seq' | 'createdAt'>>,
    event: NewEvent,
  ): Promise<EscalationRow | undefined> {
    const [row] = await this.#pool.run((sql) =>
      lk.updateEscalationQuery(sql, id, expectStatuses, changes, event),
    );
    if (row === undefined) return undefined;
    this.#changes.emit('event');
    return toEscalation(row);
  }

  async countOpenEscalations(): Promise<number> {
    const [row] = await this.#pool.run(
      (sql) => sql`select count(*)::int as n from escalations where status <> 'resolved'`,
    );
    return row?.n ?? 0;
  }

  async appendEvent(event: NewEvent): Promise<EventRow> {
    const [row] = await this.#pool.run((sql) => sql`${q.insertEvents(sql, [event])} returning *`);
    this.#changes.emit('event');
    return toEvent(row as Row);
  }

  async readEvents(
    afterSeq: number,
    limit: number,
    taskId?: string | undefined,
  ): Promise<EventRow[]> {
    const rows = await this.#pool.run((sql) =>
      taskId === undefined
        ? sql`select * from read_events(${afterSeq}, ${limit})`
        : sql`select * from read_task_events(${taskId}, ${afterSeq}, ${limit})`,
    );
    return rows.map(toEvent);
  }

  onChange(listener: (signal: ChangeSignal) => void): Unsubscribe {
    return this.#changes.onChange(listener);
  }

  /** The commit setting the service's writes run with (see {@link PostgresStorageOptions.durability}). */
  async diagnostics(): Promise<{ synchronousCommit: string }> {
    const [row] = await this.#pool.run(
      (sql) => sql`select current_setting('synchronous_commit') as value`,
    );
    return { synchronousCommit: String(row?.value) };
  }

  /**
   * The plan of the claim's inner SELECT, for health checks and tests: it must read `tasks_claim`
   * (or `tasks_claim_type` for one type). With `analyze` the SELECT runs, in a transaction that
   * is rolled back, and `buffers` says how many pages one claim touches.
   */
  async explainClaim(
    options: { types?: string[] | null | undefined; analyze?: boolean | undefined } = {},
  ): Promise<ClaimPlan> {
    return this.#pool.run((sql) => explainClaim(sql, options));
  }
}
