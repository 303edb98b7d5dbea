import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { ConflictError } from '@exec-kernel/core';
import Database from 'better-sqlite3';
import { migrateSqlite } from './migrations.js';

/** How long opening waits for a lock held by someone else before refusing. */
const BUSY_TIMEOUT_MS = 100;

/**
 * Opens the database file (creating it and its directory), takes SQLite's exclusive lock for the
 * handle's lifetime, sets WAL and the durability, and creates or migrates the schema.
 *
 * @throws ConflictError when another process (or another handle in this one) has the file open.
 * @throws StoreError `newer_version` when a newer build migrated the file.
 */
export function openFile(
  path: string,
  synchronous: 'NORMAL' | 'FULL',
  location: string,
): Database.Database {
  mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
  try {
    // Exclusive before the first access: SQLite then keeps the WAL index in process memory (no
    // -shm file) and holds its lock on the database file until close.
    db.pragma('locking_mode = EXCLUSIVE');
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') throw new Error(`${location} cannot use WAL (journal_mode ${mode})`);
    db.pragma(`synchronous = ${synchronous}`);
    // The WAL is reset after each checkpoint but keeps its size; cap what a burst leaves on disk.
    db.pragma('journal_size_limit = 67108864');
    // Checkpoints are where NORMAL syncs; every 10k pages (40 MiB) rather than 1k measured
    // 10-20% more claims/s. A crash of the process still loses nothing committed.
    db.pragma('wal_autocheckpoint = 10000');
    migrateSqlite(db, location);
    return db;
  } catch (error) {
    db.close();
    if (isBusy(error)) throw inUse(path, location, error);
    throw error;
  }
}

/** The refusal of a file another process (or handle) holds, naming its pid when Linux tells. */
function inUse(path: string, location: string, cause: unknown): ConflictError {
  const pid = lockHolder(path);
  const message =
    pid === undefined
      ? `${location} is already in use by another exec-kernel service`
      : pid === process.pid
        ? `${location} is already open in this process (pid ${pid})`
        : `${location} is already in use by another exec-kernel service (pid ${pid})`;
  const holder = pid === undefined ? {} : { holder: `pid ${pid}` };
  return new ConflictError({ resource: location, ...holder }, { message, cause });
}

/** Whether SQLite refused because another connection holds the file's lock. */
function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

/**
 * The pid holding a POSIX lock on `path`, from Linux's /proc/locks; `undefined` elsewhere or when
 * it cannot be told. Only for the message: the lock itself is SQLite's.
 */
function lockHolder(path: string): number | undefined {
  try {
    const { dev, ino } = statSync(path, { bigint: true });
    // Linux dev_t → the major:minor pair /proc/locks prints in hex.
    const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
    const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
    for (const line of readFileSync('/proc/locks', 'utf8').split('\n')) {
      // "1: POSIX  ADVISORY  WRITE 8430 fe:00:2146477 1073741824 1073742335"; waiters show "->".
      const m = /^\d+:\s+POSIX\s+\S+\s+\S+\s+(\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s/.exec(line);
      if (m === null) continue;
      const [, pid, lockMajor, lockMinor, lockIno] = m as unknown as [
        string,
        string,
        string,
        string,
        string,
      ];
      if (
        BigInt(lockIno) === ino &&
        BigInt(`0x${lockMajor}`) === major &&
        BigInt(`0x${lockMinor}`) === minor &&
        Number(pid) > 0
      ) {
        return Number(pid);
      }
    }
  } catch {
    // No /proc/locks (not Linux) or the file vanished: refuse without a pid.
  }
  return undefined;
}
