import {
  ForbiddenError,
  KernelError,
  type TaskState,
  type TransportError,
} from '@exec-kernel/core';
import type { CoordinationClient } from './client.js';
import { isUnavailable } from './errors.js';
import { isLeaseGone } from './lease.js';
import type {
  ActionCheckView,
  ActionRequest,
  ActionResultRequest,
  ActionWarningView,
  BudgetWarningView,
  Claimed,
  Lease,
  TaskView,
} from './protocol/types.js';
import { BatchFinisher, backoffMs, type Finish, finishOne, pause } from './worker-finish.js';

/** One claimed task, as the worker helper hands it to a handler. */
export interface Job {
  readonly task: TaskView;
  /** The lease; its `until` moves with each heartbeat the service accepts. */
  readonly lease: Lease;
  /**
   * Aborted when the lease is gone (it expired, or another claim took the task: `signal.reason`
   * is then the service's `ConflictError`, see `isLeaseGone`, or its `ForbiddenError` when another
   * agent holds the task now), or when the worker is stopping
   * (`reason` is the stop signal's). A handler that stops early on it may throw its reason (or an
   * `AbortError`): while the worker is stopping, that gives the task back to the queue instead
   * of blocking it.
   */
  readonly signal: AbortSignal;
  /** Records steps against the task's budget (throws BudgetExceededError past it). */
  step(count?: number): Promise<BudgetWarningView[]>;
  /** Records tokens and cost against the task's budget. */
  usage(spend: { tokens?: number; costUsd?: number }): Promise<BudgetWarningView[]>;
  /**
   * Records a tool call on the task (see `CoordinationClient.recordAction`): throws
   * LoopDetectionError when it is refused, which, thrown on from the handler, blocks the task.
   */
  action(call: Omit<ActionRequest, 'leaseId'>): Promise<ActionCheckView>;
  /** Records the result of the newest call (see `CoordinationClient.recordActionResult`). */
  actionResult(result: Omit<ActionResultRequest, 'leaseId'>): Promise<ActionWarningView[]>;
  /** Moves the task yourself; the worker then leaves it where you put it. */
  transition(to: TaskState, comment?: string): Promise<void>;
}

/** Does a claimed task's work; resolves with where to move it (default `done`), or nothing. */
export type JobHandler = (job: Job) => Promise<TaskState | undefined> | Promise<void>;

/** Options of {@link work} (and `CoordinationClient.work`). */
export interface WorkOptions {
  /** Claim only these task types. Default: any. */
  types?: string[] | undefined;
  /** Lease length; the worker heartbeats every third of it. Default: `30` s. */
  leaseSeconds?: number | undefined;
  /** How long each claim waits for work. Default: `20` s. */
  waitSeconds?: number | undefined;
  /**
   * Stops the worker. It claims nothing more, and gives back (releases) what it claimed and did
   * not start; each task in hand is finished first: its handler sees `job.signal` abort, keeps
   * its lease (heartbeats go on) and is reported as usual when it returns, its next claim not
   * asked for. Then `work()` returns.
   */
  signal?: AbortSignal | undefined;
  /**
   * How long, once `signal` aborts, to wait for handlers still running. Past it the worker gives
   * their tasks back to the queue and returns; a handler that is still running is not awaited and
   * what it returns is not reported, so its task may run again elsewhere while it does. Default:
   * no limit (wait for every handler, however long it takes).
   */
  graceSeconds?: number | undefined;
  /**
   * How many tasks to run at once (1–100). Above 1 the worker claims as many as it has free slots
   * in one request (`claimMany`) and reports finished tasks together (`transitionMany`), which
   * spares the service most of its requests. Default: `1`.
   */
  concurrency?: number | undefined;
  /** Return when a claim finds nothing, instead of waiting for more. Default: `false`. */
  untilIdle?: boolean | undefined;
  /**
   * Called with the error of a handler that threw (or of its report refused). Its task is then
   * blocked and escalated, or given back when the error is the service not answering one of the
   * handler's calls, or the handler giving up on a stop; nothing is done when the lease is gone.
   */
  onError?: ((error: unknown, job: Job) => void) | undefined;
  /**
   * Called each time the service does not answer (down, restarting, overloaded). The worker then
   * waits (backing off up to 5 s) and tries again instead of stopping.
   */
  onUnavailable?: ((error: TransportError) => void) | undefined;
}

/**
 * Whether a refusal of a call on the lease means the task is no longer the worker's: the lease
 * is gone (expired, claimed again, ended by a move), or the service says the caller may not act
 * on the task any more (another agent holds it now).
 */
export function isLeaseLost(error: unknown): boolean {
  return isLeaseGone(error) || ForbiddenError.is(error);
}

