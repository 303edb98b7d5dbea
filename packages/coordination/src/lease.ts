import type { LeaseEndReason } from '@exec-kernel/coordination-client';
import { ConflictError, type TaskState, toIsoTime } from '@exec-kernel/core';

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
