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
 * A request the transport refuses before the service sees it: no or a wrong token, a malformed
 * or oversized body, too many streams. Carries the HTTP status it is answered with. The service
 * itself throws core's typed errors (`ForbiddenError`, `ValidationError`, …), never this.
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

/**
 * The codes of the rule violations: the refusals the service escalates (with their Violation
 * record) and answers 422 — the wire protocol's set. Every other code (a caller's identity, a bad
 * value, a missing or busy resource) is refused without an escalation.
 */
export const ESCALATED_CODES: ReadonlySet<string> = RULE_VIOLATION_CODES;

/** Whether an error is a rule violation (one of {@link ESCALATED_CODES}), which the service escalates. */
export function isViolation(error: unknown): error is KernelError {
  return KernelError.is(error) && ESCALATED_CODES.has(error.code);
}
