/** A source of the current time in milliseconds since the epoch. Kernels take one so tests can move time. */
export interface Clock {
  now(): number;
}

/** The real clock: `Date.now()`. */
export const systemClock: Clock = Object.freeze({ now: (): number => Date.now() });

/**
 * A clock that only moves when told to: for tests and simulations.
 *
 * @example
 * ```ts
 * const clock = new ManualClock();
 * const tracker = new BudgetTracker({ clock });
 * clock.advance(1_900_000); // 1,900 s later
 * ```
 */
export class ManualClock implements Clock {
  #now: number;

  /** @param start - the initial time in ms since the epoch. Default: `0`. */
  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  /** Moves time forward by `ms` (which may not be negative) and returns the new time. */
  advance(ms: number): number {
    if (!(ms >= 0))
      throw new RangeError(`ManualClock.advance needs a non-negative number, got ${ms}`);
    this.#now += ms;
    return this.#now;
  }

  /** Sets the time to `ms` since the epoch. */
  set(ms: number): void {
    if (!Number.isFinite(ms))
      throw new RangeError(`ManualClock.set needs a finite number, got ${ms}`);
    this.#now = ms;
  }
}

/** Formats a clock reading as an ISO-8601 timestamp, the form every record in exec-kernel uses. */
export function toIsoTime(ms: number): string {
  return new Date(ms).toISOString();
}
