import type Database from 'better-sqlite3';
import { type Migration, pendingMigrations } from '../migrations.js';

/** A step of the SQLite schema: SQL text, or work on the open database. */
export type SqliteMigration = Migration<Database.Database>;

/**
 * The SQLite schema, in order. Each step runs once, in a transaction of its own with its
 * `schema_migrations` row and `PRAGMA user_version` (which files from before that table record
 * alone). Append only: a released step never changes.
 */
export const SQLITE_MIGRATIONS: readonly SqliteMigration[] = [
  {
    version: 1,
    name: 'initial-schema',
    up: `
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
  },
  {
    version: 2,
    name: 'task-context',
    up: `
  -- A task's context: a few keys per task, read whole by task. WITHOUT ROWID keeps each row in
  -- the primary key's b-tree, so a read is one range walk and no row lookups.
  CREATE TABLE task_context (
    task_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (task_id, key)
  ) WITHOUT ROWID;

  CREATE TABLE task_notes (
    seq INTEGER PRIMARY KEY,
    task_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    agent_id TEXT NOT NULL,
    text TEXT NOT NULL
  );
  CREATE INDEX task_notes_task ON task_notes (task_id, seq);
  `,
  },
  {
    version: 3,
    name: 'task-actions',
    up: `
  -- A task's action history (the loop kernel's ActionHistoryJSON): one small row per task that
  -- records actions, read and written whole under the write transaction.
  CREATE TABLE task_actions (
    task_id TEXT PRIMARY KEY,
    history TEXT NOT NULL
  ) WITHOUT ROWID;
  -- A finished task records no more actions: its history goes in the transaction that ends it,
  -- whichever write that is.
  CREATE TRIGGER tasks_finish_actions AFTER UPDATE OF state ON tasks
    WHEN new.state IN ('done', 'cancelled')
  BEGIN
    DELETE FROM task_actions WHERE task_id = new.id;
  END;
  `,
  },
  {
    version: 4,
    name: 'events-by-task',
    up: `
  -- GET /v1/events?taskId=: one task's events in seq order, a full page however many lie between.
  CREATE INDEX events_task ON events (task_id, seq);
  `,
  },
];

/**
 * The highest step applied to `db`: the larger of `PRAGMA user_version` and the newest
 * `schema_migrations` row, so a file written before that table existed counts as what it is.
 */
function appliedVersion(db: Database.Database): number {
  const pragma = Number(db.pragma('user_version', { simple: true }));
  const table = db
    .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
    .get();
  if (table === undefined) return pragma;
  const row = db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as {
    v: number | null;
  };
  return Math.max(pragma, row.v ?? 0);
}

/**
 * Brings `db` to the newest schema, one transaction per step.
 *
 * @throws StoreError `newer_version` when the file was migrated by a newer build.
 */
export function migrateSqlite(
  db: Database.Database,
  location: string,
  steps: readonly SqliteMigration[] = SQLITE_MIGRATIONS,
): void {
  const current = appliedVersion(db);
  const pending = pendingMigrations(steps, current, { location, label: location });
  if (pending.length === 0) return;
  db.transaction(() => {
    db.exec(`
      CREATE TABLE IF NOT EXISTS schema_migrations (
        version INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        applied_at INTEGER NOT NULL
      )`);
    // A file from before the table: record the steps it already holds.
    const record = db.prepare(
      'INSERT OR IGNORE INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)',
    );
    for (const step of steps.slice(0, current)) record.run(step.version, step.name, Date.now());
  })();
  for (const step of pending) {
    db.transaction(() => {
      if (typeof step.up === 'string') db.exec(step.up);
      else step.up(db);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
        step.version,
        step.name,
        Date.now(),
      );
      db.pragma(`user_version = ${step.version}`);
    })();
  }
}
