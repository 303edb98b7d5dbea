import { ConflictError } from '@exec-kernel/core';

/**
 * Why a lease is gone, as `error.details.reason` of the `CONFLICT` the service answers
 * when a write names a lease that no longer holds its task:
 * `expired` (past its end, not yet put back in the queue), `claimed_again` (a later claim holds
 * the task), `moved` (the task left `in_progress`: finished, blocked, requeued or released), or
 * `not_leased` (no lease was named and nobody holds the task).
 */
export type LeaseEndReason = 'expired' | 'claimed_again' | 'moved' | 'not_leased';

const REASONS: ReadonlySet<string> = new Set<LeaseEndReason>([
  'expired',
  'claimed_again',
  'moved',
  'not_leased',
]);

/**
 * Whether an error is the service saying the caller's lease is gone (expired, taken by a later
 * claim, or ended by a move): the work in hand is no longer the caller's to report.
 */
export function isLeaseGone(error: unknown): error is ConflictError {
  if (!ConflictError.is(error)) return false;
  const reason = (error.details as { reason?: unknown }).reason;
  return typeof reason === 'string' && REASONS.has(reason);
}
