import postgres from 'postgres';

/** The pool, with bigint columns read as numbers. */
export type Sql = postgres.Sql<{ bigint: number }>;
/** A transaction of {@link Sql}. */
export type Tx = postgres.TransactionSql<{ bigint: number }>;
export type Row = postgres.Row;
/** A statement or a fragment of one, not yet sent. */
export type Fragment = postgres.PendingQuery<Row[]>;

/** How long a new connection may take; `ping()` gives up sooner, queries wait for this. */
const CONNECT_TIMEOUT_SECONDS = 10;

/** Options of `PostgresStorage`. */
export interface PostgresStorageOptions {
  /**
   * Type: `string`
   *
   * The connection URL, as in `postgres://user:password@host:5432/db`. The password is used to
   * connect and never shown: `PostgresStorage.location` leaves it out.
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

/** What {@link connect} needs to know. */
export interface ConnectOptions {
  url: string;
  schema: string;
  max: number;
  durability: PostgresStorageOptions['durability'];
}

/**
 * The service's two clients, not yet connected (the driver connects on the first query): the pool
 * for every statement, its search path on `schema`, and one connection of its own for `NOTIFY`.
 */
export function connect(options: ConnectOptions): { sql: Sql; notifier: postgres.Sql } {
  const common = {
    connect_timeout: CONNECT_TIMEOUT_SECONDS,
    // A bounded, jittered reconnect delay: the driver's default grows to 20 s while the server
    // is down, and would keep the pool (and the listen connection) away that long after it is up.
    backoff: (attempt: number) => Math.min(0.05 * 2 ** attempt, 1) * (0.5 + Math.random() / 2),
    onnotice: () => {},
  };
  const sql = postgres(options.url, {
    ...common,
    max: options.max,
    connection: {
      application_name: 'exec-kernel',
      search_path: `"${options.schema}"`,
      ...(options.durability === undefined
        ? {}
        : { synchronous_commit: options.durability === 'normal' ? 'off' : 'on' }),
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
  const notifier = postgres(options.url, {
    ...common,
    max: 1,
    fetch_types: false,
    connection: { application_name: 'exec-kernel notify', synchronous_commit: 'off' },
  });
  return { sql, notifier };
}

/** Where the database is, safe to print: user, hosts and database, never the password or query. */
export function describe(url: string): string {
  const rest = url.replace(/^[a-z]+:\/\//i, '');
  const authority = rest.split(/[/?#]/, 1)[0] ?? '';
  const database = rest.slice(authority.length).split(/[?#]/, 1)[0] ?? '';
  const at = authority.lastIndexOf('@');
  const user = at === -1 ? '' : `${authority.slice(0, at).split(':', 1)[0]}@`;
  return `postgres://${user}${authority.slice(at + 1)}${database}`;
}

/** The error {@link withTimeout} rejects with; its `code` reads as an unavailable database. */
export class TimeoutError extends Error {
  override name = 'TimeoutError';
  readonly code = 'ETIMEDOUT';
}

/** `work`, or a {@link TimeoutError} after `ms`. */
export async function withTimeout<T>(
  work: Promise<T> | undefined,
  ms: number,
): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new TimeoutError(`no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
