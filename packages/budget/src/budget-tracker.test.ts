import { BudgetExceededError, ManualClock, NotFoundError } from '@exec-kernel/core';
import { describe, expect, it } from 'vitest';
import { type BudgetEvent, BudgetTracker, type BudgetWarning } from './budget-tracker.js';
import {
  assertWithinBudget,
  DEFAULT_LIMITS,
  evaluateBudget,
  LIMIT_MAXIMUMS,
  resolveLimits,
} from './limits.js';

function exceeded(fn: () => unknown): BudgetExceededError {
  try {
    fn();
  } catch (e) {
    if (BudgetExceededError.is(e)) return e;
    throw e;
  }
  throw new Error('expected a BudgetExceededError');
}

describe('BudgetTracker: steps', () => {
  it('passes step 50 of 50 and counts, then refuses, step 51', () => {
    const tracker = new BudgetTracker();
    const state = tracker.startTask('task-1', { maxSteps: 50 });
    for (let i = 0; i < 50; i++) tracker.recordStep('task-1');
    expect(state.stepsTaken).toBe(50);
    const e = exceeded(() => tracker.recordStep('task-1'));
    expect([e.budgetType, e.taskId, e.limit, e.observed]).toEqual(['steps', 'task-1', 50, 51]);
    expect(e.message).toBe('Task task-1 exceeded step budget: 51 steps taken, max 50');
    expect(state.stepsTaken).toBe(51);
    expect(() => state.checkAll()).toThrow(BudgetExceededError);
  });

  it('records several steps at once', () => {
    const tracker = new BudgetTracker();
    tracker.startTask('t', { maxSteps: 10 });
    tracker.recordStep('t', 10);
    expect(exceeded(() => tracker.recordStep('t', 5)).observed).toBe(15);
    expect(() => tracker.recordStep('t', 0.5)).toThrow(RangeError);
    expect(() => tracker.recordStep('t', -1)).toThrow(RangeError);
    expect(() => tracker.recordStep('t', 1e20)).toThrow(
      'Step count must be at most 1000000000, got 100000000000000000000',
    );
  });

  it('refuses unknown tasks and double starts', () => {
    const tracker = new BudgetTracker();
    expect(() => tracker.recordStep('ghost')).toThrow(NotFoundError);
    expect(() => tracker.recordStep('ghost')).toThrow('Budget task ghost not found');
    tracker.startTask('t');
    expect(() => tracker.startTask('t')).toThrow('already started');
    expect(() => tracker.startTask('c', { parentTaskId: 'ghost' })).toThrow(NotFoundError);
  });
});

describe('BudgetState: duration, depth, tokens, cost', () => {
  it('fails duration only past the limit', () => {
    const clock = new ManualClock(0);
    const tracker = new BudgetTracker({ clock });
    const state = tracker.startTask('t');
    clock.advance(1_800_000);
    expect(() => state.checkAll()).not.toThrow();
    clock.advance(100_000);
    const e = exceeded(() => state.checkAll());
    expect([e.budgetType, e.limit, e.observed]).toEqual(['duration', 1800, 1900]);
    expect(e.message).toBe('Task t exceeded duration budget: 1900s elapsed, max 1800s');
    expect(exceeded(() => tracker.recordStep('t')).budgetType).toBe('duration');
  });

  it('checks a proposed depth', () => {
    const state = new BudgetTracker().startTask('t');
    expect(() => state.checkDepth(10)).not.toThrow();
    const e = exceeded(() => state.checkDepth(15));
    expect(e.message).toBe('Task t exceeded depth budget: depth 15, max 10');
  });

  it('enforces tokens and cost when limited, and counts them when not', () => {
    const tracker = new BudgetTracker();
    const limited = tracker.startTask('l', { maxTokens: 1000, maxCostUsd: 0.5 });
    tracker.recordUsage('l', { tokens: 1000, costUsd: 0.5 });
    expect(exceeded(() => tracker.recordUsage('l', { tokens: 1 })).budgetType).toBe('tokens');
    expect(limited.tokens).toBe(1001);
    const cost = exceeded(() =>
      tracker.recordUsage(tracker.startTask('c', { maxCostUsd: 0.5 }).taskId, { costUsd: 0.75 }),
    );
    expect(cost.message).toBe('Task c exceeded cost budget: $0.75 spent, max $0.5');
    const free = tracker.startTask('f');
    tracker.recordUsage('f', { tokens: 1e9, costUsd: 1e6 });
    expect([free.tokens, free.costUsd]).toEqual([1e9, 1e6]);
    expect(free.remaining()).toMatchObject({ tokens: null, costUsd: null });
    expect(() => tracker.recordUsage('f', { tokens: -1 })).toThrow(RangeError);
    expect(() => tracker.recordUsage('f', { costUsd: Number.NaN })).toThrow(RangeError);
  });

  it('reports what remains, never below zero', () => {
    const clock = new ManualClock(0);
    const tracker = new BudgetTracker({ clock });
    const state = tracker.startTask('t', { maxSteps: 3, maxTokens: 100 });
    tracker.recordStep('t', 2);
    tracker.recordUsage('t', { tokens: 40 });
    clock.advance(30_000);
    expect(state.remaining()).toEqual({
      steps: 1,
      durationSeconds: 1770,
      tokens: 60,
      costUsd: null,
    });
    expect(() => tracker.recordStep('t', 5)).toThrow(BudgetExceededError);
    expect(state.remaining().steps).toBe(0);
  });
});

