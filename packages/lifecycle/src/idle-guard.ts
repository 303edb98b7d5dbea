import {
  type Clock,
  IdleEnforcementError,
  ListenerSet,
  systemClock,
  toIsoTime,
  type Unsubscribe,
} from '@exec-kernel/core';

/** Why an agent's sleep ended. */
export type WakeReason = 'timeout' | 'woken' | 'task_available';

/** An agent's current sleep. */
export interface SleepRecord {
  agentId: string;
  /** Why it went to sleep. Default: `no_tasks`. */
  reason: string;
  /** When it went to sleep (ISO-8601). */
  since: string;
  /** When the sleep times out (ISO-8601). */
  until: string;
}

/** A sleep that ended by `wake`. */
export interface WakeRecord {
  agentId: string;
  reason: WakeReason;
  /** When it woke (ISO-8601). */
  at: string;
  /** How long it slept, in seconds. */
  sleptSeconds: number;
}

/** What `onChange` listeners receive. */
export type IdleEvent = ({ type: 'sleep' } & SleepRecord) | ({ type: 'wake' } & WakeRecord);

/** Options of {@link IdleGuard}. */
export interface IdleGuardOptions {
  clock?: Clock | undefined;
  /** Sleep length when `sleep()` is given none (config `idle.default_timeout_seconds`). Default: `300`. */
  defaultTimeoutSeconds?: number | undefined;
}

/** Options of {@link IdleGuard.sleep}. */
export interface SleepOptions {
  agentId: string;
  /** How long the sleep lasts unless woken. Default: the guard's `defaultTimeoutSeconds`. */
  timeoutSeconds?: number | undefined;
  /** Default: `'no_tasks'`. */
  reason?: string | undefined;
}

/** The plain-data form of an {@link IdleGuard}: the sleeps in force. */
export interface IdleGuardJSON {
  sleeping: SleepRecord[];
}

interface Sleep {
  record: SleepRecord;
  sinceMs: number;
  untilMs: number;
}

function checkTimeout(seconds: number): number {
  if (!(Number.isFinite(seconds) && seconds > 0)) {
    throw new RangeError(`Sleep timeout must be a positive number of seconds, got ${seconds}`);
  }
  return seconds;
}

/**
 * Keeps agents with nothing to do from inventing work: an agent that sleeps may not create tasks
 * until it is woken or its timeout passes, whichever comes first.
 *
 * @example
 * ```ts
 * const guard = new IdleGuard();
 * guard.sleep({ agentId: 'agent-1', timeoutSeconds: 30 });
 * guard.assertMayCreate('agent-1'); // throws IdleEnforcementError
 * guard.wake('agent-1');
 * guard.assertMayCreate('agent-1'); // fine
 * ```
 */
/** An agent's sleep as a rule reads it: when it ends (ms since the epoch) and why it began. */
export interface SleepState {
  untilMs: number;
  /** Why the agent went to sleep (`no_tasks` by default). */
  reason?: string | undefined;
}

/**
 * The idle rule, pure: the error that refuses task creation by an agent whose sleep (if any) is
 * still in force at `now`, or `undefined` when it may create. Every backend calls this one rule.
 */
export function idleRefusal(
  agentId: string,
  sleep: SleepState | undefined,
  now: number,
  taskId?: string,
): IdleEnforcementError | undefined {
  if (sleep === undefined || now >= sleep.untilMs) return undefined;
  return new IdleEnforcementError({
    agentId,
    until: toIsoTime(sleep.untilMs),
    sleepReason: sleep.reason,
    taskId,
  });
}

export class IdleGuard {
  readonly #clock: Clock;
  readonly #defaultTimeoutSeconds: number;
  readonly #sleeps = new Map<string, Sleep>();
  readonly #listeners = new ListenerSet<IdleEvent>();

  constructor(options: IdleGuardOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#defaultTimeoutSeconds = checkTimeout(options.defaultTimeoutSeconds ?? 300);
  }

