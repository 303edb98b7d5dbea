// Budgets at the model call: AI SDK middleware over a local BudgetTracker or the coordination
// service. `ai` (6.x) is a peer dependency; the loop guard and the service client are optional.

// Re-exported so the record of a refusal can be read with what this package gives you.
export type { CarriesViolation } from '@exec-kernel/core';
export { violationOf } from '@exec-kernel/core';
export type {
  BudgetMiddlewareCommon,
  BudgetMiddlewareOptions,
  CoordinationBudgetOptions,
  SourceBudgetOptions,
  TrackerBudgetOptions,
} from './middleware.js';
export { budgetMiddleware } from './middleware.js';
export type { ModelPrice, PricedTokens, PriceTable } from './prices.js';
export { checkPriceTable, costOf, DEFAULT_PRICES, priceOf } from './prices.js';
export type {
  BudgetSource,
  CoordinationSourceOptions,
  ModelToolCall,
  SpendWarning,
  TrackerSourceOptions,
} from './sources.js';
export { coordinationSource, trackerSource } from './sources.js';
export type { ModelCallUsage, TokenEstimator } from './usage.js';
export { estimateTokens } from './usage.js';