describe('warnings', () => {
  it('fires once per budget type when spending reaches warnAt', () => {
    const warnings: BudgetWarning[] = [];
    const tracker = new BudgetTracker({ warnAt: 0.8, onWarning: (w) => warnings.push(w) });
    tracker.startTask('t', { maxSteps: 10, maxTokens: 100 });
    for (let i = 0; i < 7; i++) tracker.recordStep('t');
    expect(warnings).toEqual([]);
    tracker.recordStep('t');
    tracker.recordStep('t');
    tracker.recordUsage('t', { tokens: 90 });
    tracker.recordUsage('t', { tokens: 5 });
    expect(warnings).toEqual([
      { taskId: 't', budgetType: 'steps', fraction: 0.8, limit: 10, observed: 8 },
      { taskId: 't', budgetType: 'tokens', fraction: 0.9, limit: 100, observed: 90 },
    ]);
  });

  it('warns on duration as time passes, and via onWarning subscribers', () => {
    const clock = new ManualClock(0);
    const tracker = new BudgetTracker({ clock, warnAt: 0.5 });
    const seen: string[] = [];
    const off = tracker.onWarning((w) => seen.push(`${w.taskId}:${w.budgetType}`));
    const state = tracker.startTask('t', { maxDurationSeconds: 100 });
    clock.advance(60_000);
    state.checkAll();
    state.checkAll();
    off();
    expect(seen).toEqual(['t:duration']);
  });

  it('remembers fired warnings across a JSON round trip', () => {
    const warnings: string[] = [];
    const tracker = new BudgetTracker();
    tracker.startTask('t', { maxSteps: 10 });
    tracker.recordStep('t', 9);
    const json = JSON.parse(JSON.stringify(tracker));
    expect(json.tasks[0].warned).toEqual(['steps']);
    const restored = BudgetTracker.fromJSON(json, {
      onWarning: (w) => warnings.push(w.budgetType),
    });
    restored.recordStep('t');
    expect(warnings).toEqual([]);
  });

  it('refuses warnAt outside (0, 1]', () => {
    expect(() => new BudgetTracker({ warnAt: 0 })).toThrow(RangeError);
    expect(() => new BudgetTracker({ warnAt: 1.2 })).toThrow(RangeError);
    expect(() => new BudgetTracker({ warnAt: 1 })).not.toThrow();
  });
});

describe('tree budgets', () => {
  it("counts a child's spending against every ancestor and names the ancestor that ran out", () => {
    const tracker = new BudgetTracker();
    const root = tracker.startTask('root', { maxSteps: 10, maxCostUsd: 1 });
    const mid = tracker.startTask('mid', { parentTaskId: 'root', maxSteps: 100 });
    const leaf = tracker.startTask('leaf', { parentTaskId: 'mid' });
    tracker.recordStep('leaf', 4);
    tracker.recordStep('mid', 6);
    expect([root.stepsTaken, mid.stepsTaken, leaf.stepsTaken]).toEqual([10, 10, 4]);
    const e = exceeded(() => tracker.recordStep('leaf'));
    expect([e.taskId, e.observed, e.limit]).toEqual(['root', 11, 10]);
    expect(leaf.stepsTaken).toBe(5);
    const cost = exceeded(() => tracker.recordUsage('leaf', { costUsd: 1.5 }));
    expect([cost.taskId, cost.budgetType]).toEqual(['root', 'cost']);
  });

  it("checks the task's own limit before its ancestors'", () => {
    const tracker = new BudgetTracker();
    tracker.startTask('root', { maxSteps: 5 });
    tracker.startTask('child', { parentTaskId: 'root', maxSteps: 5 });
    expect(exceeded(() => tracker.recordStep('child', 6)).taskId).toBe('child');
  });

  it('keeps counting against grand-ancestors after a parent ended, without enforcing the ended one', () => {
    const tracker = new BudgetTracker();
    const root = tracker.startTask('root', { maxSteps: 100 });
    tracker.startTask('mid', { parentTaskId: 'root', maxSteps: 1 });
    tracker.startTask('leaf', { parentTaskId: 'mid' });
    expect(tracker.end('mid')?.isEnded).toBe(true);
    tracker.recordStep('leaf', 5);
    expect(root.stepsTaken).toBe(5);
    expect(tracker.get('mid')).toBeUndefined();
    expect(tracker.end('mid')).toBeUndefined();
  });
});

