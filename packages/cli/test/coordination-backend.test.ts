import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CoordinationClient } from '@exec-kernel/coordination/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMISSION, cli, exited, lines, scratch, start } from './helpers.js';

const ADMIN = 'cli-test-admin-token';
let dir = '';
let done: () => Promise<void> = async () => {};
let server: ChildProcess;
let url = '';
let planner: Record<string, string>;
let worker: Record<string, string>;

/** Starts `exec-kernel serve` on a free port and resolves with its first line. */
async function serve(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ child: ChildProcess; line: string }> {
  const child = start(dir, ['serve', '--port', '0', ...args], env);
  const [line] = await lines(child, 1);
  return { child, line: line as string };
}

function urlOf(line: string): string {
  const match = /^LISTENING: (http:\/\/127\.0\.0\.1:\d+) \(/.exec(line);
  if (match === null) throw new Error(`not a LISTENING line: ${line}`);
  return match[1] as string;
}

beforeAll(async () => {
  ({ dir, done } = await scratch());
  const started = await serve(['--db', `sqlite:${join(dir, 'queue.db')}`], {
    EXEC_KERNEL_COORDINATION_ADMIN_TOKEN: ADMIN,
  });
  server = started.child;
  url = urlOf(started.line);
  expect(started.line).toBe(`LISTENING: ${url} (sqlite:${join(dir, 'queue.db')})`);
  const admin = new CoordinationClient({ url, token: ADMIN });
  const env = async (id: string) => ({
    EXEC_KERNEL_COORDINATION_URL: url,
    EXEC_KERNEL_COORDINATION_TOKEN: (await admin.registerAgent(id)).token,
  });
  planner = await env('planner');
  worker = await env('worker');
});
afterAll(async () => {
  if (server.exitCode === null) server.kill('SIGKILL');
  await done();
});

describe('task commands on a coordination service, chosen by EXEC_KERNEL_COORDINATION_URL', () => {
  it('enqueues, claims, steps, moves, shows and lists tasks, refusing what the rules refuse', async () => {
    const created = await cli(
      dir,
      ['task', 'create', 'epic', '--type', 'plan', '--title', 'Speed up login', ...ADMISSION],
      planner,
    );
    expect(created).toEqual({
      status: 0,
      stdout: 'CREATED: epic state=todo depth=0\n',
      stderr: '',
    });
    const again = await cli(
      dir,
      ['task', 'create', 'epic', '--type', 'plan', ...ADMISSION],
      planner,
    );
    expect(again).toMatchObject({
      status: 1,
      stderr: expect.stringMatching(/^ERROR: \[.+\] Task epic already exists/),
    });

    const looping = await cli(
      dir,
      ['task', 'create', 'epic-2', '--type', 'plan', '--created-by-task-id', 'epic', ...ADMISSION],
      planner,
    );
    expect(looping).toEqual({
      status: 1,
      stdout: '',
      stderr:
        'DENIED: [identity] Task epic-2 re-creates task epic: same agent planner and type plan on its creator chain epic-2 -> epic\n',
    });
    const unjustified = await cli(dir, ['task', 'create', 'vague', '--type', 'idea'], planner);
    expect(unjustified.status).toBe(1);
    expect(unjustified.stderr).toMatch(/^DENIED: \[admission\] /);

    const claimed = await cli(dir, ['task', 'claim', '--type', 'plan'], worker);
    expect(claimed.stdout).toMatch(/^CLAIMED: epic type=plan lease=\S+ until=\S+\n$/);
    expect((await cli(dir, ['task', 'claim'], worker)).stdout).toBe('No task.\n');

    expect((await cli(dir, ['step', 'epic', '--count', '2'], worker)).stdout).toBe(
      'OK: epic step 2 of 50 (48 left)\n',
    );
    const foreign = await cli(dir, ['step', 'epic'], planner);
    expect(foreign.status).toBe(1);
    expect(foreign.stderr).toContain('Task epic is leased by worker, not planner');

    const shown = await cli(dir, ['task', 'show', 'epic', '--json'], worker);
    expect(JSON.parse(shown.stdout)).toMatchObject({
      id: 'epic',
      state: 'in_progress',
      stepsTaken: 2,
      leaseOwner: 'worker',
    });

    expect((await cli(dir, ['task', 'transition', 'epic', 'done'], worker)).stdout).toBe(
      'OK: epic in_progress -> done: Work completed\n',
    );
    expect(await cli(dir, ['task', 'transition', 'epic', 'todo'], worker)).toEqual({
      status: 1,
      stdout: '',
      stderr: 'INVALID: Cannot transition from terminal state done\n',
    });
    const listed = await cli(dir, ['task', 'list', '--state', 'done'], planner);
    expect(listed.stdout).toBe('epic  done  planner  plan  depth=0  Speed up login\n');
  }, 60_000);

  it('stops a task at its step budget with the seed refusal line', async () => {
    await cli(dir, ['task', 'create', 'tight', '--type', 'bench', ...ADMISSION], planner);
    const holder = await cli(dir, ['task', 'checkout', 'tight'], worker);
    expect(holder.stdout).toMatch(/^OK: tight checked out \(in_progress, lease \S+ until \S+\)\n$/);
    const taken = await cli(dir, ['task', 'checkout', 'tight'], planner);
    expect(taken.status).toBe(1);
    expect(taken.stderr).toContain('worker');
    const over = await cli(dir, ['step', 'tight', '--count', '51'], worker);
    expect(over).toEqual({
      status: 1,
      stdout: '',
      stderr: 'EXCEEDED: [steps] Task tight exceeded step budget: 51 steps taken, max 50\n',
    });
    const shown = JSON.parse((await cli(dir, ['task', 'show', 'tight', '--json'], planner)).stdout);
    expect(shown.state).toBe('blocked');
  }, 30_000);

  it('gives a released task back to the queue', async () => {
    await cli(dir, ['task', 'create', 'handback', '--type', 'review', ...ADMISSION], planner);
    await cli(dir, ['task', 'claim', '--type', 'review'], worker);
    expect((await cli(dir, ['task', 'release', 'handback'], worker)).stdout).toBe(
      'OK: handback released (todo)\n',
    );
    expect((await cli(dir, ['task', 'claim', '--type', 'review'], planner)).stdout).toMatch(
      /^CLAIMED: handback /,
    );
  });

  it('says in one line what is missing when the service is not configured or not there', async () => {
    const noToken = await cli(dir, ['task', 'list'], { EXEC_KERNEL_COORDINATION_URL: url });
    expect(noToken.status).toBe(1);
    expect(noToken.stderr).toBe(
      'ERROR: [config] The coordination service is not configured: set EXEC_KERNEL_COORDINATION_TOKEN\n',
    );
    const wrongToken = await cli(dir, ['task', 'list'], {
      ...worker,
      EXEC_KERNEL_COORDINATION_TOKEN: 'nope',
    });
    expect(wrongToken.status).toBe(1);
    expect(wrongToken.stderr).toMatch(
      /^ERROR: \[transport\] GET .*\/v1\/tasks.* failed with status 401/,
    );
    expect(wrongToken.stderr).not.toContain('nope');
    const gone = await cli(dir, ['task', 'list'], {
      ...worker,
      EXEC_KERNEL_COORDINATION_URL: 'http://127.0.0.1:9',
    });
    expect(gone.status).toBe(1);
    expect(gone.stderr.split('\n')).toHaveLength(2);
    const local = await cli(dir, ['task', 'claim'], {});
    expect(local.status).toBe(1);
    expect(local.stderr).toMatch(/^ERROR: task claim needs a task service/);
  }, 30_000);
});

describe('sleep, wake and context on a coordination service', () => {
  it('puts the agent to sleep on the service, where its task creation is refused, until woken', async () => {
    const sleeper = start(dir, ['sleep', '--agent-id', 'planner', '--timeout', '30'], planner);
    const both = lines(sleeper, 2);
    const [slept] = await lines(sleeper, 1);
    expect(slept).toBe('SLEEP:idle agent=planner reason=no_tasks timeout=30s');
    const admin = new CoordinationClient({ url, token: ADMIN });
    expect((await admin.getAgent('planner')).asleep).toBe(true);

    const refused = await cli(
      dir,
      ['task', 'create', 'busywork', '--type', 'x', ...ADMISSION],
      planner,
    );
    expect(refused.status).toBe(1);
    expect(refused.stdout).toBe('');
    // The same line as the local store gives.
    expect(refused.stderr).toMatch(
      /^DENIED: \[idle\] Agent planner is idle until \S+: it may not create tasks while asleep\n$/,
    );
    // The sleep is the service's, not the local store's.
    expect((await cli(dir, ['wake', '--agent-id', 'planner'])).stdout).toBe(
      'OK: agent planner was not asleep\n',
    );

    expect(await cli(dir, ['wake', '--agent-id', 'planner'], planner)).toEqual({
      status: 0,
      stdout: 'WOKE: agent=planner reason=woken\n',
      stderr: '',
    });
    expect(await both).toEqual([slept, 'WAKE: agent=planner reason=woken']);
    expect(await exited(sleeper)).toBe(0);
    expect((await admin.getAgent('planner')).asleep).toBe(false);
    expect(
      (await cli(dir, ['task', 'create', 'after-sleep', '--type', 'x', ...ADMISSION], planner))
        .status,
    ).toBe(0);
  }, 30_000);

  it('ends a sleep on the service at its timeout, and says so as JSON', async () => {
    const run = await cli(
      dir,
      ['sleep', '--agent-id', 'worker', '--timeout', '0.5', '--json'],
      worker,
    );
    expect(run.status).toBe(0);
    const [sleep, wake] = run.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(sleep).toMatchObject({
      event: 'sleep',
      agentId: 'worker',
      reason: 'no_tasks',
      timeoutSeconds: 0.5,
      until: expect.any(String),
    });
    expect(wake).toEqual({ event: 'wake', agentId: 'worker', reason: 'timeout' });
    expect((await cli(dir, ['wake', '--agent-id', 'worker'], worker)).stdout).toBe(
      'OK: agent worker was not asleep\n',
    );
  }, 30_000);

  it('keeps context and notes on the service, where every agent sees them', async () => {
    expect(
      (await cli(dir, ['context', 'set', 'epic', 'branch', 'fix/login'], planner)).stdout,
    ).toBe('OK: epic context branch="fix/login"\n');
    expect(
      (await cli(dir, ['context', 'note', 'epic', 'cache', 'is', 'cold'], worker)).stdout,
    ).toBe('OK: note added to epic\n');
    // Another agent, another process: it reads what the planner wrote.
    expect((await cli(dir, ['context', 'get', 'epic', 'branch'], worker)).stdout).toBe(
      '"fix/login"\n',
    );
    const note = JSON.parse(
      (await cli(dir, ['context', 'note', 'epic', 'second', '--json'], worker)).stdout,
    );
    expect(note).toMatchObject({ taskId: 'epic', note: { text: 'second', author: 'worker' } });
    // Nothing went to the local store.
    const local = await cli(dir, ['context', 'get', 'epic']);
    expect(local.stdout).not.toContain('fix/login');
  });
});

describe('serve', () => {
  it('keeps its admin token beside the database and its tasks across a graceful restart', async () => {
    const db = join(dir, 'kept', 'queue.db');
    const first = await serve(['--db', `sqlite:${db}`]);
    const tokenFile = join(dir, 'kept', 'coordination.admin-token');
    expect(existsSync(tokenFile)).toBe(true);
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    const token = readFileSync(tokenFile, 'utf8').trim();
    const admin = new CoordinationClient({ url: urlOf(first.line), token });
    const agent = (await admin.registerAgent('planner')).token;
    const agentEnv = {
      EXEC_KERNEL_COORDINATION_URL: urlOf(first.line),
      EXEC_KERNEL_COORDINATION_TOKEN: agent,
    };
    expect(
      (await cli(dir, ['task', 'create', 'kept', '--type', 'x', ...ADMISSION], agentEnv)).status,
    ).toBe(0);

    let stdout = '';
    first.child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    first.child.kill('SIGTERM');
    expect(await exited(first.child)).toBe(0);
    expect(stdout).toBe('STOPPED: requests in flight finished; leases kept\n');

    const second = await serve(['--db', `sqlite:${db}`]);
    const again = new CoordinationClient({ url: urlOf(second.line), token });
    expect((await again.getTask('kept')).state).toBe('todo');
    second.child.kill('SIGTERM');
    expect(await exited(second.child)).toBe(0);
  }, 30_000);

  it('refuses a bad flag and a port in use with one line', async () => {
    const bad = await cli(dir, ['serve', '--durability', 'sometimes']);
    expect(bad).toEqual({
      status: 1,
      stdout: '',
      stderr:
        "ERROR: --durability must be normal or full, got 'sometimes'. Run 'exec-kernel serve --help' for usage.\n",
    });
    const port = new URL(url).port;
    const busy = await cli(dir, ['serve', '--db', 'memory', '--port', port]);
    expect(busy.status).not.toBe(0);
    expect(busy.stderr.trim().split('\n')).toHaveLength(1);
    expect(busy.stderr).toContain(port);
  }, 30_000);
});
