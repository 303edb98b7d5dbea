import {
  type BudgetType,
  type Clock,
  ListenerSet,
  NotFoundError,
  systemClock,
  toIsoTime,
  type Unsubscribe,
} from '@exec-kernel/core';
import { BudgetState, type BudgetStateJSON, type BudgetWarning } from './budget-state.js';
import {
  type BudgetLimits,
  type BudgetLimitsInput,
  DEFAULT_LIMITS,
  LIMIT_MAXIMUMS,
  resolveLimits,
} from './limits.js';
import {
  evaluateUsageLeft,
  narrowHeadroom,
  UNLIMITED_HEADROOM,
  type UsageHeadroom,
} from './usage-left.js';

// The per-task state lives in budget-state.ts; this module stays the tracker's public face.
export type { BudgetRemaining, BudgetStateJSON, BudgetWarning } from './budget-state.js';
export { BudgetState } from './budget-state.js';

/** What `onRecord` listeners receive: every change to the tracker's counters. */
export type BudgetEvent =
  | {
      type: 'start';
      taskId: string;
      limits: BudgetLimits;
      parentTaskId?: string;
      startedAt: string;
    }
  | { type: 'step'; taskId: string; count: number }
  | { type: 'usage'; taskId: string; tokens: number; costUsd: number }
  | { type: 'warning'; taskId: string; budgetType: BudgetType }
  | { type: 'end'; taskId: string; endedAt: string };

/** Options of {@link BudgetTracker}. */
export interface BudgetTrackerOptions {
  /** Limits for tasks started without their own (config `budget.*`). Default: {@link DEFAULT_LIMITS}. */
  defaults?: BudgetLimitsInput | undefined;
  /** Default: the system clock. */
  clock?: Clock | undefined;
  /** Fraction of a limit at which a warning fires, in (0, 1]. Default: `0.8`. */
  warnAt?: number | undefined;
  /** Shorthand for `tracker.onWarning(listener)`. */
  onWarning?: ((warning: BudgetWarning) => void) | undefined;
  /**
   * Supplies a task's saved budget the first time the tracker is asked about a task it does not
   * hold (its `toJSON()` entry, or `undefined`). Lets a tracker over a large store build only the
   * tasks it touches, and their ancestors.
   */
  load?: ((taskId: string) => BudgetStateJSON | undefined) | undefined;
}

/** Options of {@link BudgetTracker.startTask}: limits for this task, and its parent for tree budgets. */
export interface StartTaskOptions extends BudgetLimitsInput {
  /**
   * A started task whose budget this one also spends: the child's steps, tokens and cost count
   * against the parent and every ancestor above it.
   */
  parentTaskId?: string | undefined;
}

/** The plain-data form of a {@link BudgetTracker}: its active tasks, parents before children. */
export interface BudgetTrackerJSON {
  tasks: BudgetStateJSON[];
}

function checkWarnAt(value: number): number {
  if (!(value > 0 && value <= 1)) throw new RangeError(`warnAt must be in (0, 1], got ${value}`);
  return value;
}

// One call may add at most what the largest limit of its kind allows, so counters stay exact.
function checkAmount(name: string, value: number, integer: boolean, max: number): number {
  if (!(Number.isFinite(value) && value >= 0) || (integer && !Number.isInteger(value))) {
    const kind = integer ? 'a non-negative integer' : 'a non-negative finite number';
    throw new RangeError(`${name} must be ${kind}, got ${value}`);
  }
  if (value > max) throw new RangeError(`${name} must be at most ${max}, got ${value}`);
  return value;
}

/**
 * Keeps each task within its step, depth, duration, token and cost budgets. Spending is counted
 * first and checked after, so `stepsTaken` always tells the truth: with `maxSteps: 50`, step 50
 * passes and step 51 is counted and throws.
 *
 * @example
 * ```ts
 * const tracker = new BudgetTracker();
 * const state = tracker.startTask('task-1', { maxSteps: 50 });
 * for (let i = 0; i < 50; i++) tracker.recordStep('task-1'); // all pass
 * tracker.recordStep('task-1');  // throws BudgetExceededError, budgetType 'steps'
 * state.checkDepth(15);          // throws BudgetExceededError, budgetType 'depth'
 * ```
 */
