// Plain data, no zod: the client loads this to map a code without loading the schemas.

/**
 * The HTTP status of each error code the service answers with: core's `KernelError` codes and the
 * service's own (`UNAUTHENTICATED`, `BAD_JSON`, …). The one place statuses are decided; the
 * service's `http/` answers with it and the client reads it for errors that come without a status
 * (the items of a batch).
 */
export const STATUS_OF_CODE: Readonly<Record<string, number>> = Object.freeze({
  // A request the schema refuses, or a value exec-kernel's own rules refuse (a blank id).
  VALIDATION: 400,
  INVALID_INPUT: 400,
  BAD_JSON: 400,
  CONFIG_INVALID: 400,
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  // Rule violations: the service also escalates them.
  INVALID_TRANSITION: 422,
  LOOP_DETECTED: 422,
  BUDGET_EXCEEDED: 422,
  IDLE_ENFORCED: 422,
  TASK_ADMISSION: 422,
  TOO_MANY_STREAMS: 429,
  INTERNAL: 500,
  TRANSPORT: 502,
  STORE: 503,
  UNAVAILABLE: 503,
});

/** The codes of rule violations (answered 422 and escalated by the service). */
export const RULE_VIOLATION_CODES: ReadonlySet<string> = new Set([
  'INVALID_TRANSITION',
  'LOOP_DETECTED',
  'BUDGET_EXCEEDED',
  'IDLE_ENFORCED',
  'TASK_ADMISSION',
]);

/** The HTTP status an error code is answered with; `500` for a code the table does not know. */
export function statusOfCode(code: string): number {
  const status = Object.hasOwn(STATUS_OF_CODE, code) ? STATUS_OF_CODE[code] : undefined;
  return status ?? 500;
}
