import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMISSION, cli, exited, lines, scratch, start } from './helpers.js';

// The operator's commands against a real `exec-kernel serve`, run as processes: agents, the
// escalation queue and the event log, from a shell.

const ADMIN = 'cli-operator-admin-token';
let dir = '';
let done: () => Promise<void> = async () => {};
let server: ChildProcess;
let url = '';
const admin = () => ({ EXEC_KERNEL_COORDINATION_URL: url, EXEC_KERNEL_COORDINATION_TOKEN: ADMIN });

beforeAll(async () => {
  ({ dir, done } = await scratch());
  server = start(dir, ['serve', '--port', '0', '--db', 'memory'], {
    EXEC_KERNEL_COORDINATION_ADMIN_TOKEN: ADMIN,
  });
  const [line] = await lines(server, 1);
  url = /^LISTENING: (http:\/\/127\.0\.0\.1:\d+) /.exec(line as string)?.[1] as string;
});
afterAll(async () => {
  if (server.exitCode === null) server.kill('SIGKILL');
  await done();
});

describe('exec-kernel agent add', () => {
  it('prints the new token alone, and the token works for that agent', async () => {
    const added = await cli(dir, ['agent', 'add', 'worker-1'], admin());
    expect(added.status).toBe(0);
    expect(added.stderr).toBe('');
    expect(added.stdout).toMatch(/^\S+\n$/);
    const token = added.stdout.trim();
    const created = await cli(dir, ['task', 'create', 'a1', '--type', 'build', ...ADMISSION], {
      EXEC_KERNEL_COORDINATION_URL: url,
      EXEC_KERNEL_COORDINATION_TOKEN: token,
    });
    expect(created).toEqual({ status: 0, stdout: 'CREATED: a1 state=todo depth=0\n', stderr: '' });

    // Adding it again rotates the token: the old one is refused.
    const rotated = await cli(dir, ['agent', 'add', 'worker-1', '--json'], admin());
    expect(JSON.parse(rotated.stdout)).toEqual({ agentId: 'worker-1', token: expect.any(String) });
    const old = await cli(dir, ['task', 'list'], {
      EXEC_KERNEL_COORDINATION_URL: url,
      EXEC_KERNEL_COORDINATION_TOKEN: token,
    });
    expect(old.status).toBe(1);
    expect(old.stderr).toMatch(/^ERROR: /);
  });

  it('is refused, in one line, without the admin token', async () => {
    const added = await cli(dir, ['agent', 'add', 'intruder'], {
      EXEC_KERNEL_COORDINATION_URL: url,
      EXEC_KERNEL_COORDINATION_TOKEN: 'not-the-admin',
    });
    expect(added.status).toBe(1);
    expect(added.stdout).toBe('');
    expect(added.stderr.split('\n')).toHaveLength(2);
    expect(added.stderr).toMatch(/^ERROR: /);
  });
});

