import { RULE_VIOLATION_CODES, statusOfCode } from '@exec-kernel/coordination-client';
import { KernelError } from '@exec-kernel/core';

/** Error codes of the service's own refusals (kernel violations keep their kernel codes). */
export type ServiceErrorCode =
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'VALIDATION'
  | 'BAD_JSON'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'NOT_FOUND'
  | 'METHOD_NOT_ALLOWED'
  | 'TOO_MANY_STREAMS'
  | 'UNAVAILABLE';

/**
 * A request the service refuses for a reason that is not a kernel rule: no or a wrong token,
 * acting as someone else, a malformed body. Carries the HTTP status it is answered with.
 */
export class ServiceError extends Error {
  override name = 'ServiceError';
  readonly status: number;
  readonly code: ServiceErrorCode;
  readonly details: Record<string, unknown>;

  constructor(
    status: number,
    code: ServiceErrorCode,
    message: string,
    details: Record<string, unknown> = {},
  ) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

/**
 * The HTTP status a kernel error is answered with, from the wire protocol's one table
 * (`statusOfCode` in `@exec-kernel/coordination-client`).
 */
export function statusOf(error: KernelError): number {
  return statusOfCode(error.code);
}

/** Whether an error is a rule violation (answered 422), which the service also escalates. */
export function isViolation(error: unknown): error is KernelError {
  return KernelError.is(error) && RULE_VIOLATION_CODES.has(error.code);
}
