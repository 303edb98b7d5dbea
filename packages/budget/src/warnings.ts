import type { BudgetType } from '@exec-kernel/core';
import type { BudgetLimits, BudgetUsage } from './limits.js';

/** A budget newly past the warning threshold: how much of which limit is used. */
export interface BudgetWarningReading {
  budgetType: BudgetType;
  observed: number;
  limit: number;
  /** `observed / limit`. */
  fraction: number;
}

const NONE: readonly BudgetWarningReading[] = Object.freeze([]);

/**
 * The budgets of `usage` that have reached `warnAt` of their limit and are not in
 * `alreadyWarned`, in the order steps, duration, tokens, cost. Unlimited budgets (`null`) never
 * warn; a field left out of `usage` is not read. Pure: the warn-once rule of `BudgetTracker`,
 * for a server that keeps the counters and the `warned` list in a database.
 *
 * @example
 * ```ts
 * budgetWarnings({ stepsTaken: 40 }, limits, 0.8, []);
 * // → [{ budgetType: 'steps', observed: 40, limit: 50, fraction: 0.8 }]
 * ```
 */
export function budgetWarnings(
  usage: BudgetUsage,
  limits: Readonly<BudgetLimits>,
  warnAt: number,
  alreadyWarned: readonly BudgetType[],
): readonly BudgetWarningReading[] {
  // Written out rather than looping over budgetReadings(): this runs on every recorded step, and
  // most calls warn of nothing, so nothing is allocated for them.
  let out = due(undefined, 'steps', usage.stepsTaken, limits.maxSteps, warnAt, alreadyWarned);
  out = due(
    out,
    'duration',
    usage.elapsedSeconds,
    limits.maxDurationSeconds,
    warnAt,
    alreadyWarned,
  );
  out = due(out, 'tokens', usage.tokens, limits.maxTokens, warnAt, alreadyWarned);
  out = due(out, 'cost', usage.costUsd, limits.maxCostUsd, warnAt, alreadyWarned);
  return out ?? NONE;
}

function due(
  out: BudgetWarningReading[] | undefined,
  budgetType: BudgetType,
  observed: number | undefined,
  limit: number | null,
  warnAt: number,
  alreadyWarned: readonly BudgetType[],
): BudgetWarningReading[] | undefined {
  if (observed === undefined || limit === null || alreadyWarned.includes(budgetType)) return out;
  const fraction = observed / limit;
  if (!(fraction >= warnAt)) return out;
  const reading = { budgetType, observed, limit, fraction };
  if (out === undefined) return [reading];
  out.push(reading);
  return out;
}
