import { IdleEnforcementError, ManualClock } from '@exec-kernel/core';
import { describe, expect, it } from 'vitest';
import { type IdleEvent, IdleGuard } from './idle-guard.js';

const T0 = Date.UTC(2026, 0, 1);

describe('IdleGuard', () => {
  it('refuses task creation while asleep and allows it after wake', () => {
    const clock = new ManualClock(T0);
    const guard = new IdleGuard({ clock });
    const record = guard.sleep({ agentId: 'agent-1', timeoutSeconds: 30 });
    expect(record).toEqual({
      agentId: 'agent-1',
      reason: 'no_tasks',
      since: '2026-01-01T00:00:00.000Z',
      until: '2026-01-01T00:00:30.000Z',
    });
    expect(guard.isAsleep('agent-1')).toBe(true);
    expect(guard.isAsleep('agent-2')).toBe(false);
    let error: unknown;
    try {
      guard.assertMayCreate('agent-1', 'speculative-1');
    } catch (e) {
      error = e;
    }
    expect(IdleEnforcementError.is(error)).toBe(true);
    expect(error).toMatchObject({
      agentId: 'agent-1',
      until: '2026-01-01T00:00:30.000Z',
      taskId: 'speculative-1',
    });
    expect(() => guard.assertMayCreate('agent-2')).not.toThrow();

    clock.advance(12_000);
    expect(guard.wake('agent-1', 'task_available')).toEqual({
      agentId: 'agent-1',
      reason: 'task_available',
      at: '2026-01-01T00:00:12.000Z',
      sleptSeconds: 12,
    });
    expect(() => guard.assertMayCreate('agent-1')).not.toThrow();
    expect(guard.wake('agent-1')).toBeUndefined();
  });

  it('ends a sleep at its timeout, whichever comes first', () => {
    const clock = new ManualClock(T0);
    const guard = new IdleGuard({ clock });
    guard.sleep({ agentId: 'a', timeoutSeconds: 10 });
    clock.advance(9_999);
    expect(guard.isAsleep('a')).toBe(true);
    clock.advance(1);
    expect(guard.isAsleep('a')).toBe(false);
    expect(() => guard.assertMayCreate('a')).not.toThrow();
    expect(guard.sleepOf('a')).toBeUndefined();
    expect(guard.wake('a')).toBeUndefined();
  });

  it('answers isAsleep for a given time without changing anything', () => {
    const guard = new IdleGuard({ clock: new ManualClock(T0) });
    guard.sleep({ agentId: 'a', timeoutSeconds: 5 });
    expect(guard.isAsleep('a', T0 + 10_000)).toBe(false);
    expect(guard.isAsleep('a')).toBe(true);
  });

  it('uses the default timeout and a custom reason', () => {
    const guard = new IdleGuard({ clock: new ManualClock(T0), defaultTimeoutSeconds: 60 });
    expect(guard.sleep({ agentId: 'a', reason: 'waiting_for_review' })).toMatchObject({
      reason: 'waiting_for_review',
      until: '2026-01-01T00:01:00.000Z',
    });
  });

  it('refuses a non-positive timeout', () => {
    const guard = new IdleGuard();
    expect(() => guard.sleep({ agentId: 'a', timeoutSeconds: 0 })).toThrow(RangeError);
    expect(() => guard.sleep({ agentId: 'a', timeoutSeconds: Number.NaN })).toThrow(RangeError);
    expect(() => new IdleGuard({ defaultTimeoutSeconds: -1 })).toThrow(RangeError);
  });

  it('reports sleeps and wakes to listeners', () => {
    const guard = new IdleGuard({ clock: new ManualClock(T0) });
    const events: IdleEvent[] = [];
    guard.onChange((e) => events.push(e));
    guard.sleep({ agentId: 'a', timeoutSeconds: 5 });
    guard.wake('a');
    expect(events.map((e) => e.type)).toEqual(['sleep', 'wake']);
  });

  it('round-trips through JSON, dropping sleeps that timed out meanwhile', () => {
    const clock = new ManualClock(T0);
    const guard = new IdleGuard({ clock });
    guard.sleep({ agentId: 'short', timeoutSeconds: 5 });
    guard.sleep({ agentId: 'long', timeoutSeconds: 60 });
    const json = JSON.parse(JSON.stringify(guard));
    clock.advance(10_000);
    const restored = IdleGuard.fromJSON(json, { clock });
    expect(restored.isAsleep('short')).toBe(false);
    expect(restored.isAsleep('long')).toBe(true);
    expect(restored.toJSON().sleeping.map((s) => s.agentId)).toEqual(['long']);
    expect(() =>
      IdleGuard.fromJSON({
        sleeping: [{ agentId: 'x', reason: 'r', since: 'never', until: 'never' }],
      }),
    ).toThrow('since/until must be ISO-8601 times');
  });
});
