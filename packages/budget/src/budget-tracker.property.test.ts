import { BudgetExceededError, ManualClock } from '@exec-kernel/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BudgetTracker } from './budget-tracker.js';

const TASKS = 8;

// A random forest: task i's parent is some earlier task, or none.
const forest = fc
  .array(fc.option(fc.nat(), { nil: undefined }), { minLength: TASKS, maxLength: TASKS })
  .map((choices) => choices.map((c, i) => (c === undefined || i === 0 ? undefined : c % i)));
const record = fc.oneof(
  fc.record({
    kind: fc.constant('step' as const),
    task: fc.nat(TASKS - 1),
    n: fc.integer({ min: 0, max: 5 }),
  }),
  fc.record({
    kind: fc.constant('usage' as const),
    task: fc.nat(TASKS - 1),
    tokens: fc.integer({ min: 0, max: 500 }),
    cents: fc.integer({ min: 0, max: 300 }),
  }),
);

describe('property: budget counters', () => {
  it('equal the sum of what was recorded in each subtree, exceeded or not', () => {
    fc.assert(
      fc.property(
        forest,
        fc.array(record, { maxLength: 80 }),
        fc.integer({ min: 0, max: 40 }),
        (parents, records, maxSteps) => {
          const tracker = new BudgetTracker({ clock: new ManualClock() });
          parents.forEach((parent, i) => {
            tracker.startTask(`t${i}`, {
              parentTaskId: parent === undefined ? undefined : `t${parent}`,
              maxSteps,
              maxTokens: 2000,
              maxCostUsd: 5,
            });
          });
          const own = parents.map(() => ({ steps: 0, tokens: 0, cents: 0 }));
          for (const r of records) {
            const task = own[r.task] as { steps: number; tokens: number; cents: number };
            let threw: unknown;
            try {
              if (r.kind === 'step') {
                task.steps += r.n;
                tracker.recordStep(`t${r.task}`, r.n);
              } else {
                task.tokens += r.tokens;
                task.cents += r.cents;
                tracker.recordUsage(`t${r.task}`, { tokens: r.tokens, costUsd: r.cents / 100 });
              }
            } catch (e) {
              threw = e;
              expect(e).toBeInstanceOf(BudgetExceededError);
            }
            // Any throw names a task on the recording task's ancestor path whose counter is over its limit.
            if (threw instanceof BudgetExceededError) {
              expect(threw.observed).toBeGreaterThan(threw.limit);
              expect(tracker.get(threw.taskId)).toBeDefined();
            }
          }
          const subtree = (i: number): { steps: number; tokens: number; cents: number } => {
            const sum = { ...(own[i] as { steps: number; tokens: number; cents: number }) };
            parents.forEach((p, child) => {
              if (p === i) {
                const s = subtree(child);
                sum.steps += s.steps;
                sum.tokens += s.tokens;
                sum.cents += s.cents;
              }
            });
            return sum;
          };
          parents.forEach((_, i) => {
            const state = tracker.get(`t${i}`);
            const expected = subtree(i);
            expect(state?.stepsTaken).toBe(expected.steps);
            expect(state?.tokens).toBe(expected.tokens);
            expect(state?.costUsd).toBeCloseTo(expected.cents / 100, 9);
            // Steps are checked first: checkAll fails on steps exactly when the subtree is over.
            let failedOn: string | undefined;
            try {
              state?.checkAll();
            } catch (e) {
              failedOn = (e as BudgetExceededError).budgetType;
            }
            expect(failedOn === 'steps').toBe(expected.steps > maxSteps);
          });
        },
      ),
      { numRuns: 1000 },
    );
  });
});
