import { InvalidTransitionError, ManualClock, TaskState } from '@exec-kernel/core';
import { describe, expect, it } from 'vitest';
import { TaskLifecycle, type TransitionEvent } from './task-lifecycle.js';

describe('TaskLifecycle', () => {
  it("runs the seed's example", () => {
    const task = new TaskLifecycle({ taskId: 'my-task' });
    expect(task.state).toBe('todo');
    expect(task.transition(TaskState.IN_PROGRESS)).toBe('Work started');
    expect(task.transition(TaskState.DONE)).toBe('Work completed');
    let reason = '';
    try {
      task.transition(TaskState.TODO);
    } catch (e) {
      if (!(e instanceof InvalidTransitionError)) throw e;
      reason = e.reason;
    }
    expect(reason).toBe('Cannot transition from terminal state done');
    expect(task.canTransitionTo(TaskState.BLOCKED)).toBe(false);
  });

  it('records history with reason, actor and time, and leaves state alone on refusal', () => {
    const clock = new ManualClock(Date.UTC(2026, 0, 1));
    const task = new TaskLifecycle({ taskId: 't1', initial: 'backlog', clock });
    task.transition('todo');
    clock.advance(1500);
    task.transition('in_progress', { actor: 'agent-1', reason: 'picked up from inbox' });
    expect(() => task.transition('backlog')).toThrow(
      'No valid transition from in_progress to backlog',
    );
    expect(task.state).toBe('in_progress');
    expect(task.history).toEqual([
      { from: 'backlog', to: 'todo', reason: 'Task ready', at: '2026-01-01T00:00:00.000Z' },
      {
        from: 'todo',
        to: 'in_progress',
        reason: 'picked up from inbox',
        actor: 'agent-1',
        at: '2026-01-01T00:00:01.500Z',
      },
    ]);
    // The history getter hands out a copy.
    task.history.pop();
    expect(task.history).toHaveLength(2);
  });

  it('notifies listeners after the move, and stops after unsubscribe', () => {
    const task = new TaskLifecycle({ taskId: 't2', clock: new ManualClock() });
    const events: TransitionEvent[] = [];
    const states: string[] = [];
    const off = task.onTransition((e) => {
      events.push(e);
      states.push(task.state);
    });
    task.transition('in_progress');
    off();
    task.transition('in_review');
    expect(events).toEqual([
      {
        taskId: 't2',
        from: 'todo',
        to: 'in_progress',
        reason: 'Work started',
        at: '1970-01-01T00:00:00.000Z',
      },
    ]);
    expect(states).toEqual(['in_progress']);
  });

  it('lists allowed targets', () => {
    const task = new TaskLifecycle({ taskId: 't', initial: 'blocked' });
    expect(task.allowedTargets()).toEqual(['in_progress', 'cancelled', 'todo']);
  });

  it('refuses an unknown initial state', () => {
    expect(() => new TaskLifecycle({ taskId: 't', initial: 'started' as never })).toThrow(
      "Unknown state 'started'",
    );
  });

  it('round-trips through JSON and keeps enforcing', () => {
    const task = new TaskLifecycle({ taskId: 't3', clock: new ManualClock() });
    task.transition('blocked', { actor: 'a' });
    task.transition('todo');
    const restored = TaskLifecycle.fromJSON(JSON.parse(JSON.stringify(task)));
    expect(restored.toJSON()).toEqual(task.toJSON());
    expect(restored.state).toBe('todo');
    expect(() => restored.transition('done')).toThrow(InvalidTransitionError);
    restored.transition('in_progress');
    expect(restored.history).toHaveLength(3);
  });

  it('refuses tampered JSON', () => {
    const at = '2026-01-01T00:00:00.000Z';
    expect(() =>
      TaskLifecycle.fromJSON({
        taskId: 'x',
        state: 'todo',
        history: [{ from: 'done', to: 'todo', reason: 'reopened', at }],
      }),
    ).toThrow('history[0]: Cannot transition from terminal state done');
    expect(() =>
      TaskLifecycle.fromJSON({
        taskId: 'x',
        state: 'done',
        history: [{ from: 'todo', to: 'in_progress', reason: 'r', at }],
      }),
    ).toThrow('does not match the last move to in_progress');
    expect(() =>
      TaskLifecycle.fromJSON({
        taskId: 'x',
        state: 'done',
        history: [
          { from: 'todo', to: 'in_progress', reason: 'r', at },
          { from: 'in_review', to: 'done', reason: 'r', at },
        ],
      }),
    ).toThrow('history[1] starts at in_review, not in_progress');
    expect(() =>
      TaskLifecycle.fromJSON({ taskId: 'x', state: 'open' as never, history: [] }),
    ).toThrow("Unknown state 'open'");
  });
});
