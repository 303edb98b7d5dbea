import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ADMISSION, BIN, cli, type Run, scratch } from './helpers.js';

// `exec-kernel action` / `action-result` on the built binary, one process per call, as an agent
// loop in a shell makes them.

let dir = '';
let done: () => Promise<void> = async () => {};
beforeEach(async () => {
  ({ dir, done } = await scratch());
  const created = await cli(dir, [
    'task',
    'create',
    't1',
    '--agent-id',
    'a',
    '--type',
    'x',
    ...ADMISSION,
  ]);
  expect(created.status).toBe(0);
});
afterEach(() => done());

/** Runs the CLI with `input` on its standard input. */
function cliWithStdin(args: string[], input: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '', HOME: dir },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('close', (status) => resolve({ status: status ?? 1, stdout, stderr }));
    child.stdin.end(input);
  });
}

const read = (args = '{"path":"a.ts"}') => cli(dir, ['action', 't1', 'read_file', '--args', args]);

describe('exec-kernel action', () => {
  it('allows, warns at warn_at and refuses at block_at, one line each, counting across processes', async () => {
    const runs: Run[] = [];
    for (let i = 0; i < 6; i++) runs.push(await read());
    expect(runs.map((r) => r.status)).toEqual([0, 0, 0, 0, 1, 1]);
    expect(runs[0]?.stdout).toBe('ALLOWED: read_file call 1 of t1 (1 in a row)\n');
    expect(runs[1]).toMatchObject({
      stdout: 'ALLOWED: read_file call 2 of t1 (2 in a row)\n',
      stderr: '',
    });
    expect(runs[2]).toEqual({
      status: 0,
      stdout: 'ALLOWED: read_file call 3 of t1 (3 in a row)\n',
      stderr:
        'WARN: [repeat] Task t1 called read_file with the same arguments 3 times in a row (warning at 3, blocked at 5)\n',
    });
    // A refused call is not recorded: trying again is refused again, at the same count.
    for (const refused of runs.slice(4)) {
      expect(refused).toEqual({
        status: 1,
        stdout: '',
        stderr:
          'DENIED: [repeat] Task t1 called read_file with the same arguments 5 times in a row (blocked at 5)\n',
      });
    }
    // Another call is still allowed, and the refusals are remembered on the task.
    expect((await read('{"path":"b.ts"}')).stdout).toBe(
      'ALLOWED: read_file call 5 of t1 (1 in a row)\n',
    );
    const shown = JSON.parse((await cli(dir, ['task', 'show', 't1', '--json'])).stdout);
    expect(shown.actions).toMatchObject({
      refused: 2,
      lastRefusal: { loopType: 'repeat', count: 5 },
    });
  });

  it('prints the ActionCheck with --json, and the Violation when refused', async () => {
    const first = await cli(dir, ['action', 't1', 'grep', '--args', '{"q":"x"}', '--json']);
    expect(JSON.parse(first.stdout)).toMatchObject({
      taskId: 't1',
      tool: 'grep',
      fingerprint: expect.stringMatching(/^[0-9a-f]{16}$/),
      calls: 1,
      repeats: 1,
      warnings: [],
      exempt: false,
    });
    for (let i = 0; i < 3; i++) await cli(dir, ['action', 't1', 'grep', '--args', '{"q":"x"}']);
    const refused = await cli(dir, ['action', 't1', 'grep', '--args', '{"q":"x"}', '--json']);
    expect(refused.status).toBe(1);
    expect(JSON.parse(refused.stdout)).toMatchObject({
      kind: 'loop_repeat',
      code: 'LOOP_DETECTED',
      taskId: 't1',
      limit: 4,
      observed: 5,
      details: { loopType: 'repeat', tool: 'grep', count: 5, blockAt: 5 },
    });
  });

  it('counts the same call whatever the key order and spacing of its arguments', async () => {
    await read('{"path":"a.ts","limit":10}');
    await read('{ "limit": 10, "path": "a.ts" }');
    const third = await cliWithStdin(
      ['action', 't1', 'read_file', '--args', '-'],
      '{"limit":10,\n"path":"a.ts"}\n',
    );
    expect(third.stdout).toBe('ALLOWED: read_file call 3 of t1 (3 in a row)\n');
    expect(third.stderr).toMatch(/^WARN: \[repeat\] /);
  });

  it('stops a task that gets the same result whatever it tries (no_progress), by text, file or digest', async () => {
    await writeFile(
      join(dir, '.exec-kernel.yml'),
      'actions:\n  no_progress: { warn_at: 2, block_at: 3 }\n',
    );
    const log = join(dir, 'out.log');
    await writeFile(log, 'no match');
    const one = await cli(dir, [
      'action',
      't1',
      'grep',
      '--args',
      '{"q":"a"}',
      '--result',
      'no match',
    ]);
    expect(one.status).toBe(0);
    // Recorded before the tool ran, the result after: a file with the same text is the same result.
    expect((await cli(dir, ['action', 't1', 'grep', '--args', '{"q":"b"}'])).status).toBe(0);
    const second = await cli(dir, ['action-result', 't1', '--result-file', log]);
    expect(second).toEqual({
      status: 0,
      stdout: 'OK: result of grep call 2 of t1 recorded\n',
      stderr:
        'WARN: [no_progress] Task t1 got the same result 2 times in a row, no progress (warning at 2, blocked at 3)\n',
    });
    // A call without a result neither breaks nor extends the run; the third same result is refused.
    expect((await cli(dir, ['action', 't1', 'grep', '--args', '{"q":"c"}'])).status).toBe(0);
    await writeFile(log, 'no match');
    expect(
      (await cli(dir, ['action-result', 't1', '--result-file', log, '--json'])).stdout,
    ).toMatch(/"kind":"loop_no_progress"/);
    const after = await cli(dir, ['action-result', 't1', '--result', 'found it']);
    expect(after.stdout).toBe('OK: result of grep call 3 of t1 recorded\n');
  });

  it('refuses the third same result with the digest the first one gave', async () => {
    await writeFile(join(dir, '.exec-kernel.yml'), 'actions:\n  no_progress: { block_at: 3 }\n');
    const first = JSON.parse(
      (await cli(dir, ['action', 't1', 'run_tests', '--result', 'FAIL 3 tests', '--json'])).stdout,
    );
    await cli(dir, [
      'action',
      't1',
      'edit',
      '--args',
      '{"n":1}',
      '--result-digest',
      first.resultDigest,
    ]);
    const third = await cli(dir, ['action', 't1', 'run_tests', '--result', 'FAIL 3 tests']);
    expect(third).toEqual({
      status: 1,
      stdout: '',
      stderr:
        'DENIED: [no_progress] Task t1 got the same result 3 times in a row, no progress (blocked at 3)\n',
    });
    // A different result is progress.
    expect((await cli(dir, ['action', 't1', 'run_tests', '--result', 'FAIL 2 tests'])).status).toBe(
      0,
    );
  });

  it('takes its rules from the config file: thresholds, rules off, exempt tools', async () => {
    await writeFile(
      join(dir, '.exec-kernel.yml'),
      'actions:\n  repeat: { warn_at: 2, block_at: 3 }\n  window: false\n  exempt_tools: [wait]\n',
    );
    expect((await read()).stderr).toBe('');
    expect((await read()).stderr).toMatch(/^WARN: \[repeat\] .*\(warning at 2, blocked at 3\)\n$/);
    expect((await read()).status).toBe(1);
    for (let i = 0; i < 6; i++) {
      const wait = await cli(dir, ['action', 't1', 'wait', '--args', '{"s":5}']);
      expect(wait.stdout).toBe('ALLOWED: wait is exempt for t1 (not counted)\n');
    }
    const off = await cli(dir, ['action', 't1', 'read_file'], {
      EXEC_KERNEL_ACTIONS_REPEAT: 'false',
    });
    expect(off.status).toBe(0);
    const shown = JSON.parse((await cli(dir, ['config', 'show', '--json'])).stdout);
    expect(shown.config.actions).toEqual({
      repeat: { warn_at: 2, block_at: 3 },
      ping_pong: { warn_at: 3, block_at: 5 },
      window: false,
      no_progress: { warn_at: 6, block_at: 10 },
      exempt_tools: ['wait'],
    });
    const bad = await cli(dir, ['action', 't1', 'x'], { EXEC_KERNEL_ACTIONS_REPEAT_BLOCK_AT: '1' });
    expect(bad).toMatchObject({
      status: 1,
      stderr:
        'ERROR: [config] Invalid config from the environment: EXEC_KERNEL_ACTIONS_REPEAT_BLOCK_AT must be an integer >= 2, got 1\n',
    });
  });

  it('refuses bad input in one line, exit 1, recording nothing', async () => {
    const cases: Array<[string[], RegExp]> = [
      [
        ['action', 't1', 'read_file', '--args', '{bad'],
        /^ERROR: \[invalid_input\] Invalid --args: must be JSON\n$/,
      ],
      [
        ['action', 't1', 'read_file', '--args', 'x'.repeat(70_000)],
        /^ERROR: \[invalid_input\] Invalid --args: must be at most 65536 characters/,
      ],
      [
        ['action', 't1', 'read_file', '--result', 'a', '--result-digest', 'abcdef12'],
        /^ERROR: Give one of --result, --result-file, --result-digest, not 2\. Run 'exec-kernel action --help'/,
      ],
      [
        ['action', 't1', 'read_file', '--result-digest', 'xyz'],
        /^ERROR: \[invalid_input\] Invalid --result-digest: must be 8 to 128 hex digits\n$/,
      ],
      [
        ['action', 't1', 'read_file', '--result-file', join(dir, 'missing.log')],
        /^ERROR: \[invalid_input\] Invalid --result-file: cannot be read \(ENOENT\)\n$/,
      ],
      [
        ['action', 't1', ' bad tool'],
        /^ERROR: \[invalid_input\] Invalid tool name: must not start or end with whitespace\n$/,
      ],
      [['action', 't1'], /^ERROR: Missing arguments: exec-kernel action <task-id> <tool>/],
      [
        ['action', 'nope', 'read_file'],
        /^ERROR: \[not_found\] Task nope not found; create it with 'exec-kernel task create'\n$/,
      ],
      [
        ['action-result', 't1'],
        /^ERROR: Missing one of --result, --result-file, --result-digest\./,
      ],
      [
        ['action-result', 't1', '--result', 'x'],
        /^ERROR: \[invalid_input\] Invalid result: there is no call to attach it to\n$/,
      ],
    ];
    for (const [args, line] of cases) {
      const run = await cli(dir, args);
      expect(run.status, args.join(' ')).toBe(1);
      expect(run.stderr, args.join(' ')).toMatch(line);
      expect(run.stdout).toBe('');
    }
    const deep = `${'['.repeat(300)}${']'.repeat(300)}`;
    const tooDeep = await read(deep);
    expect(tooDeep.status).toBe(1);
    expect(tooDeep.stderr).toMatch(
      /^ERROR: \[invalid_input\] Invalid args: nests deeper than 256 levels\n$/,
    );
    expect((await read()).stdout).toBe('ALLOWED: read_file call 1 of t1 (1 in a row)\n');
  });

  it('stops two calls made in turn (ping_pong) at the fifth cycle', async () => {
    const runs: Run[] = [];
    for (let i = 0; i < 10; i++) {
      runs.push(await cli(dir, ['action', 't1', i % 2 === 0 ? 'read_file' : 'edit_file']));
    }
    expect(runs.map((r) => r.status)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    expect(runs[5]?.stderr).toBe(
      'WARN: [ping_pong] Task t1 repeated the cycle read_file -> edit_file 3 times (warning at 3, blocked at 5)\n',
    );
    expect(runs[9]?.stderr).toBe(
      'DENIED: [ping_pong] Task t1 repeated the cycle read_file -> edit_file 5 times (blocked at 5)\n',
    );
  });

  it('refuses a finished task', async () => {
    await cli(dir, ['task', 'transition', 't1', 'cancelled']);
    const run = await read();
    expect(run).toMatchObject({
      status: 1,
      stderr: 'ERROR: [not_found] Task t1 is cancelled; it records no more actions\n',
    });
  });
});

// Agents calling at once: every call is a read-modify-write of the task's history under the
// store's lock, so N identical concurrent calls give one answer per count, and the block comes at
// block_at whatever the interleaving.
it('gives exactly one answer per count to 12 concurrent identical calls, and blocks at block_at', async () => {
  ({ dir, done } = await scratch());
  await writeFile(
    join(dir, '.exec-kernel.yml'),
    'actions:\n  repeat: { warn_at: 3, block_at: 8 }\n  window: false\n',
  );
  expect(
    (await cli(dir, ['task', 'create', 'shared', '--agent-id', 'a', '--type', 'x', ...ADMISSION]))
      .status,
  ).toBe(0);
  const runs = await Promise.all(
    Array.from({ length: 12 }, () => cli(dir, ['action', 'shared', 'poll', '--args', '{"job":1}'])),
  );
  const allowed = runs.filter((r) => r.status === 0).map((r) => r.stdout);
  const refused = runs.filter((r) => r.status === 1).map((r) => r.stderr);
  expect(allowed.sort()).toEqual(
    Array.from(
      { length: 7 },
      (_, i) => `ALLOWED: poll call ${i + 1} of shared (${i + 1} in a row)\n`,
    ).sort(),
  );
  expect(refused).toEqual(
    Array(5).fill(
      'DENIED: [repeat] Task shared called poll with the same arguments 8 times in a row (blocked at 8)\n',
    ),
  );
  const warned = runs.filter((r) => r.status === 0 && r.stderr.startsWith('WARN: [repeat]'));
  expect(warned).toHaveLength(5); // counts 3 to 7
}, 120_000);
