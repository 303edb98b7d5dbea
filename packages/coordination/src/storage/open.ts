import { ConfigError } from '@exec-kernel/core';
import { MemoryStorage } from './memory.js';
import type { Storage } from './storage.js';

/** Options of {@link openStorage}. */
export interface StorageOptions {
  /** SQLite only: `full` for `synchronous=FULL` (power-loss durability). Default: `normal`. */
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
    const { SqliteStorage } = await import('./sqlite.js');
    return new SqliteStorage({ path, durability: options.durability });
  }
  if (/^postgres(ql)?:\/\//.test(spec)) {
    const { PostgresStorage } = await import('./postgres.js');
    // `?schema=` picks the schema (one queue per schema); the driver would send it to the server.
    const url = new URL(spec);
    const schema = url.searchParams.get('schema') ?? undefined;
    url.searchParams.delete('schema');
    return new PostgresStorage({ url: url.href, schema });
  }
  throw new ConfigError(
    `Unknown database '${spec.replace(/:[^/@:]*@/, ':***@')}': use memory, sqlite:<file> or postgres://…`,
    { key: 'db' },
  );
}
