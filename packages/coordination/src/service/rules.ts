import {
  ConflictError,
  ForbiddenError,
  NotFoundError,
  type TaskState,
  ValidationError,
} from '@exec-kernel/core';
import { validateTransition } from '@exec-kernel/lifecycle';
import { leaseGoneError } from '../lease.js';
import type { NewEvent, TaskRow } from '../model.js';
import type { Expectation, TaskChanges, TaskUpdate } from '../storage/storage.js';
import { escalationEvent, escalationRow, newEvent } from './records.js';
import type { Caller, TransitionRequest } from './types.js';

// The service's rules about callers, leases and moves, as pure functions of what was read and the
// time: every refusal a write can meet is decided here, testable without a storage.

/** Who a caller acts as in events and escalations: its agent id, or `admin`. */
export function agentOf(caller: Caller): string {
  return caller.kind === 'admin' ? 'admin' : caller.agentId;
}

/** @throws ForbiddenError unless the caller is the admin. */
export function requireAdmin(caller: Caller, action: string): void {
  if (caller.kind !== 'admin')
    throw new ForbiddenError(
      { agentId: caller.agentId, action },
      { message: `Only the admin may ${action}` },
    );
}

/**
 * The agent a claim is made for: only agents claim, each as itself.
 *
 * @throws ForbiddenError for the admin.
 */
export function claimantOf(caller: Caller): string {
  if (caller.kind !== 'agent')
    throw new ForbiddenError(
      { agentId: 'admin', action: 'claim tasks' },
      { message: 'Only agents claim tasks, each as itself' },
    );
  return caller.agentId;
}

/**
 * A lease length in ms: `seconds`, or the default, within `(0, maxLeaseSeconds]`.
 *
 * @throws ValidationError (`VALIDATION`) for a length outside it.
 */
export function leaseMs(
  seconds: number | undefined,
  limits: { defaultLeaseSeconds: number; maxLeaseSeconds: number },
): number {
  const s = seconds ?? limits.defaultLeaseSeconds;
  if (!(s > 0 && s <= limits.maxLeaseSeconds)) {
    const message = `leaseSeconds must be in (0, ${limits.maxLeaseSeconds}], got ${s}`;
    throw new ValidationError({ issues: [{ path: 'leaseSeconds', message }] }, { message });
  }
  return s * 1000;
}

/** The changes that move a leased task to `state`, ending its lease. */
export function endLease(state: TaskState, now: number): TaskChanges {
  return { state, leaseOwner: null, leaseId: null, leaseUntil: null, updatedAt: now };
}

/** What a holder's write expects of its lease: that it still runs (the admin's need not). */
export function liveExpectation(caller: Caller, now: number): Pick<Expectation, 'leaseLiveAt'> {
  return caller.kind === 'agent' ? { leaseLiveAt: now } : {};
}

/** What deciding a move reads of a task (`leaseUntil` null: not known, left to the write). */
export type MoveSubject = Pick<
  TaskRow,
  'id' | 'state' | 'agentId' | 'leaseId' | 'leaseOwner' | 'leaseUntil'
>;

/**
 * Checks the caller's lease on a task as read at `now`. A lease the caller names that no longer
 * holds the task (expired, taken by a later claim, ended by a move) is a `CONFLICT` saying so; a
 * task held by another agent, acted on without a lease or with that agent's own, is `FORBIDDEN`.
 * The admin passes.
 */
export function checkLease<T extends MoveSubject>(
  caller: Caller,
  task: T,
  leaseId: string | undefined,
  now: number,
): T {
  if (caller.kind === 'admin') return task;
  const id = task.id;
  if (task.state !== 'in_progress' || task.leaseOwner === null)
    throw leaseGoneError(task, leaseId, leaseId === undefined ? 'not_leased' : 'moved');
  if (leaseId !== undefined && task.leaseId !== leaseId)
    throw leaseGoneError(task, leaseId, 'claimed_again');
  if (task.leaseOwner !== caller.agentId) {
    throw new ForbiddenError(
      { agentId: caller.agentId, action: `act on task ${id}`, taskId: id },
      { message: `Task ${id} is leased by ${task.leaseOwner}, not ${caller.agentId}` },
    );
  }
  if (task.leaseUntil !== null && task.leaseUntil < now)
    throw leaseGoneError(task, leaseId, 'expired');
  return task;
}

/**
 * Why a write on a lease did not apply, decided on the task as stored now (`undefined`: gone):
 * the lease's refusal from {@link checkLease}, or, when the lease looks fine again, that it
 * changed while the request ran.
 */
