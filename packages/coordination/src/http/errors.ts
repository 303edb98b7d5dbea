import { type ErrorBody, type ErrorPayload, statusOfCode } from '@exec-kernel/coordination-client';
import { KernelError, StoreError, type Violation } from '@exec-kernel/core';
import { HTTPException } from 'hono/http-exception';
import { ServiceError } from '../errors.js';

/** An error body: `{ error: { code, message, … } }`. */
export function errorBody(
  code: string,
  message: string,
  extra: Omit<ErrorPayload, 'code' | 'message'> = {},
): ErrorBody {
  return { error: { code, message, ...extra } };
}

/** The codes of the HTTP errors Hono's own middleware throws. */
const HTTP_EXCEPTION_CODES: Readonly<Record<number, { code: string; message: string }>> = {
  400: { code: 'BAD_JSON', message: 'The request body is not valid JSON' },
  413: { code: 'PAYLOAD_TOO_LARGE', message: 'The request body is too large' },
  415: {
    code: 'UNSUPPORTED_MEDIA_TYPE',
    message: 'The request body must be JSON (Content-Type: application/json)',
  },
};

/**
 * The status and body an error is answered with. `internal` is told of an error the service did
 * not expect (a 500) and returns the reference the body carries; `recorded` gives the Violation
 * the service escalated for a rule violation (`service.violationOf`).
 */
export function describeError(
  error: unknown,
  internal: (error: unknown) => string,
  recorded: (error: unknown) => Violation | undefined,
): { status: number; body: ErrorBody } {
  // Statuses come from the protocol's table only, by code: the service's domain errors and its
  // own refusals alike.
  if (error instanceof ServiceError) {
    return {
      status: statusOfCode(error.code),
      body: errorBody(error.code, error.message, { details: error.details }),
    };
  }
  // Before the KernelError branch: the engines' StoreError `unavailable` keeps the documented
  // answer, and its details (the storage's location) stay out of every caller's reach.
  if (databaseUnavailable(error)) {
    return {
      status: 503,
      body: errorBody('UNAVAILABLE', 'The database is not answering; try again shortly'),
    };
  }
  if (KernelError.is(error)) {
    const violation = recorded(error);
    const extra =
      violation === undefined
        ? { details: { ...error.details } }
        : { details: { ...error.details }, violation };
    return { status: statusOfCode(error.code), body: errorBody(error.code, error.message, extra) };
  }
  if (error instanceof HTTPException) {
    const known = HTTP_EXCEPTION_CODES[error.status];
    if (known !== undefined)
      return { status: error.status, body: errorBody(known.code, known.message) };
  }
  const ref = internal(error);
  return {
    status: 500,
    body: errorBody('INTERNAL', `Internal error (ref ${ref})`, { details: { ref } }),
  };
}

/**
 * Driver errors that mean the database is (for now) out of reach rather than that the request was
 * wrong: network errors, the `postgres` driver's connection codes, SQLSTATE class 08 (connection
 * exception) and 57P0x (shutdown, crash, cannot connect now), and SQLite's busy and locked.
 */
const UNAVAILABLE_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
  '53300',
  '57P01',
  '57P02',
  '57P03',
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
]);

function databaseUnavailable(error: unknown): boolean {
  if (StoreError.is(error)) return error.problem === 'unavailable';
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (UNAVAILABLE_CODES.has(code) || /^08[0-9A-Z]{3}$/.test(code));
}
