import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FakeAgent, FakePaperclip } from '../../paperclip/test/fake-paperclip.js';
import { ADMISSION, cli, exited, lines, scratch, start } from './helpers.js';

let fake: FakePaperclip;
let agent: FakeAgent;
let other: FakeAgent;
let env: Record<string, string>;
let dir = '';
let done: () => Promise<void> = async () => {};

beforeAll(async () => {
  fake = await new FakePaperclip().start();
  agent = fake.addAgent();
  other = fake.addAgent();
  ({ dir, done } = await scratch());
});
afterAll(async () => {
  await fake.stop();
  await done();
});
beforeEach(() => {
  // What Paperclip sets in every heartbeat.
  env = {
    PAPERCLIP_API_URL: fake.url,
    PAPERCLIP_API_KEY: agent.apiKey,
    PAPERCLIP_AGENT_ID: agent.id,
    PAPERCLIP_COMPANY_ID: fake.companyId,
    PAPERCLIP_RUN_ID: fake.startRun(agent.id),
  };
});

describe('task commands on Paperclip, chosen by the heartbeat variables', () => {
  it('creates, checks out, moves and lists issues, refusing what the table refuses', async () => {
    const created = await cli(
      dir,
      ['task', 'create', 'Speed up login', '--type', 'performance', ...ADMISSION],
      env,
    );
    expect(created.stderr).toBe('');
    // A task starts in todo, on Paperclip as on every backend.
    expect(created.stdout).toMatch(/^CREATED: KER-\d+ state=todo depth=0\n$/);
    const id = /KER-\d+/.exec(created.stdout)?.[0] as string;
    expect(fake.find(id)?.createdByAgentId).toBe(agent.id);

    expect((await cli(dir, ['task', 'checkout', id], env)).stdout).toBe(
      `OK: ${id} checked out (in_progress)\n`,
    );
    const done = await cli(dir, ['task', 'transition', id, 'done', '--comment', 'p95 halved'], env);
    expect(done.stdout).toBe(`OK: ${id} in_progress -> done: Work completed\n`);
    const writes = fake.writes().length;
    const reopen = await cli(dir, ['task', 'transition', id, 'todo'], env);
    expect(reopen).toEqual({
      status: 1,
      stdout: '',
      stderr: 'INVALID: Cannot transition from terminal state done\n',
    });
    expect(fake.writes()).toHaveLength(writes);

    fake.seedIssue({ title: 'assigned', status: 'todo', assigneeAgentId: agent.id });
    const list = await cli(dir, ['task', 'list', '--state', 'todo'], env);
    expect(list.stdout).toMatch(/^KER-\d+ {2}todo {2}medium {2}assigned\n$/);
    const shown = JSON.parse((await cli(dir, ['task', 'show', id, '--json'], env)).stdout);
    expect(shown).toMatchObject({ identifier: id, status: 'done' });
  });

  it("reports another agent's checkout as a conflict, and releases", async () => {
    const issue = fake.seedIssue({ title: 'contended', status: 'todo' });
    await cli(dir, ['task', 'checkout', issue.identifier], env);
    const theirs = {
      ...env,
      PAPERCLIP_API_KEY: other.apiKey,
      PAPERCLIP_AGENT_ID: other.id,
      PAPERCLIP_RUN_ID: fake.startRun(other.id),
    };
    const conflict = await cli(dir, ['task', 'checkout', issue.identifier], theirs);
    expect(conflict.status).toBe(1);
    expect(conflict.stderr).toBe(
      `ERROR: [conflict] issue ${issue.identifier}: Issue checkout conflict\n`,
    );
    expect((await cli(dir, ['task', 'release', issue.identifier], env)).stdout).toBe(
      `OK: ${issue.identifier} released (todo)\n`,
    );
  });

  it('refuses a looping task and a sleeping agent before anything reaches Paperclip', async () => {
    const plan = await cli(dir, ['task', 'create', 'Plan Q3', '--type', 'plan', ...ADMISSION], env);
    const planId = /KER-\d+/.exec(plan.stdout)?.[0] as string;
    const writes = fake.writes().length;
    const loop = await cli(
      dir,
      ['task', 'create', 'plan q3', '--type', 'plan', '--created-by-task-id', planId, ...ADMISSION],
      env,
    );
    expect(loop.stderr).toMatch(/^DENIED: \[identity\] Task plan q3 re-creates task KER-\d+/);
    const vague = await cli(dir, ['task', 'create', 'Vague', '--type', 'x'], env);
    expect(vague.stderr).toBe(
      'DENIED: [admission] Task Vague refused: admission incomplete: missing consumer, painPoint, expectedValue, validationPath\n',
    );
    await cli(dir, ['sleep', '--agent-id', agent.id, '--timeout', '0.3']);
    expect(fake.writes()).toHaveLength(writes);
  });

  it('keeps a sleep in the local store, and the adapter refuses the sleeping agent', async () => {
    const sleeper = start(dir, ['sleep', '--agent-id', agent.id, '--timeout', '30'], env);
    const both = lines(sleeper, 2);
    const [slept] = await lines(sleeper, 1);
    expect(slept).toBe(`SLEEP:idle agent=${agent.id} reason=no_tasks timeout=30s`);
    const writes = fake.writes().length;
    const refused = await cli(
      dir,
      ['task', 'create', 'Busywork', '--type', 'x', ...ADMISSION],
      env,
    );
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(
      new RegExp(
        `^DENIED: \\[idle\\] Agent ${agent.id} is idle until \\S+: it may not create tasks while asleep\n$`,
      ),
    );
    expect(fake.writes()).toHaveLength(writes);
    expect((await cli(dir, ['wake', '--agent-id', agent.id], env)).stdout).toBe(
      `WOKE: agent=${agent.id} reason=woken\n`,
    );
    expect(await both).toEqual([slept, `WAKE: agent=${agent.id} reason=woken`]);
    expect(await exited(sleeper)).toBe(0);
  });

  it('keeps context in the issue document and notes as its comments', async () => {
    const issue = fake.seedIssue({ title: 'with context', status: 'todo' });
    const id = issue.identifier;
    expect((await cli(dir, ['context', 'set', id, 'branch', 'fix/login'], env)).status).toBe(0);
    expect((await cli(dir, ['context', 'note', id, 'tried', 'the', 'cache'], env)).status).toBe(0);
    const got = JSON.parse((await cli(dir, ['context', 'get', id, '--json'], env)).stdout);
    expect(JSON.stringify(got)).toContain('fix/login');
    expect(fake.find(id)?.comments).toContain('tried the cache');
    expect(fake.find(id)?.documents.has('exec-kernel-context')).toBe(true);
  });

  it('stays local without the variables, and says what a remote-only command needs', async () => {
    expect((await cli(dir, ['task', 'list'])).stdout).toBe('No tasks.\n');
    const local = await cli(dir, ['task', 'checkout', 'x']);
    expect(local.stderr).toMatch(/^ERROR: task checkout needs a task service/);
    const partial = await cli(dir, ['task', 'list', '--backend', 'paperclip'], {
      PAPERCLIP_API_KEY: 'pcp_x',
    });
    expect(partial.stderr).toBe(
      'ERROR: [config] Paperclip is not configured: set PAPERCLIP_API_URL, PAPERCLIP_AGENT_ID\n',
    );
  });
});
