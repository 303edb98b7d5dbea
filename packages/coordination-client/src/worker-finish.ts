import type { TaskState, TransportError } from '@exec-kernel/core';
import type { CoordinationClient } from './client.js';
import { isUnavailable } from './errors.js';
import type { Claimed, Lease } from './protocol/types.js';

/** Told each time the service does not answer a worker's report. */
export type OnUnavailable = ((error: TransportError) => void) | undefined;

/** Sends a handler's outcome; rejects when the move was refused or the lease ran out meanwhile. */
export type Finish = (id: string, lease: Lease, to: TaskState, lost: AbortSignal) => Promise<void>;

interface PendingMove {
  id: string;
  to: TaskState;
  lease: Lease;
  lost: AbortSignal;
  settle: (error?: unknown) => void;
}

/**
 * Sends the outcomes of a worker's tasks together: what finishes while one `transitionMany` is on
 * its way goes out in the next. Like a single finish, it rides out a service that does not answer
 * (until each lease runs out) and recognises a send that committed but lost its reply.
 */
export class BatchFinisher {
  readonly #client: CoordinationClient;
  readonly #onUnavailable: OnUnavailable;
  #queue: PendingMove[] = [];
  #sending = false;

  constructor(client: CoordinationClient, onUnavailable: OnUnavailable) {
    this.#client = client;
    this.#onUnavailable = onUnavailable;
  }

  readonly finish: Finish = (id, lease, to, lost) =>
    new Promise<void>((resolve, reject) => {
      this.#queue.push({
        id,
        to,
        lease,
        lost,
        settle: (error) => (error === undefined ? resolve() : reject(error)),
      });
      if (!this.#sending) {
        this.#sending = true;
        setImmediate(() => void this.#drain());
      }
    });

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, 100);
      await this.#send(batch);
    }
    this.#sending = false;
  }

  async #send(batch: PendingMove[]): Promise<void> {
    let waiting = batch;
    for (let attempt = 0; waiting.length > 0; attempt++) {
      try {
        if (attempt > 0) waiting = await this.#notYetThere(waiting);
        if (waiting.length === 0) return;
        const results = await this.#client.transitionMany(
          waiting.map((m) => ({ id: m.id, to: m.to, leaseId: m.lease.id })),
        );
        for (const [i, result] of results.entries())
          waiting[i]?.settle(result.ok ? undefined : result.error);
        return;
      } catch (error) {
        const now = Date.now();
        const gaveUp = !isUnavailable(error);
        for (const m of waiting)
          if (gaveUp || m.lost.aborted || now >= Date.parse(m.lease.until)) m.settle(error);
        waiting = waiting.filter(
          (m) => !gaveUp && !m.lost.aborted && now < Date.parse(m.lease.until),
        );
        if (waiting.length === 0) return;
        this.#onUnavailable?.(error as TransportError);
        await pause(backoffMs(attempt), undefined);
      }
    }
  }

  /** After a send that may have committed: the moves not applied yet (the others are settled). */
  async #notYetThere(moves: PendingMove[]): Promise<PendingMove[]> {
    const now = await Promise.all(moves.map((m) => this.#client.getTask(m.id)));
    return moves.filter((m, i) => {
      if (now[i]?.state !== m.to) return true;
      m.settle();
      return false;
    });
  }
}

/** Waits `ms`, or less when `signal` aborts. */
export function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((done) => {
    if (signal?.aborted) return done();
    const timer = setTimeout(finish, ms);
    function finish() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', finish);
      done();
    }
    signal?.addEventListener('abort', finish, { once: true });
  });
}

/** Full-jitter exponential backoff: 100 ms doubling to 5 s. */
export function backoffMs(attempt: number): number {
  return Math.random() * Math.min(5_000, 100 * 2 ** attempt);
}

/**
 * The handler's outcome, sent until the service answers or the lease is gone: work done is not
 * thrown away because the service restarted meanwhile. A send that committed but lost its reply
 * is recognised on the next try by the task already being where it was sent. With `next`, the
 * same request claims the next task, which is returned.
 */
export async function finishOne(
  client: CoordinationClient,
  id: string,
  lease: Lease,
  to: TaskState,
  lost: AbortSignal,
  onUnavailable: OnUnavailable,
  next?: { types?: string[]; leaseSeconds?: number },
): Promise<Claimed | undefined> {
  for (let attempt = 0; ; attempt++) {
    try {
      if (attempt > 0 && (await client.getTask(id)).state === to) return undefined;
      const moved = await client.transition(id, to, {
        leaseId: lease.id,
        ...(next === undefined ? {} : { next }),
      });
      return moved.next ?? undefined;
    } catch (error) {
      // `lease.until` follows the heartbeats, which go on meanwhile.
      if (!isUnavailable(error) || lost.aborted || Date.now() >= Date.parse(lease.until))
        throw error;
      onUnavailable?.(error);
      await pause(backoffMs(attempt), lost);
    }
  }
}
