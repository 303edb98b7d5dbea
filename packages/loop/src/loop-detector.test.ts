import { LoopDetectionError } from '@exec-kernel/core';
import { describe, expect, it } from 'vitest';
import { LoopDetector, type RegisterEvent } from './loop-detector.js';
import { evaluateNewTask, linkWorkNodes } from './rules.js';

function refusal(fn: () => unknown): LoopDetectionError {
  try {
    fn();
  } catch (e) {
    if (LoopDetectionError.is(e)) return e;
    throw e;
  }
  throw new Error('expected a LoopDetectionError');
}

describe('LoopDetector: the seed example', () => {
  it('allows a child at depth 1 and refuses an agent re-creating its own work (identity wins)', () => {
    const detector = new LoopDetector({ maxDepth: 10 });
    detector.registerNode({ taskId: 'parent-1', agentId: 'agent-1', taskType: 'research' });
    expect(
      detector.checkNewTask('child-1', 'agent-1', 'research', { parentTaskId: 'parent-1' }),
    ).toBe(1);
    const e = refusal(() =>
      detector.checkNewTask('deep-task', 'agent-1', 'research', {
        parentTaskId: 'parent-1',
        createdByTaskId: 'parent-1',
      }),
    );
    expect(e.loopType).toBe('identity');
    expect(e.chain).toEqual(['deep-task', 'parent-1']);
    expect(detector.has('deep-task')).toBe(false);
  });

  it('counts a child of an unknown parent at depth 1, as the CLI example prints', () => {
    const detector = new LoopDetector();
    expect(
      detector.checkNewTask('child-1', 'agent-1', 'feature', { parentTaskId: 'parent-1' }),
    ).toBe(1);
    expect(detector.checkNewTask('root', 'agent-1', 'feature')).toBe(0);
  });
});

describe('cycle', () => {
  it('refuses a task that is its own parent or creator', () => {
    const detector = new LoopDetector();
    expect(
      refusal(() => detector.checkNewTask('a', 'x', 't', { parentTaskId: 'a' })).chain,
    ).toEqual(['a', 'a']);
    expect(
      refusal(() => detector.checkNewTask('a', 'x', 't', { createdByTaskId: 'a' })).loopType,
    ).toBe('cycle');
  });

  it('refuses a task that would become its own ancestor along parents', () => {
    const detector = new LoopDetector();
    detector.checkNewTask('a', 'x', 't');
    detector.checkNewTask('b', 'x', 'u', { parentTaskId: 'a' });
    detector.checkNewTask('c', 'x', 'v', { parentTaskId: 'b' });
    const e = refusal(() => detector.checkNewTask('a', 'x', 't', { parentTaskId: 'c' }));
    expect([e.loopType, e.chain]).toEqual(['cycle', ['a', 'c', 'b', 'a']]);
    expect(e.message).toBe('Task a would create a cycle: a -> c -> b -> a');
    expect(detector.get('a')?.parentTaskId).toBeUndefined();
  });

  it('refuses a task that would become its own ancestor along creators (before identity)', () => {
    const detector = new LoopDetector();
    detector.checkNewTask('a', 'x', 't');
    detector.checkNewTask('b', 'y', 't', { createdByTaskId: 'a' });
    const e = refusal(() => detector.checkNewTask('a', 'x', 't', { createdByTaskId: 'b' }));
    expect([e.loopType, e.chain]).toEqual(['cycle', ['a', 'b', 'a']]);
  });

  it('refuses work under a creator chain that already repeats a task', () => {
    const detector = new LoopDetector();
    detector.registerNode({ taskId: 'a', agentId: 'x', taskType: 't' });
    detector.registerNode({ taskId: 'b', agentId: 'y', taskType: 'u', createdByTaskId: 'a' });
    // Unchecked registration can close a loop: a is now created by b, which was created by (old) a.
    detector.registerNode({ taskId: 'a', agentId: 'x', taskType: 't', createdByTaskId: 'b' });
    const e = refusal(() => detector.checkNewTask('n', 'z', 'w', { createdByTaskId: 'a' }));
    expect([e.loopType, e.chain]).toEqual(['cycle', ['n', 'a', 'b', 'a']]);
  });
});

