import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, resolveLimits } from './limits.js';
import { budgetWarnings } from './warnings.js';

const limits = resolveLimits({ maxSteps: 10, maxTokens: 1000, maxCostUsd: null }, DEFAULT_LIMITS);

describe('budgetWarnings', () => {
  it('names each budget that reached warnAt of its limit, in check order, with its fraction', () => {
    expect(
      budgetWarnings(
        { stepsTaken: 8, elapsedSeconds: 1, tokens: 900, costUsd: 5 },
        limits,
        0.8,
        [],
      ),
    ).toEqual([
      { budgetType: 'steps', observed: 8, limit: 10, fraction: 0.8 },
      { budgetType: 'tokens', observed: 900, limit: 1000, fraction: 0.9 },
    ]);
  });

  it('stays quiet below the threshold, for unlimited budgets and for fields left out', () => {
    expect(budgetWarnings({ stepsTaken: 7, tokens: 799 }, limits, 0.8, [])).toEqual([]);
    expect(budgetWarnings({ costUsd: 1e9 }, limits, 0.8, [])).toEqual([]);
    expect(budgetWarnings({}, limits, 0.8, [])).toEqual([]);
  });

  it('warns once per budget: a type already warned of is left out', () => {
    const usage = { stepsTaken: 10, tokens: 1000 };
    expect(budgetWarnings(usage, limits, 0.8, ['steps']).map((w) => w.budgetType)).toEqual([
      'tokens',
    ]);
    expect(budgetWarnings(usage, limits, 0.8, ['steps', 'tokens'])).toEqual([]);
  });

  it('counts the duration budget in seconds and reads warnAt as given', () => {
    const [warning] = budgetWarnings({ elapsedSeconds: 1800 }, DEFAULT_LIMITS, 1, []);
    expect(warning).toEqual({ budgetType: 'duration', observed: 1800, limit: 1800, fraction: 1 });
    expect(budgetWarnings({ elapsedSeconds: 1799 }, DEFAULT_LIMITS, 1, [])).toEqual([]);
  });
});
