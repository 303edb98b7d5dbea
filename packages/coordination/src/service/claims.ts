import { randomUUID } from 'node:crypto';
import { ConflictError, NotFoundError, toIsoTime } from '@exec-kernel/core';
import type { NewEvent, TaskRow } from '../model.js';
import type { ClaimEvent, FollowingClaim } from '../storage/storage.js';
import { eventNow, type ServiceContext, waitForChange } from './context.js';
import { claimantOf, endLease, leaseMs } from './rules.js';
import type { Caller, Claimed, ClaimOptions, Lease, NextClaim } from './types.js';

/** A lease about to be taken: its id and end (ms). */
interface NewLease {
  id: string;
  untilMs: number;
}

/**
 * Claims the next `todo` task (of the given types) for the calling agent, waiting up to
 * `waitSeconds` for one to arrive; or, with `taskId`, that task at once. A sleeping agent that
 * gets work is woken (`task_available`).
 *
 * @throws ConflictError when the named task is not `todo`; NotFoundError when it does not exist.
 */
export async function claim(
  ctx: ServiceContext,
  caller: Caller,
  options: ClaimOptions & { taskId?: string | undefined },
): Promise<{ task: TaskRow; lease: Lease } | undefined> {
  const { taskId } = options;
  if (taskId === undefined) {
    const { tasks, lease } = await claimMany(ctx, caller, { ...options, max: 1 });
    const [task] = tasks;
    return task === undefined ? undefined : { task, lease };
  }
  const agentId = claimantOf(caller);
  const now = ctx.clock.now();
  const lease = newLease(ctx, now, options.leaseSeconds);
  const until = toIsoTime(lease.untilMs);
  const task = await ctx.storage.claim(
    {
      agentId,
      types: null,
      taskId,
      leaseId: lease.id,
      leaseUntil: lease.untilMs,
      now,
      wake: wokenByWork(ctx, agentId),
    },
    claimedEvent(agentId, lease.id, until, now),
  );
  if (task === undefined) {
    const named = await ctx.storage.getTask(taskId);
    if (named === undefined) throw new NotFoundError({ resource: 'task', id: taskId });
    const held = named.leaseOwner === null ? '' : `, leased by ${named.leaseOwner}`;
    throw new ConflictError(
      { resource: `task ${taskId}`, holder: named.leaseOwner ?? undefined },
      { message: `Task ${taskId} is ${named.state}${held}; only todo tasks can be claimed` },
    );
  }
  ctx.counters.claims++;
  return { task, lease: { id: lease.id, until } };
}

/**
 * Claims up to `max` of the next `todo` tasks (highest priority, then oldest) of the asked
 * types, all under one lease, waiting up to `waitSeconds` for the first. An empty list when
 * none came.
 */
export async function claimMany(
  ctx: ServiceContext,
  caller: Caller,
  options: ClaimOptions & { max: number; exceptIds?: readonly string[] | undefined },
): Promise<Claimed> {
  const agentId = claimantOf(caller);
  const { signal } = options;
  const waitMs = Math.min(options.waitSeconds ?? 0, ctx.settings.maxWaitSeconds) * 1000;
  const deadline = ctx.clock.now() + waitMs;
  while (true) {
    const { claim, lease } = newClaim(ctx, agentId, options);
    if (signal?.aborted) return { tasks: [], lease };
    const tasks = await ctx.storage.claimMany(claim.request, options.max, claim.event);
    if (tasks.length > 0 && signal?.aborted) {
      // The claimant went away (a worker stopping mid-poll) while the claim was written: nobody
      // will hear of these tasks, so they go back now instead of when the lease runs out.
      await unclaim(ctx, agentId, tasks);
      return { tasks: [], lease };
    }
    if (tasks.length > 0) {
      ctx.counters.claims += tasks.length;
      return { tasks, lease };
    }
    const left = deadline - ctx.clock.now();
    if (left <= 0 || signal?.aborted || ctx.stopping.signal.aborted) {
      ctx.counters.claimMisses++;
      return { tasks, lease };
    }
    await waitForChange(ctx, Math.min(left, 1000), signal, 'task');
  }
}

