import type { ChildProcess } from 'node:child_process';
import { CoordinationClient } from '@exec-kernel/coordination-client';
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

describe('exec-kernel agent list', () => {
  it('prints each agent by id: awake or asleep, and the tasks it holds under a live lease', async () => {
    const token = (await cli(dir, ['agent', 'add', 'lister-holder'], admin())).stdout.trim();
    const agent = { EXEC_KERNEL_COORDINATION_URL: url, EXEC_KERNEL_COORDINATION_TOKEN: token };
    for (const id of ['h2', 'h1', 'h3']) {
      await cli(dir, ['task', 'create', id, '--type', 'hold', ...ADMISSION], agent);
      await cli(dir, ['task', 'checkout', id], agent);
    }
    await cli(dir, ['task', 'release', 'h3'], agent);
    const sleeperToken = (await cli(dir, ['agent', 'add', 'lister-asleep'], admin())).stdout.trim();
    const sleeper = new CoordinationClient({ url, token: sleeperToken, retries: 0 });
    const asleep = await sleeper.sleep('lister-asleep', { timeoutSeconds: 600 });

    const listed = await cli(dir, ['agent', 'list'], admin());
    expect(listed.status).toBe(0);
    expect(listed.stderr).toBe('');
    const rows = listed.stdout.trim().split('\n');
    expect(rows.filter((l) => l.startsWith('lister-'))).toEqual([
      `lister-asleep asleep until ${asleep.sleepUntil} holding 0: -`,
      'lister-holder awake holding 2: h1,h2',
    ]);
    const ids = rows.map((l) => l.split(' ')[0] as string);
    expect(ids).toEqual([...ids].sort());

    const json = JSON.parse((await cli(dir, ['agent', 'list', '--json'], admin())).stdout);
    expect(json.next).toBeNull();
    expect(json.agents.find((a: { id: string }) => a.id === 'lister-holder')).toMatchObject({
      asleep: false,
      holding: ['h1', 'h2'],
    });
    const page = await cli(dir, ['agent', 'list', '--limit', '1'], admin());
    expect(page.stdout.trim().split('\n')).toEqual([
      rows[0],
      `More: exec-kernel agent list --after ${ids[0]}`,
    ]);
  });

  it('is refused, in one line, without the admin token', async () => {
    const token = (await cli(dir, ['agent', 'add', 'lister-nosy'], admin())).stdout.trim();
    const listed = await cli(dir, ['agent', 'list'], {
      EXEC_KERNEL_COORDINATION_URL: url,
      EXEC_KERNEL_COORDINATION_TOKEN: token,
    });
    expect(listed.status).toBe(1);
    expect(listed.stdout).toBe('');
    expect(listed.stderr).toMatch(/^ERROR: /);
    expect(listed.stderr.split('\n')).toHaveLength(2);
  });
});

describe('exec-kernel events --task', () => {
  it("prints one task's events only, a full page of them, and keeps --follow to that task", async () => {
    const token = (await cli(dir, ['agent', 'add', 'tracer'], admin())).stdout.trim();
    const agent = { EXEC_KERNEL_COORDINATION_URL: url, EXEC_KERNEL_COORDINATION_TOKEN: token };
    for (const id of ['traced', 'other']) {
      await cli(dir, ['task', 'create', id, '--type', 'trace', ...ADMISSION], agent);
    }
    await cli(dir, ['task', 'checkout', 'other'], agent);
    await cli(dir, ['task', 'checkout', 'traced'], agent);
    await cli(dir, ['context', 'set', 'other', 'k', '1'], agent);
    await cli(dir, ['context', 'set', 'traced', 'k', '1'], agent);

    const page = await cli(dir, ['events', '--task', 'traced', '--limit', '3'], admin());
    expect(page.status).toBe(0);
    const shown = page.stdout.trim().split('\n');
    expect(shown).toHaveLength(3);
    for (const line of shown) expect(line).toMatch(/^\d+ \S+Z \S+ task=traced /);
    const json = JSON.parse(
      (await cli(dir, ['events', '--task', 'traced', '--limit', '2', '--json'], admin())).stdout,
    ) as { events: Array<{ seq: number; taskId: string }>; next: number };
    expect(json.events.map((e) => e.taskId)).toEqual(['traced', 'traced']);
    expect(json.next).toBe(json.events[1]?.seq);
    const rest = await cli(
      dir,
      ['events', '--task', 'traced', '--after', String(json.next), '--json'],
      admin(),
    );
    expect(JSON.parse(rest.stdout).events.map((e: { seq: number }) => e.seq)).toEqual(
      shown.slice(2).map((l) => Number(l.split(' ')[0])),
    );
    const bad = await cli(dir, ['events', '--task', ' x'], admin());
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/^ERROR: /);

    const all = await cli(dir, ['events', '--json', '--limit', '1000'], admin());
    const last = (JSON.parse(all.stdout) as { next: number }).next;
    const follow = start(
      dir,
      ['events', '--follow', '--task', 'traced', '--after', String(last)],
      admin(),
    );
    const seen = lines(follow, 1);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await cli(dir, ['context', 'set', 'other', 'k', '2'], agent);
    await cli(dir, ['context', 'set', 'traced', 'k', '2'], agent);
    const [event] = await seen;
    expect(event).toMatch(/^\d+ \S+Z \S+ task=traced /);
    expect(Number(event?.split(' ')[0])).toBe(last + 2);
    follow.kill('SIGINT');
    expect(await exited(follow)).toBe(130);
  });
});
