import { randomUUID } from 'node:crypto';
import {
  ConflictError,
  ListenerSet,
  StoreError,
  TASK_STATES,
  type TaskState,
  type Unsubscribe,
} from '@exec-kernel/core';
import postgres from 'postgres';
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
import type {
  ChangeSignal,
  ClaimEvent,
  ClaimRequest,
  Expectation,
  FollowingClaim,
  SpendingDelta,
  Storage,
  TaskChanges,
  TaskFilter,
  TaskUpdate,
  UpdateExtras,
} from './storage.js';
import { AGENTS, ESCALATIONS, TASKS, type Table } from './tables.js';

/** Options of {@link PostgresStorage}. */
export interface PostgresStorageOptions {
  /**
   * Type: `string`
   *
   * The connection URL, as in `postgres://user:password@host:5432/db`. The password is used to
   * connect and never shown: {@link PostgresStorage.location} leaves it out.
   */
  url: string;
  /**
   * Type: `string`
   *
   * Default: `'exec_kernel'`
   *
   * The schema that holds every table, created by `open()`. Service instances that share a schema
   * share the queue; a different schema is a separate queue in the same database. Lowercase
   * letters, digits and underscores, at most 48 characters.
   */
  schema?: string | undefined;
  /**
   * Type: `number`
   *
   * Default: `10`
   *
   * Connections in the pool. Change notifications take two more: one listens, one sends.
   */
  max?: number | undefined;
  /**
   * Type: `'normal' | 'full'`
   *
   * Default: the server's `synchronous_commit` (`on` unless configured otherwise)
   *
   * `normal` sets `synchronous_commit = off` for the service's writes: a commit no longer waits for
   * its WAL to reach the disk, so each claim and completion is answered sooner (45 % more tasks
   * per second with four workers in bench/RESULTS.md). A crash of the database server,
   * or of its machine, may then lose the last moments of commits (at most about three times
   * `wal_writer_delay`, 600 ms by default): tasks claimed or finished just before come back as
   * they were, to be run again. Nothing is ever corrupted, and a crash of the service itself
   * loses nothing. `full` sets `synchronous_commit = on` whatever the server's default.
   */
  durability?: 'normal' | 'full' | undefined;
}

type Sql = postgres.Sql<{ bigint: number }>;
type Tx = postgres.TransactionSql<{ bigint: number }>;
type Row = postgres.Row;
type Fragment = postgres.PendingQuery<Row[]>;

/** One node of an `EXPLAIN (FORMAT JSON)` plan, as far as {@link ClaimPlan} reads it. */
export interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  'Relation Name'?: string;
  'Shared Hit Blocks'?: number;
  'Shared Read Blocks'?: number;
  Plans?: PlanNode[];
  [field: string]: unknown;
}

/** What {@link PostgresStorage.explainClaim} found. */
export interface ClaimPlan {
  /** Node types, depth first, e.g. `['Limit', 'LockRows', 'Index Scan']`. */
  nodes: string[];
  /** Every index the plan reads, e.g. `['tasks_claim']`. */
  indexes: string[];
  /** With `analyze`: shared buffers (pages) hit or read to pick one task. */
  buffers: number | undefined;
  /** The root node, as PostgreSQL returned it. */
  plan: PlanNode;
}

const ROLLBACK = Symbol('rollback');

const DEFAULT_SCHEMA = 'exec_kernel';
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,47}$/;
/** How long `ping()` waits for an answer. */
const PING_TIMEOUT_MS = 2_000;
/** How long a new connection may take; `ping()` gives up sooner, queries wait for this. */
const CONNECT_TIMEOUT_SECONDS = 10;
const CLOSE_TIMEOUT_SECONDS = 5;
/**
 * Shortest gap between two NOTIFYs of one instance. Each one wakes every listening instance (and
 * costs this one a round trip), so under load the writes of an interval share one; an isolated
 * write is still sent at once.
 */
const NOTIFY_INTERVAL_MS = 10;