describe('events and JSON', () => {
  it('reports every start, step, usage, warning and end, including a step that then throws', () => {
    const tracker = new BudgetTracker({ clock: new ManualClock(0) });
    const events: BudgetEvent[] = [];
    tracker.onRecord((e) => events.push(e));
    tracker.startTask('p', { maxSteps: 1 });
    tracker.startTask('c', { parentTaskId: 'p' });
    tracker.recordStep('c');
    expect(() => tracker.recordStep('c')).toThrow(BudgetExceededError);
    tracker.recordUsage('c', { tokens: 3 });
    tracker.end('c');
    expect(events.map((e) => e.type)).toEqual([
      'start',
      'start',
      'step',
      'warning',
      'step',
      'usage',
      'end',
    ]);
    expect(events[3]).toEqual({ type: 'warning', taskId: 'p', budgetType: 'steps' });
    expect(events[1]).toMatchObject({ type: 'start', taskId: 'c', parentTaskId: 'p' });
  });

  it('round-trips counters, limits, start times and the tree (ended ancestors included)', () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const tracker = new BudgetTracker({ clock });
    tracker.startTask('root', { maxSteps: 20, maxTokens: 500 });
    tracker.startTask('mid', { parentTaskId: 'root' });
    tracker.startTask('leaf', { parentTaskId: 'mid', maxCostUsd: 2 });
    tracker.recordStep('leaf', 3);
    tracker.recordUsage('leaf', { tokens: 100, costUsd: 0.25 });
    clock.advance(5_000);
    tracker.end('mid');
    const json = JSON.parse(JSON.stringify(tracker));
    expect(json.tasks.map((t: { taskId: string }) => t.taskId)).toEqual(['root', 'mid', 'leaf']);

    const restored = BudgetTracker.fromJSON(json, { clock });
    expect(restored.toJSON()).toEqual(tracker.toJSON());
    expect(restored.get('mid')).toBeUndefined();
    restored.recordStep('leaf', 17);
    expect(restored.get('root')?.stepsTaken).toBe(20);
    expect(exceeded(() => restored.recordStep('leaf')).taskId).toBe('root');
    expect(restored.get('leaf')?.elapsedSeconds).toBe(5);
  });
});

describe('pure limit functions', () => {
  it('evaluates usage in the order steps, duration, tokens, cost', () => {
    const limits = resolveLimits({
      maxSteps: 5,
      maxDurationSeconds: 10,
      maxTokens: 10,
      maxCostUsd: 1,
    });
    expect(evaluateBudget('t', { stepsTaken: 6, elapsedSeconds: 11 }, limits)?.budgetType).toBe(
      'steps',
    );
    expect(evaluateBudget('t', { tokens: 11, costUsd: 2 }, limits)?.budgetType).toBe('tokens');
    expect(
      evaluateBudget('t', { stepsTaken: 5, elapsedSeconds: 10, tokens: 10, costUsd: 1 }, limits),
    ).toBeUndefined();
    expect(() => assertWithinBudget('t', { costUsd: 1.01 }, limits)).toThrow('$1.01 spent, max $1');
  });

  it('fills defaults, reads Infinity as unlimited and refuses malformed limits', () => {
    expect(resolveLimits()).toEqual(DEFAULT_LIMITS);
    expect(resolveLimits({ maxTokens: Number.POSITIVE_INFINITY }).maxTokens).toBeNull();
    expect(() => resolveLimits({ maxSteps: -1 })).toThrow(
      'maxSteps must be a non-negative integer, got -1',
    );
    expect(() => resolveLimits({ maxSteps: 2.5 })).toThrow(RangeError);
    expect(() => resolveLimits({ maxSteps: null })).toThrow('maxSteps cannot be unlimited');
    expect(() => resolveLimits({ maxDurationSeconds: Number.NaN })).toThrow(RangeError);
    expect(resolveLimits({ maxSteps: LIMIT_MAXIMUMS.maxSteps }).maxSteps).toBe(1_000_000_000);
    expect(() => resolveLimits({ maxSteps: 1e20 })).toThrow(
      'Budget limit maxSteps must be at most 1000000000, got 100000000000000000000',
    );
    expect(() => resolveLimits({ maxTokens: 2 ** 60 })).toThrow('maxTokens must be at most');
    expect(() => new BudgetTracker({ defaults: { maxDepth: -3 } })).toThrow(RangeError);
    expect(new BudgetTracker({ defaults: { maxSteps: 7 } }).startTask('t').limits.maxSteps).toBe(7);
  });
});

