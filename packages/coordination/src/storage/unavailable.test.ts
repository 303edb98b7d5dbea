import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StoreError } from '@exec-kernel/core';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { unavailableCode, unavailableError } from './unavailable.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** What better-sqlite3 throws when another connection holds the file's write lock. */
function realBusyError(): unknown {
  const dir = mkdtempSync(join(tmpdir(), 'ek-busy-'));
  dirs.push(dir);
  const path = join(dir, 'db');
  const holder = new Database(path);
  const other = new Database(path, { timeout: 0 });
  try {
    holder.exec('CREATE TABLE t (x); BEGIN EXCLUSIVE');
    other.prepare('SELECT * FROM t').all();
    return undefined;
  } catch (error) {
    return error;
  } finally {
    other.close();
    holder.close();
  }
}

describe('unavailableCode', () => {
  it("reads SQLite's busy and locked, network, driver and SQLSTATE connection codes", () => {
    const busy = realBusyError();
    expect(unavailableCode(busy)).toBe('SQLITE_BUSY');
    for (const code of [
      'SQLITE_LOCKED',
      'SQLITE_BUSY_SNAPSHOT',
      'ECONNREFUSED',
      'CONNECTION_ENDED',
      '57P01',
      '08006',
      '53300',
    ]) {
      expect(unavailableCode(Object.assign(new Error('x'), { code }))).toBe(code);
    }
  });

  it('leaves errors that are the request or the code at fault', () => {
    for (const code of ['23505', 'SQLITE_CONSTRAINT', '42P01', 'SQLITE_BUSYNESS', 42]) {
      expect(unavailableCode(Object.assign(new Error('x'), { code }))).toBeUndefined();
    }
    expect(unavailableCode(new TypeError('x'))).toBeUndefined();
    expect(unavailableCode(null)).toBeUndefined();
  });

  it('builds the StoreError with where, which engine and the code, and the cause', () => {
    const cause = new Error('driver text');
    const error = unavailableError(
      { location: 'postgres://app@db/q', engine: 'postgres', reason: '57P01' },
      cause,
    );
    expect(StoreError.is(error)).toBe(true);
    expect(error.message).toBe('Database postgres://app@db/q is unavailable (57P01); try again');
    expect(error.details).toEqual({
      path: 'postgres://app@db/q',
      problem: 'unavailable',
      engine: 'postgres',
      reason: '57P01',
    });
    expect(error.cause).toBe(cause);
  });
});