describe('identity', () => {
  it('looks up the whole creator chain, not just the direct creator', () => {
    const detector = new LoopDetector();
    detector.checkNewTask('r', 'agent-1', 'research');
    detector.checkNewTask('w', 'agent-2', 'write', { createdByTaskId: 'r' });
    const e = refusal(() =>
      detector.checkNewTask('r2', 'agent-1', 'research', { createdByTaskId: 'w' }),
    );
    expect([e.loopType, e.chain, e.agentId]).toEqual(['identity', ['r2', 'w', 'r'], 'agent-1']);
  });

  it('tells different titles apart and matches normalised equal ones', () => {
    const detector = new LoopDetector();
    detector.checkNewTask('p', 'a', 'fix', { title: 'Fix the  Login page' });
    expect(
      detector.checkNewTask('c1', 'a', 'fix', { createdByTaskId: 'p', title: 'Fix signup' }),
    ).toBe(0);
    const e = refusal(() =>
      detector.checkNewTask('c2', 'a', 'fix', {
        createdByTaskId: 'p',
        title: '  fix the login\tPAGE ',
      }),
    );
    expect(e.loopType).toBe('identity');
    // One side without a title cannot be told apart.
    expect(
      refusal(() => detector.checkNewTask('c3', 'a', 'fix', { createdByTaskId: 'p' })).loopType,
    ).toBe('identity');
  });

  it('allows the same type by another agent, and another type by the same agent', () => {
    const detector = new LoopDetector();
    detector.checkNewTask('p', 'a', 'fix');
    expect(detector.checkNewTask('c1', 'b', 'fix', { createdByTaskId: 'p' })).toBe(0);
    expect(detector.checkNewTask('c2', 'a', 'test', { createdByTaskId: 'p' })).toBe(0);
  });

  it('does not apply along parent links: decomposition by the same agent is normal', () => {
    const detector = new LoopDetector();
    detector.checkNewTask('epic', 'a', 'feature');
    expect(detector.checkNewTask('story', 'a', 'feature', { parentTaskId: 'epic' })).toBe(1);
  });
});

describe('depth', () => {
  it('allows exactly maxDepth and refuses one more', () => {
    const detector = new LoopDetector({ maxDepth: 3 });
    let parent: string | undefined;
    for (let depth = 0; depth <= 3; depth++) {
      const id = `t${depth}`;
      expect(detector.checkNewTask(id, 'a', `type${depth}`, { parentTaskId: parent })).toBe(depth);
      parent = id;
    }
    const e = refusal(() => detector.checkNewTask('t4', 'a', 'type4', { parentTaskId: 't3' }));
    expect([e.loopType, e.depth, e.maxDepth]).toEqual(['depth', 4, 3]);
    expect(e.message).toBe('Task t4 exceeds max depth: depth 4, max 3');
  });

  it('refuses any child when maxDepth is 0', () => {
    const detector = new LoopDetector({ maxDepth: 0 });
    expect(detector.checkNewTask('root', 'a', 't')).toBe(0);
    expect(
      refusal(() => detector.checkNewTask('c', 'a', 'u', { parentTaskId: 'root' })).loopType,
    ).toBe('depth');
  });
});

