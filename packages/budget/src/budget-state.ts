import { type BudgetType, type Clock, toIsoTime } from '@exec-kernel/core';
import {
  assertDepthWithinBudget,
  type BudgetLimits,
  type BudgetUsage,
  evaluateBudget,
} from './limits.js';
import { budgetWarnings } from './warnings.js';

/** Fired once per task and budget type when spending first reaches `warnAt` of a limit. */
export interface BudgetWarning {
  taskId: string;
  budgetType: BudgetType;
  /** observed / limit at the moment of the warning. */
  fraction: number;
  limit: number;
  observed: number;
}

/** How much of each budget is left; `null` for unlimited. Never negative. */
export interface BudgetRemaining {
  steps: number;
  durationSeconds: number;
  tokens: number | null;
  costUsd: number | null;
}

/** The plain-data form of a {@link BudgetState}. */
export interface BudgetStateJSON {
  taskId: string;
  parentTaskId?: string;
  limits: BudgetLimits;
  stepsTaken: number;
  tokens: number;
  costUsd: number;
  elapsedSeconds: number;
  startedAt: string;
  endedAt?: string;
  /** Budget types whose warning already fired (it fires once per type). */
  warned?: BudgetType[];
}

/** Every budget type, in the order `toJSON` lists warnings. */
const BUDGET_TYPES: readonly BudgetType[] = ['steps', 'depth', 'duration', 'tokens', 'cost'];

/**
 * One task's spending against its limits. Counters include what the task's descendants spent
 * when they were started with it as `parentTaskId`.
 */
export class BudgetState {
  readonly taskId: string;
  readonly limits: Readonly<BudgetLimits>;
  readonly parent: BudgetState | undefined;
  /** When the task started, in ms since the epoch. */
  readonly startedAt: number;
  #stepsTaken = 0;
  #tokens = 0;
  #costUsd = 0;
  #endedAt: number | undefined;
  readonly #warned: BudgetType[] = [];
  readonly #clock: Clock;
  readonly #warn: (warning: BudgetWarning) => void;
  readonly #warnAt: number;

  /** @internal Made by {@link BudgetTracker.startTask}. */
  constructor(
    taskId: string,
    limits: Readonly<BudgetLimits>,
    parent: BudgetState | undefined,
    clock: Clock,
    warnAt: number,
    warn: (warning: BudgetWarning) => void,
    startedAt: number = clock.now(),
  ) {
    this.taskId = taskId;
    this.limits = limits;
    this.parent = parent;
    this.#clock = clock;
    this.#warnAt = warnAt;
    this.#warn = warn;
    this.startedAt = startedAt;
  }

  /** Steps taken by the task and its descendants. Over-limit steps are counted too. */
  get stepsTaken(): number {
    return this.#stepsTaken;
  }

  /** Tokens used by the task and its descendants. */
  get tokens(): number {
    return this.#tokens;
  }

  /** Dollars spent by the task and its descendants. */
  get costUsd(): number {
    return this.#costUsd;
  }

  /** Wall-clock seconds since the task started (frozen once it ended). */
  get elapsedSeconds(): number {
    return this._elapsedAt(this.#clock.now());
  }

  /** @internal Elapsed seconds at clock reading `now`. */
  _elapsedAt(now: number): number {
    return ((this.#endedAt ?? now) - this.startedAt) / 1000;
  }

  /** Whether `end()` was called for the task; an ended task's limits are no longer enforced. */
  get isEnded(): boolean {
    return this.#endedAt !== undefined;
  }

  /** What is left of each budget. */
  remaining(): BudgetRemaining {
    const { maxSteps, maxDurationSeconds, maxTokens, maxCostUsd } = this.limits;
    return {
      steps: Math.max(0, maxSteps - this.#stepsTaken),
      durationSeconds: Math.max(0, maxDurationSeconds - this.elapsedSeconds),
      tokens: maxTokens === null ? null : Math.max(0, maxTokens - this.#tokens),
      costUsd: maxCostUsd === null ? null : Math.max(0, maxCostUsd - this.#costUsd),
    };
  }

  /**
   * Checks steps, duration, tokens and cost, in that order.
   *
   * @throws BudgetExceededError for the first one exceeded.
   */
  checkAll(): void {
    this.#check({
      stepsTaken: this.#stepsTaken,
      elapsedSeconds: this.elapsedSeconds,
      tokens: this.#tokens,
      costUsd: this.#costUsd,
    });
  }

  /**
   * Checks a proposed nesting depth against `maxDepth`.
   *
   * @throws BudgetExceededError with `budgetType` `depth` when `proposed > maxDepth`.
   */
  checkDepth(proposed: number): void {
    assertDepthWithinBudget(this.taskId, proposed, this.limits.maxDepth);
  }

  toJSON(): BudgetStateJSON {
    const json: BudgetStateJSON = {
      taskId: this.taskId,
      limits: { ...this.limits },
      stepsTaken: this.#stepsTaken,
      tokens: this.#tokens,
      costUsd: this.#costUsd,
      elapsedSeconds: this.elapsedSeconds,
      startedAt: toIsoTime(this.startedAt),
    };
    if (this.parent !== undefined) json.parentTaskId = this.parent.taskId;
    if (this.#endedAt !== undefined) json.endedAt = toIsoTime(this.#endedAt);
    const warned = BUDGET_TYPES.filter((t) => this.#warned.includes(t));
    if (warned.length > 0) json.warned = warned;
    return json;
  }

  /** @internal Marks warnings as already fired (restoring saved state). */
  _setWarned(types: readonly BudgetType[]): void {
    for (const type of types)
      if (BUDGET_TYPES.includes(type) && !this.#warned.includes(type)) this.#warned.push(type);
  }

  /** @internal */
  _add(steps: number, tokens: number, costUsd: number): void {
    this.#stepsTaken += steps;
    this.#tokens += tokens;
    this.#costUsd += costUsd;
  }

  /** @internal Warns, then throws for the first budget in `usage` that is exceeded. */
  _check(usage: BudgetUsage): void {
    this.#check(usage);
  }

  /** @internal */
  _end(at: number): void {
    this.#endedAt = at;
  }

  #check(usage: BudgetUsage): void {
    if (this.#endedAt !== undefined) return;
    const { limits } = this;
    for (const reading of budgetWarnings(usage, limits, this.#warnAt, this.#warned)) {
      this.#warned.push(reading.budgetType);
      this.#warn({ taskId: this.taskId, ...reading });
    }
    const error = evaluateBudget(this.taskId, usage, limits);
    if (error !== undefined) throw error;
  }
}
