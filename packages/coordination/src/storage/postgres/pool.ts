import { StoreError } from '@exec-kernel/core';
import type postgres from 'postgres';
import { unavailableCode, unavailableError } from '../unavailable.js';
import { type ConnectOptions, connect, type Sql } from './connection.js';
import { migratePostgres } from './migrations.js';
import type { ChangeChannel } from './notifications.js';

const CLOSE_TIMEOUT_SECONDS = 5;

/**
 * The engine's connections, open or not: the pool every statement runs on, the `NOTIFY`
 * connection, and the schema's {@link ChangeChannel} subscribed on the pool. {@link run} is the one
 * place driver faults that mean the database is out of reach become a {@link StoreError}.
 */
export class Pool {
  readonly #options: ConnectOptions;
  readonly #location: string;
  readonly #changes: ChangeChannel;
  #sql: Sql | undefined;
  #notifier: postgres.Sql | undefined;
  #opening: Promise<void> | undefined;

  constructor(options: ConnectOptions, location: string, changes: ChangeChannel) {
    this.#options = options;
    this.#location = location;
    this.#changes = changes;
  }

  /**
   * Connects, creates or migrates the schema, and subscribes to its changes; once at a time, and
   * harmless when already open.
   *
   * @throws StoreError `newer_version` when the schema was migrated by a newer build,
   * `unavailable` when the server cannot be reached, `io` when it refuses the migration.
   */
  async open(): Promise<void> {
    if (this.#sql !== undefined) return;
    this.#opening ??= this.#connect().finally(() => {
      this.#opening = undefined;
    });
    return this.#opening;
  }

  async #connect(): Promise<void> {
    const { sql, notifier } = connect(this.#options);
    try {
      await migratePostgres(sql, this.#options.schema, this.#location);
      await this.#changes.listen(sql, notifier);
    } catch (error) {
      await Promise.all([sql.end({ timeout: 0 }), notifier.end({ timeout: 0 })]);
      const translated = this.#translate(error);
      if (StoreError.is(translated)) throw translated;
      throw new StoreError(
        { path: this.#location, problem: 'io' },
        { cause: error, message: `PostgreSQL at ${this.#location} could not be opened` },
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
    this.#notifier = undefined;
    await this.#changes.close();
    await Promise.all([
      sql.end({ timeout: CLOSE_TIMEOUT_SECONDS }),
      notifier.end({ timeout: CLOSE_TIMEOUT_SECONDS }),
    ]);
  }

  /**
   * Runs `work` on the pool. A closed pool, and a driver or system error that means the server is
   * out of reach or ended the connection, become a {@link StoreError} `unavailable`; every other
   * error passes as it is.
   */
  async run<T>(work: (sql: Sql) => Promise<T>): Promise<T> {
    const sql = this.#sql;
    if (sql === undefined) throw this.#unavailable('closed');
    try {
      return await work(sql);
    } catch (error) {
      throw this.#translate(error);
    }
  }

  #translate(error: unknown): unknown {
    if (StoreError.is(error)) return error;
    const code = unavailableCode(error);
    return code === undefined ? error : this.#unavailable(code, error);
  }

  #unavailable(reason: string, cause?: unknown): StoreError {
    return unavailableError({ location: this.#location, engine: 'postgres', reason }, cause);
  }
}
