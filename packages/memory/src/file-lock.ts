import {
  closeSync,
  fchmodSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { hostname } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { StoreError } from '@exec-kernel/core';

// Why not proper-lockfile: its lock is an empty directory that says nothing of its holder, so a
// holder that stalled (SIGSTOP, a paused VM, swap) past the stale limit cannot tell at write time
// that its lock was broken, and any check-then-rename leaves a window. Here the holder's temporary
// file lives inside the lock directory, under the holder's own token. Breaking a lock renames that
// directory away, so a stalled holder's final rename of its temporary file fails: the rename
// itself is the fence, and a state it did not read is never overwritten.
//
// Layout, for a state file `state.json`:
//   state.json.lock/<token>/owner.json       the held lock: who holds it
//   state.json.lock/<token>/state.json.tmp   the next state, renamed over state.json
//   .state.json.<token>.acquire/             a lock being prepared; renamed to state.json.lock
//   .state.json.<token>.broken/              a stale lock being removed
// A rename onto an existing non-empty directory fails, so preparing the lock whole and renaming
// it into place takes it atomically, owner and all.

/** What a held lock's owner file says. */
interface LockOwner {
  pid: number;
  host: string;
}

/** Options of {@link acquireFileLock}. */
export interface FileLockOptions {
  /** How long to wait for a held lock before giving up with `StoreError` `locked`. */
  timeoutMs: number;
  /** A lock older than this is stale: its holder stalled or died, and it may be broken. */
  staleMs: number;
}

/** A lock on a state file, held by this process. */
export interface HeldFileLock {
  /**
   * Replaces the state file with `text` (temporary file, fsync, rename, fsync of the folder), but
   * only while this process still holds the lock.
   *
   * @throws StoreError `lock_lost` when another process broke the lock as stale meanwhile: nothing
   *   was written. `permission` or `io` when the write itself failed.
   */
  replace(text: string): void;
  /** Releases the lock. Never throws; a lock already broken by another process is left alone. */
  release(): void;
}

const HOST = hostname();
let tokens = 0;

function errnoOf(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * The `StoreError` for a system error on the state file at `path`: `permission` for EACCES, EPERM
 * and EROFS (naming `target`, the file or folder refused), else `io`, with the system code.
 */
export function systemStoreError(
  error: unknown,
  path: string,
  access: 'read' | 'write',
  target: string,
): StoreError {
  const reason = errnoOf(error);
  const denied = reason === 'EACCES' || reason === 'EPERM' || reason === 'EROFS';
  return denied
    ? new StoreError({ path, problem: 'permission', access, reason, target }, { cause: error })
    : new StoreError({ path, problem: 'io', access, reason }, { cause: error });
}

/** Whether a process of this machine with this pid is running (EPERM: it is, as another user). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errnoOf(error) === 'EPERM';
  }
}

function ageMs(path: string): number | undefined {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}

/** The pid in a token (`<pid>-<unique>`) or a legacy temporary name (`<pid>.<time>.<n>`). */
function pidOf(token: string): number | undefined {
  const pid = Number(/^\d+/.exec(token)?.[0]);
  return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
}

function readOwner(ownerFile: string): LockOwner | undefined {
  try {
    const owner = JSON.parse(readFileSync(ownerFile, 'utf8')) as Partial<LockOwner>;
    if (typeof owner.pid === 'number' && typeof owner.host === 'string') {
      return { pid: owner.pid, host: owner.host };
    }
  } catch {
    // Unreadable or half-written: judged by its age alone.
  }
  return undefined;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Takes the lock of the state file at `target` (an absolute path), waiting while another process
 * holds it and breaking it when it is stale: at once when its holder was a process of this machine
 * that no longer runs, otherwise once it is `staleMs` old.
 *
 * @throws StoreError `locked` past `timeoutMs`, `permission` when the folder is not writable (at
 *   once: that is not contention), `io` for any other system error.
 */
export async function acquireFileLock(
  target: string,
  options: FileLockOptions,
): Promise<HeldFileLock> {
  const dir = dirname(target);
  const base = basename(target);
  const lockDir = `${target}.lock`;
  // Unique per process and lock; node:crypto is not worth its load time for this.
  const token = `${process.pid}-${Date.now().toString(36)}${(tokens++).toString(36)}${Math.random().toString(36).slice(2, 8)}`;
  const prepared = join(dir, `.${base}.${token}.acquire`);
  const fail = (error: unknown, access: 'read' | 'write', on = dir): StoreError =>
    systemStoreError(error, target, access, on);

  const prepare = (): void => {
    // Written before every attempt, so that the lock's age counts from when it was taken.
    try {
      mkdirSync(join(prepared, token), { recursive: true });
      writeFileSync(
        join(prepared, token, 'owner.json'),
        JSON.stringify({ pid: process.pid, host: HOST }),
      );
    } catch (error) {
      throw fail(error, 'write');
    }
  };

  /** Breaks the lock when it is stale; true when it is gone (try again at once). */
  const breakIfStale = (): boolean => {
    let entries: string[] = [];
    let notADirectory = false;
    try {
      entries = readdirSync(lockDir);
    } catch (error) {
      const code = errnoOf(error);
      if (code === 'ENOENT') return true;
      if (code !== 'ENOTDIR') throw fail(error, 'read', lockDir);
      notADirectory = true;
    }
    const [holder] = entries;
    if (holder === undefined) {
      // Emptied by a release since our rename failed: the next rename replaces it.
      if (!notADirectory) return true;
      // A file where the lock belongs, not made by us: judged by its age alone.
      const age = ageMs(lockDir);
      if (age === undefined) return true;
      if (age <= options.staleMs) return false;
    } else {
      const ownerFile = join(lockDir, holder, 'owner.json');
      const age = ageMs(ownerFile) ?? ageMs(join(lockDir, holder));
      if (age === undefined) return true; // released meanwhile
      const owner = readOwner(ownerFile);
      const dead = owner !== undefined && owner.host === HOST && !isAlive(owner.pid);
      if (!dead && age <= options.staleMs) return false;
    }
    const broken = join(dir, `.${base}.${token}.broken`);
    rmSync(broken, { recursive: true, force: true });
    try {
      renameSync(lockDir, broken);
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') return true; // another process broke or released it
      throw fail(error, 'write');
    }
    // A release and a new acquisition may have come between the look and the rename. Then the
    // lock moved is a live one: put it back if the place is still free. If it is not, its holder's
    // write fails at the fence and is refused, never lost.
    if (holder !== undefined) {
      let moved: string[] = [];
      try {
        moved = readdirSync(broken);
      } catch {
        // Nothing to put back.
      }
      if (moved.length > 0 && !moved.includes(holder)) {
        try {
          renameSync(broken, lockDir);
          return true;
        } catch {
          // Taken meanwhile.
        }
      }
    }
    rmSync(broken, { recursive: true, force: true });
    return true;
  };

  const deadline = Date.now() + options.timeoutMs;
  let wait = 2;
  try {
    for (;;) {
      prepare();
      try {
        renameSync(prepared, lockDir);
        return held(target, lockDir, token, options.staleMs, fail);
      } catch (error) {
        const code = errnoOf(error);
        // ENOENT: our prepared lock was removed as a leftover; it is made again.
        if (code === 'ENOENT') continue;
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'ENOTDIR')
          throw fail(error, 'write');
      }
      if (breakIfStale()) continue;
      if (Date.now() >= deadline) throw new StoreError({ path: target, problem: 'locked' });
      await sleep(Math.min(wait, Math.max(1, deadline - Date.now())) * (0.5 + Math.random()));
      wait = Math.min(wait * 1.5, 50);
    }
  } finally {
    rmSync(prepared, { recursive: true, force: true });
  }
}

function held(
  target: string,
  lockDir: string,
  token: string,
  staleMs: number,
  fail: (error: unknown, access: 'read' | 'write', on?: string) => StoreError,
): HeldFileLock {
  const own = join(lockDir, token);
  const temp = join(own, `${basename(target)}.tmp`);
  const lost = (error: unknown) =>
    new StoreError({ path: target, problem: 'lock_lost', staleLockMs: staleMs }, { cause: error });

  return {
    replace(text: string): void {
      // The new file keeps the old one's permissions: a state file made private stays private.
      let mode: number | undefined;
      try {
        mode = statSync(target).mode & 0o777;
      } catch {
        // No file yet: the default permissions.
      }
      let fd: number;
      try {
        fd = openSync(temp, 'w');
      } catch (error) {
        // Our token's folder is gone: the lock was broken and perhaps taken by someone else.
        if (errnoOf(error) === 'ENOENT') throw lost(error);
        throw fail(error, 'write');
      }
      try {
        try {
          if (mode !== undefined) fchmodSync(fd, mode);
          writeFileSync(fd, text);
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
      } catch (error) {
        try {
          unlinkSync(temp);
        } catch {
          // Already moved away with a broken lock.
        }
        throw fail(error, 'write');
      }
      try {
        renameSync(temp, target);
      } catch (error) {
        if (errnoOf(error) === 'ENOENT') throw lost(error);
        try {
          unlinkSync(temp);
        } catch {
          // Gone already.
        }
        throw fail(error, 'write');
      }
      try {
        // fsync the folder so the rename itself survives a power cut.
        const dirFd = openSync(dirname(target), 'r');
        try {
          fsyncSync(dirFd);
        } finally {
          closeSync(dirFd);
        }
      } catch (error) {
        throw fail(error, 'write');
      }
      removeLeftovers(target, token, staleMs);
    },
    release(): void {
      // Each step fails harmlessly when the lock is no longer ours: our token is not in it, and
      // another holder's lock directory is never empty.
      for (const step of [
        () => unlinkSync(join(own, 'owner.json')),
        () => rmdirSync(own),
        () => rmdirSync(lockDir),
      ]) {
        try {
          step();
        } catch {
          // Not ours any more, or already gone.
        }
      }
    },
  };
}

/**
 * Removes what killed processes left beside the state file: prepared and broken locks, and the
 * temporary files of older exec-kernel versions (which wrote them beside the file). Only those of
 * processes that no longer run on this machine, or older than the stale limit, and never our own.
 * Called while holding the lock, so one process cleans at a time.
 */
function removeLeftovers(target: string, ownToken: string, staleMs: number): void {
  const dir = dirname(target);
  const prefix = `.${basename(target)}.`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const rest = name.slice(prefix.length);
    const kind = /\.(acquire|broken|tmp)$/.exec(rest)?.[1];
    if (kind === undefined || rest.startsWith(ownToken)) continue;
    const pid = pidOf(rest);
    const path = join(dir, name);
    const abandoned =
      (pid !== undefined && pid !== process.pid && !isAlive(pid)) || (ageMs(path) ?? 0) > staleMs;
    if (abandoned) rmSync(path, { recursive: true, force: true });
  }
}
