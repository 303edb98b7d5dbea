import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ADMISSION, BIN, cli, scratch } from './helpers.js';

let dir = '';
let done: () => Promise<void> = async () => {};
beforeEach(async () => {
  ({ dir, done } = await scratch());
});
afterEach(() => done());

// A flag may be given once: a test that wants another type says so instead of the default.
const create = (id: string, ...more: string[]) =>
  cli(dir, [
    'task',
    'create',
    id,
    '--agent-id',
    'agent-1',
    ...(more.includes('--type') ? [] : ['--type', 'feature']),
    ...ADMISSION,
    ...more,
  ]);

describe('task create', () => {
  it('names every missing admission field at once, and creates nothing', async () => {
    const run = await cli(dir, [
      'task',
      'create',
      't1',
      '--agent-id',
      'a',
      '--type',
      'x',
      '--consumer',
      'users',
    ]);
    expect(run).toEqual({
      status: 1,
      stdout: '',
      stderr:
        'DENIED: [admission] Task t1 refused: admission incomplete: missing painPoint, expectedValue, validationPath\n',
    });
    expect((await cli(dir, ['task', 'list'])).stdout).toBe('No tasks.\n');
  });

  it('creates in todo at the right depth, refuses duplicates and loops', async () => {
    expect(await create('epic')).toEqual({
      status: 0,
      stdout: 'CREATED: epic state=todo depth=0\n',
      stderr: '',
    });
    expect((await create('story', '--parent-task-id', 'epic', '--type', 'story')).stdout).toBe(
      'CREATED: story state=todo depth=1\n',
    );
    expect(await create('epic')).toEqual({
      status: 1,
      stdout: '',
      stderr: 'ERROR: [conflict] Task epic already exists\n',
    });
    const loop = await create('epic-again', '--created-by-task-id', 'epic');
    expect(loop.stderr).toBe(
      'DENIED: [identity] Task epic-again re-creates task epic: same agent agent-1 and type feature on its creator chain epic-again -> epic\n',
    );
    await create('deep', '--parent-task-id', 'story', '--type', 'x');
    expect((await cli(dir, ['task', 'list'])).stdout.trim().split('\n')).toHaveLength(3);
  });

  it('respects lifecycle.max_depth and admission.required from the config file', async () => {
    await writeFile(
      join(dir, '.exec-kernel.yml'),
      'lifecycle:\n  max_depth: 1\nadmission:\n  required: [consumer]\n',
    );
    expect(
      (
        await cli(dir, [
          'task',
          'create',
          'a',
          '--agent-id',
          'x',
          '--type',
          'p',
          '--consumer',
          'me',
        ])
      ).status,
    ).toBe(0);
    expect(
      (
        await cli(dir, [
          'task',
          'create',
          'b',
          '--agent-id',
          'x',
          '--type',
          'q',
          '--consumer',
          'me',
          '--parent-task-id',
          'a',
        ])
      ).status,
    ).toBe(0);
    expect(
      (
        await cli(dir, [
          'task',
          'create',
          'c',
          '--agent-id',
          'x',
          '--type',
          'r',
          '--consumer',
          'me',
          '--parent-task-id',
          'b',
        ])
      ).stderr,
    ).toBe('DENIED: [depth] Task c exceeds max depth: depth 2, max 1\n');
  });

  it('refuses a task deeper than its own depth budget (budget.max_depth), creating nothing', async () => {
    await writeFile(join(dir, '.exec-kernel.yml'), 'budget:\n  max_depth: 1\n');
    const make = (id: string, parent?: string) =>
      cli(dir, [
        'task',
        'create',
        id,
        '--agent-id',
        'x',
        '--type',
        id,
        ...ADMISSION,
        ...(parent === undefined ? [] : ['--parent-task-id', parent]),
      ]);
    expect((await make('a')).status).toBe(0);
    expect((await make('b', 'a')).status).toBe(0);
    expect(await make('c', 'b')).toEqual({
      status: 1,
      stdout: '',
      stderr: 'EXCEEDED: [depth] Task c exceeded depth budget: depth 2, max 1\n',
    });
    expect((await cli(dir, ['task', 'show', 'c'])).stderr).toBe(
      'ERROR: [not_found] Task c not found\n',
    );
  });
});

