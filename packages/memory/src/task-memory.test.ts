import { BudgetTracker } from '@exec-kernel/budget';
import {
  BudgetExceededError,
  IdleEnforcementError,
  InvalidTransitionError,
  LoopDetectionError,
  ManualClock,
} from '@exec-kernel/core';
import { IdleGuard, TaskLifecycle } from '@exec-kernel/lifecycle';
import { LoopDetector } from '@exec-kernel/loop';
import { describe, expect, it } from 'vitest';
import { InMemoryStore } from './store.js';
import { TaskMemory } from './task-memory.js';

const T0 = Date.UTC(2026, 10, 26, 9, 0, 0);

function setup(options: ConstructorParameters<typeof TaskMemory>[1] = {}) {
  const clock = new ManualClock(T0);
  const store = new InMemoryStore();
  return { clock, store, memory: new TaskMemory(store, { clock, ...options }) };
}

describe('TaskMemory.transaction', () => {
  it('remembers a task created through the kernels, across sessions', async () => {
    const { memory } = setup();
    await memory.transaction((s) => {
      s.loop.checkNewTask('epic', 'planner', 'plan');
      s.loop.checkNewTask('story', 'planner', 'feature', { parentTaskId: 'epic', title: 'Login' });
      s.budget.startTask('epic', { maxSteps: 10 });
      s.budget.startTask('story', { parentTaskId: 'epic' });
      s.setAdmission('story', { consumer: 'users' });
    });
    await memory.transaction((s) => {
      s.lifecycle('story')?.transition('in_progress', { actor: 'worker' });
      s.budget.recordStep('story', 3);
      s.note('story', 'found the bug', 'worker');
      s.setContext('story', 'branch', 'fix/login');
    });
    const story = await memory.getTask('story');
    expect(story).toMatchObject({
      taskId: 'story',
      agentId: 'planner',
      taskType: 'feature',
      title: 'Login',
      parentTaskId: 'epic',
      depth: 1,
      state: 'in_progress',
      admission: { consumer: 'users' },
      context: { branch: 'fix/login' },
      notes: [{ text: 'found the bug', author: 'worker', at: '2026-11-26T09:00:00.000Z' }],
    });
    expect(story?.history).toEqual([
      {
        from: 'todo',
        to: 'in_progress',
        reason: 'Work started',
        actor: 'worker',
        at: '2026-11-26T09:00:00.000Z',
      },
    ]);
    expect(story?.budget?.stepsTaken).toBe(3);
    expect((await memory.getTask('epic'))?.budget?.stepsTaken).toBe(3);

    const snapshot = await memory.snapshot();
    expect(snapshot.loop.depthOf('story')).toBe(1);
    expect(() =>
      snapshot.loop.inspect('again', 'planner', 'plan', { createdByTaskId: 'epic' }),
    ).toThrow(LoopDetectionError);
    expect(snapshot.budget.get('story')?.remaining().steps).toBe(47);
    expect(snapshot.budget.get('epic')?.remaining().steps).toBe(7);
  });

  it('saves an over-budget step and then throws', async () => {
    const { memory } = setup();
    await memory.transaction((s) => s.budget.startTask('t', { maxSteps: 2 }));
    await memory.transaction((s) => s.budget.recordStep('t', 2));
    await expect(memory.transaction((s) => s.budget.recordStep('t'))).rejects.toBeInstanceOf(
      BudgetExceededError,
    );
    expect((await memory.getTask('t'))?.budget?.stepsTaken).toBe(3);
  });

  it('saves nothing for a refusal that changed nothing', async () => {
    const { memory, store } = setup();
    await memory.transaction((s) => s.loop.checkNewTask('a', 'x', 'plan'));
    const before = JSON.stringify(await store.read());
    await expect(
      memory.transaction((s) => s.loop.checkNewTask('b', 'x', 'plan', { createdByTaskId: 'a' })),
    ).rejects.toBeInstanceOf(LoopDetectionError);
    await expect(
      memory.transaction((s) => s.lifecycle('a')?.transition('done')),
    ).rejects.toBeInstanceOf(InvalidTransitionError);
    expect(JSON.stringify(await store.read())).toBe(before);
  });

  it('refuses ids, types and context keys that break the id rule, and saves nothing', async () => {
    const { memory, store } = setup();
    await memory.transaction((s) => s.loop.checkNewTask('a', 'x', 'plan'));
    const before = JSON.stringify(await store.read());
    const refused = [
      [() => memory.transaction((s) => s.loop.checkNewTask('b\nc', 'x', 'plan')), 'task id'],
      [() => memory.transaction((s) => s.loop.checkNewTask('b', ' ', 'plan')), 'agent id'],
      [() => memory.transaction((s) => s.loop.checkNewTask('b', 'x', '\u001b[2J')), 'task type'],
      [
        () =>
          memory.transaction((s) => s.loop.checkNewTask('b', 'x', 'plan', { parentTaskId: '' })),
        'parent task id',
      ],
      [() => memory.note('x'.repeat(100_000), 'hi'), 'task id'],
      [() => memory.setContext('a', '', 1), 'context key'],
      [
        () => memory.transaction((s) => s.idle.sleep({ agentId: 'a\u0000', timeoutSeconds: 5 })),
        'agent id',
      ],
    ] as const;
    for (const [attempt, field] of refused) {
      await expect(attempt()).rejects.toMatchObject({ code: 'INVALID_INPUT', field });
    }
    expect(JSON.stringify(await store.read())).toBe(before);
  });

  it('remembers sleep until wake, and marks terminal tasks finished for the loop detector', async () => {
    const { memory, clock } = setup({ maxNodes: 2 });
    await memory.transaction((s) => s.idle.sleep({ agentId: 'worker', timeoutSeconds: 60 }));
    await expect(
      memory.transaction((s) => s.idle.assertMayCreate('worker')),
    ).rejects.toBeInstanceOf(IdleEnforcementError);
    clock.advance(5_000);
    await memory.transaction((s) => s.idle.wake('worker', 'task_available'));
    const snapshot = await memory.snapshot();
    expect(snapshot.idle.isAsleep('worker')).toBe(false);
    expect(snapshot.state.agents.get('worker')).toMatchObject({
      lastWake: { reason: 'task_available', sleptSeconds: 5 },
    });

    await memory.transaction((s) => {
      s.loop.checkNewTask('old', 'a', 't1');
      s.loop.checkNewTask('young', 'a', 't2');
      s.lifecycle('young')?.transition('cancelled');
      // The detector holds two nodes: the finished one goes first.
      s.loop.checkNewTask('new', 'a', 't3');
      expect(s.loop.has('old')).toBe(true);
      expect(s.loop.has('young')).toBe(false);
    });
  });
});