export class BudgetTracker {
  readonly defaults: Readonly<BudgetLimits>;
  readonly warnAt: number;
  readonly #clock: Clock;
  // Active tasks; #known also holds ended ones, which still link children to their ancestors.
  readonly #tasks = new Map<string, BudgetState>();
  readonly #known = new Map<string, BudgetState>();
  readonly #load: ((taskId: string) => BudgetStateJSON | undefined) | undefined;
  readonly #loadTried = new Set<string>();
  readonly #warnings = new ListenerSet<BudgetWarning>();
  readonly #records = new ListenerSet<BudgetEvent>();
  readonly #emitWarning = (warning: BudgetWarning): void => {
    if (!this.#records.isEmpty) {
      this.#records.emit({
        type: 'warning',
        taskId: warning.taskId,
        budgetType: warning.budgetType,
      });
    }
    this.#warnings.emit(warning);
  };

  constructor(options: BudgetTrackerOptions = {}) {
    this.defaults = Object.freeze(resolveLimits(options.defaults, DEFAULT_LIMITS));
    this.warnAt = checkWarnAt(options.warnAt ?? 0.8);
    this.#clock = options.clock ?? systemClock;
    this.#load = options.load;
    if (options.onWarning !== undefined) this.#warnings.add(options.onWarning);
  }

  /**
   * Starts tracking a task.
   *
   * @throws NotFoundError when `parentTaskId` names a task that is not being tracked.
   * @throws Error when the task is already being tracked.
   * @throws RangeError for a malformed limit.
   */
  startTask(taskId: string, options: StartTaskOptions = {}): BudgetState {
    if (this.get(taskId) !== undefined) {
      throw new Error(`Budget for task ${taskId} is already started; use get('${taskId}')`);
    }
    const { parentTaskId, ...limitsInput } = options;
    const parent = parentTaskId === undefined ? undefined : this.#require(parentTaskId);
    const limits = Object.freeze(resolveLimits(limitsInput, this.defaults));
    const state = new BudgetState(
      taskId,
      limits,
      parent,
      this.#clock,
      this.warnAt,
      this.#emitWarning,
    );
    this.#tasks.set(taskId, state);
    if (!this.#records.isEmpty) {
      const event: BudgetEvent = {
        type: 'start',
        taskId,
        limits: { ...limits },
        startedAt: toIsoTime(state.startedAt),
      };
      if (parentTaskId !== undefined) event.parentTaskId = parentTaskId;
      this.#records.emit(event);
    }
    return state;
  }

  /**
   * Counts `count` steps for the task and each ancestor, then checks steps and duration for the
   * task and then each ancestor.
   *
   * @throws BudgetExceededError naming the task whose budget was exceeded (the steps stay counted).
   * @throws NotFoundError when the task is not being tracked.
   */
  recordStep(taskId: string, count = 1): BudgetState {
    checkAmount('Step count', count, true, LIMIT_MAXIMUMS.maxSteps);
    const state = this.#require(taskId);
    for (let s: BudgetState | undefined = state; s !== undefined; s = s.parent) s._add(count, 0, 0);
    if (!this.#records.isEmpty) this.#records.emit({ type: 'step', taskId, count });
    const now = this.#clock.now();
    for (let s: BudgetState | undefined = state; s !== undefined; s = s.parent) {
      s._check({ stepsTaken: s.stepsTaken, elapsedSeconds: s._elapsedAt(now) });
    }
    return state;
  }

  /**
   * Counts tokens and dollars for the task and each ancestor, then checks those budgets.
   *
   * @throws BudgetExceededError naming the task whose budget was exceeded (the usage stays counted).
   * @throws NotFoundError when the task is not being tracked.
   */
  recordUsage(taskId: string, usage: { tokens?: number; costUsd?: number }): BudgetState {
    const tokens = checkAmount('Token count', usage.tokens ?? 0, true, LIMIT_MAXIMUMS.maxTokens);
    const costUsd = checkAmount('Cost', usage.costUsd ?? 0, false, LIMIT_MAXIMUMS.maxCostUsd);
    const state = this.#require(taskId);
    for (let s: BudgetState | undefined = state; s !== undefined; s = s.parent)
      s._add(0, tokens, costUsd);
    if (!this.#records.isEmpty) this.#records.emit({ type: 'usage', taskId, tokens, costUsd });
    for (let s: BudgetState | undefined = state; s !== undefined; s = s.parent) {
      s._check({ tokens: s.tokens, costUsd: s.costUsd });
    }
    return state;
  }

  /**
   * Checks, before spending, that the task and each ancestor still have tokens and dollars left
   * (see {@link evaluateUsageLeft}); answers the least left of each over them, for a caller that
   * caps what it is about to spend. Ended ancestors are not enforced, as in `recordUsage`.
   *
   * @throws BudgetExceededError naming the first task, the task's own first, with a budget used up.
   * @throws NotFoundError when the task is not being tracked.
   */
  checkUsageLeft(taskId: string): UsageHeadroom {
    let headroom: UsageHeadroom = UNLIMITED_HEADROOM;
    for (let s: BudgetState | undefined = this.#require(taskId); s !== undefined; s = s.parent) {
      if (s.isEnded) continue;
      const error = evaluateUsageLeft(s.taskId, s, s.limits);
      if (error !== undefined) throw error;
      headroom = narrowHeadroom(headroom, s, s.limits);
    }
    return headroom === UNLIMITED_HEADROOM ? { ...UNLIMITED_HEADROOM } : headroom;
  }

  /** The task's state, if it is being tracked. */
  get(taskId: string): BudgetState | undefined {
    return this.#tasks.get(taskId) ?? this.#hydrate(taskId);
  }

  /**
   * Stops tracking a task and freezes its elapsed time. Children started under it keep spending
   * against its ancestors.
   */
  end(taskId: string): BudgetState | undefined {
    const state = this.get(taskId);
    if (state === undefined) return undefined;
    const at = this.#clock.now();
    state._end(at);
    this.#tasks.delete(taskId);
    if (!this.#records.isEmpty) this.#records.emit({ type: 'end', taskId, endedAt: toIsoTime(at) });
    return state;
  }

  /** Calls `listener` for each budget warning. Returns the function that removes it. */
  onWarning(listener: (warning: BudgetWarning) => void): Unsubscribe {
    return this.#warnings.add(listener);
  }

  /**
   * Calls `listener` for every start, step, usage, warning and end. Returns the function that
   * removes it.
   */
  onRecord(listener: (event: BudgetEvent) => void): Unsubscribe {
    return this.#records.add(listener);
  }

  /** Active tasks, with any ended ancestors they still spend against, parents before children. */
  toJSON(): BudgetTrackerJSON {
    const tasks: BudgetStateJSON[] = [];
    const seen = new Set<BudgetState>();
    const visit = (state: BudgetState): void => {
      if (seen.has(state)) return;
      seen.add(state);
      if (state.parent !== undefined) visit(state.parent);
      tasks.push(state.toJSON());
    };
    for (const state of this.#tasks.values()) visit(state);
    return { tasks };
  }

  /** Rebuilds a tracker, counters and start times included, from `toJSON()` output. */
  static fromJSON(json: BudgetTrackerJSON, options: BudgetTrackerOptions = {}): BudgetTracker {
    const tracker = new BudgetTracker(options);
    for (const t of json.tasks) {
      tracker.#restore(
        t,
        t.parentTaskId === undefined ? undefined : tracker.#known.get(t.parentTaskId),
      );
    }
    return tracker;
  }

  #restore(t: BudgetStateJSON, parent: BudgetState | undefined): BudgetState {
    const startedAt = Date.parse(t.startedAt);
    if (Number.isNaN(startedAt)) {
      throw new TypeError(`Budget JSON for task ${t.taskId}: startedAt must be an ISO-8601 time`);
    }
    const state = new BudgetState(
      t.taskId,
      Object.freeze(resolveLimits(t.limits, this.defaults)),
      parent,
      this.#clock,
      this.warnAt,
      this.#emitWarning,
      startedAt,
    );
    state._add(t.stepsTaken, t.tokens, t.costUsd);
    if (t.warned !== undefined) state._setWarned(t.warned);
    this.#known.set(t.taskId, state);
    if (t.endedAt === undefined) this.#tasks.set(t.taskId, state);
    else state._end(Date.parse(t.endedAt));
    return state;
  }

  /** Builds a task (and its ancestors) from `load`, once; returns it if it is active. */
  #hydrate(taskId: string): BudgetState | undefined {
    const known = this.#known.get(taskId);
    if (known !== undefined) return known.isEnded ? undefined : known;
    if (this.#load === undefined || this.#loadTried.has(taskId)) return undefined;
    this.#loadTried.add(taskId);
    const json = this.#load(taskId);
    if (json === undefined) return undefined;
    if (json.parentTaskId !== undefined) this.#hydrate(json.parentTaskId);
    const parent = json.parentTaskId === undefined ? undefined : this.#known.get(json.parentTaskId);
    const state = this.#restore(json, parent);
    return state.isEnded ? undefined : state;
  }

  #require(taskId: string): BudgetState {
    const state = this.get(taskId);
    if (state === undefined) throw new NotFoundError({ resource: 'budget task', id: taskId });
    return state;
  }
}