  /** Puts an agent to sleep (replacing any sleep in force) and returns the record. */
  sleep(options: SleepOptions): SleepRecord {
    const seconds = checkTimeout(options.timeoutSeconds ?? this.#defaultTimeoutSeconds);
    const sinceMs = this.#clock.now();
    const untilMs = sinceMs + seconds * 1000;
    const record: SleepRecord = {
      agentId: options.agentId,
      reason: options.reason ?? 'no_tasks',
      since: toIsoTime(sinceMs),
      until: toIsoTime(untilMs),
    };
    this.#sleeps.set(options.agentId, { record, sinceMs, untilMs });
    if (!this.#listeners.isEmpty) this.#listeners.emit({ type: 'sleep', ...record });
    return { ...record };
  }

  /**
   * Ends an agent's sleep. Returns what ended, or `undefined` when the agent was awake (including a
   * sleep that had already timed out).
   */
  wake(agentId: string, reason: WakeReason = 'woken'): WakeRecord | undefined {
    const sleep = this.#current(agentId, this.#clock.now());
    if (sleep === undefined) return undefined;
    this.#sleeps.delete(agentId);
    const now = this.#clock.now();
    const record: WakeRecord = {
      agentId,
      reason,
      at: toIsoTime(now),
      sleptSeconds: (now - sleep.sinceMs) / 1000,
    };
    if (!this.#listeners.isEmpty) this.#listeners.emit({ type: 'wake', ...record });
    return record;
  }

  /** Whether the agent is asleep at `now` (ms since the epoch; default: the clock's now). */
  isAsleep(agentId: string, now: number = this.#clock.now()): boolean {
    const sleep = this.#sleeps.get(agentId);
    return sleep !== undefined && now < sleep.untilMs;
  }

  /** The agent's sleep in force, if any. */
  sleepOf(agentId: string): SleepRecord | undefined {
    const sleep = this.#current(agentId, this.#clock.now());
    return sleep === undefined ? undefined : { ...sleep.record };
  }

  /**
   * Refuses task creation by a sleeping agent.
   *
   * @throws IdleEnforcementError with the agent and the time its sleep ends.
   */
  assertMayCreate(agentId: string, taskId?: string): void {
    const now = this.#clock.now();
    const sleep = this.#current(agentId, now);
    const error = idleRefusal(
      agentId,
      sleep && { untilMs: sleep.untilMs, reason: sleep.record.reason },
      now,
      taskId,
    );
    if (error !== undefined) throw error;
  }

  /** Calls `listener` on every sleep and every wake. Returns the function that removes it. */
  onChange(listener: (event: IdleEvent) => void): Unsubscribe {
    return this.#listeners.add(listener);
  }

  toJSON(): IdleGuardJSON {
    const now = this.#clock.now();
    const sleeping: SleepRecord[] = [];
    for (const sleep of this.#sleeps.values())
      if (now < sleep.untilMs) sleeping.push({ ...sleep.record });
    return { sleeping };
  }

  /** Rebuilds a guard from `toJSON()` output; sleeps that have timed out meanwhile are dropped. */
  static fromJSON(json: IdleGuardJSON, options: IdleGuardOptions = {}): IdleGuard {
    const guard = new IdleGuard(options);
    for (const record of json.sleeping ?? []) {
      const sinceMs = Date.parse(record.since);
      const untilMs = Date.parse(record.until);
      if (Number.isNaN(sinceMs) || Number.isNaN(untilMs)) {
        throw new TypeError(
          `Idle JSON for agent ${record.agentId}: since/until must be ISO-8601 times`,
        );
      }
      guard.#sleeps.set(record.agentId, { record: { ...record }, sinceMs, untilMs });
    }
    return guard;
  }

  #current(agentId: string, now: number): Sleep | undefined {
    const sleep = this.#sleeps.get(agentId);
    if (sleep === undefined) return undefined;
    if (now >= sleep.untilMs) {
      this.#sleeps.delete(agentId);
      return undefined;
    }
    return sleep;
  }
}