describe('TaskMemory.restore', () => {
  it('saves every event the restored kernels emit, in the background, and flush waits', async () => {
    const { memory } = setup();
    const first = await memory.restore();
    first.loop.checkNewTask('t1', 'agent-1', 'build');
    first.budget.startTask('t1');
    first.lifecycle('t1')?.transition('in_progress');
    first.budget.recordStep('t1');
    first.budget.recordUsage('t1', { tokens: 120, costUsd: 0.01 });
    first.idle.sleep({ agentId: 'agent-1', timeoutSeconds: 30 });
    await memory.flush();

    const second = await memory.restore();
    expect(second.lifecycle('t1')?.state).toBe('in_progress');
    expect(second.budget.get('t1')).toMatchObject({ stepsTaken: 1, tokens: 120, costUsd: 0.01 });
    expect(second.idle.isAsleep('agent-1')).toBe(true);
    expect(second.loop.get('t1')).toMatchObject({
      agentId: 'agent-1',
      taskType: 'build',
      depth: 0,
    });
  });

  it('reports on flush a move another session made impossible, and keeps the rest', async () => {
    const { memory } = setup();
    await memory.transaction((s) => s.loop.checkNewTask('t', 'a', 'x'));
    const a = await memory.restore();
    const b = await memory.restore();
    a.lifecycle('t')?.transition('cancelled');
    await memory.flush();
    b.lifecycle('t')?.transition('in_progress');
    b.note('t', 'still here');
    await expect(memory.flush()).rejects.toBeInstanceOf(InvalidTransitionError);
    const task = await memory.getTask('t');
    expect(task?.state).toBe('cancelled');
    expect(task?.notes.map((n) => n.text)).toEqual(['still here']);
    await expect(memory.flush()).resolves.toBeUndefined();
  });
});

describe('TaskMemory.attach', () => {
  it('records the events of kernels built elsewhere until detached', async () => {
    const { memory, clock } = setup();
    const lifecycle = new TaskLifecycle({ taskId: 'x', clock, initial: 'backlog' });
    const budget = new BudgetTracker({ clock });
    const loop = new LoopDetector();
    const idle = new IdleGuard({ clock });
    const detach = memory.attach({ lifecycle: [lifecycle], budget, loop, idle });
    loop.checkNewTask('x', 'agent', 'fix');
    lifecycle.transition('todo');
    budget.startTask('x');
    budget.recordStep('x', 4);
    idle.sleep({ agentId: 'agent', timeoutSeconds: 10 });
    await memory.flush();
    detach();
    budget.recordStep('x');
    await memory.flush();
    expect(await memory.getTask('x')).toMatchObject({
      state: 'todo',
      agentId: 'agent',
      budget: { stepsTaken: 4 },
    });
    expect((await memory.snapshot()).idle.isAsleep('agent')).toBe(true);
  });

  it('lists tasks by state and agent', async () => {
    const { memory } = setup();
    await memory.transaction((s) => {
      s.loop.checkNewTask('a', 'alice', 'x');
      s.loop.checkNewTask('b', 'bob', 'x');
      s.loop.checkNewTask('c', 'alice', 'y');
      s.lifecycle('c')?.transition('blocked');
    });
    expect((await memory.listTasks()).map((t) => t.taskId)).toEqual(['a', 'b', 'c']);
    expect((await memory.listTasks({ agentId: 'alice' })).map((t) => t.taskId)).toEqual(['a', 'c']);
    expect((await memory.listTasks({ state: 'blocked' })).map((t) => t.taskId)).toEqual(['c']);
    await memory.setContext('a', 'k', { n: 1 });
    await memory.setContext('a', 'k', undefined);
    expect((await memory.getTask('a'))?.context).toEqual({});
    expect((await memory.note('a', 'hi')).text).toBe('hi');
  });
});