/** What {@link untilAbandoned} rejects with once its signal aborts. */
const ABANDONED: unique symbol = Symbol('abandoned');

/**
 * `work`, or a rejection with {@link ABANDONED} once `signal` aborts first; `work` goes on (its
 * outcome, arriving later, is dropped).
 */
function untilAbandoned<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(ABANDONED);
  }
  return new Promise<T>((resolve, reject) => {
    const give = () => {
      work.catch(() => undefined);
      reject(ABANDONED);
    };
    signal.addEventListener('abort', give, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', give);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', give);
        reject(error);
      },
    );
  });
}

/** Whether `error` is a handler giving up because `signal` aborted (its reason, or an AbortError). */
function isAbortOf(error: unknown, signal: AbortSignal): boolean {
  return error === signal.reason || (error instanceof Error && error.name === 'AbortError');
}

/**
 * Works tasks one at a time: claim (waiting for work), heartbeat while the handler runs, then
 * move the task to the state the handler returns (default `done`). A handler that throws gets
 * its task blocked (which escalates it) and the worker carries on, except when what it threw
 * is the service not answering one of its calls: that task goes back to the queue. Returns how
 * many tasks it started, once stopped through `signal` (after the tasks in hand are finished, see
 * {@link WorkOptions.signal}) or (with `untilIdle`) when a claim finds nothing.
 */
export async function work(
  client: CoordinationClient,
  handler: JobHandler,
  options: WorkOptions = {},
): Promise<number> {
  const concurrency = options.concurrency ?? 1;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 100) {
    throw new RangeError(`concurrency must be an integer from 1 to 100, got ${concurrency}`);
  }
  const leaseSeconds = options.leaseSeconds ?? 30;
  if (options.graceSeconds !== undefined && !(options.graceSeconds >= 0)) {
    throw new RangeError(`graceSeconds must be 0 or more, got ${options.graceSeconds}`);
  }
  // Aborted once the grace after a stop is over: handlers still running are given up.
  const abandon = new AbortController();
  let grace: NodeJS.Timeout | undefined;
  const startGrace = () => {
    if (options.graceSeconds === undefined) return;
    grace = setTimeout(() => abandon.abort(), options.graceSeconds * 1000);
  };
  options.signal?.addEventListener('abort', startGrace, { once: true });
  try {
    return await workLoop(client, handler, options, concurrency, leaseSeconds, abandon.signal);
  } finally {
    clearTimeout(grace);
    options.signal?.removeEventListener('abort', startGrace);
  }
}

async function workLoop(
  client: CoordinationClient,
  handler: JobHandler,
  options: WorkOptions,
  concurrency: number,
  leaseSeconds: number,
  abandon: AbortSignal,
): Promise<number> {
  const running = new Set<Promise<void>>();
  // One at a time, each finish also claims the next task (one round trip for both); the claim
  // waits here until the loop takes it.
  let handoff: Claimed | undefined;
  const next = { ...(options.types === undefined ? {} : { types: options.types }), leaseSeconds };
  const finish: Finish =
    concurrency === 1
      ? async (id, lease, to, lost) => {
          const ask = options.signal?.aborted ? undefined : next;
          handoff = await finishOne(client, id, lease, to, lost, options.onUnavailable, ask);
        }
      : new BatchFinisher(client, options.onUnavailable).finish;
  let handled = 0;
  let failures = 0;
  while (options.signal?.aborted !== true) {
    const free = concurrency - running.size;
    if (free === 0) {
      await Promise.race(running);
      continue;
    }
    let claims: Claimed[];
    try {
      const ask = {
        ...(options.types === undefined ? {} : { types: options.types }),
        leaseSeconds,
        // While tasks run, only look: a waiting claim would hold their finished slots idle.
        waitSeconds: running.size > 0 ? 0 : (options.waitSeconds ?? 20),
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      };
      if (concurrency === 1) {
        const one = handoff ?? (await client.claim(ask));
        handoff = undefined;
        claims = one === undefined ? [] : [one];
      } else {
        claims = await client.claimMany({ ...ask, max: free });
      }
      failures = 0;
    } catch (error) {
      if (options.signal?.aborted) break;
      if (!isUnavailable(error)) throw error;
      options.onUnavailable?.(error);
      await pause(backoffMs(failures++), options.signal);
      continue;
    }
    if (options.signal?.aborted) {
      // Stopped while the claim was on its way: these were never started.
      await giveBack(client, claims);
      break;
    }
    if (claims.length === 0) {
      if (running.size > 0) await Promise.race(running);
      else if (options.untilIdle) break;
      continue;
    }
    for (const claimed of claims) {
      const done: Promise<void> = handle(
        client,
        claimed,
        handler,
        leaseSeconds,
        options,
        finish,
        abandon,
      ).finally(() => running.delete(done));
      running.add(done);
      handled++;
    }
  }
  await Promise.all(running);
  // Stopped with a task claimed for the next round: give it back rather than let its lease run out.
  const unstarted = handoff as Claimed | undefined;
  if (unstarted !== undefined) await giveBack(client, [unstarted]);
  return handled;
}

