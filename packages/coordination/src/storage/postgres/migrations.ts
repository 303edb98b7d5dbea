import { TASK_STATES } from '@exec-kernel/core';
import { type Migration, pendingMigrations } from '../migrations.js';
import type { Sql, Tx } from './connection.js';

/** A step of the PostgreSQL schema: SQL text, or work on the migrating transaction. */
export type PostgresMigration = Migration<Tx>;

/**
 * The PostgreSQL schema, in order. Each step runs once, in a transaction of its own with its
 * `schema_migrations` row, while that transaction holds the schema's advisory lock. Append only:
 * a released step never changes.
 */
export const POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 1,
    name: 'initial-schema',
    up: `
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
  },
  {
    version: 2,
    name: 'inline-event-guard',
    up: `
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
  },
  {
    version: 3,
    name: 'task-context',
    up: `
  -- A task's context: a few keys per task, read whole by task through the primary key.
  CREATE TABLE task_context (
    task_id text NOT NULL,
    key text NOT NULL,
    value jsonb NOT NULL,
    PRIMARY KEY (task_id, key)
  );

  CREATE TABLE task_notes (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id text NOT NULL,
    at bigint NOT NULL,
    agent_id text NOT NULL,
    text text NOT NULL
  );
  CREATE INDEX task_notes_task ON task_notes (task_id, seq);
  `,
  },
  {
    version: 4,
    name: 'task-actions',
    up: `
  -- A task's action history (the loop kernel's ActionHistoryJSON), read and written whole while
  -- the task's row is locked.
  CREATE TABLE task_actions (
    task_id text PRIMARY KEY,
    history jsonb NOT NULL
  );
  -- A finished task records no more actions: its history goes in the transaction that ends it,
  -- whichever statement that is. The WHEN clause keeps the trigger off every other update.
  CREATE FUNCTION finish_actions() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    DELETE FROM task_actions WHERE task_id = new.id;
    RETURN NULL;
  END;
  $$;
  CREATE TRIGGER tasks_finish_actions AFTER UPDATE OF state ON tasks
    FOR EACH ROW WHEN (new.state IN ('done', 'cancelled') AND old.state IS DISTINCT FROM new.state)
    EXECUTE FUNCTION finish_actions();
  `,
  },
  {
    version: 5,
    name: 'events-by-task',
    up: `
  -- GET /v1/events?taskId=: one task's events in seq order, a full page however many lie between,
  -- behind the same horizon as read_events (a writer still in flight below it holds it back).
  CREATE INDEX events_task ON events (task_id, seq);

  CREATE FUNCTION read_task_events(task text, after_seq bigint, max_rows integer) RETURNS SETOF events
  LANGUAGE plpgsql VOLATILE SET search_path FROM CURRENT AS $$
  DECLARE
    horizon bigint := coalesce(pg_sequence_last_value(pg_get_serial_sequence('events', 'seq')::regclass), 0);
  BEGIN
    IF NOT EXISTS (SELECT 1 FROM events WHERE task_id = task AND seq > after_seq) THEN
      RETURN;
    END IF;
    SELECT least(horizon, min(((classid::bigint << 32) | objid::bigint) & 17592186044415) - 1)
      INTO horizon
      FROM pg_locks
      WHERE locktype = 'advisory' AND objsubid = 1 AND granted
        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND ((classid::bigint << 32) | objid::bigint) >> 44 = hashtext(current_schema()) & 524287;
    RETURN QUERY SELECT * FROM events
      WHERE task_id = task AND seq > after_seq AND seq <= horizon ORDER BY seq LIMIT max_rows;
  END $$;
  `,
  },
];

/**
 * Creates `schema` if missing and brings it to the newest step, one transaction per step. Each
 * transaction takes the schema's advisory lock first and reads the version again, so instances
 * starting together never race: the second waits, then finds the step applied.
 *
 * @throws StoreError `newer_version` when the schema was migrated by a newer build.
 */
export async function migratePostgres(
  sql: Sql,
  schema: string,
  location: string,
  steps: readonly PostgresMigration[] = POSTGRES_MIGRATIONS,
): Promise<void> {
  const place = { location, label: `Schema ${schema} at ${location}` };
  for (let done = false; !done; ) {
    done = await sql.begin(async (tx) => {
      // Keyed by schema, so separate queues in one database do not wait for each other.
      await tx`select pg_advisory_xact_lock(hashtextextended(${`exec-kernel:migrate:${schema}`}, 0))`;
      await tx.unsafe(`create schema if not exists "${schema}"`);
      await tx.unsafe(`set local search_path to "${schema}"`);
      // Schemas from before named steps have the table without `name`; their versions still count.
      await tx.unsafe(`
        create table if not exists schema_migrations (
          version integer primary key,
          applied_at timestamptz not null default now()
        );
        alter table schema_migrations add column if not exists name text`);
      const [row] =
        await tx`select coalesce(max(version), 0)::int as version from schema_migrations`;
      const [next] = pendingMigrations(steps, row?.version ?? 0, place);
      if (next === undefined) return true;
      if (typeof next.up === 'string') await tx.unsafe(next.up);
      else await next.up(tx);
      await tx`insert into schema_migrations (version, name) values (${next.version}, ${next.name})`;
      return false;
    });
  }
}
