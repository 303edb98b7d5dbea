import { ConflictError, NotFoundError, type TaskState } from '@exec-kernel/core';
import { isViolation } from '../errors.js';
import { leaseGoneError } from '../lease.js';
import type { TaskRow } from '../model.js';
import type { FollowingClaim } from '../storage/storage.js';
import { claimAfter, newClaim, tookNext } from './claims.js';
import { countOne, type ServiceContext } from './context.js';
import { leaseGoneNow } from './leases.js';
import { agentOf, claimantOf, heldMove, type PreparedMove, prepareMove } from './rules.js';
import type {
  Caller,
  Claimed,
  Lease,
  Moved,
  NextClaim,
  TransitionOutcome,
  TransitionRequest,
} from './types.js';
import { escalating, recordViolation } from './violations.js';

type Item = TransitionRequest & { id: string };

/**
 * Moves a task along the lifecycle table. Agents move only tasks they hold the lease on; the
 * admin moves any. Leaving `in_progress` ends the lease; entering `blocked` escalates.
 *
 * @throws InvalidTransitionError (escalated) for a move the table refuses.
 */
export async function transition(
  ctx: ServiceContext,
  caller: Caller,
  id: string,
  request: TransitionRequest,
): Promise<Moved> {
  const held = heldMove(caller, id, request, ctx.clock.now());
  if (held !== undefined) {
    const { expect, changes, extras } = held.update;
    const updated = await ctx.storage.updateTask(id, expect, changes, extras);
    if (updated !== undefined) {
      countMove(ctx, held);
      return { task: updated, from: 'in_progress', reason: held.reason };
    }
  }
  return await transitionAsRead(ctx, caller, id, request, held !== undefined);
}

/**
 * {@link transition}, then the caller's next task (`next`): on a lease the caller names, both in
 * one storage transaction, and the claim only if the move applied. `next` in the result is
 * `undefined` when no task was claimed. Only agents may ask.
 */
export async function transitionThenClaim(
  ctx: ServiceContext,
  caller: Caller,
  id: string,
  request: TransitionRequest,
  next: NextClaim,
): Promise<Moved & { next: Claimed | undefined }> {
  const agentId = claimantOf(caller);
  const held = heldMove(caller, id, request, ctx.clock.now());
  if (held !== undefined) {
    const { claim, lease } = newClaim(ctx, agentId, next);
    const { tasks, claimed } = await ctx.storage.updateThenClaim([held.update], claim);
    const [updated] = tasks;
    if (updated !== undefined) {
      countMove(ctx, held);
      const took = tookNext(ctx, claimed, lease);
      return { task: updated, from: 'in_progress', reason: held.reason, next: took };
    }
  }
  const moved = await transitionAsRead(ctx, caller, id, request, held !== undefined);
  return { ...moved, next: await claimAfter(ctx, caller, next, [id]) };
}

/**
 * {@link transition} decided on the task as read. `named` says the caller named a lease that
 * did not hold.
 */
async function transitionAsRead(
  ctx: ServiceContext,
  caller: Caller,
  id: string,
  request: TransitionRequest,
  named: boolean,
): Promise<Moved> {
  const task = await ctx.storage.getTask(id);
  if (task === undefined) throw new NotFoundError({ resource: 'task', id });
  // The lease it names was live when taken; a task no longer leased at all was reaped (or moved
  // by the admin) since: that is a lost lease, not a move the table refuses.
  if (named && task.state !== 'in_progress') throw leaseGoneError(task, request.leaseId, 'moved');
  return escalating(ctx, agentOf(caller), id, async () => {
    const move = prepareMove(caller, task, request, ctx.clock.now());
    const { expect, changes, extras } = move.update;
    const updated = await ctx.storage.updateTask(id, expect, changes, extras);
    if (updated === undefined) throw await moveMissed(ctx, caller, id, task.state, request.leaseId);
    countMove(ctx, move);
    return { task: updated, from: task.state, reason: move.reason };
  });
}

/**
 * Several transitions (a worker finishing a batch): those on leases the caller names in one
 * storage transaction, the rest, read first, in another. Each is checked and applied on its
 * own, exactly as {@link transition} would: the result says, item by item, what happened, and a
 * refused one (escalated when it is a violation) does not stop the rest.
 */
export async function transitionMany(
  ctx: ServiceContext,
  caller: Caller,
  items: readonly Item[],
): Promise<TransitionOutcome[]> {
  return (await moveAll(ctx, caller, items, undefined)).outcomes;
}

/**
 * {@link transitionMany}, then the caller's next tasks (`next`), claimed in the transaction of
 * the moves on named leases when there are any, after all of them otherwise. `next` in the
 * result is `undefined` when no task was claimed. Only agents may ask.
 */
export async function transitionManyThenClaim(
  ctx: ServiceContext,
  caller: Caller,
  items: readonly Item[],
  next: NextClaim,
): Promise<{ outcomes: TransitionOutcome[]; next: Claimed | undefined }> {
  const agentId = claimantOf(caller);
  // Every task the request names, not only those moved with the claim: the rest move after it.
  const moved = items.map((item) => item.id);
  const following = newClaim(ctx, agentId, { ...next, exceptIds: moved });
  const done = await moveAll(ctx, caller, items, following);
  // A claim made with the moves that took nothing found the queue empty: no second try.
  if (done.tried) return { outcomes: done.outcomes, next: done.claimed };
  return { outcomes: done.outcomes, next: await claimAfter(ctx, caller, next, moved) };
}

