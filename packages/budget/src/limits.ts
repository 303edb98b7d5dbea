import { BudgetExceededError, type BudgetType } from '@exec-kernel/core';

/**
 * What a task may spend. A limit is the amount allowed: `observed > limit` fails, `observed === limit`
 * passes. Only `maxTokens` and `maxCostUsd` may be `null` (unlimited).
 */
export interface BudgetLimits {
  /** Default: `50`. */
  maxSteps: number;
  /** Default: `10`. */
  maxDepth: number;
  /** Wall-clock seconds since the task started. Default: `1800`. */
  maxDurationSeconds: number;
  /** Default: `null` (unlimited). */
  maxTokens: number | null;
  /** Default: `null` (unlimited). */
  maxCostUsd: number | null;
}

/** The limits a task gets when nothing else is said. */
export const DEFAULT_LIMITS: Readonly<BudgetLimits> = Object.freeze({
  maxSteps: 50,
  maxDepth: 10,
  maxDurationSeconds: 1800,
  maxTokens: null,
  maxCostUsd: null,
});

/**
 * The largest value each limit accepts. Past these a number is a typo or an attack, not a budget
 * (`1e20` steps would print as `200000000000000000000 %`), and every amount stays a safe integer
 * when counters add up. The CLI, the config file and the coordination service all refuse more.
 */
export const LIMIT_MAXIMUMS: Readonly<Record<keyof BudgetLimits, number>> = Object.freeze({
  maxSteps: 1_000_000_000,
  maxDepth: 10_000,
  maxDurationSeconds: 1_000_000_000,
  maxTokens: 1_000_000_000_000_000,
  maxCostUsd: 1_000_000_000,
});

/** What a task has spent so far. Any field left out is not checked. */
export interface BudgetUsage {
  stepsTaken?: number | undefined;
  elapsedSeconds?: number | undefined;
  tokens?: number | undefined;
  costUsd?: number | undefined;
}

/** Limits as callers may give them: any subset; `Infinity` is read as unlimited. */
export type BudgetLimitsInput = { [K in keyof BudgetLimits]?: number | null | undefined };

const INTEGER_LIMITS = new Set<keyof BudgetLimits>(['maxSteps', 'maxDepth', 'maxTokens']);
const NULLABLE_LIMITS = new Set<keyof BudgetLimits>(['maxTokens', 'maxCostUsd']);
const LIMIT_KEYS = Object.keys(DEFAULT_LIMITS) as (keyof BudgetLimits)[];

/**
 * Fills `input` from `defaults` and checks every value. Counts must be non-negative integers,
 * seconds and dollars non-negative numbers, none above its {@link LIMIT_MAXIMUMS} entry; only
 * tokens and cost may be unlimited (`null`/`Infinity`).
 *
 * @throws RangeError naming the first bad limit.
 */
export function resolveLimits(
  input: BudgetLimitsInput = {},
  defaults: Readonly<BudgetLimits> = DEFAULT_LIMITS,
): BudgetLimits {
  const limits = { ...defaults };
  for (const key of LIMIT_KEYS) {
    let value = input[key];
    if (value === undefined) continue;
    if (value === Number.POSITIVE_INFINITY) value = null;
    if (value === null) {
      if (!NULLABLE_LIMITS.has(key))
        throw new RangeError(`Budget limit ${key} cannot be unlimited`);
    } else if (
      typeof value !== 'number' ||
      !(value >= 0) ||
      (INTEGER_LIMITS.has(key) && !Number.isInteger(value))
    ) {
      const kind = INTEGER_LIMITS.has(key) ? 'a non-negative integer' : 'a non-negative number';
      throw new RangeError(`Budget limit ${key} must be ${kind}, got ${String(value)}`);
    } else if (value > LIMIT_MAXIMUMS[key]) {
      throw new RangeError(
        `Budget limit ${key} must be at most ${LIMIT_MAXIMUMS[key]}, got ${String(value)}`,
      );
    }
    (limits as Record<string, number | null>)[key] = value;
  }
  return limits;
}

/** The limit and observed amount of each checked budget, in check order. */
export function budgetReadings(
  usage: BudgetUsage,
  limits: Readonly<BudgetLimits>,
): Array<{ budgetType: BudgetType; observed: number; limit: number | null }> {
  const readings: Array<{ budgetType: BudgetType; observed: number; limit: number | null }> = [];
  if (usage.stepsTaken !== undefined) {
    readings.push({ budgetType: 'steps', observed: usage.stepsTaken, limit: limits.maxSteps });
  }
  if (usage.elapsedSeconds !== undefined) {
    readings.push({
      budgetType: 'duration',
      observed: usage.elapsedSeconds,
      limit: limits.maxDurationSeconds,
    });
  }
  if (usage.tokens !== undefined) {
    readings.push({ budgetType: 'tokens', observed: usage.tokens, limit: limits.maxTokens });
  }
  if (usage.costUsd !== undefined) {
    readings.push({ budgetType: 'cost', observed: usage.costUsd, limit: limits.maxCostUsd });
  }
  return readings;
}

/**
 * The first budget `usage` exceeds, checked in the order steps, duration, tokens, cost; or
 * `undefined` when all hold. Pure, so a server can apply it to counters it loaded from a database.
 */
export function evaluateBudget(
  taskId: string,
  usage: BudgetUsage,
  limits: Readonly<BudgetLimits>,
): BudgetExceededError | undefined {
  // Written out rather than looping over budgetReadings(): this runs on every recorded step.
  let budgetType: BudgetType | undefined;
  let observed = 0;
  let limit = 0;
  const { stepsTaken, elapsedSeconds, tokens, costUsd } = usage;
  if (stepsTaken !== undefined && stepsTaken > limits.maxSteps) {
    [budgetType, observed, limit] = ['steps', stepsTaken, limits.maxSteps];
  } else if (elapsedSeconds !== undefined && elapsedSeconds > limits.maxDurationSeconds) {
    [budgetType, observed, limit] = ['duration', elapsedSeconds, limits.maxDurationSeconds];
  } else if (tokens !== undefined && limits.maxTokens !== null && tokens > limits.maxTokens) {
    [budgetType, observed, limit] = ['tokens', tokens, limits.maxTokens];
  } else if (costUsd !== undefined && limits.maxCostUsd !== null && costUsd > limits.maxCostUsd) {
    [budgetType, observed, limit] = ['cost', costUsd, limits.maxCostUsd];
  }
  return budgetType === undefined
    ? undefined
    : new BudgetExceededError({ budgetType, taskId, limit, observed });
}

/**
 * Throws when `usage` exceeds `limits` (see {@link evaluateBudget}).
 *
 * @throws BudgetExceededError for the first budget exceeded.
 */
export function assertWithinBudget(
  taskId: string,
  usage: BudgetUsage,
  limits: Readonly<BudgetLimits>,
): void {
  const error = evaluateBudget(taskId, usage, limits);
  if (error !== undefined) throw error;
}

/**
 * Throws when a proposed nesting depth exceeds `maxDepth`.
 *
 * @throws BudgetExceededError with `budgetType` `depth`.
 */
export function assertDepthWithinBudget(taskId: string, depth: number, maxDepth: number): void {
  if (depth > maxDepth) {
    throw new BudgetExceededError({
      budgetType: 'depth',
      taskId,
      limit: maxDepth,
      observed: depth,
    });
  }
}