/**
 * The schema, in order. Each runs once, in one transaction with its `schema_migrations` row, while
 * `open()` holds the schema's advisory lock. Append only: a released entry never changes.
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE tasks (
    id text PRIMARY KEY,
    seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    type text NOT NULL,
    title text,
    state text NOT NULL CHECK (state IN (${TASK_STATES.map((s) => `'${s}'`).join(', ')})),
    priority integer NOT NULL,
    agent_id text NOT NULL,
    parent_id text,
    created_by_id text,
    depth integer NOT NULL,
    admission jsonb,
    payload jsonb,
    idempotency_key text,
    attempts integer NOT NULL,
    max_attempts integer NOT NULL,
    lease_owner text,
    lease_id text,
    lease_until bigint,
    limits jsonb NOT NULL,
    steps_taken bigint NOT NULL,
    tokens bigint NOT NULL,
    cost_usd double precision NOT NULL,
    warned jsonb NOT NULL,
    started_at bigint,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
  );
  -- The claim's exact ORDER BY over open tasks only. No other index can serve that order, so the
  -- planner cannot walk the primary key past finished tasks (research §3.4), and finished tasks
  -- leave the index, so a claim costs the same with 1k or 1M done tasks behind it.
  CREATE INDEX tasks_claim ON tasks (priority DESC, seq) WHERE state = 'todo';
  -- A claim for one type walks only that type's open tasks, in claim order.
  CREATE INDEX tasks_claim_type ON tasks (type, priority DESC, seq) WHERE state = 'todo';
  CREATE UNIQUE INDEX tasks_idempotency ON tasks (agent_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
  CREATE INDEX tasks_expiry ON tasks (lease_until) WHERE state = 'in_progress';
  CREATE INDEX tasks_state ON tasks (state, seq);

  CREATE TABLE agents (
    id text PRIMARY KEY,
    token_hash text NOT NULL,
    sleep_until bigint,
    sleep_reason text,
    sleep_since bigint,
    created_at bigint NOT NULL
  );
  CREATE INDEX agents_token_hash ON agents (token_hash);

  CREATE TABLE escalations (
    id text PRIMARY KEY,
    seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    kind text NOT NULL CHECK (kind IN ('violation', 'blocked', 'attempts_exhausted')),
    status text NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
    task_id text,
    agent_id text,
    violation jsonb,
    comment text,
    created_at bigint NOT NULL,
    acknowledged_at bigint,
    acknowledged_by text,
    resolved_at bigint,
    resolved_by text,
    resolution text
  );
  CREATE INDEX escalations_status ON escalations (status, seq);

  -- Identity sequences cache 1 value, which the event horizon below relies on: never raise it.
  CREATE TABLE events (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    type text NOT NULL,
    task_id text,
    agent_id text,
    data jsonb,
    at bigint NOT NULL
  );

  -- Seqs are handed out in statement order but become visible in commit order, so a reader that
  -- tails the log by seq would skip an event whose transaction commits after a later seq's (6% of
  -- events with 4 writers, measured). Writers therefore hold, until they commit, a shared advisory
  -- lock whose key carries a lower bound of the seqs they take (key: 19 bits of the schema's hash,
  -- 44 bits of seq); read_events returns nothing at or above the lowest bound still held. Nobody
  -- waits: the locks are shared and the reader only looks at pg_locks.
  CREATE FUNCTION event_guard() RETURNS boolean
  LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $$
  BEGIN
    -- Taken before the INSERT draws its seqs, which are all above the sequence's value now.
    PERFORM pg_advisory_xact_lock_shared(
      ((hashtext(current_schema()) & 524287)::bigint << 44)
      | (coalesce(pg_sequence_last_value(pg_get_serial_sequence('events', 'seq')::regclass), 0) + 1));
    RETURN true;
  END $$;

  CREATE FUNCTION read_events(after_seq bigint, max_rows integer) RETURNS SETOF events
  LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $$
  DECLARE
    horizon bigint := coalesce(pg_sequence_last_value(pg_get_serial_sequence('events', 'seq')::regclass), 0);
  BEGIN
    IF NOT EXISTS (SELECT 1 FROM events WHERE seq > after_seq) THEN
      RETURN;
    END IF;
    -- Read after the sequence: a writer that took a seq up to the horizon locked its bound first,
    -- so it shows here unless it has finished.
    SELECT least(horizon, min(((classid::bigint << 32) | objid::bigint) & 17592186044415) - 1)
      INTO horizon
      FROM pg_locks
      WHERE locktype = 'advisory' AND objsubid = 1 AND granted
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND ((classid::bigint << 32) | objid::bigint) >> 44 = hashtext(current_schema()) & 524287;
    -- A new statement, so a new snapshot, taken after every writer below the horizon finished.
    RETURN QUERY SELECT * FROM events WHERE seq > after_seq AND seq <= horizon ORDER BY seq LIMIT max_rows;
  END $$;
  `,
  `
  -- The same guard as an SQL function with no SET clause, which the planner inlines into each
  -- statement that writes events. The PL/pgSQL one cost about a tenth of the server's time on a
  -- claim: an executor call per row, and saving and restoring search_path around it. The names
  -- resolve in the caller's search_path, which the service sets to this schema.
  CREATE OR REPLACE FUNCTION event_guard() RETURNS boolean
  LANGUAGE sql VOLATILE AS $$
    SELECT pg_advisory_xact_lock_shared(
      ((hashtext(current_schema()) & 524287)::bigint << 44)
      | (coalesce(pg_sequence_last_value('events_seq_seq'::regclass), 0) + 1)) IS NOT NULL
  $$;
  `,
];

const CLAIM_SET = (r: ClaimRequest, sql: Sql | Tx): Fragment =>
  sql`state = 'in_progress', lease_owner = ${r.agentId}, lease_id = ${r.leaseId},
    lease_until = ${r.leaseUntil}, attempts = attempts + 1,
    started_at = coalesce(started_at, ${r.now}), updated_at = ${r.now}`;

const toTask = (r: Row): TaskRow => ({
  id: r.id,
  seq: r.seq,
  type: r.type,
  title: r.title,
  state: r.state,
  priority: r.priority,
  agentId: r.agent_id,
  parentId: r.parent_id,
  createdById: r.created_by_id,
  depth: r.depth,
  admission: r.admission,
  payload: r.payload,
  idempotencyKey: r.idempotency_key,
  attempts: r.attempts,
  maxAttempts: r.max_attempts,
  leaseOwner: r.lease_owner,
  leaseId: r.lease_id,
  leaseUntil: r.lease_until,
  limits: r.limits,
  stepsTaken: r.steps_taken,
  tokens: r.tokens,
  costUsd: r.cost_usd,
  warned: r.warned,
  startedAt: r.started_at,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const toAgent = (r: Row): AgentRow => ({
  id: r.id,
  tokenHash: r.token_hash,
  sleepUntil: r.sleep_until,
  sleepReason: r.sleep_reason,
  sleepSince: r.sleep_since,
  createdAt: r.created_at,
});

const toEscalation = (r: Row): EscalationRow => ({
  id: r.id,
  seq: r.seq,
  kind: r.kind,
  status: r.status,
  taskId: r.task_id,
  agentId: r.agent_id,
  violation: r.violation,
  comment: r.comment,
  createdAt: r.created_at,
  acknowledgedAt: r.acknowledged_at,
  acknowledgedBy: r.acknowledged_by,
  resolvedAt: r.resolved_at,
  resolvedBy: r.resolved_by,
  resolution: r.resolution,
});

const toEvent = (r: Row): EventRow => ({
  seq: r.seq,
  type: r.type,
  taskId: r.task_id,
  agentId: r.agent_id,
  data: r.data,
  at: r.at,
});

/** Where the database is, safe to print: user, hosts and database, never the password or query. */
function describe(url: string): string {
  const rest = url.replace(/^[a-z]+:\/\//i, '');
  const authority = rest.split(/[/?#]/, 1)[0] ?? '';
  const database = rest.slice(authority.length).split(/[?#]/, 1)[0] ?? '';
  const at = authority.lastIndexOf('@');
  const user = at === -1 ? '' : `${authority.slice(0, at).split(':', 1)[0]}@`;
  return `postgres://${user}${authority.slice(at + 1)}${database}`;
}

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
 *
 * @example
 * ```ts
 * const storage = new PostgresStorage({ url: 'postgres://app@db.internal:5432/app' });
 * await storage.open(); // creates or migrates the exec_kernel schema
 * ```
 */
export class PostgresStorage implements Storage {
  readonly engine = 'postgres' as const;
  readonly location: string;
  /** The schema that holds the tables. */
  readonly schema: string;
  /** The `LISTEN` / `NOTIFY` channel of the schema. */
  readonly channel: string;
  readonly #url: string;
  readonly #max: number;
  readonly #durability: 'normal' | 'full' | undefined;
  readonly #signals = new ListenerSet<ChangeSignal>();
  /** Tags this instance's notifications, which it has already signalled itself. */
  readonly #instance = randomUUID().slice(0, 8);
  #sql: Sql | undefined;
  #opening: Promise<void> | undefined;
  #unlisten: (() => Promise<void>) | undefined;
  /** The connection that sends this instance's `NOTIFY`s. */
  #notifier: postgres.Sql | undefined;
  /** A signal committed here and not yet sent to the other instances. */
  #unsent: ChangeSignal | undefined;
  #sending = false;
  #sent: Promise<void> = Promise.resolve();

  constructor(options: PostgresStorageOptions) {
    const schema = options.schema ?? DEFAULT_SCHEMA;
    if (!SCHEMA_NAME.test(schema)) {
      throw new TypeError(
        `Schema '${schema}' is not a plain name: use lowercase letters, digits and _, at most 48 characters`,
      );
    }
    this.#url = options.url;
    this.#max = options.max ?? 10;
    this.#durability = options.durability;
    this.schema = schema;
    this.channel = `exec_kernel_${schema}`;
    this.location = describe(options.url);
  }

  /**
   * Connects, creates or migrates the schema, and subscribes to change notifications. Harmless
   * when already open.
   *
   * @throws StoreError `newer_version` when the schema was migrated by a newer build, `io` when
   * the server cannot be reached or refuses the migration.
   */
  async open(): Promise<void> {
    if (this.#sql !== undefined) return;
    this.#opening ??= this.#connect().finally(() => {
      this.#opening = undefined;
    });
    return this.#opening;
  }

  async #connect(): Promise<void> {
    const common = {
      connect_timeout: CONNECT_TIMEOUT_SECONDS,
      // A bounded, jittered reconnect delay: the driver's default grows to 20 s while the server
      // is down, and would keep the pool (and the listen connection) away that long after it is up.
      backoff: (attempt: number) => Math.min(0.05 * 2 ** attempt, 1) * (0.5 + Math.random() / 2),
      onnotice: () => {},
    };
    const sql = postgres(this.#url, {
      ...common,
      max: this.#max,
      connection: {
        application_name: 'exec-kernel',
        search_path: `"${this.schema}"`,
        ...(this.#durability === undefined
          ? {}
          : { synchronous_commit: this.#durability === 'normal' ? 'off' : 'on' }),
      },
      types: {
        bigint: {
          to: 20,
          from: [20],
          serialize: (x: number) => String(x),
          parse: (x: string) => Number(x),
        },
      },
    });
    // NOTIFY holds a cluster-wide lock from its commit until the commit is flushed, which would
    // serialise every write's commit (no group commit: -40% with 4 writers here). Sent apart, with
    // no flush to wait for, it holds that lock for microseconds and the writes commit in parallel.
    const notifier = postgres(this.#url, {
      ...common,
      max: 1,
      fetch_types: false,
      connection: { application_name: 'exec-kernel notify', synchronous_commit: 'off' },
    });
    try {
      await this.#migrate(sql);
      const listening = await sql.listen(
        this.channel,
        (payload) => this.#heard(payload),
        this.#onListen(),
      );
      this.#unlisten = () => listening.unlisten();
    } catch (error) {
      await Promise.all([sql.end({ timeout: 0 }), notifier.end({ timeout: 0 })]);
      if (StoreError.is(error)) throw error;
      throw new StoreError(
        { path: this.location, problem: 'io' },
        { cause: error, message: `PostgreSQL at ${this.location} could not be opened` },
      );
    }
    this.#sql = sql;
    this.#notifier = notifier;
  }

  /**
   * Sends the last notification, unsubscribes and ends the connections, letting running queries
   * finish for a few seconds. Harmless when not open.
   */
  async close(): Promise<void> {
    const sql = this.#sql;
    const notifier = this.#notifier;
    if (sql === undefined || notifier === undefined) return;
    this.#sql = undefined;
    await withTimeout(this.#sent, 1_000).catch(() => {});
    this.#notifier = undefined;
    const unlisten = this.#unlisten;
    this.#unlisten = undefined;
    await withTimeout(unlisten?.(), 1_000).catch(() => {});
    await Promise.all([
      sql.end({ timeout: CLOSE_TIMEOUT_SECONDS }),
      notifier.end({ timeout: CLOSE_TIMEOUT_SECONDS }),
    ]);
  }

  /** Runs `select 1`; rejects with a {@link StoreError} within 2 s when the server does not answer. */
  async ping(): Promise<void> {
    const sql = this.#open();
    try {
      await withTimeout(sql`select 1`.execute(), PING_TIMEOUT_MS);
    } catch (cause) {
      throw new StoreError(
        { path: this.location, problem: 'io' },
        { cause, message: `PostgreSQL at ${this.location} did not answer` },
      );
    }
  }

  async insertTask(
    task: NewTaskRow,
    event: NewEvent,
  ): Promise<{ task: TaskRow; created: boolean }> {
    const sql = this.#open();
    // Any unique violation (id, or agent + idempotency key) inserts nothing; which one it was is
    // read afterwards, in a fresh snapshot that sees a concurrent insert that won the race.
    const inserted = await this.#insertOnce(TASKS, task, event);
    if (inserted !== undefined) {
      this.#emit(task.state === 'todo' ? 'task' : 'event');
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
  }

  async getTask(id: string): Promise<TaskRow | undefined> {
    const [row] = await this.#open()`select * from tasks where id = ${id}`;
    return row === undefined ? undefined : toTask(row);
  }

  async getTasks(ids: readonly string[]): Promise<TaskRow[]> {
    if (ids.length === 0) return [];
    // One statement: a query per id would wake a backend per id on the pool's connections.
    const rows =
      await this.#open()`select * from tasks where id = any(${[...new Set(ids)]}::text[])`;
    return rows.map(toTask);
  }

  async listTasks(filter: TaskFilter): Promise<TaskRow[]> {
    const sql = this.#open();
    const rows = await sql`
      select * from tasks where true
      ${filter.state === undefined ? sql`` : sql`and state = ${filter.state}`}
      ${filter.type === undefined ? sql`` : sql`and type = ${filter.type}`}
      ${filter.agentId === undefined ? sql`` : sql`and agent_id = ${filter.agentId}`}
      ${filter.leaseOwner === undefined ? sql`` : sql`and lease_owner = ${filter.leaseOwner}`}
      ${filter.afterSeq === undefined ? sql`` : sql`and seq > ${filter.afterSeq}`}
      order by seq limit ${filter.limit}`;
    return rows.map(toTask);
  }

  async lineage(ids: readonly string[]): Promise<TaskRow[]> {
    const sql = this.#open();
    // UNION (not UNION ALL) drops ids already walked, so a cycle in the links ends the walk.
    const rows = await sql`
      with recursive walk(id) as (
        select unnest(${[...ids]}::text[])
        union
        select link.id from tasks t
          join walk on t.id = walk.id
          cross join lateral (values (t.parent_id), (t.created_by_id)) as link(id)
          where link.id is not null
      )
      select t.* from tasks t join walk on t.id = walk.id`;
    return rows.map(toTask);
  }

  async countTasks(): Promise<Record<TaskState, number>> {
    const rows = await this.#open()`select state, count(*)::int as n from tasks group by state`;
    const counts = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Record<TaskState, number>;
    for (const row of rows) counts[row.state as TaskState] = row.n;
    return counts;
  }

  async claim(request: ClaimRequest, event: ClaimEvent): Promise<TaskRow | undefined> {
    if (request.taskId === undefined) return (await this.claimMany(request, 1, event))[0];
    const sql = this.#open();
    const rows = await this.#claimQuery(
      sql,
      sql`id = ${request.taskId} and state = 'todo'`,
      request,
      event,
    );
    if (rows.length === 0) return undefined;
    this.#emit('event');
    return toTask(rows[0] as Row);
  }

  async claimMany(request: ClaimRequest, max: number, event: ClaimEvent): Promise<TaskRow[]> {
    const sql = this.#open();
    if (request.types?.length === 0 || max < 1) return [];
    // `= any(array(…))` runs the locking subquery once, whatever plan the UPDATE gets.
    const next = this.#nextTodo(sql, request.types, max, request.exceptIds);
    const rows = await this.#claimQuery(
      sql,
      sql`id = any(array(${next} for update skip locked))`,
      request,
      event,
    );
    if (rows.length === 0) return [];
    this.#emit('event');
    return rows.map(toTask).sort((a, b) => b.priority - a.priority || a.seq - b.seq);
  }

  /**
   * The claim of the tasks `which` selects, as one statement (one round trip, one commit): the
   * update, each task's event built in SQL from the template, and the claimant's wake-up.
   */
  #claimQuery(
    sql: Sql | Tx,
    which: Fragment,
    request: ClaimRequest,
    event: ClaimEvent,
  ): Promise<Row[]> {
    const { wakeUp, wakeEvent } = this.#wakeParts(sql, request);
    return sql`
      with c as (
        update tasks set ${CLAIM_SET(request, sql)} where ${which} returning *
      )${wakeUp}, ev as (
        insert into events (type, task_id, agent_id, data, at)
        select type, task_id, agent_id, data, at from (
          ${this.#claimEvents(sql, event)}
          ${wakeEvent}
        ) x
        where event_guard()
        order by k, o1, o2
      )
      select * from c`;
  }

  /** The claim's event rows, from `c` (the claimed tasks), with their place in the log. */
  #claimEvents(sql: Sql | Tx, event: ClaimEvent): Fragment {
    return sql`
      select ${event.type} as type, c.id as task_id, ${event.agentId} as agent_id,
        ${sql.json(event.data)}::jsonb || jsonb_build_object('attempts', c.attempts) as data,
        ${event.at}::bigint as at, 1 as k, -c.priority::bigint as o1, c.seq as o2
      from c`;
  }

  /**
   * The wake-up of a sleeping claimant as a CTE `w` (after `c`, the claimed tasks), and its event
   * row to add to the claim's; both empty when the request carries no wake event.
   */
  #wakeParts(sql: Sql | Tx, request: ClaimRequest): { wakeUp: Fragment; wakeEvent: Fragment } {
    const { wake } = request;
    if (wake === undefined) return { wakeUp: sql``, wakeEvent: sql`` };
    return {
      wakeUp: sql`, w as (
        update agents set sleep_until = null, sleep_reason = null, sleep_since = null
        where id = ${request.agentId} and sleep_until > ${request.now}
          and exists (select 1 from c)
        returning id
      )`,
      wakeEvent: sql`union all
        select ${wake.type}, ${wake.taskId}, ${wake.agentId}, ${sql.json(wake.data as postgres.JSONValue)}::jsonb,
          ${wake.at}::bigint, 2, 0::bigint, 0::bigint
        from w`,
    };
  }

  async updateTask(
    id: string,
    expect: Expectation,
    changes: TaskChanges,
    extras: UpdateExtras,
  ): Promise<TaskRow | undefined> {
    const sql = this.#open();
    const [row] = await this.#updateQuery(sql, { id, expect, changes, extras });
    if (row === undefined) return undefined;
    this.#emit((changes.state ?? expect.state) === 'todo' ? 'task' : 'event');
    return toTask(row);
  }

  async updateTasks(updates: readonly TaskUpdate[]): Promise<Array<TaskRow | undefined>> {
    const sql = this.#open();
    if (updates.length === 0) return [];
    let rows: Array<Row | undefined>;
    if (updates.length > 1 && alike(updates)) {
      rows = this.#byItem(updates.length, await this.#alikeQuery(sql, updates, undefined));
    } else {
      rows = await sql.begin((tx) => this.#updateEach(tx, updates));
    }
    return this.#updated(rows);
  }

  async updateThenClaim(
    updates: readonly TaskUpdate[],
    claim: FollowingClaim,
  ): Promise<{ tasks: Array<TaskRow | undefined>; claimed: TaskRow[] | undefined }> {
    const sql = this.#open();
    const [only] = updates;
    let rows: Array<Row | undefined>;
    let claimed: Row[] | undefined;
    if (only !== undefined && (updates.length === 1 || alike(updates))) {
      const stages =
        updates.length === 1
          ? await this.#updateThenClaimQuery(sql, only, claim)
          : await this.#alikeQuery(sql, updates, claim);
      rows = this.#byItem(updates.length, stages);
      claimed = rows.every((row) => row === undefined)
        ? undefined
        : stages.filter((row) => row.stage === 'c');
    } else {
      ({ rows, claimed } = await sql.begin(async (tx) => {
        const rows = await this.#updateEach(tx, updates);
        if (rows.every((row) => row === undefined)) return { rows, claimed: undefined };
        const { request, max, event } = claim;
        const next = this.#nextTodo(tx, request.types, max, [
          ...(request.exceptIds ?? []),
          ...updates.map((u) => u.id),
        ]);
        const which = tx`id = any(array(${next} for update skip locked))`;
        return { rows, claimed: await this.#claimQuery(tx, which, request, event) };
      }));
    }
    return {
      tasks: this.#updated(rows),
      claimed: claimed?.map(toTask).sort((a, b) => b.priority - a.priority || a.seq - b.seq),
    };
  }

  /** Each update as its own statement in the transaction, sent together (the driver pipelines). */
  #updateEach(tx: Tx, updates: readonly TaskUpdate[]): Promise<Array<Row | undefined>> {
    return Promise.all(updates.map(async (u) => (await this.#updateQuery(tx, u))[0]));
  }

  /** The tasks updates returned, signalled: `task` when one went back to the queue. */
  #updated(rows: ReadonlyArray<Row | undefined>): Array<TaskRow | undefined> {
    const tasks = rows.map((row) => (row === undefined ? undefined : toTask(row)));
    if (tasks.some((task) => task?.state === 'todo')) this.#emit('task');
    else if (tasks.some((task) => task !== undefined)) this.#emit('event');
    return tasks;
  }

  /** The updated rows of a statement's result (`stage` 'u', numbered `n_`), by update. */
  #byItem(count: number, stages: readonly Row[]): Array<Row | undefined> {
    const rows: Array<Row | undefined> = Array.from({ length: count }, () => undefined);
    for (const row of stages) if (row.stage === 'u') rows[row.n_ as number] = row;
    return rows;
  }

  /**
   * {@link alike} updates as one statement, their rows numbered by position (`n_`), each applying
   * or not on its own; with `claim`, the claim follows in the same statement if any applied. A
   * worker's finished batch, and its next one, in one round trip and one commit.
   */
  async #alikeQuery(
    sql: Sql,
    updates: readonly TaskUpdate[],
    claim: FollowingClaim | undefined,
  ): Promise<Row[]> {
    const { expect, changes } = (updates as [TaskUpdate])[0];
    const items = updates.map((u, n) => ({
      n,
      id: u.id,
      lease_owner: u.expect.leaseOwner ?? null,
      lease_id: u.expect.leaseId ?? null,
      live_at: u.expect.leaseLiveAt ?? null,
      ended_before: u.expect.leaseEndedBefore ?? null,
      events: eventList(u.extras.events),
    }));
    const applied = sql`(select 1 from u)`;
    let claiming = sql``;
    let claimEvents = sql``;
    let claimRows = sql``;
    if (claim !== undefined) {
      const { request, max, event } = claim;
      const next = this.#nextTodo(
        sql,
        request.types,
        max,
        [...(request.exceptIds ?? []), ...updates.map((u) => u.id)],
        applied,
      );
      const { wakeUp, wakeEvent } = this.#wakeParts(sql, request);
      claiming = sql`, c as (
        update tasks set ${CLAIM_SET(request, sql)}
        where id = any(array(${next} for update skip locked))
        returning *
      )${wakeUp}`;
      claimEvents = sql`union all ${this.#claimEvents(sql, event)} ${wakeEvent}`;
      claimRows = sql`union all select 'c' as stage, null::int as n_, c.* from c`;
    }
    return await sql`
      with x as (
        select * from jsonb_to_recordset(${sql.json(items as postgres.JSONValue)})
          as x(n int, id text, lease_owner text, lease_id text, live_at bigint,
            ended_before bigint, events jsonb)
      ), u as (
        ${updateSet(sql, TASKS, changes)}
        from x
        where tasks.id = x.id and tasks.state = ${expect.state}
        ${expect.leaseOwner === undefined ? sql`` : sql`and tasks.lease_owner is not distinct from x.lease_owner`}
        ${expect.leaseId === undefined ? sql`` : sql`and tasks.lease_id is not distinct from x.lease_id`}
        ${expect.leaseLiveAt === undefined ? sql`` : sql`and tasks.lease_until >= x.live_at`}
        ${expect.leaseEndedBefore === undefined ? sql`` : sql`and tasks.lease_until < x.ended_before`}
        returning x.n as n_, tasks.*
      )${claiming}, ev as (
        insert into events (type, task_id, agent_id, data, at)
        select type, task_id, agent_id, data, at from (
          select e->>'type' as type, e->>'taskId' as task_id, e->>'agentId' as agent_id,
            e->'data' as data, (e->>'at')::bigint as at, 0 as k, u.n_::bigint as o1, y.m as o2
          from u join x on x.n = u.n_
            cross join lateral jsonb_array_elements(x.events) with ordinality as y(e, m)
          ${claimEvents}
        ) z
        where event_guard()
        order by k, o1, o2
      )
      select 'u' as stage, u.* from u
      ${claimRows}`;
  }

  /**
   * One compare-and-set and, only if it applied, the claim after it, as one statement: a worker's
   * finished task and its next one in one round trip and one commit. Rows of both, by `stage`.
   */
  async #updateThenClaimQuery(
    sql: Sql,
    update: TaskUpdate,
    { request, max, event }: FollowingClaim,
  ): Promise<Row[]> {
    const applied = sql`(select 1 from u)`;
    const next = this.#nextTodo(
      sql,
      request.types,
      max,
      [...(request.exceptIds ?? []), update.id],
      applied,
    );
    const { wakeUp, wakeEvent } = this.#wakeParts(sql, request);
    return await sql`
      with ${this.#updateCtes(sql, update)}, c as (
        update tasks set ${CLAIM_SET(request, sql)}
        where id = any(array(${next} for update skip locked))
        returning *
      )${wakeUp}, ev as (
        insert into events (type, task_id, agent_id, data, at)
        select type, task_id, agent_id, data, at from (
          ${this.#eventRows(sql, update.extras.events, applied)}
          union all
          ${this.#claimEvents(sql, event)}
          ${wakeEvent}
        ) x
        where event_guard()
        order by k, o1, o2
      )
      select 'u' as stage, 0 as n_, u.* from u
      union all
      select 'c' as stage, null::int as n_, c.* from c`.catch((error: unknown) => {
      throw this.#conflict(error, update.extras.escalation?.id);
    });
  }

  /** The compare-and-set statement, with its events and escalation in data-modifying CTEs. */
  async #updateQuery(sql: Sql | Tx, update: TaskUpdate): Promise<Row[]> {
    const { events, escalation } = update.extras;
    const when = sql`(select 1 from u)`;
    return await sql`
      with ${this.#updateCtes(sql, update)}
      ${events.length === 0 ? sql`` : sql`, ev as (${this.#insertEvents(sql, events, when)})`}
      select * from u`.catch((error: unknown) => {
      throw this.#conflict(error, escalation?.id);
    });
  }

  /**
   * The compare-and-set as the CTE `u`, followed by its escalation's insert (`esc`) when it has
   * one, made only if `u` applied. The caller writes the events.
   */
  #updateCtes(sql: Sql | Tx, { id, expect, changes, extras }: TaskUpdate): Fragment {
    return sql`
      u as (
        ${updateSet(sql, TASKS, changes)}
        where id = ${id} and state = ${expect.state}
        ${expect.leaseOwner === undefined ? sql`` : sql`and lease_owner is not distinct from ${expect.leaseOwner}`}
        ${expect.leaseId === undefined ? sql`` : sql`and lease_id is not distinct from ${expect.leaseId}`}
        ${expect.leaseLiveAt === undefined ? sql`` : sql`and lease_until >= ${expect.leaseLiveAt}`}
        ${expect.leaseEndedBefore === undefined ? sql`` : sql`and lease_until < ${expect.leaseEndedBefore}`}
        returning *
      )
      ${
        extras.escalation === undefined
          ? sql``
          : sql`, esc as (${insertWhen(sql, ESCALATIONS, extras.escalation, sql`(select 1 from u)`)})`
      }`;
  }

  async addSpending(
    ids: readonly string[],
    delta: SpendingDelta,
    now: number,
    event: NewEvent,
  ): Promise<TaskRow[]> {
    const sql = this.#open();
    const unique = [...new Set(ids)];
    // Rows are locked in id order, so two writers with overlapping ancestors cannot deadlock.
    const rows = await sql`
      with locked as (
        select id from tasks where id = any(${unique}::text[]) order by id for update
      ), u as (
        update tasks t set
          steps_taken = t.steps_taken + ${delta.steps},
          tokens = t.tokens + ${delta.tokens},
          cost_usd = t.cost_usd + ${delta.costUsd}::double precision,
          updated_at = ${now}
        from locked where t.id = locked.id
        returning t.*
      ), ev as (
        ${this.#insertEvents(sql, [event])}
      )
      select * from u`;
    this.#emit('event');
    const byId = new Map(rows.map((r) => [r.id as string, toTask(r)]));
    return unique.flatMap((id) => {
      const task = byId.get(id);
      return task === undefined ? [] : [task];
    });
  }

  async listExpiredLeases(now: number, limit: number): Promise<TaskRow[]> {
    const rows = await this.#open()`
      select * from tasks where state = 'in_progress' and lease_until < ${now}
      order by lease_until, seq limit ${limit}`;
    return rows.map(toTask);
  }

  async putAgent(agent: AgentRow): Promise<void> {
    const sql = this.#open();
    const values = columnValues(sql, AGENTS, agent, true);
    const { id: _, ...rest } = values;
    await sql`insert into agents ${sql(values)} on conflict (id) do update set ${sql(rest)}`;
  }

  async getAgent(id: string): Promise<AgentRow | undefined> {
    const [row] = await this.#open()`select * from agents where id = ${id}`;
    return row === undefined ? undefined : toAgent(row);
  }

  async findAgentByTokenHash(tokenHash: string): Promise<AgentRow | undefined> {
    const [row] = await this.#open()`
      select * from agents where token_hash = ${tokenHash} order by created_at, id limit 1`;
    return row === undefined ? undefined : toAgent(row);
  }

  async listAgents(): Promise<AgentRow[]> {
    const rows = await this.#open()`select * from agents order by created_at, id`;
    return rows.map(toAgent);
  }

  async updateAgent(
    id: string,
    changes: Partial<Omit<AgentRow, 'id' | 'createdAt'>>,
    event: NewEvent | undefined,
  ): Promise<AgentRow | undefined> {
    const sql = this.#open();
    const [row] = await sql`
      with u as (
        ${updateSet(sql, AGENTS, changes)} where id = ${id} returning *
      )
      ${event === undefined ? sql`` : sql`, ev as (${this.#insertEvents(sql, [event], sql`(select 1 from u)`)})`}
      select * from u`;
    if (row === undefined) return undefined;
    if (event !== undefined) this.#emit('event');
    return toAgent(row);
  }

  async insertEscalation(escalation: NewEscalationRow, event: NewEvent): Promise<EscalationRow> {
    const row = await this.#insertOnce(ESCALATIONS, escalation, event);
    if (row === undefined) throw this.#escalationExists(escalation.id);
    this.#emit('event');
    return toEscalation(row);
  }

  /**
   * Inserts a row and, in the same statement, its event; nothing at all (and `undefined`) when a
   * unique key already holds such a row.
   */
  async #insertOnce(table: Table, fields: object, event: NewEvent): Promise<Row | undefined> {
    const sql = this.#open();
    const [row] = await sql`
      with x as (
        insert into ${sql(table.name)} ${sql(columnValues(sql, table, fields, true))}
        on conflict do nothing
        returning *
      ), ev as (
        ${this.#insertEvents(sql, [event], sql`(select 1 from x)`)}
      )
      select * from x`;
    return row;
  }

  async getEscalation(id: string): Promise<EscalationRow | undefined> {
    const [row] = await this.#open()`select * from escalations where id = ${id}`;
    return row === undefined ? undefined : toEscalation(row);
  }

  async listEscalations(filter: {
    status?: EscalationStatus | undefined;
    afterSeq?: number | undefined;
    limit: number;
  }): Promise<EscalationRow[]> {
    const sql = this.#open();
    const rows = await sql`
      select * from escalations where true
      ${filter.status === undefined ? sql`` : sql`and status = ${filter.status}`}
      ${filter.afterSeq === undefined ? sql`` : sql`and seq > ${filter.afterSeq}`}
      order by seq limit ${filter.limit}`;
    return rows.map(toEscalation);
  }

  async updateEscalation(
    id: string,
    expectStatuses: readonly EscalationStatus[],
    changes: Partial<Omit<EscalationRow, 'id' | 'seq' | 'createdAt'>>,
    event: NewEvent,
  ): Promise<EscalationRow | undefined> {
    const sql = this.#open();
    const [row] = await sql`
      with u as (
        ${updateSet(sql, ESCALATIONS, changes)}
        where id = ${id} and status = any(${[...expectStatuses]}::text[])
        returning *
      ), ev as (
        ${this.#insertEvents(sql, [event], sql`(select 1 from u)`)}
      )
      select * from u`;
    if (row === undefined) return undefined;
    this.#emit('event');
    return toEscalation(row);
  }

  async countOpenEscalations(): Promise<number> {
    const [row] = await this.#open()`
      select count(*)::int as n from escalations where status <> 'resolved'`;
    return row?.n ?? 0;
  }

  async appendEvent(event: NewEvent): Promise<EventRow> {
    const sql = this.#open();
    const [row] = await sql`${this.#insertEvents(sql, [event])} returning *`;
    this.#emit('event');
    return toEvent(row as Row);
  }

  async readEvents(afterSeq: number, limit: number): Promise<EventRow[]> {
    const rows = await this.#open()`select * from read_events(${afterSeq}, ${limit})`;
    return rows.map(toEvent);
  }

  onChange(listener: (signal: ChangeSignal) => void): Unsubscribe {
    return this.#signals.add(listener);
  }

  /** The commit setting the service's writes run with (see {@link PostgresStorageOptions.durability}). */
  async diagnostics(): Promise<{ synchronousCommit: string }> {
    const [row] = await this.#open()`select current_setting('synchronous_commit') as value`;
    return { synchronousCommit: String(row?.value) };
  }

  /**
   * The plan of the claim's inner SELECT (the one that picks the next task), for health checks
   * and tests: it must read `tasks_claim` (or `tasks_claim_type` for one type), never walk the
   * table or another index past finished tasks. With `analyze` the SELECT runs, in a transaction
   * that is rolled back, and `buffers` says how many pages one claim touches.
   */
  async explainClaim(
    options: { types?: string[] | null | undefined; analyze?: boolean | undefined } = {},
  ): Promise<ClaimPlan> {
    const sql = this.#open();
    const next = (tx: Tx) => this.#nextTodo(tx, options.types ?? null);
    let plan: Row | undefined;
    await sql
      .begin(async (tx) => {
        [plan] = options.analyze
          ? await tx`explain (analyze, buffers, format json) ${next(tx)} for update skip locked`
          : await tx`explain (format json) ${next(tx)} for update skip locked`;
        throw ROLLBACK;
      })
      .catch((error: unknown) => {
        if (error !== ROLLBACK) throw error;
      });
    const root = (plan?.['QUERY PLAN'] as Array<{ Plan: PlanNode }> | undefined)?.[0]?.Plan;
    if (root === undefined) throw new Error('EXPLAIN returned no plan');
    const nodes: PlanNode[] = [];
    const walk = (node: PlanNode) => {
      nodes.push(node);
      for (const child of node.Plans ?? []) walk(child);
    };
    walk(root);
    return {
      nodes: nodes.map((n) => n['Node Type']),
      indexes: nodes.flatMap((n) => (n['Index Name'] === undefined ? [] : [n['Index Name']])),
      buffers: options.analyze
        ? (root['Shared Hit Blocks'] ?? 0) + (root['Shared Read Blocks'] ?? 0)
        : undefined,
      plan: root,
    };
  }

  #open(): Sql {
    if (this.#sql === undefined) {
      throw new StoreError(
        { path: this.location, problem: 'io' },
        { message: `PostgreSQL storage ${this.location} is not open` },
      );
    }
    return this.#sql;
  }

  async #migrate(sql: Sql): Promise<void> {
    await sql.begin(async (tx) => {
      // Held to the end of this transaction: a second instance waits here, then finds the
      // schema migrated. Keyed by schema, so separate queues in one database do not wait.
      await tx`select pg_advisory_xact_lock(hashtextextended(${`exec-kernel:migrate:${this.schema}`}, 0))`;
      await tx.unsafe(`create schema if not exists "${this.schema}"`);
      await tx.unsafe(`set local search_path to "${this.schema}"`);
      await tx.unsafe(`
        create table if not exists schema_migrations (
          version integer primary key,
          applied_at timestamptz not null default now()
        )`);
      const [row] =
        await tx`select coalesce(max(version), 0)::int as version from schema_migrations`;
      const current: number = row?.version ?? 0;
      if (current > MIGRATIONS.length) {
        throw new StoreError(
          { path: this.location, problem: 'newer_version', version: current },
          {
            message: `Schema ${this.schema} at ${this.location} is at migration ${current}, newer than this exec-kernel knows (${MIGRATIONS.length}); upgrade @exec-kernel/coordination`,
          },
        );
      }
      for (let version = current + 1; version <= MIGRATIONS.length; version++) {
        await tx.unsafe(MIGRATIONS[version - 1] as string);
        await tx`insert into schema_migrations (version) values (${version})`;
      }
    });
  }

  /**
   * The inner SELECT of the claim: the next open tasks, in exactly the order of its index, but
   * none of `except`, and only if `when` (a subquery) finds a row.
   */
  #nextTodo(
    sql: Sql | Tx,
    types: string[] | null,
    limit = 1,
    except: readonly string[] = [],
    when?: Fragment,
  ): Fragment {
    // One type as `=`, not `= any`, so the per-type index serves the ORDER BY with no sort. The
    // literal 'todo' (never a parameter) lets even a generic plan use the partial indexes.
    const filter =
      types === null
        ? sql``
        : types.length === 1
          ? sql`and type = ${types[0] as string}`
          : sql`and type = any(${types}::text[])`;
    const passOver =
      except.length === 0
        ? sql``
        : except.length === 1
          ? sql`and id <> ${except[0] as string}`
          : sql`and id <> all(${except as string[]}::text[])`;
    const only = when === undefined ? sql`` : sql`and exists ${when}`;
    const take = limit === 1 ? sql`limit 1` : sql`limit ${limit}`;
    return sql`select id from tasks where state = 'todo' ${filter} ${passOver} ${only} order by priority desc, seq ${take}`;
  }

  /**
   * An INSERT of `events`, in order, behind `event_guard()` (see `read_events`). With `when`, only
   * if that subquery finds a row (the change the events describe took place).
   */
  #insertEvents(sql: Sql | Tx, events: readonly NewEvent[], when?: Fragment): Fragment {
    return sql`
      insert into events (type, task_id, agent_id, data, at)
      select type, task_id, agent_id, data, at from (${this.#eventRows(sql, events, when)}) x
      where event_guard()
      order by k, o1, o2`;
  }

  /**
   * `events` as rows for an events INSERT, with their place in the log (`k`, `o1`, `o2`: first,
   * in the given order); with `when`, only if that subquery finds a row.
   */
  #eventRows(sql: Sql | Tx, events: readonly NewEvent[], when?: Fragment): Fragment {
    const list = eventList(events);
    return sql`
      select e->>'type' as type, e->>'taskId' as task_id, e->>'agentId' as agent_id,
        e->'data' as data, (e->>'at')::bigint as at, 0 as k, n as o1, 0::bigint as o2
      from jsonb_array_elements(${sql.json(list as postgres.JSONValue)}) with ordinality as x(e, n)
      ${when === undefined ? sql`` : sql`where exists ${when}`}`;
  }

  #payload(signal: ChangeSignal): string {
    return `${signal}:${this.#instance}`;
  }

  /** A notification from any instance: this one's own were signalled when they committed. */
  #heard(payload: string): void {
    const [signal, instance] = payload.split(':', 2);
    if (instance === this.#instance) return;
    if (signal === 'task' || signal === 'event') this.#signals.emit(signal);
  }

  /** Called on every (re)subscription: after a reconnect, notifications may have been missed. */
  #onListen(): () => void {
    let subscribed = false;
    return () => {
      if (subscribed) this.#signals.emit('task');
      subscribed = true;
    };
  }

  /** Signals a committed write here, and (soon) to every other instance. */
  #emit(signal: ChangeSignal): void {
    // A task signal implies new events too; listeners get one call per write.
    queueMicrotask(() => this.#signals.emit(signal));
    if (this.#unsent !== 'task') this.#unsent = signal;
    if (!this.#sending) this.#sent = this.#send();
  }

  /**
   * Sends pending signals: the first at once, then at most one NOTIFY per `NOTIFY_INTERVAL_MS`
   * carrying every write of that interval. A lost one is covered by the listeners' polling.
   */
  async #send(): Promise<void> {
    this.#sending = true;
    try {
      while (this.#unsent !== undefined && this.#notifier !== undefined) {
        const payload = this.#payload(this.#unsent);
        this.#unsent = undefined;
        await this.#notifier`select pg_notify(${this.channel}, ${payload})`.catch(() => {});
        await new Promise((resolve) => setTimeout(resolve, NOTIFY_INTERVAL_MS));
      }
    } finally {
      this.#sending = false;
    }
  }

  #escalationExists(id: string): ConflictError {
    return new ConflictError(
      { resource: `escalation ${id}` },
      { message: `Escalation ${id} already exists` },
    );
  }

  #conflict(error: unknown, escalationId: string | undefined): unknown {
    if (
      escalationId !== undefined &&
      error instanceof postgres.PostgresError &&
      error.code === '23505' &&
      error.table_name === 'escalations'
    ) {
      return this.#escalationExists(escalationId);
    }
    return error;
  }
}