describe('task transition, show and list', () => {
  it('moves along the table, refuses the rest, and shows the history', async () => {
    await create('t1');
    expect(
      await cli(dir, ['task', 'transition', 't1', 'in_progress', '--agent-id', 'agent-1']),
    ).toEqual({
      status: 0,
      stdout: 'OK: t1 todo -> in_progress: Work started\n',
      stderr: '',
    });
    expect(await cli(dir, ['task', 'transition', 't1', 'backlog'])).toEqual({
      status: 1,
      stdout: '',
      stderr: 'INVALID: No valid transition from in_progress to backlog\n',
    });
    await cli(dir, ['task', 'transition', 't1', 'done', '--comment', 'shipped in v2']);
    expect((await cli(dir, ['task', 'transition', 't1', 'todo'])).stderr).toBe(
      'INVALID: Cannot transition from terminal state done\n',
    );
    expect((await cli(dir, ['task', 'transition', 'ghost', 'done'])).stderr).toBe(
      'ERROR: [not_found] Task ghost not found\n',
    );

    const shown = JSON.parse((await cli(dir, ['task', 'show', 't1', '--json'])).stdout);
    expect(shown).toMatchObject({
      taskId: 't1',
      state: 'done',
      stepsTaken: 0,
      depth: 0,
      agentId: 'agent-1',
    });
    expect(
      shown.history.map((h: { from: string; to: string; reason: string }) => [
        h.from,
        h.to,
        h.reason,
      ]),
    ).toEqual([
      ['todo', 'in_progress', 'Work started'],
      ['in_progress', 'done', 'shipped in v2'],
    ]);
    const human = (await cli(dir, ['task', 'show', 't1'])).stdout;
    expect(human).toMatch(/^t1 {2}done\n/);
    expect(human).toContain('in_progress -> done  shipped in v2');
    expect(human).toContain('(closed)');
  });

  it('lists tasks by state and agent', async () => {
    await create('a');
    await create('b');
    await cli(dir, ['task', 'create', 'c', '--agent-id', 'agent-2', '--type', 'x', ...ADMISSION]);
    await cli(dir, ['task', 'transition', 'b', 'blocked']);
    const all = JSON.parse((await cli(dir, ['task', 'list', '--json'])).stdout);
    expect(all.tasks.map((t: { taskId: string }) => t.taskId)).toEqual(['a', 'b', 'c']);
    expect((await cli(dir, ['task', 'list', '--state', 'blocked'])).stdout).toMatch(
      /^b {2}blocked {2}agent-1 {2}feature/,
    );
    expect(
      (await cli(dir, ['task', 'list', '--agent-id', 'agent-2'])).stdout.trim().split('\n'),
    ).toHaveLength(1);
    expect((await cli(dir, ['task', 'list', '--state', 'open'])).stderr).toMatch(
      /^ERROR: --state must be one of/,
    );
  });
});

describe('step', () => {
  it('counts steps against the task and its parent, and counts the one that exceeds', async () => {
    await writeFile(join(dir, '.exec-kernel.yml'), 'budget:\n  max_steps: 5\n');
    await create('parent');
    await create('child', '--parent-task-id', 'parent', '--type', 'sub');
    expect(await cli(dir, ['step', 'child', '--count', '3'])).toEqual({
      status: 0,
      stdout: 'OK: child step 3 of 5 (2 left)\n',
      stderr: '',
    });
    const warn = await cli(dir, ['step', 'child']);
    expect(warn.stderr).toBe(
      'WARN: [steps] Task child has used 80% of its step budget (4 of 5)\nWARN: [steps] Task parent has used 80% of its step budget (4 of 5)\n',
    );
    await cli(dir, ['step', 'parent']);
    const over = await cli(dir, ['step', 'child']);
    expect(over).toEqual({
      status: 1,
      stdout: '',
      stderr: 'EXCEEDED: [steps] Task parent exceeded step budget: 6 steps taken, max 5\n',
    });
    expect(
      JSON.parse((await cli(dir, ['task', 'show', 'child', '--json'])).stdout).stepsTaken,
    ).toBe(5);
    expect(
      JSON.parse((await cli(dir, ['task', 'show', 'parent', '--json'])).stdout).stepsTaken,
    ).toBe(6);
    expect((await cli(dir, ['step', 'nope'])).stderr).toBe(
      "ERROR: [not_found] Task nope not found; create it with 'exec-kernel task create'\n",
    );
    expect((await cli(dir, ['step', 'child', '--count', '0'])).stderr).toBe(
      'ERROR: [invalid_input] Invalid --count: must be at least 1\n',
    );
  });
});

