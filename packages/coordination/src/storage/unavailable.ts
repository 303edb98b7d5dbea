import { StoreError } from '@exec-kernel/core';

/**
 * Driver and system codes that mean the database is (for now) out of reach, busy or gone rather
 * than that the request was wrong: network errors, the `postgres` driver's connection codes,
 * SQLSTATE 53300 (too many connections) and 57P0x (shutdown, crash, cannot connect now), and
 * SQLite's busy and locked (with their extended codes). SQLSTATE class 08 is matched apart.
 */
const UNAVAILABLE_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
  '53300',
  '57P01',
  '57P02',
  '57P03',
]);

/** The code of a driver or system error that means the database is unavailable, else `undefined`. */
export function unavailableCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return undefined;
  if (UNAVAILABLE_CODES.has(code) || /^08[0-9A-Z]{3}$/.test(code)) return code;
  if (/^SQLITE_(BUSY|LOCKED)(_|$)/.test(code)) return code;
  return undefined;
}

/** What {@link unavailableError} says: where, which engine, and the driver's or system's code. */
export interface UnavailableFault {
  /** The storage's printable location (never a password). */
  location: string;
  engine: 'sqlite' | 'postgres';
  /** `SQLITE_BUSY`, `ECONNREFUSED`, `57P01`, or `closed` for a storage closed under its caller. */
  reason: string;
}

/** The {@link StoreError} `unavailable` for a database that cannot be reached, is busy or closed. */
export function unavailableError(fault: UnavailableFault, cause?: unknown): StoreError {
  return new StoreError(
    { path: fault.location, problem: 'unavailable', engine: fault.engine, reason: fault.reason },
    cause === undefined ? {} : { cause },
  );
}
