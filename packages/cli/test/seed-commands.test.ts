import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMISSION, cli, exited, lines, scratch, start } from './helpers.js';

let dir = '';
let done: () => Promise<void> = async () => {};
beforeAll(async () => {
  ({ dir, done } = await scratch());
});
afterAll(() => done());

const STATES = 'backlog, todo, in_progress, in_review, blocked, done, cancelled';

describe('validate', () => {
  it('prints VALID with the reason on stdout and exits 0', async () => {
    expect(await cli(dir, ['validate', 'todo', 'in_progress'])).toEqual({
      status: 0,
      stdout: 'VALID: Work started\n',
      stderr: '',
    });
  });

  it('prints INVALID with the reason on stderr and exits 1', async () => {
    expect(await cli(dir, ['validate', 'todo', 'done'])).toEqual({
      status: 1,
      stdout: '',
      stderr: 'INVALID: No valid transition from todo to done\n',
    });
    expect((await cli(dir, ['validate', 'done', 'todo'])).stderr).toBe(
      'INVALID: Cannot transition from terminal state done\n',
    );
    expect((await cli(dir, ['validate', 'todo', 'started'])).stderr).toBe(
      `INVALID: Unknown state 'started' (expected one of: ${STATES})\n`,
    );
  });
});

describe('check-loop', () => {
  it('allows a child of an unknown parent at depth 1', async () => {
    expect(
      await cli(dir, [
        'check-loop',
        'child-1',
        'agent-1',
        'feature',
        '--parent-task-id',
        'parent-1',
      ]),
    ).toEqual({
      status: 0,
      stdout: 'ALLOWED: depth=1\n',
      stderr: '',
    });
  });

  it('denies a cycle and a depth past --max-depth from flags alone', async () => {
    expect(await cli(dir, ['check-loop', 'a', 'agent-1', 'x', '--parent-task-id', 'a'])).toEqual({
      status: 1,
      stdout: '',
      stderr: 'DENIED: [cycle] Task a would create a cycle: a -> a\n',
    });
    expect(
      (
        await cli(dir, [
          'check-loop',
          'c',
          'agent-1',
          'x',
          '--parent-task-id',
          'p',
          '--max-depth',
          '0',
        ])
      ).stderr,
    ).toBe('DENIED: [depth] Task c exceeds max depth: depth 1, max 0\n');
  });

  it('uses the stored graph for tasks it knows, and registers nothing', async () => {
    const { dir: own, done: cleanup } = await scratch();
    try {
      expect(
        (
          await cli(own, [
            'task',
            'create',
            'plan-1',
            '--agent-id',
            'planner',
            '--type',
            'plan',
            ...ADMISSION,
          ])
        ).status,
      ).toBe(0);
      const denied = await cli(own, [
        'check-loop',
        'plan-2',
        'planner',
        'plan',
        '--created-by-task-id',
        'plan-1',
      ]);
      expect(denied.status).toBe(1);
      expect(denied.stderr).toBe(
        'DENIED: [identity] Task plan-2 re-creates task plan-1: same agent planner and type plan on its creator chain plan-2 -> plan-1\n',
      );
      expect(
        (
          await cli(own, [
            'check-loop',
            'story',
            'planner',
            'feature',
            '--parent-task-id',
            'plan-1',
          ])
        ).stdout,
      ).toBe('ALLOWED: depth=1\n');
      expect((await cli(own, ['task', 'show', 'story'])).stderr).toBe(
        'ERROR: [not_found] Task story not found\n',
      );
    } finally {
      await cleanup();
    }
  });
});

