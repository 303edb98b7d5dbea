export type { BudgetType } from '@exec-kernel/core';
// Re-exported so the error can be caught with what the budget module gives you.
export { BudgetExceededError } from '@exec-kernel/core';
export type {
  BudgetEvent,
  BudgetRemaining,
  BudgetStateJSON,
  BudgetTrackerJSON,
  BudgetTrackerOptions,
  BudgetWarning,
  StartTaskOptions,
} from './budget-tracker.js';
export { BudgetState, BudgetTracker } from './budget-tracker.js';
export type { BudgetLimits, BudgetLimitsInput, BudgetUsage } from './limits.js';
export {
  assertDepthWithinBudget,
  assertWithinBudget,
  budgetReadings,
  DEFAULT_LIMITS,
  evaluateBudget,
  LIMIT_MAXIMUMS,
  resolveLimits,
} from './limits.js';
export type { UsageHeadroom } from './usage-left.js';
export { evaluateUsageLeft, narrowHeadroom, UNLIMITED_HEADROOM } from './usage-left.js';
export type { BudgetWarningReading } from './warnings.js';
export { budgetWarnings } from './warnings.js';