describe('re-checks, inspect and registration', () => {
  it('is idempotent for a task re-checked with the same links', () => {
    const detector = new LoopDetector();
    const events: RegisterEvent[] = [];
    detector.onRegister((e) => events.push(e));
    detector.checkNewTask('p', 'a', 'plan');
    expect(detector.checkNewTask('c', 'a', 'do', { parentTaskId: 'p', createdByTaskId: 'p' })).toBe(
      1,
    );
    expect(detector.checkNewTask('c', 'a', 'do', { parentTaskId: 'p', createdByTaskId: 'p' })).toBe(
      1,
    );
    expect(events.map((e) => [e.node.taskId, e.depth])).toEqual([
      ['p', 0],
      ['c', 1],
    ]);
  });

  it('inspect checks without registering', () => {
    const detector = new LoopDetector();
    detector.checkNewTask('p', 'a', 'plan');
    expect(detector.inspect('c', 'b', 'do', { parentTaskId: 'p' })).toBe(1);
    expect(detector.has('c')).toBe(false);
    expect(() => detector.inspect('c', 'a', 'plan', { createdByTaskId: 'p' })).toThrow(
      LoopDetectionError,
    );
    expect(
      detector.evaluate({ taskId: 'c', agentId: 'a', taskType: 'plan', createdByTaskId: 'p' }),
    ).toMatchObject({
      ok: false,
    });
    expect(detector.size).toBe(1);
  });

  it('re-registering a task with new links moves it and keeps its old children at their depth', () => {
    const detector = new LoopDetector();
    detector.checkNewTask('a', 'x', 't');
    detector.checkNewTask('b', 'x', 'u', { parentTaskId: 'a' });
    detector.checkNewTask('c', 'x', 'v', { parentTaskId: 'b' });
    detector.checkNewTask('z', 'x', 'w');
    // b moves under the root z; c was registered under the old b and keeps its depth.
    expect(detector.checkNewTask('b', 'x', 'u', { parentTaskId: 'z' })).toBe(1);
    expect(detector.depthOf('c')).toBe(2);
    expect(detector.checkNewTask('d', 'x', 'y', { parentTaskId: 'c' })).toBe(3);
  });
});

describe('bounded memory', () => {
  it('drops the node finished longest ago first, then the oldest', () => {
    const detector = new LoopDetector({ maxNodes: 3 });
    detector.checkNewTask('a', 'x', 't');
    detector.checkNewTask('b', 'x', 't');
    detector.checkNewTask('c', 'x', 't');
    expect(detector.markFinished('c')).toBe(true);
    expect(detector.markFinished('c')).toBe(false);
    expect(detector.markFinished('nope')).toBe(false);
    detector.markFinished('b');
    detector.checkNewTask('d', 'x', 't');
    expect(detector.toJSON().nodes.map((n) => n.taskId)).toEqual(['a', 'b', 'd']);
    detector.checkNewTask('e', 'x', 't');
    expect(detector.toJSON().nodes.map((n) => n.taskId)).toEqual(['a', 'd', 'e']);
    detector.checkNewTask('f', 'x', 't');
    expect(detector.toJSON().nodes.map((n) => n.taskId)).toEqual(['d', 'e', 'f']);
    expect(detector.size).toBe(3);
  });

  it('never makes a depth wrong when ancestors are dropped', () => {
    const detector = new LoopDetector({ maxDepth: 100, maxNodes: 2 });
    let parent: string | undefined;
    for (let i = 0; i < 50; i++) {
      expect(detector.checkNewTask(`n${i}`, 'a', `t${i}`, { parentTaskId: parent })).toBe(i);
      parent = `n${i}`;
    }
    expect(detector.size).toBe(2);
  });

  it('still sees chains through dropped nodes', () => {
    const detector = new LoopDetector({ maxNodes: 2 });
    detector.checkNewTask('a', 'agent', 'research');
    detector.checkNewTask('b', 'other', 'write', { createdByTaskId: 'a' });
    detector.checkNewTask('c', 'third', 'review', { createdByTaskId: 'b' });
    expect(detector.has('a')).toBe(false);
    expect(
      refusal(() => detector.checkNewTask('d', 'agent', 'research', { createdByTaskId: 'c' }))
        .chain,
    ).toEqual(['d', 'c', 'b', 'a']);
  });

  it('refuses nonsense settings', () => {
    expect(() => new LoopDetector({ maxDepth: -1 })).toThrow(RangeError);
    expect(() => new LoopDetector({ maxNodes: 1.5 })).toThrow(RangeError);
    expect(() => new LoopDetector({ maxNodes: 0 })).toThrow(
      'maxNodes must be an integer >= 1, got 0',
    );
  });
});