/**
 * Releases claimed tasks the worker will not run. One the service cannot take back now (it is
 * away) returns to the queue when its lease runs out.
 */
async function giveBack(client: CoordinationClient, claims: readonly Claimed[]): Promise<void> {
  await Promise.all(
    claims.map((c) => client.release(c.task.id, { leaseId: c.lease.id }).catch(() => undefined)),
  );
}

async function handle(
  client: CoordinationClient,
  { task, lease: claimed }: Claimed,
  handler: JobHandler,
  leaseSeconds: number,
  options: WorkOptions,
  finish: Finish,
  abandon: AbortSignal,
): Promise<void> {
  // Its end moves with each heartbeat: a report retried through an outage goes on until then.
  const lease: Lease = { ...claimed };
  // `lost`: the lease is gone, nothing more is reported. `seen`: what the handler is told,
  // the lease gone or the worker stopping; a stop keeps the lease and still reports.
  const lost = new AbortController();
  const seen = new AbortController();
  const stopping = options.signal;
  const onStop = () => seen.abort(stopping?.reason);
  if (stopping?.aborted) onStop();
  else stopping?.addEventListener('abort', onStop, { once: true });
  const loseLease = (error: unknown) => {
    clearInterval(timer);
    if (!lost.signal.aborted) lost.abort(error);
    if (!seen.signal.aborted) seen.abort(error);
  };
  /** Runs a call on the lease; a refusal saying the lease is gone marks it lost. */
  const onLease = async <T>(call: () => Promise<T>): Promise<T> => {
    try {
      return await call();
    } catch (error) {
      if (isLeaseLost(error)) loseLease(error);
      throw error;
    }
  };
  let moved = false;
  const timer = setInterval(
    () => {
      client.heartbeat(task.id, { leaseId: lease.id, leaseSeconds }).then(
        (beat) => {
          lease.until = beat.lease.until;
        },
        (error: unknown) => {
          if (isLeaseLost(error)) loseLease(error);
        },
      );
    },
    (leaseSeconds * 1000) / 3,
  );
  const job: Job = {
    task,
    lease,
    signal: seen.signal,
    step: (count = 1) =>
      onLease(async () => (await client.step(task.id, { count, leaseId: lease.id })).warnings),
    usage: (spend) =>
      onLease(async () => (await client.usage(task.id, { ...spend, leaseId: lease.id })).warnings),
    action: (call) => onLease(() => client.recordAction(task.id, { ...call, leaseId: lease.id })),
    actionResult: (result) =>
      onLease(
        async () =>
          (await client.recordActionResult(task.id, { ...result, leaseId: lease.id })).warnings,
      ),
    transition: (to, comment) =>
      onLease(async () => {
        await client.transition(task.id, to, {
          leaseId: lease.id,
          ...(comment === undefined ? {} : { comment }),
        });
        moved = true;
      }),
  };
  try {
    const outcome = (async () => (await handler(job)) ?? undefined)();
    const to = (await untilAbandoned(outcome, abandon)) ?? 'done';
    if (!moved && !lost.signal.aborted) {
      await onLease(() => finish(task.id, lease, to, lost.signal));
    }
  } catch (error) {
    if (error === ABANDONED) {
      // The grace after a stop is over and the handler still runs: its task goes back now.
      clearInterval(timer);
      if (!moved && !lost.signal.aborted) await giveBack(client, [{ task, lease }]);
      return;
    }
    options.onError?.(error, job);
    // Past its budget the service has blocked the task already.
    const alreadyBlocked = KernelError.is(error) && error.code === 'BUDGET_EXCEEDED';
    const interrupted = stopping?.aborted === true && isAbortOf(error, stopping);
    if (!moved && !lost.signal.aborted && !alreadyBlocked) {
      if (isUnavailable(error) || interrupted) {
        // The service did not answer the handler, or the handler stopped because the worker
        // is stopping: nothing is wrong with the task. It goes back to the queue, or, if the
        // service is away, comes back when its lease runs out.
        await client.release(task.id, { leaseId: lease.id }).catch(() => undefined);
      } else {
        const message = error instanceof Error ? error.message : String(error);
        await job.transition('blocked', `Worker failed: ${message}`).catch(() => undefined);
      }
    }
  } finally {
    clearInterval(timer);
    stopping?.removeEventListener('abort', onStop);
  }
}