/**
 * A row's (or a change set's) fields as columns, JSON fields typed `jsonb`. `insert` takes every
 * column of the table; otherwise only the fields present, and a fixed or unknown field throws.
 */
function columnValues(
  sql: Sql | Tx,
  table: Table,
  fields: object,
  insert: boolean,
): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  const given = fields as Record<string, unknown>;
  for (const field of insert ? Object.keys(table.columns) : Object.keys(given)) {
    const value = given[field];
    if (!insert && value === undefined) continue;
    const column = table.columns[field];
    if (column === undefined || (!insert && table.fixed.has(field))) {
      throw new TypeError(`${table.name}.${field} cannot be changed`);
    }
    values[column] = table.json.has(field) ? json(sql, value) : (value ?? null);
  }
  return values;
}

/** `update <table> set <changes>`; with nothing to change, a SET that changes nothing. */
function updateSet(sql: Sql | Tx, table: Table, changes: object): Fragment {
  const values = columnValues(sql, table, changes, false);
  return Object.keys(values).length === 0
    ? sql`update ${sql(table.name)} set id = id`
    : sql`update ${sql(table.name)} set ${sql(values)}`;
}

/**
 * Whether one statement can apply these updates together (see `#alikeQuery`): each to a different
 * task, none with an escalation, all with the same changes and expected state, and expecting the
 * same lease fields (their values may differ).
 */