describe('lazy loading', () => {
  it('builds only the tasks it is asked about, with their ancestors, from load()', () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const source = new BudgetTracker({ clock });
    source.startTask('root', { maxSteps: 10 });
    source.startTask('mid', { parentTaskId: 'root' });
    source.startTask('leaf', { parentTaskId: 'mid' });
    source.startTask('other');
    source.recordStep('leaf', 4);
    const saved = new Map(source.toJSON().tasks.map((t) => [t.taskId, t]));
    const asked: string[] = [];
    const tracker = new BudgetTracker({
      clock,
      load: (id) => {
        asked.push(id);
        return saved.get(id);
      },
    });
    expect(tracker.get('leaf')?.stepsTaken).toBe(4);
    expect(asked).toEqual(['leaf', 'mid', 'root']);
    expect(tracker.toJSON().tasks.map((t) => t.taskId)).toEqual(['root', 'mid', 'leaf']);
    expect(exceeded(() => tracker.recordStep('leaf', 7)).taskId).toBe('root');
    expect(tracker.get('root')?.stepsTaken).toBe(11);
    expect(tracker.get('nope')).toBeUndefined();
    expect(tracker.get('nope')).toBeUndefined();
    expect(asked.filter((id) => id === 'nope')).toHaveLength(1);
    expect(() => tracker.startTask('other')).toThrow('already started');
  });
});

describe('checkUsageLeft', () => {
  it('answers the least left over the task and its ancestors', () => {
    const tracker = new BudgetTracker();
    tracker.startTask('parent', { maxTokens: 1000, maxCostUsd: 1 });
    tracker.startTask('child', { parentTaskId: 'parent', maxTokens: 5000 });
    tracker.recordUsage('child', { tokens: 300, costUsd: 0.25 });
    expect(tracker.checkUsageLeft('child')).toEqual({ tokens: 700, costUsd: 0.75 });
  });

  it('answers null for budgets nobody limits', () => {
    const tracker = new BudgetTracker();
    tracker.startTask('t');
    expect(tracker.checkUsageLeft('t')).toEqual({ tokens: null, costUsd: null });
  });

  it('refuses once a budget is used up exactly, naming the task that ran out', () => {
    const tracker = new BudgetTracker();
    tracker.startTask('parent', { maxTokens: 1000 });
    tracker.startTask('child', { parentTaskId: 'parent' });
    tracker.recordUsage('child', { tokens: 1000 });
    let error: unknown;
    try {
      tracker.checkUsageLeft('child');
    } catch (e) {
      error = e;
    }
    expect(BudgetExceededError.is(error)).toBe(true);
    expect(error).toMatchObject({
      budgetType: 'tokens',
      taskId: 'parent',
      limit: 1000,
      observed: 1000,
    });
    expect((error as Error).message).toBe(
      'Task parent has no token budget left: 1000 tokens used, max 1000',
    );
  });

  it('refuses on cost with the dollar message, and skips an ended ancestor', () => {
    const tracker = new BudgetTracker();
    tracker.startTask('parent', { maxCostUsd: 0.5 });
    tracker.startTask('child', { parentTaskId: 'parent', maxCostUsd: 0.5 });
    expect(() => tracker.recordUsage('child', { costUsd: 0.6 })).toThrow(BudgetExceededError);
    expect(() => tracker.checkUsageLeft('child')).toThrow(
      'Task child has no cost budget left: $0.6 spent, max $0.5',
    );
    tracker.startTask('other', { maxCostUsd: 2 });
    tracker.startTask('grandchild', { parentTaskId: 'other' });
    tracker.end('other');
    expect(tracker.checkUsageLeft('grandchild')).toEqual({ tokens: null, costUsd: null });
  });

  it('throws NotFoundError for a task it does not track', () => {
    expect(() => new BudgetTracker().checkUsageLeft('nope')).toThrow(NotFoundError);
  });
});