describe('JSON', () => {
  it('round-trips held nodes with their depth, finished flag and links', () => {
    const detector = new LoopDetector({ maxDepth: 3, maxNodes: 3 });
    detector.checkNewTask('a', 'x', 't');
    detector.checkNewTask('b', 'x', 'u', { parentTaskId: 'a', title: 'B' });
    detector.checkNewTask('c', 'x', 'v', { parentTaskId: 'b', createdByTaskId: 'b' });
    detector.checkNewTask('d', 'y', 'v', { parentTaskId: 'c' });
    detector.markFinished('c');
    const restored = LoopDetector.fromJSON(JSON.parse(JSON.stringify(detector)));
    expect(restored.toJSON()).toEqual(detector.toJSON());
    expect(restored.get('d')?.depth).toBe(3);
    expect(
      refusal(() => restored.checkNewTask('e', 'z', 'w', { parentTaskId: 'd' })).loopType,
    ).toBe('depth');
    expect(
      refusal(() => restored.checkNewTask('f', 'x', 'v', { createdByTaskId: 'c' })).loopType,
    ).toBe('identity');
  });
});

describe('pure rules over database rows', () => {
  const rows = [
    { taskId: 'root', agentId: 'a', taskType: 'plan', depth: 0 },
    {
      taskId: 'mid',
      agentId: 'b',
      taskType: 'build',
      parentTaskId: 'root',
      createdByTaskId: 'root',
      depth: 1,
    },
  ];

  it('decides like the detector', () => {
    expect(
      evaluateNewTask({ taskId: 'leaf', agentId: 'c', taskType: 'x', parentTaskId: 'mid' }, rows, {
        maxDepth: 5,
      }),
    ).toEqual({
      ok: true,
      depth: 2,
    });
    const identity = evaluateNewTask(
      { taskId: 'leaf', agentId: 'a', taskType: 'plan', createdByTaskId: 'mid' },
      rows,
      { maxDepth: 5 },
    );
    expect(identity.ok === false && identity.error.loopType).toBe('identity');
    const depth = evaluateNewTask(
      { taskId: 'leaf', agentId: 'c', taskType: 'x', parentTaskId: 'mid' },
      rows,
      {
        maxDepth: 1,
      },
    );
    expect(depth.ok === false && [depth.error.depth, depth.error.maxDepth]).toEqual([2, 1]);
  });

  it('trusts stored depths over recomputing them', () => {
    const stored = [{ taskId: 'p', agentId: 'a', taskType: 't', parentTaskId: 'gone', depth: 7 }];
    expect(
      evaluateNewTask({ taskId: 'c', agentId: 'b', taskType: 'u', parentTaskId: 'p' }, stored, {
        maxDepth: 10,
      }),
    ).toEqual({
      ok: true,
      depth: 8,
    });
  });

  it('links rows that point at each other without hanging, and refuses work under them', () => {
    const looped = [
      { taskId: 'x', agentId: 'a', taskType: 't', parentTaskId: 'y' },
      { taskId: 'y', agentId: 'a', taskType: 't', parentTaskId: 'x' },
    ];
    const nodes = linkWorkNodes(looped);
    expect(nodes.get('x')?.parentLoop).toBe(true);
    const decision = evaluateNewTask(
      { taskId: 'n', agentId: 'b', taskType: 'u', parentTaskId: 'x' },
      looped,
      {
        maxDepth: 10,
      },
    );
    expect(decision.ok === false && decision.error.loopType).toBe('cycle');
  });
});