function alike(updates: readonly TaskUpdate[]): boolean {
  const [first] = updates;
  if (first === undefined || Object.keys(first.changes).length === 0) return false;
  const changes = JSON.stringify(first.changes);
  const ids = new Set<string>();
  for (const u of updates) {
    if (u.extras.escalation !== undefined || ids.has(u.id)) return false;
    ids.add(u.id);
    if (u.expect.state !== first.expect.state) return false;
    if ((u.expect.leaseOwner === undefined) !== (first.expect.leaseOwner === undefined))
      return false;
    if ((u.expect.leaseId === undefined) !== (first.expect.leaseId === undefined)) return false;
    if ((u.expect.leaseLiveAt === undefined) !== (first.expect.leaseLiveAt === undefined))
      return false;
    if ((u.expect.leaseEndedBefore === undefined) !== (first.expect.leaseEndedBefore === undefined))
      return false;
    if (u !== first && JSON.stringify(u.changes) !== changes) return false;
  }
  return true;
}

/** Events as the JSON the statements unpack. */
function eventList(events: readonly NewEvent[]): postgres.JSONValue {
  return events.map((e) => ({
    type: e.type,
    taskId: e.taskId,
    agentId: e.agentId,
    data: e.data,
    at: e.at,
  })) as postgres.JSONValue;
}

/** An INSERT of one row that happens only if `when` finds a row (VALUES cannot be conditional). */
function insertWhen(sql: Sql | Tx, table: Table, row: object, when: Fragment): Fragment {
  const values = columnValues(sql, table, row, true);
  return sql`
    insert into ${sql(table.name)} (${sql(Object.keys(values))})
    select ${sql(values)} where exists ${when}`;
}

function json(sql: Sql | Tx, value: unknown): postgres.Parameter | null {
  return value === undefined || value === null ? null : sql.json(value as postgres.JSONValue);
}

async function withTimeout<T>(work: Promise<T> | undefined, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