describe('check-budget', () => {
  it('prints the seed lines for flags', async () => {
    expect(await cli(dir, ['check-budget', 'task-1', '--steps', '5', '--max-steps', '10'])).toEqual(
      {
        status: 0,
        stdout: 'OK: 5 steps, 0s elapsed (max 10 steps, 1800s)\n',
        stderr: '',
      },
    );
    expect(
      await cli(dir, ['check-budget', 'task-1', '--steps', '15', '--max-steps', '10']),
    ).toEqual({
      status: 1,
      stdout: '',
      stderr: 'EXCEEDED: [steps] Task task-1 exceeded step budget: 15 steps taken, max 10\n',
    });
    expect(
      (await cli(dir, ['check-budget', 'task-1', '--steps', '10', '--max-steps', '10'])).status,
    ).toBe(0);
    expect((await cli(dir, ['check-budget', 't', '--elapsed', '1900'])).stderr).toBe(
      'EXCEEDED: [duration] Task t exceeded duration budget: 1900s elapsed, max 1800s\n',
    );
  });

  it('uses the stored steps and limits of a known task, with flags overriding', async () => {
    const { dir: own, done: cleanup } = await scratch();
    try {
      await cli(own, ['task', 'create', 't1', '--agent-id', 'a', '--type', 'x', ...ADMISSION]);
      await cli(own, ['step', 't1', '--count', '3']);
      expect((await cli(own, ['check-budget', 't1'])).stdout).toBe(
        'OK: 3 steps, 0s elapsed (max 50 steps, 1800s)\n',
      );
      expect((await cli(own, ['check-budget', 't1', '--max-steps', '2'])).stderr).toBe(
        'EXCEEDED: [steps] Task t1 exceeded step budget: 3 steps taken, max 2\n',
      );
    } finally {
      await cleanup();
    }
  });
});

describe('sleep and wake', () => {
  it('blocks until the timeout, then prints WAKE reason=timeout', async () => {
    const started = Date.now();
    const run = await cli(dir, ['sleep', '--timeout', '1', '--agent-id', 'agent-1']);
    expect(run).toEqual({
      status: 0,
      stdout:
        'SLEEP:idle agent=agent-1 reason=no_tasks timeout=1s\nWAKE: agent=agent-1 reason=timeout\n',
      stderr: '',
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
  });

  it('refuses the sleeping agent new tasks, and ends early when another process wakes it', async () => {
    const sleeper = start(dir, [
      'sleep',
      '--timeout',
      '30',
      '--agent-id',
      'worker',
      '--reason',
      'inbox_empty',
    ]);
    expect(await lines(sleeper, 1)).toEqual([
      'SLEEP:idle agent=worker reason=inbox_empty timeout=30s',
    ]);

    const refused = await cli(dir, [
      'task',
      'create',
      'busywork',
      '--agent-id',
      'worker',
      '--type',
      'x',
      ...ADMISSION,
    ]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(
      /^DENIED: \[idle\] Agent worker is idle until \S+: it may not create tasks while asleep\n$/,
    );
    // Another agent is not affected.
    expect(
      (
        await cli(dir, [
          'task',
          'create',
          'real-work',
          '--agent-id',
          'other',
          '--type',
          'x',
          ...ADMISSION,
        ])
      ).status,
    ).toBe(0);

    const started = Date.now();
    expect(await cli(dir, ['wake', '--agent-id', 'worker', '--reason', 'task_available'])).toEqual({
      status: 0,
      stdout: 'WOKE: agent=worker reason=task_available\n',
      stderr: '',
    });
    expect(await exited(sleeper)).toBe(0);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(
      (
        await cli(dir, [
          'task',
          'create',
          'busywork',
          '--agent-id',
          'worker',
          '--type',
          'x',
          ...ADMISSION,
        ])
      ).status,
    ).toBe(0);
    expect((await cli(dir, ['wake', '--agent-id', 'worker'])).stdout).toBe(
      'OK: agent worker was not asleep\n',
    );
  });

  it('prints the WAKE line with the reason another process gave', async () => {
    const sleeper = start(dir, ['sleep', '--timeout', '30', '--agent-id', 'w2', '--json']);
    const [first] = await lines(sleeper, 1);
    expect(JSON.parse(first as string)).toMatchObject({
      event: 'sleep',
      agentId: 'w2',
      reason: 'no_tasks',
      timeoutSeconds: 30,
    });
    let output = '';
    sleeper.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    await cli(dir, ['wake', '--agent-id', 'w2']);
    expect(await exited(sleeper)).toBe(0);
    expect(JSON.parse(output.trim())).toEqual({ event: 'wake', agentId: 'w2', reason: 'woken' });
  });

  it('ends the sleep when interrupted', async () => {
    const sleeper = start(dir, ['sleep', '--timeout', '30', '--agent-id', 'w3']);
    await lines(sleeper, 1);
    sleeper.kill('SIGINT');
    expect(await exited(sleeper)).toBe(130);
    expect((await cli(dir, ['wake', '--agent-id', 'w3'])).stdout).toBe(
      'OK: agent w3 was not asleep\n',
    );
  });
});