export function leaseRefusal(
  caller: Caller,
  id: string,
  task: TaskRow | undefined,
  leaseId: string | undefined,
  now: number,
): Error {
  if (task === undefined) return new NotFoundError({ resource: 'task', id });
  try {
    checkLease(caller, task, leaseId, now);
  } catch (error) {
    return error as Error;
  }
  return new ConflictError(
    { resource: `task ${id}` },
    { message: `The lease on task ${id} changed while the request ran` },
  );
}

/**
 * Who may move a task: the lease holder while it is `in_progress`; while nobody holds it, the
 * agent that owns it (backlog to todo, say), except into `in_progress`, which takes a claim.
 */
export function mayMove(
  caller: Caller,
  task: MoveSubject,
  to: TaskState,
  leaseId: string | undefined,
  now: number,
): void {
  if (caller.kind === 'admin') return;
  if (task.state === 'in_progress') {
    checkLease(caller, task, leaseId, now);
    return;
  }
  if (to === 'in_progress') {
    throw new ConflictError(
      { resource: `task ${task.id}` },
      {
        message: `Task ${task.id} starts with a claim (POST /v1/tasks/${task.id}/claim), not a transition`,
      },
    );
  }
  if (task.agentId !== caller.agentId) {
    throw new ForbiddenError(
      { agentId: caller.agentId, action: `move task ${task.id}`, taskId: task.id },
      { message: `Task ${task.id} belongs to ${task.agentId}, not ${caller.agentId}` },
    );
  }
}

/** A checked move and the compare-and-set that makes it. */
export interface PreparedMove {
  to: TaskState;
  reason: string;
  /** Whether the move raises an escalation (it enters `blocked`). */
  escalates: boolean;
  update: TaskUpdate;
}

/**
 * Checks a move at `now` (the table first: a move it forbids is refused as such, whoever asks;
 * then who may make it) and builds its compare-and-set, events and, into `blocked`, escalation.
 *
 * @throws InvalidTransitionError, ConflictError or ForbiddenError.
 */
export function prepareMove(
  caller: Caller,
  task: MoveSubject,
  request: TransitionRequest,
  now: number,
): PreparedMove {
  const { id, state } = task;
  const { to } = request;
  const agentId = agentOf(caller);
  const reason = validateTransition(state, to, id);
  mayMove(caller, task, to, request.leaseId, now);
  const comment = request.comment ?? null;
  const changes: TaskChanges =
    state === 'in_progress' ? endLease(to, now) : { state: to, updatedAt: now };
  if (to === 'todo') changes.attempts = 0;
  const events: NewEvent[] = [
    newEvent(
      'task.transitioned',
      { taskId: id, agentId, data: { from: state, to, reason, comment } },
      now,
    ),
  ];
  const escalation =
    to === 'blocked'
      ? escalationRow({ kind: 'blocked', taskId: id, agentId, violation: null, comment }, now)
      : undefined;
  if (escalation !== undefined) events.push(escalationEvent(escalation));
  const expect: Expectation = { state, leaseId: task.leaseId, leaseOwner: task.leaseOwner };
  if (state === 'in_progress' && caller.kind === 'agent') expect.leaseLiveAt = now;
  return {
    to,
    reason,
    escalates: escalation !== undefined,
    update: { id, expect, changes, extras: { events, escalation } },
  };
}

/**
 * The move of a worker finishing what it holds, built without reading the task: an agent that
 * names its lease is taken at its word (the task is `in_progress` under that lease, held by it).
 * The compare-and-set checks exactly what the move was decided on (state, lease id and holder),
 * so when it applies, the outcome is the one a read first would have given; when it does not,
 * or the move is not one the table allows from `in_progress`, the caller reads and decides
 * again, so refusals always come from the task as stored. `undefined` when there is no word.
 */
export function heldMove(
  caller: Caller,
  id: string,
  request: TransitionRequest,
  now: number,
): PreparedMove | undefined {
  if (caller.kind !== 'agent' || request.leaseId === undefined) return undefined;
  // Checked here rather than by catching prepareMove's throw: building an error (its stack) on
  // every refused guess costs more than the guess saves.
  if (request.to === 'in_progress') return undefined;
  const claimed: MoveSubject = {
    id,
    state: 'in_progress',
    agentId: caller.agentId,
    leaseId: request.leaseId,
    leaseOwner: caller.agentId,
    leaseUntil: null,
  };
  try {
    return prepareMove(caller, claimed, request, now);
  } catch {
    return undefined;
  }
}