describe('context', () => {
  it('sets, gets and notes, keeping JSON values typed', async () => {
    await create('t1');
    expect((await cli(dir, ['context', 'set', 't1', 'branch', 'fix/login'])).stdout).toBe(
      'OK: t1 context branch="fix/login"\n',
    );
    await cli(dir, ['context', 'set', 't1', 'attempts', '3']);
    expect((await cli(dir, ['context', 'get', 't1', 'attempts'])).stdout).toBe('3\n');
    expect((await cli(dir, ['context', 'get', 't1'])).stdout).toBe(
      'branch="fix/login"\nattempts=3\n',
    );
    expect((await cli(dir, ['context', 'get', 't1', 'nope'])).stderr).toBe(
      "ERROR: [not_found] Task t1 has no context key 'nope'\n",
    );
    expect(
      (await cli(dir, ['context', 'note', 't1', 'the', 'cookie', 'expires', '--author', 'agent-1']))
        .stdout,
    ).toBe('OK: note added to t1\n');
    const shown = JSON.parse((await cli(dir, ['task', 'show', 't1', '--json'])).stdout);
    expect(shown.context).toEqual({ branch: 'fix/login', attempts: 3 });
    expect(shown.notes).toMatchObject([{ text: 'the cookie expires', author: 'agent-1' }]);
    expect((await cli(dir, ['context', 'set', 'ghost', 'k', 'v'])).status).toBe(1);
  });
});

describe('config', () => {
  it('shows the effective config in the file spelling, with env overrides', async () => {
    await writeFile(join(dir, '.exec-kernel.yml'), 'budget:\n  max_steps: 20\n');
    const shown = await cli(dir, ['config', 'show', '--json'], {
      EXEC_KERNEL_IDLE_DEFAULT_TIMEOUT_SECONDS: '60',
    });
    const json = JSON.parse(shown.stdout);
    expect(json.path).toBe(join(dir, '.exec-kernel.yml'));
    expect(json.config.budget.max_steps).toBe(20);
    expect(json.config.idle.default_timeout_seconds).toBe(60);
    expect(json.storePath).toBe(join(dir, '.exec-kernel', 'state.json'));
    const human = (await cli(dir, ['config', 'show'])).stdout;
    expect(human).toContain(`# ${join(dir, '.exec-kernel.yml')}\n`);
    expect(human).toContain('max_steps: 20');
    expect((await cli(dir, ['config', 'validate'])).stdout).toBe(
      `VALID: ${join(dir, '.exec-kernel.yml')}\n`,
    );
  });

  it('reports every problem of a bad file on one line, and every command refuses to run on it', async () => {
    await writeFile(join(dir, '.exec-kernel.yml'), 'budget:\n  max_steps: -1\n  max_step: 3\n');
    const run = await cli(dir, ['config', 'validate']);
    expect(run.status).toBe(1);
    expect(run.stderr.split('\n')).toHaveLength(2);
    expect(run.stderr).toMatch(
      /^ERROR: \[config\] Invalid config .*budget\.max_steps \(2:14\).*budget\.max_step \(3:3\)/,
    );
    expect((await cli(dir, ['step', 't'])).stderr).toMatch(/^ERROR: \[config\]/);
    expect(
      (await cli(dir, ['config', 'validate', '--config', join(dir, 'missing.yml')])).stderr,
    ).toMatch(/^ERROR: \[config\] Config file not found/);
  });
});

