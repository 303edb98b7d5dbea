import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { acquireFileLock, systemStoreError } from './file-lock.js';
import { MemoryState } from './state.js';
import type { StateStore } from './store.js';

/** Options of {@link FileStore}. */
export interface FileStoreOptions {
  /**
   * How long to keep retrying a held lock before giving up with `StoreError` (`locked`).
   * Default: `30000` ms.
   */
  lockTimeoutMs?: number | undefined;
  /**
   * A lock held this long is taken as stale (its holder stalled or died) and may be broken. A
   * holder whose lock was broken writes nothing (`StoreError` `lock_lost`). A lock whose holder
   * was a process of this machine that no longer runs is broken at once.
   * Default: `10000` ms.
   */
  staleLockMs?: number | undefined;
}

/**
 * A JSON state file shared safely by many processes (agents calling the CLI at once). Every update
 * is a read-modify-write under a lock; the new state goes to a temporary file that is fsynced and
 * renamed over the old one, so a crash at any moment leaves either the old or the new file, never a
 * torn one, and no concurrent update is lost. The lock is fenced: a process that stalls while it
 * holds it (a suspended shell, a paused VM) and finds it broken on waking writes nothing, so the
 * file is never replaced by a state its writer did not read. Reads need no lock.
 *
 * @example
 * ```ts
 * const store = new FileStore('.exec-kernel/state.json');
 * const memory = new TaskMemory(store);
 * await memory.transaction((session) => session.budget.recordStep('task-1'));
 * ```
 */
export class FileStore implements StateStore {
  readonly location: string;
  readonly #lockTimeoutMs: number;
  readonly #staleLockMs: number;

  constructor(path: string, options: FileStoreOptions = {}) {
    this.location = resolve(path);
    this.#lockTimeoutMs = options.lockTimeoutMs ?? 30_000;
    this.#staleLockMs = options.staleLockMs ?? 10_000;
  }

  async read(): Promise<MemoryState> {
    return this.#read();
  }

  // Synchronous file calls throughout: a store update is a handful of small calls, and the sync
  // API spares every CLI call the load time of fs/promises (streams, readline) and thread hops.
  #read(): MemoryState {
    let text: string;
    try {
      text = readFileSync(this.location, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT')
        return new MemoryState([], [], this.location);
      throw systemStoreError(error, this.location, 'read', this.location);
    }
    return MemoryState.fromText(text, this.location);
  }

  async update<T>(mutate: (state: MemoryState) => T): Promise<T> {
    const folder = dirname(this.location);
    try {
      mkdirSync(folder, { recursive: true });
    } catch (error) {
      throw systemStoreError(error, this.location, 'write', folder);
    }
    const lock = await acquireFileLock(this.location, {
      timeoutMs: this.#lockTimeoutMs,
      staleMs: this.#staleLockMs,
    });
    try {
      const state = this.#read();
      const result = mutate(state);
      if (state.changed) lock.replace(state.toText());
      return result;
    } finally {
      lock.release();
    }
  }
}
