import { describe, expect, it } from 'vitest';
import { ManualClock, systemClock } from './clock.js';
import {
  BudgetExceededError,
  IdleEnforcementError,
  InvalidTransitionError,
  LoopDetectionError,
  TaskAdmissionError,
} from './index.js';
import { ListenerSet } from './listener-set.js';
import { isTaskState, isTerminalState, TASK_STATES, TaskState } from './task-state.js';
import { attachViolation, hasViolation, toViolation, violationOf } from './violation.js';

describe('toViolation', () => {
  const at = Date.UTC(2026, 10, 26, 12, 0, 0);

  it('carries limit and observed for budgets', () => {
    const v = toViolation(
      new BudgetExceededError({ budgetType: 'tokens', taskId: 't1', limit: 100, observed: 120 }),
      at,
    );
    expect(v).toEqual({
      kind: 'budget_tokens',
      code: 'BUDGET_EXCEEDED',
      taskId: 't1',
      limit: 100,
      observed: 120,
      message: 'Task t1 exceeded token budget: 120 tokens used, max 100',
      at: '2026-11-26T12:00:00.000Z',
      details: { budgetType: 'tokens', taskId: 't1', limit: 100, observed: 120 },
    });
  });

  it('names the loop rule in the kind, and depth as limit/observed', () => {
    const depth = toViolation(
      new LoopDetectionError({
        loopType: 'depth',
        taskId: 'c',
        agentId: 'a1',
        depth: 11,
        maxDepth: 10,
      }),
      at,
    );
    expect(depth).toMatchObject({
      kind: 'loop_depth',
      taskId: 'c',
      agentId: 'a1',
      limit: 10,
      observed: 11,
    });
    const cycle = toViolation(
      new LoopDetectionError({ loopType: 'cycle', taskId: 'c', chain: ['c', 'p', 'c'] }),
      at,
    );
    expect(cycle.kind).toBe('loop_cycle');
    expect(cycle.limit).toBeUndefined();
    expect(cycle.details.chain).toEqual(['c', 'p', 'c']);
  });

  it('names the action-loop rule in the kind, with the count as observed and blockAt - 1 as limit', () => {
    const calls = [
      { tool: 'plan', fingerprint: '0000000000000001' },
      { tool: 'search', fingerprint: '0000000000000002' },
    ];
    const error = new LoopDetectionError({
      loopType: 'ping_pong',
      taskId: 't1',
      tool: 'search',
      count: 5,
      blockAt: 5,
      period: 2,
      calls,
    });
    expect(error.message).toBe('Task t1 repeated the cycle plan -> search 5 times (blocked at 5)');
    expect([error.tool, error.count, error.calls]).toEqual(['search', 5, calls]);
    expect(toViolation(error, at)).toMatchObject({
      kind: 'loop_ping_pong',
      taskId: 't1',
      limit: 4,
      observed: 5,
      details: { period: 2, calls },
    });
    for (const [loopType, text] of [
      ['repeat', 'Task t1 called search with the same arguments 5 times in a row (blocked at 5)'],
      ['no_progress', 'Task t1 got the same result 5 times in a row, no progress (blocked at 5)'],
    ] as const) {
      const e = new LoopDetectionError({
        loopType,
        taskId: 't1',
        tool: 'search',
        count: 5,
        blockAt: 5,
      });
      expect([e.message, toViolation(e, at).kind]).toEqual([text, `loop_${loopType}`]);
    }
  });

  it('maps every other error to its kind', () => {
    expect(
      toViolation(
        new InvalidTransitionError({ from: 'done', to: 'todo', reason: 'r', taskId: 'x' }),
        at,
      ),
    ).toMatchObject({ kind: 'invalid_transition', taskId: 'x', message: 'r' });
    expect(toViolation(new IdleEnforcementError({ agentId: 'a', until: 'u' }), at)).toMatchObject({
      kind: 'idle',
      agentId: 'a',
    });
    expect(
      toViolation(new TaskAdmissionError({ missing: ['consumer'], invalid: [] }), at).kind,
    ).toBe('admission');
  });

  it('survives JSON unchanged', () => {
    const v = toViolation(
      new BudgetExceededError({ budgetType: 'cost', taskId: 't', limit: 1, observed: 2 }),
    );
    expect(JSON.parse(JSON.stringify(v))).toEqual(v);
  });
});

describe('TaskState', () => {
  it('is frozen and lists the seven states', () => {
    expect(Object.isFrozen(TaskState)).toBe(true);
    expect(Object.values(TaskState)).toEqual(TASK_STATES);
    expect(TaskState.IN_PROGRESS).toBe('in_progress');
    expect(isTaskState('in_review')).toBe(true);
    expect(isTaskState('started')).toBe(false);
    expect(isTaskState(undefined)).toBe(false);
    expect(TASK_STATES.filter(isTerminalState)).toEqual(['done', 'cancelled']);
  });
});

describe('clocks', () => {
  it('ManualClock moves only when told', () => {
    const clock = new ManualClock(1000);
    expect(clock.now()).toBe(1000);
    expect(clock.advance(500)).toBe(1500);
    clock.set(10);
    expect(clock.now()).toBe(10);
    expect(() => clock.advance(-1)).toThrow(RangeError);
    expect(() => clock.set(Number.NaN)).toThrow(RangeError);
  });

  it('systemClock reads the real time', () => {
    const before = Date.now();
    const now = systemClock.now();
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now).toBeLessThanOrEqual(Date.now());
  });
});

describe('ListenerSet', () => {
  it('calls listeners in order and lets one unsubscribe during emit without skipping others', () => {
    const set = new ListenerSet<number>();
    const seen: string[] = [];
    const offA = set.add((n) => {
      seen.push(`a${n}`);
      offA();
    });
    set.add((n) => seen.push(`b${n}`));
    expect(set.isEmpty).toBe(false);
    set.emit(1);
    set.emit(2);
    expect(seen).toEqual(['a1', 'b1', 'b2']);
  });
});

describe('ListenerSet', () => {
  it('removes only the copy an unsubscribe was returned for', () => {
    const set = new ListenerSet<number>();
    const seen: number[] = [];
    const listener = (n: number) => seen.push(n);
    const first = set.add(listener);
    set.add(listener);
    first();
    set.emit(1);
    expect(seen).toEqual([1]);
    first();
    set.emit(2);
    expect(seen).toEqual([1, 2]);
  });
});

describe('a Violation carried by its error', () => {
  it('is attached once, read back, and shown when the error is logged', () => {
    const error = new BudgetExceededError({
      budgetType: 'tokens',
      taskId: 't',
      limit: 10,
      observed: 11,
    });
    expect(violationOf(error)).toBeUndefined();
    expect(hasViolation(error)).toBe(false);
    const violation = toViolation(error, 0);
    attachViolation(error, violation);
    expect(hasViolation(error)).toBe(true);
    expect(violationOf(error)).toBe(violation);
    expect(Object.keys(error)).toContain('violation');
    expect(() => {
      (error as { violation: unknown }).violation = null;
    }).toThrow(TypeError);
  });

  it('is not read from values that are not errors carrying one', () => {
    for (const value of [null, undefined, 'x', 42, {}, { violation: null }, { violation: 'x' }]) {
      expect(violationOf(value)).toBeUndefined();
    }
  });
});