describe('exec-kernel escalation', () => {
  it('lists a refusal as it was escalated, then acknowledges and resolves it', async () => {
    const token = (await cli(dir, ['agent', 'add', 'looper'], admin())).stdout.trim();
    const agent = { EXEC_KERNEL_COORDINATION_URL: url, EXEC_KERNEL_COORDINATION_TOKEN: token };
    await cli(dir, ['task', 'create', 'l1', '--type', 'plan', ...ADMISSION], agent);
    const refused = await cli(
      dir,
      ['task', 'create', 'l2', '--type', 'plan', '--created-by-task-id', 'l1', ...ADMISSION],
      agent,
    );
    expect(refused.status).toBe(1);

    const listed = await cli(dir, ['escalation', 'list', '--status', 'open'], admin());
    expect(listed.status).toBe(0);
    const line = listed.stdout.split('\n').find((l) => l.includes('task=l2')) as string;
    expect(line).toMatch(
      /^esc_\S+ open violation\/loop_identity task=l2 agent=looper: Task l2 re-creates task l1: same agent looper and type plan on its creator chain l2 -> l1$/,
    );
    const id = line.split(' ')[0] as string;

    const acked = await cli(dir, ['escalation', 'ack', id], admin());
    expect(acked).toMatchObject({
      status: 0,
      stdout: expect.stringMatching(`^ACKNOWLEDGED: ${id} acknowledged `),
    });
    const resolved = await cli(
      dir,
      ['escalation', 'resolve', id, '--resolution', 'told the planner', '--json'],
      admin(),
    );
    expect(JSON.parse(resolved.stdout).escalation).toMatchObject({
      id,
      status: 'resolved',
      resolution: 'told the planner',
      resolvedBy: 'admin',
    });
    const open = await cli(dir, ['escalation', 'list', '--status', 'open'], admin());
    expect(open.stdout).not.toContain(id);
  });

  it('refuses a bad status and an unknown escalation in one line each', async () => {
    const bad = await cli(dir, ['escalation', 'list', '--status', 'closed'], admin());
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(
      /^ERROR: --status must be open, acknowledged or resolved, got 'closed'/,
    );
    const unknown = await cli(dir, ['escalation', 'ack', 'esc_nope'], admin());
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toMatch(/^ERROR: .*esc_nope/);
    expect(unknown.stderr.split('\n')).toHaveLength(2);
  });
});

describe('exec-kernel events', () => {
  it('prints the log, and with --follow prints new events as they happen until interrupted', async () => {
    const page = await cli(dir, ['events', '--limit', '2'], admin());
    expect(page.status).toBe(0);
    const [first, second] = page.stdout.trim().split('\n');
    expect(first).toMatch(/^1 \S+Z agent\.registered task=- agent=worker-1 \{"rotated":false\}$/);
    expect(second).toMatch(/^2 /);
    const all = await cli(dir, ['events', '--json'], admin());
    const last = (JSON.parse(all.stdout) as { next: number }).next;

    const follow = start(dir, ['events', '--follow', '--after', String(last)], admin());
    const seen = lines(follow, 1);
    // Give the stream a moment to open, then make something happen.
    await new Promise((resolve) => setTimeout(resolve, 300));
    await cli(dir, ['agent', 'add', 'late-comer'], admin());
    const [event] = await seen;
    expect(event).toMatch(
      new RegExp(
        `^${last + 1} \\S+Z agent\\.registered task=- agent=late-comer \\{"rotated":false\\}$`,
      ),
    );
    let out = '';
    follow.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    follow.kill('SIGINT');
    expect(await exited(follow)).toBe(130);
    expect(out).toContain(`STOPPED: after event ${last + 1}`);
  });

  it('ends with an error line when the service goes away under --follow', async () => {
    const own = start(dir, ['serve', '--port', '0', '--db', 'memory'], {
      EXEC_KERNEL_COORDINATION_ADMIN_TOKEN: ADMIN,
    });
    const [line] = await lines(own, 1);
    const ownUrl = /^LISTENING: (http:\/\/127\.0\.0\.1:\d+) /.exec(line as string)?.[1] as string;
    const follow = start(dir, ['events', '--follow'], {
      EXEC_KERNEL_COORDINATION_URL: ownUrl,
      EXEC_KERNEL_COORDINATION_TOKEN: ADMIN,
    });
    let errors = '';
    follow.stderr?.on('data', (chunk: Buffer) => {
      errors += chunk.toString();
    });
    // Once an event has come through, the stream is open: then the service dies under it.
    const first = lines(follow, 1);
    await cli(dir, ['agent', 'add', 'short-lived'], {
      EXEC_KERNEL_COORDINATION_URL: ownUrl,
      EXEC_KERNEL_COORDINATION_TOKEN: ADMIN,
    });
    expect((await first)[0]).toMatch(/^1 .* agent\.registered task=- agent=short-lived /);
    own.kill('SIGKILL');
    expect(await exited(follow)).toBe(1);
    expect(errors).toMatch(
      new RegExp(
        `^ERROR: \\[transport\\] The event stream of ${ownUrl.replace(/\/+$/, '')} ended after event 1: the service stopped or the connection dropped\n$`,
      ),
    );
  });
});