/**
 * The moves of {@link transitionMany}, with `following` claimed in the transaction of the moves
 * on named leases. `tried` says that claim was made (some of those moves applied); `claimed` is
 * what it took, `undefined` for nothing.
 */
async function moveAll(
  ctx: ServiceContext,
  caller: Caller,
  items: readonly Item[],
  following: { claim: FollowingClaim; lease: Lease } | undefined,
): Promise<{ outcomes: TransitionOutcome[]; claimed: Claimed | undefined; tried: boolean }> {
  const outcomes: Array<TransitionOutcome | undefined> = new Array(items.length);
  let claimed: Claimed | undefined;
  let tried = false;
  // Moves on held leases first, without a read; any that does not apply is decided again below.
  const now = ctx.clock.now();
  const held: Array<{ index: number; move: PreparedMove }> = [];
  const unread: number[] = [];
  for (const [index, item] of items.entries()) {
    const move = heldMove(caller, item.id, item, now);
    if (move === undefined) unread.push(index);
    else held.push({ index, move });
  }
  if (held.length > 0) {
    const updates = held.map((h) => h.move.update);
    let updated: Array<TaskRow | undefined>;
    if (following === undefined) {
      updated = await ctx.storage.updateTasks(updates);
    } else {
      const result = await ctx.storage.updateThenClaim(updates, following.claim);
      updated = result.tasks;
      tried = result.claimed !== undefined;
      claimed = tookNext(ctx, result.claimed, following.lease);
    }
    for (const [i, { index, move }] of held.entries()) {
      const task = updated[i];
      if (task === undefined) {
        unread.push(index);
        continue;
      }
      countMove(ctx, move);
      outcomes[index] = { id: task.id, ok: true, task, from: 'in_progress', reason: move.reason };
    }
  }
  if (unread.length > 0) {
    const named = new Set(held.map((h) => h.index));
    unread.sort((a, b) => a - b);
    await moveAllAsRead(ctx, caller, items, unread, named, outcomes);
  }
  return { outcomes: outcomes as TransitionOutcome[], claimed, tried };
}

/**
 * {@link transitionMany}'s items at `indexes`, each decided on the task as read; `named` are
 * those whose named lease did not hold (see {@link transition}).
 */
async function moveAllAsRead(
  ctx: ServiceContext,
  caller: Caller,
  items: readonly Item[],
  indexes: readonly number[],
  named: ReadonlySet<number>,
  outcomes: Array<TransitionOutcome | undefined>,
): Promise<void> {
  const agentId = agentOf(caller);
  const found = await ctx.storage.getTasks(indexes.map((index) => (items[index] as Item).id));
  const byId = new Map(found.map((task) => [task.id, task]));
  const now = ctx.clock.now();
  const moves: Array<{ index: number; move: PreparedMove; from: TaskState }> = [];
  for (const index of indexes) {
    const item = items[index] as Item;
    const task = byId.get(item.id);
    try {
      if (task === undefined) throw new NotFoundError({ resource: 'task', id: item.id });
      if (named.has(index) && task.state !== 'in_progress')
        throw leaseGoneError(task, item.leaseId, 'moved');
      moves.push({ index, move: prepareMove(caller, task, item, now), from: task.state });
    } catch (error) {
      if (isViolation(error)) await recordViolation(ctx, error, agentId, item.id);
      outcomes[index] = { id: item.id, ok: false, error };
    }
  }
  if (moves.length === 0) return;
  const updated = await ctx.storage.updateTasks(moves.map((m) => m.move.update));
  for (const [i, { index, move, from }] of moves.entries()) {
    const task = updated[i];
    if (task === undefined) {
      const item = items[index] as Item;
      const error = await moveMissed(ctx, caller, item.id, from, item.leaseId);
      outcomes[index] = { id: item.id, ok: false, error };
      continue;
    }
    countMove(ctx, move);
    outcomes[index] = { id: task.id, ok: true, task, from, reason: move.reason };
  }
}

/** The refusal of a move from `from` that did not apply; a task nobody held changed state meanwhile. */
async function moveMissed(
  ctx: ServiceContext,
  caller: Caller,
  id: string,
  from: TaskState,
  leaseId: string | undefined,
): Promise<Error> {
  if (from === 'in_progress') return leaseGoneNow(ctx, caller, id, leaseId);
  const now = await ctx.storage.getTask(id);
  return new ConflictError(
    { resource: `task ${id}` },
    {
      message: `Task ${id} changed while the request ran: it is ${now?.state ?? 'gone'}, not ${from}`,
    },
  );
}

/** Counts a move that applied (and the escalation it raised) for /metrics. */
export function countMove(ctx: ServiceContext, move: { to: TaskState; escalates: boolean }): void {
  countOne(ctx.counters.transitions, move.to);
  if (move.escalates) ctx.counters.escalations++;
}
