import { NotFoundError, toIsoTime } from '@exec-kernel/core';
import { leaseGoneError } from '../lease.js';
import type { TaskRow } from '../model.js';
import { eventNow, type ServiceContext } from './context.js';
import { escalationEvent, escalationRow } from './records.js';
import { agentOf, checkLease, endLease, leaseMs, leaseRefusal, liveExpectation } from './rules.js';
import type { Caller, Lease } from './types.js';

/**
 * The task as stored, with the caller's lease on it checked (see `checkLease`).
 *
 * @throws NotFoundError, or the lease's ConflictError / ForbiddenError.
 */
export async function leased(
  ctx: ServiceContext,
  caller: Caller,
  id: string,
  leaseId: string | undefined,
): Promise<TaskRow> {
  const task = await ctx.storage.getTask(id);
  if (task === undefined) throw new NotFoundError({ resource: 'task', id });
  return checkLease(caller, task, leaseId, ctx.clock.now());
}

/**
 * The refusal of a write on a lease whose compare-and-set did not apply: the task is read again
 * and the lease checked on what is stored now, so the caller hears why (expired, claimed again,
 * moved) or that the task is another agent's.
 */
export async function leaseGoneNow(
  ctx: ServiceContext,
  caller: Caller,
  id: string,
  leaseId: string | undefined,
): Promise<Error> {
  const task = await ctx.storage.getTask(id);
  return leaseRefusal(caller, id, task, leaseId, ctx.clock.now());
}

/** Extends the caller's lease. */
export async function heartbeat(
  ctx: ServiceContext,
  caller: Caller,
  id: string,
  options: { leaseId?: string | undefined; leaseSeconds?: number | undefined },
): Promise<{ task: TaskRow; lease: Lease }> {
  const task = await leased(ctx, caller, id, options.leaseId);
  const now = ctx.clock.now();
  const until = now + leaseMs(options.leaseSeconds, ctx.settings);
  const updated = await ctx.storage.updateTask(
    id,
    {
      state: 'in_progress',
      leaseId: task.leaseId,
      leaseOwner: task.leaseOwner,
      ...liveExpectation(caller, now),
    },
    { leaseUntil: until, updatedAt: now },
    { events: [] },
  );
  if (updated === undefined) throw await leaseGoneNow(ctx, caller, id, options.leaseId);
  return { task: updated, lease: { id: updated.leaseId as string, until: toIsoTime(until) } };
}

/** Gives a leased task back to the queue (`todo`); the attempt stays counted. */
export async function release(
  ctx: ServiceContext,
  caller: Caller,
  id: string,
  options: { leaseId?: string | undefined },
): Promise<TaskRow> {
  const task = await leased(ctx, caller, id, options.leaseId);
  if (task.state !== 'in_progress')
    throw leaseGoneError(
      task,
      options.leaseId,
      options.leaseId === undefined ? 'not_leased' : 'moved',
    );
  const now = ctx.clock.now();
  const updated = await ctx.storage.updateTask(
    id,
    { state: 'in_progress', leaseId: task.leaseId, ...liveExpectation(caller, now) },
    endLease('todo', now),
    {
      events: [
        eventNow(ctx, 'task.released', {
          taskId: id,
          agentId: agentOf(caller),
          data: { attempts: task.attempts },
        }),
      ],
    },
  );
  if (updated === undefined) throw await leaseGoneNow(ctx, caller, id, options.leaseId);
  return updated;
}

/**
 * Returns tasks whose holder stopped heartbeating to the queue, or, once they used up their
 * attempts, blocks and escalates them instead of letting them loop forever. Passes never
 * overlap; one that finds another running returns `0`.
 */
export async function reapExpiredLeases(ctx: ServiceContext): Promise<number> {
  if (ctx.reaping) return 0;
  ctx.reaping = true;
  try {
    const now = ctx.clock.now();
    const expired = await ctx.storage.listExpiredLeases(now, 500);
    let done = 0;
    for (const task of expired) {
      const requeued = task.attempts < task.maxAttempts;
      const events = [
        eventNow(ctx, 'task.lease_expired', {
          taskId: task.id,
          agentId: task.leaseOwner,
          data: {
            attempts: task.attempts,
            maxAttempts: task.maxAttempts,
            leaseId: task.leaseId,
            requeued,
          },
        }),
      ];
      const escalation = requeued
        ? undefined
        : escalationRow(
            {
              kind: 'attempts_exhausted',
              taskId: task.id,
              agentId: task.leaseOwner,
              violation: null,
              comment: `Task ${task.id} lost its lease ${task.attempts} times (max ${task.maxAttempts})`,
            },
            ctx.clock.now(),
          );
      if (escalation !== undefined) events.push(escalationEvent(escalation));
      const updated = await ctx.storage.updateTask(
        task.id,
        // Not a lease its holder renewed since the list was read.
        { state: 'in_progress', leaseId: task.leaseId, leaseEndedBefore: now },
        endLease(requeued ? 'todo' : 'blocked', now),
        { events, escalation },
      );
      if (updated === undefined) continue;
      done++;
      if (escalation !== undefined) ctx.counters.escalations++;
    }
    ctx.counters.leasesExpired += done;
    return done;
  } finally {
    ctx.reaping = false;
  }
}

/** Runs {@link reapExpiredLeases} every `reapIntervalMs` (not keeping the process alive); returns the stop. */
export function startReaper(ctx: ServiceContext): () => void {
  const timer = setInterval(
    () => void reapExpiredLeases(ctx).catch(() => undefined),
    ctx.settings.reapIntervalMs,
  );
  timer.unref();
  return () => clearInterval(timer);
}
