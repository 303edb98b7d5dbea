import { ConflictError, type TaskState, toIsoTime } from '@exec-kernel/core';

/**
 * Why a lease is gone, as `error.details.reason` of the `CONFLICT` the service answers:
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

/** What {@link leaseGoneError} reads of the task as stored now. */
export interface LeaseSubject {
  id: string;
  state: TaskState;
  leaseId: string | null;
  leaseOwner: string | null;
  leaseUntil: number | null;
}

/**
 * The `CONFLICT` for a write on a lease that no longer holds `task`: which lease, why it is gone
 * and, when another claim holds the task, by whom. `leaseId` is the lease the caller named, if any.
 */
export function leaseGoneError(
  task: LeaseSubject,
  leaseId: string | undefined,
  reason: LeaseEndReason,
): ConflictError {
  const id = task.id;
  const lease =
    leaseId === undefined ? `The lease on task ${id}` : `Lease ${leaseId} on task ${id}`;
  const holder = reason === 'claimed_again' ? (task.leaseOwner ?? undefined) : undefined;
  const message =
    reason === 'expired'
      ? `${lease} expired at ${toIsoTime(task.leaseUntil ?? 0)}`
      : reason === 'claimed_again'
        ? `${lease} has ended: the task was claimed again, by ${task.leaseOwner}`
        : reason === 'moved'
          ? `${lease} has ended: the task is ${task.state} now`
          : `Task ${id} is ${task.state}, not leased`;
  const details = {
    resource: `task ${id}`,
    holder,
    taskId: id,
    leaseId,
    state: task.state,
    reason,
  };
  return new ConflictError(details, { message });
}

/**
 * Whether an error is the service saying the caller's lease is gone (expired, taken by a later
 * claim, or ended by a move): the work in hand is no longer the caller's to report.
 */
export function isLeaseGone(error: unknown): error is ConflictError {
  if (!ConflictError.is(error)) return false;
  const reason = (error.details as { reason?: unknown }).reason;
  return typeof reason === 'string' && REASONS.has(reason);
}
