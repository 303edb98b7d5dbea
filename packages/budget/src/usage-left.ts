import { BudgetExceededError, formatAmount } from '@exec-kernel/core';
import type { BudgetLimits } from './limits.js';

/** What is left of the token and cost budgets; `null` for unlimited. Never negative. */
export interface UsageHeadroom {
  tokens: number | null;
  costUsd: number | null;
}

/** Nothing is limited: the headroom of a task without token or cost budgets. */
export const UNLIMITED_HEADROOM: Readonly<UsageHeadroom> = Object.freeze({
  tokens: null,
  costUsd: null,
});

/**
 * Whether a task may still spend: the first of its token and cost budgets that is used up
 * (`observed >= limit`), as the error a caller about to spend should throw; `undefined` while both
 * have something left. A budget at exactly its limit has not been exceeded, yet any further spend
 * would exceed it, which is why a model call is refused here before it is made. Pure, so a server
 * can apply it to counters it loaded from a database.
 */
export function evaluateUsageLeft(
  taskId: string,
  usage: { tokens: number; costUsd: number },
  limits: Readonly<Pick<BudgetLimits, 'maxTokens' | 'maxCostUsd'>>,
): BudgetExceededError | undefined {
  const { maxTokens, maxCostUsd } = limits;
  if (maxTokens !== null && usage.tokens >= maxTokens) {
    const message = `Task ${taskId} has no token budget left: ${formatAmount(usage.tokens)} tokens used, max ${formatAmount(maxTokens)}`;
    return new BudgetExceededError(
      { budgetType: 'tokens', taskId, limit: maxTokens, observed: usage.tokens },
      { message },
    );
  }
  if (maxCostUsd !== null && usage.costUsd >= maxCostUsd) {
    const message = `Task ${taskId} has no cost budget left: $${formatAmount(usage.costUsd)} spent, max $${formatAmount(maxCostUsd)}`;
    return new BudgetExceededError(
      { budgetType: 'cost', taskId, limit: maxCostUsd, observed: usage.costUsd },
      { message },
    );
  }
  return undefined;
}

/**
 * `headroom` narrowed by one more task's budgets: the smaller of what is left of each. Folding it
 * over a task and its ancestors gives what the task may still spend.
 */
export function narrowHeadroom(
  headroom: Readonly<UsageHeadroom>,
  usage: { tokens: number; costUsd: number },
  limits: Readonly<Pick<BudgetLimits, 'maxTokens' | 'maxCostUsd'>>,
): UsageHeadroom {
  return {
    tokens: smaller(headroom.tokens, limits.maxTokens, usage.tokens),
    costUsd: smaller(headroom.costUsd, limits.maxCostUsd, usage.costUsd),
  };
}

function smaller(left: number | null, limit: number | null, used: number): number | null {
  if (limit === null) return left;
  const here = Math.max(0, limit - used);
  return left === null ? here : Math.min(left, here);
}
