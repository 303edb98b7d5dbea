import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT, BACKENDS, type LiveBackend } from './conformance/backends.js';
import { ADMISSION, cli, exited, lines, start } from './helpers.js';

// One scenario through the real `exec-kernel` binary against every backend (the table in
// conformance/backends.ts). Each step expects one outcome, written once below: the exit code,
// the violation's code and kind from `--json`, and the one line the user reads. A backend that
// answers otherwise fails that step, with both answers in the diff.

/** What a step shows the user. */
interface Outcome {
  exit: number;
  /** The `--json` violation's `code` and `kind` (refusals only). */
  code?: string | undefined;
  kind?: string | undefined;
  /** The one line: stdout on success, stderr on a refusal. */
  line: string;
}

// Each backend's sleep starts at its own moment: the time it ends is the one thing that differs.
const UNTIL = /until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z/g;

describe.each(BACKENDS)('$label (--backend $backend)', (row) => {
  const { backend } = row;
  let b: LiveBackend;
  let sleeper: ChildProcess | undefined;

  beforeAll(async () => {
    b = await row.start();
  }, 600_000);
  afterAll(async () => {
    if (sleeper !== undefined && sleeper.exitCode === null) sleeper.kill('SIGKILL');
    await b?.stop();
  }, 60_000);

  /**
   * Runs one command as the scenario's agent; a refusal is run with `--json` for its code. A
   * task created as `created` is recorded first, so its backend id reads as that name.
   */
  async function outcome(args: string[], refused: boolean, created?: string): Promise<Outcome> {
    const ran = await cli(
      b.dir,
      [...args, '--backend', backend, ...(refused ? ['--json'] : [])],
      b.env,
    );
    const text = (s: string) => b.normalise(s.trim()).replaceAll(UNTIL, 'until <time>');
    if (ran.status === 0 && created !== undefined) b.created(created, ran.stdout.trim());
    if (ran.status === 0) return { exit: 0, line: text(ran.stdout) };
    let violation: { code?: string; kind?: string } = {};
    try {
      violation = JSON.parse(ran.stdout.trim().split('\n').at(-1) ?? '');
    } catch {
      // No violation line: the outcome shows the exit code and the message alone.
    }
    return { exit: ran.status, code: violation.code, kind: violation.kind, line: text(ran.stderr) };
  }

  const create = (name: string, ...flags: string[]) => [
    'task',
    'create',
    name,
    '--agent-id',
    b.agentId,
    ...flags,
  ];

  it('refuses a task without its admission case', async () => {
    expect(await outcome(create('vague', '--type', 'feature'), true)).toEqual({
      exit: 1,
      code: 'TASK_ADMISSION',
      kind: 'admission',
      line: 'DENIED: [admission] Task vague refused: admission incomplete: missing consumer, painPoint, expectedValue, validationPath',
    });
  });

  it('creates a task with a full admission case, in todo', async () => {
    const args = create('plan', '--type', 'plan', '--title', 'Plan Q3', ...ADMISSION);
    const ran = await outcome(args, false, 'plan');
    expect(ran).toEqual({ exit: 0, line: 'CREATED: plan state=todo depth=0' });
  });

  it('refuses a child that re-creates its creator (same agent and type): identity', async () => {
    const args = create(
      'plan-again',
      '--type',
      'plan',
      '--title',
      'Plan Q3',
      '--created-by-task-id',
      b.ref('plan'),
      ...ADMISSION,
    );
    expect(await outcome(args, true)).toEqual({
      exit: 1,
      code: 'LOOP_DETECTED',
      kind: 'loop_identity',
      line: `DENIED: [identity] Task plan-again re-creates task plan: same agent ${AGENT} and type plan on its creator chain plan-again -> plan`,
    });
  });

  it.skipIf(!row.namesIds)('refuses a task that would be its own ancestor: cycle', async () => {
    const args = create('cyc', '--type', 'design', '--parent-task-id', 'cyc', ...ADMISSION);
    expect(await outcome(args, true)).toEqual({
      exit: 1,
      code: 'LOOP_DETECTED',
      kind: 'loop_cycle',
      line: 'DENIED: [cycle] Task cyc would create a cycle: cyc -> cyc',
    });
  });

  it('refuses a move the lifecycle table does not have', async () => {
    expect(await outcome(['task', 'transition', b.ref('plan'), 'done'], true)).toEqual({
      exit: 1,
      code: 'INVALID_TRANSITION',
      kind: 'invalid_transition',
      line: 'INVALID: No valid transition from todo to done',
    });
  });

  it('starts work, then refuses the step past the step budget', async () => {
    expect(await outcome(['task', 'transition', b.ref('plan'), 'in_progress'], false)).toEqual({
      exit: 0,
      line: 'OK: plan todo -> in_progress: Work started',
    });
    // The whole budget is allowed (a limit is the amount allowed); the step after it is not.
    expect(await outcome(['step', b.ref('plan'), '--count', '50'], false)).toEqual({
      exit: 0,
      line: 'OK: plan step 50 of 50 (0 left)',
    });
    expect(await outcome(['step', b.ref('plan')], true)).toEqual({
      exit: 1,
      code: 'BUDGET_EXCEEDED',
      kind: 'budget_steps',
      line: 'EXCEEDED: [steps] Task plan exceeded step budget: 51 steps taken, max 50',
    });
  });

  it('checks tool calls: warns on the third same call, refuses the fifth, takes a result', async () => {
    const args = create('act', '--type', 'feature', '--title', 'Fix the build', ...ADMISSION);
    expect((await outcome(args, false, 'act')).exit).toBe(0);
    expect((await outcome(['task', 'transition', b.ref('act'), 'in_progress'], false)).exit).toBe(
      0,
    );
    /** An allowed call's two streams: the line on stdout, any warning on stderr. */
    const allowed = async (command: string[]) => {
      const ran = await cli(b.dir, [...command, '--backend', backend], b.env);
      const text = (s: string) => b.normalise(s.trim());
      return { exit: ran.status, line: text(ran.stdout), warn: text(ran.stderr) };
    };
    const read = (json: string) => ['action', b.ref('act'), 'read_file', '--args', json];
    const calls = [];
    // Key order and spacing do not make a different call.
    for (const json of [
      '{"path":"a.ts","n":1}',
      '{"n":1,"path":"a.ts"}',
      '{ "path": "a.ts", "n": 1 }',
    ]) {
      calls.push(await allowed(read(json)));
    }
    calls.push(await allowed(read('{"path":"a.ts","n":1}')));
    const warn = (count: number) =>
      `WARN: [repeat] Task act called read_file with the same arguments ${count} times in a row (warning at 3, blocked at 5)`;
    expect(calls).toEqual([
      { exit: 0, line: 'ALLOWED: read_file call 1 of act (1 in a row)', warn: '' },
      { exit: 0, line: 'ALLOWED: read_file call 2 of act (2 in a row)', warn: '' },
      { exit: 0, line: 'ALLOWED: read_file call 3 of act (3 in a row)', warn: warn(3) },
      { exit: 0, line: 'ALLOWED: read_file call 4 of act (4 in a row)', warn: warn(4) },
    ]);
    expect(await outcome(read('{"path":"a.ts","n":1}'), true)).toEqual({
      exit: 1,
      code: 'LOOP_DETECTED',
      kind: 'loop_repeat',
      line: 'DENIED: [repeat] Task act called read_file with the same arguments 5 times in a row (blocked at 5)',
    });
    // The refused call was not recorded: the result is attached to call 4.
    expect(
      await allowed(['action-result', b.ref('act'), '--result', 'export const a = 1;']),
    ).toEqual({
      exit: 0,
      line: 'OK: result of read_file call 4 of act recorded',
      warn: '',
    });
  });

  it('refuses task creation while the agent is asleep on the backend', async () => {
    // The backend is chosen the way an agent's shell chooses it: by the variables it sets.
    sleeper = start(b.dir, ['sleep', '--agent-id', b.agentId, '--timeout', '60'], b.env);
    const [slept = ''] = await lines(sleeper, 1);
    expect(b.normalise(slept)).toBe(`SLEEP:idle agent=${AGENT} reason=no_tasks timeout=60s`);
    const asleep = await outcome(create('late', '--type', 'feature', ...ADMISSION), true);
    await cli(b.dir, ['wake', '--agent-id', b.agentId], b.env);
    expect(await exited(sleeper)).toBe(0);
    expect(asleep).toEqual({
      exit: 1,
      code: 'IDLE_ENFORCED',
      kind: 'idle',
      line: `DENIED: [idle] Agent ${AGENT} is idle until <time>: it may not create tasks while asleep`,
    });
  }, 30_000);
});