/**
 * Undoes a claim nobody received: each task back to `todo` as it was before (the attempt and,
 * on a first claim, the start of its duration budget not counted), with a `task.released` event.
 */
async function unclaim(
  ctx: ServiceContext,
  agentId: string,
  tasks: readonly TaskRow[],
): Promise<void> {
  const now = ctx.clock.now();
  await ctx.storage.updateTasks(
    tasks.map((task) => {
      const attempts = Math.max(0, task.attempts - 1);
      return {
        id: task.id,
        expect: { state: 'in_progress', leaseId: task.leaseId, leaseOwner: task.leaseOwner },
        changes: {
          ...endLease('todo', now),
          attempts,
          ...(task.attempts <= 1 ? { startedAt: null } : {}),
        },
        extras: {
          events: [
            eventNow(ctx, 'task.released', {
              taskId: task.id,
              agentId,
              data: { attempts, reason: 'claimant_gone' },
            }),
          ],
        },
      };
    }),
  );
}

/**
 * The claim after a transition when the storage did not make it with the moves: up to `max` of
 * the next tasks, never waiting, none of `movedIds`. `undefined` when there were none, or when
 * the claim failed: the transition before it stands either way, and the worker's own claim,
 * which it makes next, reports the failure.
 */
export async function claimAfter(
  ctx: ServiceContext,
  caller: Caller,
  next: NextClaim,
  movedIds: readonly string[],
): Promise<Claimed | undefined> {
  try {
    const claimed = await claimMany(ctx, caller, {
      ...next,
      waitSeconds: 0,
      exceptIds: movedIds,
    });
    return claimed.tasks.length === 0 ? undefined : claimed;
  } catch {
    return undefined;
  }
}

/**
 * A claim of up to `max` tasks under a new lease, as the storage takes it: on its own, or after
 * a transition, in that transaction.
 */
export function newClaim(
  ctx: ServiceContext,
  agentId: string,
  next: NextClaim & { exceptIds?: readonly string[] | undefined },
): { claim: FollowingClaim; lease: Lease } {
  const now = ctx.clock.now();
  const lease = newLease(ctx, now, next.leaseSeconds);
  const types = next.types === undefined || next.types.length === 0 ? null : next.types;
  const until = toIsoTime(lease.untilMs);
  return {
    claim: {
      request: {
        agentId,
        types,
        leaseId: lease.id,
        leaseUntil: lease.untilMs,
        now,
        wake: wokenByWork(ctx, agentId),
        exceptIds: next.exceptIds,
      },
      max: next.max,
      event: claimedEvent(agentId, lease.id, until, now),
    },
    lease: { id: lease.id, until },
  };
}

/** What a following claim took, counted; `undefined` when it took nothing. */
export function tookNext(
  ctx: ServiceContext,
  tasks: TaskRow[] | undefined,
  lease: Lease,
): Claimed | undefined {
  if (tasks === undefined || tasks.length === 0) return undefined;
  ctx.counters.claims += tasks.length;
  return { tasks, lease };
}

function newLease(ctx: ServiceContext, now: number, seconds: number | undefined): NewLease {
  return { id: `lse_${randomUUID()}`, untilMs: now + leaseMs(seconds, ctx.settings) };
}

function claimedEvent(agentId: string, leaseId: string, until: string, now: number): ClaimEvent {
  return {
    type: 'task.claimed',
    agentId,
    data: { leaseId, leaseUntil: until },
    at: now,
  };
}

/** The event of a sleeping claimant woken by the work it took. */
function wokenByWork(ctx: ServiceContext, agentId: string): NewEvent {
  return eventNow(ctx, 'agent.wake', { agentId, data: { reason: 'task_available' } });
}