describe('every command', () => {
  const commands = [
    ['validate'],
    ['check-loop'],
    ['check-budget'],
    ['sleep'],
    ['wake'],
    ['step'],
    ['task', 'create'],
    ['task', 'transition'],
    ['task', 'show'],
    ['task', 'list'],
    ['context', 'get'],
    ['context', 'set'],
    ['context', 'note'],
    ['config', 'show'],
    ['config', 'validate'],
    ['mcp'],
  ];

  it('prints its usage on --help and exits 0', async () => {
    for (const command of commands) {
      const run = await cli(dir, [...command, '--help']);
      expect(run.status).toBe(0);
      expect(run.stdout.startsWith(`Usage: exec-kernel ${command.join(' ')}`)).toBe(true);
    }
    const top = await cli(dir, ['--help']);
    expect(top.stdout).toMatch(/^Usage: exec-kernel <command>/);
    for (const command of commands) expect(top.stdout).toContain(command.join(' '));
  });

  it('answers bad input with one line on stderr, exit 1, and no stack trace', async () => {
    const bad = [
      ['validate', 'todo'],
      ['validate', 'todo', 'done', 'extra'],
      ['validate', '--frobnicate', 'a', 'b'],
      ['check-budget', 't', '--steps', 'many'],
      ['check-loop', 'a', 'b'],
      ['sleep'],
      ['sleep', '--agent-id', 'a', '--timeout', '0'],
      ['wake', '--agent-id', 'a', '--reason', 'bored'],
      ['task'],
      ['task', 'frob'],
      ['frobnicate'],
      [],
      ['task', 'create', 't', '--type', 'x'],
      ['task', 'create', 't', '--agent-id', 'a', '--type', 'x', '--admission', 'oops'],
      ['step', 't', '--count'],
    ];
    for (const args of bad) {
      const run = await cli(dir, args);
      expect({ args, status: run.status }).toEqual({ args, status: 1 });
      const errorLines = run.stderr.trimEnd().split('\n');
      if (args.length === 0) {
        expect(errorLines[0]).toMatch(/^Usage: exec-kernel/);
      } else {
        expect({ args, errorLines }).toEqual({
          args,
          errorLines: [expect.stringMatching(/^ERROR: /)],
        });
      }
      expect(run.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it('with --json prints the Violation on stdout and one line on stderr', async () => {
    const run = await cli(dir, [
      'check-budget',
      'task-1',
      '--steps',
      '15',
      '--max-steps',
      '10',
      '--json',
    ]);
    expect(run.status).toBe(1);
    expect(run.stderr).toBe(
      'EXCEEDED: [steps] Task task-1 exceeded step budget: 15 steps taken, max 10\n',
    );
    const violation = JSON.parse(run.stdout);
    expect(violation).toMatchObject({
      kind: 'budget_steps',
      code: 'BUDGET_EXCEEDED',
      taskId: 'task-1',
      limit: 10,
      observed: 15,
      message: 'Task task-1 exceeded step budget: 15 steps taken, max 10',
    });
    expect(Date.parse(violation.at)).not.toBeNaN();
    expect(
      JSON.parse((await cli(dir, ['validate', 'todo', 'in_progress', '--json'])).stdout),
    ).toEqual({
      valid: true,
      from: 'todo',
      to: 'in_progress',
      reason: 'Work started',
    });
    expect(JSON.parse((await cli(dir, ['check-loop', 'c', 'a', 't', '--json'])).stdout)).toEqual({
      allowed: true,
      taskId: 'c',
      depth: 0,
    });
  });

  it('prints no colour to a pipe, and colour to a terminal unless NO_COLOR is set', async () => {
    expect((await cli(dir, ['validate', 'todo', 'in_progress'])).stdout).not.toContain('\u001b[');
    let script = '';
    try {
      script = execFileSync('which', ['script']).toString().trim();
    } catch {
      // util-linux `script` gives the child a terminal; without it the terminal half is skipped.
    }
    if (script !== '') {
      const inTerminal = (env: Record<string, string>) =>
        execFileSync(
          script,
          ['-qec', `${process.execPath} ${BIN} validate todo in_progress`, '/dev/null'],
          {
            cwd: dir,
            env: { PATH: process.env.PATH ?? '', ...env },
          },
        ).toString();
      expect(inTerminal({})).toContain('\u001b[32mVALID:\u001b[0m Work started');
      expect(inTerminal({ NO_COLOR: '1' })).not.toContain('\u001b[');
    }
  });
});
