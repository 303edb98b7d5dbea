import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { KernelError, StoreError } from '@exec-kernel/core';
import { lock } from 'proper-lockfile';
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
   * A lock not refreshed for this long is taken as left by a dead process and broken.
   * Default: `10000` ms (the lock is refreshed every half of it while held).
   */
  staleLockMs?: number | undefined;
}

let writes = 0;

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

/**
 * A JSON state file shared safely by many processes (agents calling the CLI at once). Every update
 * is a read-modify-write under a lock; the new state goes to a temporary file that is fsynced and
 * renamed over the old one, so a crash at any moment leaves either the old or the new file, never a
 * torn one, and no concurrent update is lost. Reads need no lock.
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
      if (isMissing(error)) return new MemoryState([], [], this.location);
      throw new StoreError({ path: this.location, problem: 'io' }, { cause: error });
    }
    return MemoryState.fromText(text, this.location);
  }

  async update<T>(mutate: (state: MemoryState) => T): Promise<T> {
    const release = await this.#lock();
    try {
      const state = this.#read();
      const result = mutate(state);
      if (state.changed) this.#write(state);
      return result;
    } finally {
      // A release that fails (the lock was already broken as stale) must not hide our result.
      await release().catch(() => undefined);
    }
  }

  async #lock(): Promise<() => Promise<void>> {
    const dir = dirname(this.location);
    try {
      mkdirSync(dir, { recursive: true });
    } catch (error) {
      throw new StoreError({ path: this.location, problem: 'io' }, { cause: error });
    }
    const minTimeout = 2;
    const maxTimeout = 50;
    try {
      return await lock(this.location, {
        realpath: false,
        lockfilePath: `${this.location}.lock`,
        stale: this.#staleLockMs,
        update: this.#staleLockMs / 2,
        retries: {
          // Enough attempts to cover lockTimeoutMs at the longest wait between them.
          retries: Math.ceil(this.#lockTimeoutMs / maxTimeout),
          minTimeout,
          maxTimeout,
          factor: 1.5,
          randomize: true,
        },
        // If another process breaks our lock as stale we still finish the write we are in: the
        // rename keeps the file whole, and the default (throwing from a timer) would crash.
        onCompromised: () => undefined,
      });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ELOCKED') {
        throw new StoreError({ path: this.location, problem: 'locked' }, { cause: error });
      }
      throw new StoreError({ path: this.location, problem: 'io' }, { cause: error });
    }
  }

  #write(state: MemoryState): void {
    const dir = dirname(this.location);
    // Unique per process and write; node:crypto is not worth its load time for this.
    const unique = `${process.pid}.${Date.now().toString(36)}.${(writes++).toString(36)}`;
    const temp = join(dir, `.${basename(this.location)}.${unique}.tmp`);
    try {
      const fd = openSync(temp, 'w');
      try {
        writeFileSync(fd, state.toText());
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(temp, this.location);
      // fsync the directory so the rename itself survives a power cut.
      const dirFd = openSync(dir, 'r');
      try {
        fsyncSync(dirFd);
      } finally {
        closeSync(dirFd);
      }
    } catch (error) {
      try {
        unlinkSync(temp);
      } catch {
        // Already gone, or never made.
      }
      if (KernelError.is(error)) throw error;
      throw new StoreError({ path: this.location, problem: 'io' }, { cause: error });
    }
  }
}
