import { ConfigError } from '@exec-kernel/core';
import { MemoryStorage } from './memory.js';
import type { Storage } from './storage.js';

/** Options of {@link openStorage}. */
export interface StorageOptions {
  /**
   * SQLite: `full` for `synchronous=FULL` (power-loss durability); default `normal`. PostgreSQL:
   * `normal` for `synchronous_commit = off` (faster commits; a database crash may lose its last
   * moments), `full` for `on`; default the server's setting. Ignored by `memory`.
   */
  durability?: 'normal' | 'full' | undefined;
}

/**
 * The storage engine a spec names: `memory`, `sqlite:<file>` (the embedded default) or a
 * `postgres://…` / `postgresql://…` URL (`?schema=<name>` for a queue in a schema of its own;
 * default `exec_kernel`). Engines load only when named, so a service on one engine
 * never loads the driver of another. The storage is returned unopened.
 *
 * @throws ConfigError for a spec that names no engine.
 */
export async function openStorage(spec: string, options: StorageOptions = {}): Promise<Storage> {
  if (spec === 'memory') return new MemoryStorage();
  if (spec.startsWith('sqlite:')) {
    const path = spec.slice('sqlite:'.length);
    if (path === '')
      throw new ConfigError('sqlite: needs a file, as in sqlite:.exec-kernel/queue.db', {
        key: 'db',
      });
    const { SqliteStorage } = await import('./sqlite/index.js');
    return new SqliteStorage({ path, durability: options.durability });
  }
  if (/^postgres(ql)?:\/\//.test(spec)) {
    const { PostgresStorage } = await import('./postgres/index.js');
    // `?schema=` picks the schema (one queue per schema); the driver would send it to the server.
    const url = new URL(spec);
    const schema = url.searchParams.get('schema') ?? undefined;
    url.searchParams.delete('schema');
    return new PostgresStorage({ url: url.href, schema, durability: options.durability });
  }
  throw new ConfigError(
    `Unknown database '${spec.replace(/:[^/@:]*@/, ':***@')}': use memory, sqlite:<file> or postgres://…`,
    { key: 'db' },
  );
}
