import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LoopDetectionError, ManualClock, StoreError } from '@exec-kernel/core';
import { ActionGuard } from '@exec-kernel/loop';
import { describe, expect, it } from 'vitest';
import { FileStore } from './file-store.js';
import { MemoryState } from './state.js';
import { InMemoryStore } from './store.js';
import { TaskMemory } from './task-memory.js';

const T0 = Date.UTC(2026, 10, 26, 9, 0, 0);
const READ = { tool: 'read_file', args: { path: 'a.ts' } };

function setup() {
  const clock = new ManualClock(T0);
  const memory = new TaskMemory(new InMemoryStore(), {
    clock,
    actionRules: { repeat: { warnAt: 2, blockAt: 3 } },
  });
  return { clock, memory };
}

describe('action history in memory', () => {
  it('keeps a task’s history across sessions, so the rules count calls made in earlier ones', async () => {
    const { memory } = setup();
    const first = await memory.transaction((s) =>
      s.actionsOf('t1').observe({ taskId: 't1', ...READ }),
    );
    expect(first).toMatchObject({ calls: 1, repeats: 1, warnings: [] });
    const second = await memory.transaction((s) =>
      s.actionsOf('t1').observe({ taskId: 't1', ...READ }),
    );
    expect(second.repeats).toBe(2);
    expect(second.warnings.map((w) => w.loopType)).toEqual(['repeat']);
    await expect(
      memory.transaction((s) => s.actionsOf('t1').observe({ taskId: 't1', ...READ })),
    ).rejects.toThrow(LoopDetectionError);

    const task = await memory.getTask('t1');
    expect(task?.actions?.history.total).toBe(2);
    expect(task?.actions?.refused).toBe(1);
    expect(task?.actions?.lastRefusal).toMatchObject({
      at: '2026-11-26T09:00:00.000Z',
      loopType: 'repeat',
      tool: 'read_file',
      count: 3,
      message: expect.stringContaining('3 times in a row'),
    });
  });

  it('records a result attached to the newest call (the no-progress rule across sessions)', async () => {
    const clock = new ManualClock(T0);
    const memory = new TaskMemory(new InMemoryStore(), {
      clock,
      actionRules: { repeat: false, window: false, pingPong: false, noProgress: { blockAt: 3 } },
    });
    for (const path of ['a', 'b']) {
      await memory.transaction((s) =>
        s.actionsOf('t').observe({ taskId: 't', tool: 'grep', args: { path } }),
      );
      await memory.transaction((s) => s.actionsOf('t').recordResult('t', 'no match'));
    }
    await memory.transaction((s) =>
      s.actionsOf('t').observe({ taskId: 't', tool: 'grep', args: { path: 'c' } }),
    );
    await expect(
      memory.transaction((s) => s.actionsOf('t').recordResult('t', 'no match')),
    ).rejects.toMatchObject({ loopType: 'no_progress', count: 3 });
    expect((await memory.getTask('t'))?.actions?.history.lastHasResult).toBe(false);
  });

  it('rebuilds every task’s history in session.actions', async () => {
    const { memory } = setup();
    await memory.transaction((s) => {
      s.actionsOf('a').observe({ taskId: 'a', ...READ });
    });
    await memory.transaction((s) => {
      s.actions.observe({ taskId: 'b', ...READ });
    });
    const session = await memory.snapshot();
    expect(session.actions.history('a')?.total).toBe(1);
    expect(session.actions.history('b')?.total).toBe(1);
  });

  it('attach() saves the observations of a guard built elsewhere, refusals included', async () => {
    const memory = new TaskMemory(new InMemoryStore());
    const guard = new ActionGuard({ repeat: { warnAt: 2, blockAt: 3 } });
    const off = memory.attach({ actions: guard });
    guard.observe({ taskId: 't', ...READ });
    guard.observe({ taskId: 't', ...READ });
    expect(() => guard.observe({ taskId: 't', ...READ })).toThrow(LoopDetectionError);
    off();
    guard.observe({ taskId: 't', tool: 'other' });
    await memory.flush();
    const task = await memory.getTask('t');
    // Saved up to the refusal: the call made after detaching is not.
    expect(task?.actions?.history.total).toBe(2);
    expect(guard.history('t')?.total).toBe(3);
    expect(task?.actions?.refused).toBe(1);
  });

  it('loads a store file written before tasks had an action history', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'exec-kernel-actions-'));
    try {
      const file = join(dir, 'state.json');
      const old = {
        version: 1,
        tasks: [
          {
            taskId: 'old',
            createdAt: '2026-01-01T00:00:00.000Z',
            updatedAt: '2026-01-01T00:00:00.000Z',
            state: 'in_progress',
            history: [],
            notes: [],
            context: {},
          },
        ],
        agents: [],
      };
      await writeFile(file, JSON.stringify(old));
      const memory = new TaskMemory(new FileStore(file));
      const check = await memory.transaction((s) =>
        s.actionsOf('old').observe({ taskId: 'old', ...READ }),
      );
      expect(check.calls).toBe(1);
      const saved = MemoryState.fromText(await readFile(file, 'utf8'), file).tasks.get('old');
      expect(saved?.state).toBe('in_progress');
      expect(saved?.actions?.history.total).toBe(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a hand-broken history as a corrupt store, not a crash', async () => {
    const state = MemoryState.fromJSON(
      {
        version: 1,
        tasks: [
          {
            taskId: 't',
            createdAt: 'x',
            updatedAt: 'x',
            state: 'todo',
            history: [],
            notes: [],
            context: {},
            actions: { history: { taskId: 't', total: -1 }, refused: 0 },
          },
        ],
        agents: [],
      },
      'state.json',
    );
    const memory = new TaskMemory({
      location: 'state.json',
      read: async () => state,
      update: async (mutate) => mutate(state),
    });
    await expect(memory.transaction((s) => s.actionsOf('t'))).rejects.toSatisfy(
      (e: unknown) => StoreError.is(e) && e.problem === 'corrupt',
    );
    expect(() =>
      MemoryState.fromJSON(
        { version: 1, tasks: [{ ...state.toJSON().tasks[0], actions: 'x' }], agents: [] },
        'f',
      ),
    ).toThrow(StoreError);
  });
});
