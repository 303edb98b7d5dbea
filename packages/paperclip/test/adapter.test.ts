import { inspect } from 'node:util';
import {
  ConfigError,
  ConflictError,
  IdleEnforcementError,
  InvalidTransitionError,
  KernelError,
  type LoopDetectionError,
  ManualClock,
  NotFoundError,
  type TaskAdmissionError,
  TransportError,
} from '@exec-kernel/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PaperclipAdapter } from '../src/adapter.js';
import { callbackSink, type Escalation, EscalationHook } from '../src/escalation.js';
import { readMarker } from '../src/marker.js';
import { ADMISSION } from './admission.js';
import { type FakeAgent, FakePaperclip } from './fake-paperclip.js';

let fake: FakePaperclip;
let agent: FakeAgent;
let other: FakeAgent;
let runId: string;

beforeEach(async () => {
  fake = await new FakePaperclip().start();
  agent = fake.addAgent();
  other = fake.addAgent();
  runId = fake.startRun(agent.id);
});
afterEach(() => fake.stop());

function adapterFor(
  a: FakeAgent = agent,
  extra: Partial<ConstructorParameters<typeof PaperclipAdapter>[0]> = {},
) {
  return new PaperclipAdapter({
    apiUrl: fake.url,
    apiKey: a.apiKey,
    agentId: a.id,
    companyId: fake.companyId,
    runId: a === agent ? runId : fake.startRun(a.id),
    retries: 2,
    ...extra,
  });
}

async function refusal<T extends KernelError>(promise: Promise<unknown>): Promise<T> {
  try {
    await promise;
  } catch (e) {
    if (KernelError.is(e)) return e as T;
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('fromEnv', () => {
  it('reads the heartbeat variables and accepts an API URL with or without /api', async () => {
    const adapter = PaperclipAdapter.fromEnv({
      PAPERCLIP_API_URL: `${fake.url}/api/`,
      PAPERCLIP_API_KEY: agent.apiKey,
      PAPERCLIP_AGENT_ID: agent.id,
      PAPERCLIP_RUN_ID: runId,
      PAPERCLIP_TASK_ID: '',
    });
    expect(adapter.runId).toBe(runId);
    expect(adapter.taskId).toBeUndefined();
    // The company comes from /agents/me when not given.
    expect(await adapter.companyId()).toBe(fake.companyId);
    expect(await adapter.inbox()).toEqual([]);
  });

  it('names every missing variable at once', () => {
    let error: unknown;
    try {
      PaperclipAdapter.fromEnv({ PAPERCLIP_API_KEY: 'pcp_x' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toBe(
      'Paperclip is not configured: set PAPERCLIP_API_URL, PAPERCLIP_AGENT_ID',
    );
  });
});

describe('createTask', () => {
  it('creates the issue with the admission case and a marker of type and creator', async () => {
    const adapter = adapterFor();
    const parent = fake.seedIssue({ title: 'Epic' });
    const task = await adapter.createTask('Optimize login', 'performance', {
      admission: ADMISSION,
      parentTaskId: parent.identifier,
      priority: 'high',
      description: 'The login page takes 4 s.',
    });
    expect(task).toMatchObject({
      title: 'Optimize login',
      // Where a task starts on every backend, not Paperclip's backlog.
      status: 'todo',
      depth: 1,
      deduplicated: false,
    });
    const stored = fake.find(task.id);
    expect(stored).toMatchObject({
      parentId: parent.id,
      priority: 'high',
      createdByAgentId: agent.id,
      originRunId: runId,
    });
    expect(stored?.description).toContain('The login page takes 4 s.');
    expect(stored?.description).toContain('- **Pain point:** login page is slow');
    expect(readMarker(stored?.description)).toEqual({ taskType: 'performance' });
  });

  it('records the task being worked on as the creator by default', async () => {
    const current = fake.seedIssue({ title: 'Current work' });
    const adapter = adapterFor(agent, { taskId: current.identifier });
    const task = await adapter.createTask('Follow-up', 'research', { admission: ADMISSION });
    expect(readMarker(fake.find(task.id)?.description)).toEqual({
      taskType: 'research',
      createdByTaskId: current.id,
    });
  });

  it("surfaces Paperclip's de-duplication instead of hiding it", async () => {
    const adapter = adapterFor();
    const first = await adapter.createTask('Fix  the Login', 'bug', { admission: ADMISSION });
    const again = await adapter.createTask('fix the login', 'bug', { admission: ADMISSION });
    expect(again).toMatchObject({
      id: first.id,
      deduplicated: true,
      deduplicationReason: 'recent_open_title',
    });
    const keyed = await adapter.createTask('Other', 'bug', {
      admission: ADMISSION,
      idempotencyKey: 'k1',
    });
    const keyedAgain = await adapter.createTask('Different title', 'bug', {
      admission: ADMISSION,
      idempotencyKey: 'k1',
    });
    expect(keyedAgain).toMatchObject({
      id: keyed.id,
      deduplicated: true,
      deduplicationReason: 'idempotency_key',
    });
    const forced = await adapter.createTask('fix the login', 'bug', {
      admission: ADMISSION,
      allowDuplicate: true,
    });
    expect(forced.deduplicated).toBe(false);
  });

  it('refuses while asleep, before anything is sent', async () => {
    const adapter = adapterFor();
    adapter.sleep({ timeoutSeconds: 60 });
    expect(
      await refusal(adapter.createTask('Busywork', 'x', { admission: ADMISSION })),
    ).toBeInstanceOf(IdleEnforcementError);
    adapter.wake();
    await adapter.createTask('Real work', 'x', { admission: ADMISSION });
    expect(fake.writes()).toHaveLength(1);
  });

  it('names every missing admission field, before anything is sent', async () => {
    const adapter = adapterFor();
    const error = await refusal<TaskAdmissionError>(
      adapter.createTask('Vague', 'x', { admission: { consumer: 'someone', painPoint: ' ' } }),
    );
    expect(error.missing).toEqual(['painPoint', 'expectedValue', 'validationPath']);
    expect(error.message).toBe(
      'Task Vague refused: admission incomplete: missing painPoint, expectedValue, validationPath',
    );
    expect(fake.requests).toEqual([]);
  });

  it('decides sleep and admission before reading the ancestry, and names the task as asked', async () => {
    const adapter = adapterFor();
    adapter.sleep({ timeoutSeconds: 60 });
    const asleep = await refusal<IdleEnforcementError>(
      adapter.createTask('Busywork', 'x', {
        admission: ADMISSION,
        parentTaskId: 'KER-404',
        name: 'busy-1',
      }),
    );
    expect(asleep).toBeInstanceOf(IdleEnforcementError);
    expect(asleep.taskId).toBe('busy-1');
    adapter.wake();
    const vague = await refusal<TaskAdmissionError>(
      adapter.createTask('Vague', 'x', { admission: {}, parentTaskId: 'KER-404', name: 'vague-1' }),
    );
    expect(vague.message).toMatch(/^Task vague-1 refused: admission incomplete: missing consumer/);
    expect(fake.requests).toEqual([]);
  });

  it('creates in backlog when asked to', async () => {
    const task = await adapterFor().createTask('Later', 'x', {
      admission: ADMISSION,
      status: 'backlog',
    });
    expect(fake.find(task.id)?.status).toBe('backlog');
  });

  it('refuses an agent re-creating its own work down the creator chain, and writes nothing', async () => {
    const adapter = adapterFor();
    const plan = await adapter.createTask('Plan the quarter', 'plan', { admission: ADMISSION });
    const research = await adapterFor(other).createTask('Research', 'research', {
      admission: ADMISSION,
      createdByTaskId: plan.identifier,
    });
    const writesBefore = fake.writes().length;
    const error = await refusal<LoopDetectionError>(
      adapter.createTask('plan the  Quarter', 'plan', {
        admission: ADMISSION,
        createdByTaskId: research.identifier,
      }),
    );
    expect(error.loopType).toBe('identity');
    expect(error.chain).toEqual(['plan the  Quarter', research.identifier, plan.identifier]);
    expect(error.message).toContain(`Task plan the  Quarter re-creates task ${plan.identifier}`);
    // A different title on the same chain is different work.
    await adapter.createTask('Plan the hiring', 'plan', {
      admission: ADMISSION,
      createdByTaskId: research.identifier,
    });
    expect(fake.writes()).toHaveLength(writesBefore + 1);
  });

  it('refuses nesting deeper than maxDepth, using the ancestors Paperclip returns', async () => {
    const adapter = adapterFor(agent, { maxDepth: 2 });
    const root = fake.seedIssue({ title: 'root' });
    const mid = fake.seedIssue({ title: 'mid', parentId: root.id });
    const leaf = fake.seedIssue({ title: 'leaf', parentId: mid.id });
    const error = await refusal<LoopDetectionError>(
      adapter.createTask('too deep', 'x', { admission: ADMISSION, parentTaskId: leaf.id }),
    );
    expect([error.loopType, error.depth, error.maxDepth]).toEqual(['depth', 3, 2]);
    expect(
      (await adapter.createTask('ok', 'x', { admission: ADMISSION, parentTaskId: mid.identifier }))
        .depth,
    ).toBe(2);
  });

  it('refuses work under a creator chain that loops', async () => {
    const a = fake.seedIssue({ title: 'a' });
    const b = fake.seedIssue({
      title: 'b',
      description: `<!-- exec-kernel {"taskType":"t","createdByTaskId":"${a.id}"} -->`,
    });
    a.description = `<!-- exec-kernel {"taskType":"u","createdByTaskId":"${b.id}"} -->`;
    const error = await refusal<LoopDetectionError>(
      adapterFor().createTask('new', 'v', { admission: ADMISSION, createdByTaskId: a.id }),
    );
    expect(error.loopType).toBe('cycle');
    expect(fake.writes()).toEqual([]);
  });
});

describe('transitionTask', () => {
  it('maps todo -> in_progress to a checkout, then PATCHes with the run id', async () => {
    const adapter = adapterFor();
    const issue = fake.seedIssue({ title: 't', status: 'todo' });
    const started = await adapter.transitionTask(issue.identifier, 'in_progress', {
      comment: 'on it',
    });
    expect(started).toMatchObject({ from: 'todo', to: 'in_progress', reason: 'Work started' });
    expect(fake.writes().map((r) => `${r.method} ${r.path}`)).toEqual([
      `POST /api/issues/${issue.id}/checkout`,
      `POST /api/issues/${issue.id}/comments`,
    ]);
    expect(fake.find(issue.id)).toMatchObject({
      status: 'in_progress',
      assigneeAgentId: agent.id,
      checkoutRunId: runId,
    });
    const done = await adapter.transitionTask(issue.id, 'done', { comment: 'shipped' });
    expect(done.reason).toBe('Work completed');
    const patch = fake.writes().at(-1);
    expect(patch).toMatchObject({ method: 'PATCH', body: { status: 'done', comment: 'shipped' } });
    expect(patch?.headers['x-paperclip-run-id']).toBe(runId);
    expect(patch?.headers.authorization).toBe(`Bearer ${agent.apiKey}`);
  });

  it('refuses reopening done before any write, though Paperclip would allow it', async () => {
    const adapter = adapterFor();
    const issue = fake.seedIssue({ title: 't', status: 'done' });
    const error = await refusal<InvalidTransitionError>(adapter.transitionTask(issue.id, 'todo'));
    expect(error).toBeInstanceOf(InvalidTransitionError);
    expect(error.reason).toBe('Cannot transition from terminal state done');
    expect(fake.writes()).toEqual([]);
    expect((await refusal(adapter.transitionTask(issue.id, 'nonsense' as never))).message).toMatch(
      /^Unknown state/,
    );
  });

  it('sends an unblock descriptor or blockers for blocked, and a reviewer for in_review', async () => {
    const adapter = adapterFor();
    const a = fake.seedIssue({ title: 'a', status: 'todo' });
    await adapter.transitionTask(a.id, 'blocked', { comment: 'waiting for the API key' });
    expect(fake.writes().at(-1)?.body).toEqual({
      status: 'blocked',
      comment: 'waiting for the API key',
      unblockDescriptor: { owner: { agentId: agent.id }, action: 'waiting for the API key' },
    });
    const b = fake.seedIssue({ title: 'b', status: 'todo' });
    await adapter.transitionTask(b.id, 'blocked', { blockedByIssueIds: [a.id] });
    expect(fake.writes().at(-1)?.body).toEqual({ status: 'blocked', blockedByIssueIds: [a.id] });

    const c = fake.seedIssue({ title: 'c', status: 'todo' });
    await adapter.transitionTask(c.id, 'in_progress');
    await adapter.transitionTask(c.id, 'in_review', { reviewerUserId: 'user-1' });
    expect(fake.find(c.id)).toMatchObject({ status: 'in_review', assigneeUserId: 'user-1' });
  });

  it("surfaces Paperclip's 422 as an InvalidTransitionError with its message", async () => {
    const adapter = adapterFor();
    const c = fake.seedIssue({ title: 'c', status: 'todo' });
    await adapter.transitionTask(c.id, 'in_progress');
    const error = await refusal<InvalidTransitionError>(adapter.transitionTask(c.id, 'in_review'));
    expect(error).toBeInstanceOf(InvalidTransitionError);
    expect([error.from, error.to]).toEqual(['in_progress', 'in_review']);
    expect(error.reason).toBe(
      'Paperclip refused in_progress -> in_review: Agent cannot move issue to in_review without a review path',
    );
  });

  it("turns a write to another run's issue into a ConflictError", async () => {
    const mine = fake.seedIssue({ title: 'x', status: 'todo' });
    await adapterFor().transitionTask(mine.id, 'in_progress');
    const error = await refusal<ConflictError>(adapterFor(other).transitionTask(mine.id, 'done'));
    expect(error).toBeInstanceOf(ConflictError);
    expect(error.message).toBe(
      `issue ${mine.identifier}: Another agent's run owns this task (Run checkout lock).`,
    );
    expect(error.holder).toBe(agent.id);
  });

  it('reports unknown issues as NotFoundError', async () => {
    expect(await refusal(adapterFor().transitionTask('KER-999', 'done'))).toBeInstanceOf(
      NotFoundError,
    );
  });
});

describe('checkout, release, inbox', () => {
  it("gives a ConflictError naming the holder on another agent's issue, without retrying", async () => {
    const issue = fake.seedIssue({ title: 'x', status: 'todo' });
    await adapterFor().checkout(issue.id);
    const before = fake.requests.length;
    const error = await refusal<ConflictError>(adapterFor(other).checkout(issue.id));
    expect(error).toBeInstanceOf(ConflictError);
    expect(error.holder).toBe(agent.id);
    expect(error.resource).toBe(`issue ${issue.id}`);
    expect(fake.requests.length - before).toBe(1);
  });

  it('releases an issue back to todo, and lists the inbox', async () => {
    const adapter = adapterFor();
    const issue = fake.seedIssue({ title: 'x', status: 'todo', assigneeAgentId: agent.id });
    fake.seedIssue({ title: 'finished', status: 'done', assigneeAgentId: agent.id });
    fake.seedIssue({ title: 'someone else', status: 'todo', assigneeAgentId: other.id });
    expect((await adapter.inbox()).map((i) => i.title)).toEqual(['x']);
    await adapter.checkout(issue.id);
    expect((await adapter.release(issue.id)).status).toBe('todo');
    expect(fake.find(issue.id)?.assigneeAgentId).toBeNull();
  });

  it("lists the company's issues by status and assignee", async () => {
    const adapter = adapterFor();
    fake.seedIssue({ title: 'mine', status: 'todo', assigneeAgentId: agent.id });
    fake.seedIssue({ title: 'mine, done', status: 'done', assigneeAgentId: agent.id });
    fake.seedIssue({ title: 'theirs', status: 'todo', assigneeAgentId: other.id });
    expect((await adapter.listTasks()).map((i) => i.title)).toEqual(['mine', 'mine, done']);
    expect((await adapter.listTasks({ status: ['todo'] })).map((i) => i.title)).toEqual(['mine']);
    expect(
      (await adapter.listTasks({ assigneeAgentId: null, status: 'todo' })).map((i) => i.title),
    ).toEqual(['mine', 'theirs']);
  });

  it('needs a run id for writes, as Paperclip does', async () => {
    const adapter = adapterFor(agent, { runId: undefined });
    const issue = fake.seedIssue({ title: 'x', status: 'todo' });
    const error = await refusal<TransportError>(adapter.checkout(issue.id));
    expect(error).toBeInstanceOf(TransportError);
    expect(error.status).toBe(401);
    expect(error.message).toContain('Agent run id required');
  });
});

describe('sleep and waitForWork', () => {
  it('ends the wait as soon as work is assigned, and wakes the agent', async () => {
    const adapter = adapterFor();
    adapter.sleep({ timeoutSeconds: 30 });
    setTimeout(
      () => fake.seedIssue({ title: 'new work', status: 'todo', assigneeAgentId: agent.id }),
      150,
    );
    const started = Date.now();
    const result = await adapter.waitForWork({ pollIntervalMs: 50 });
    expect(result.reason).toBe('task_available');
    expect(result.tasks.map((t) => t.title)).toEqual(['new work']);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(adapter.idle.isAsleep(agent.id)).toBe(false);
  });

  it('ends the wait at the timeout, or at wake()', async () => {
    const clock = new ManualClock(Date.now());
    const adapter = adapterFor(agent, { clock });
    adapter.sleep({ timeoutSeconds: 1 });
    const waiting = adapter.waitForWork({ pollIntervalMs: 20 });
    setTimeout(() => clock.advance(1_000), 60);
    expect(await waiting).toEqual({ reason: 'timeout', tasks: [] });

    adapter.sleep({ timeoutSeconds: 60 });
    const second = adapter.waitForWork({ pollIntervalMs: 20 });
    setTimeout(() => adapter.wake(), 60);
    expect(await second).toEqual({ reason: 'woken', tasks: [] });
    expect(await adapter.waitForWork()).toEqual({ reason: 'woken', tasks: [] });
  });

  it('refuses a poll interval that would hammer the server', async () => {
    const adapter = adapterFor();
    adapter.sleep({ timeoutSeconds: 30 });
    for (const pollIntervalMs of [0, -1, 5, Number.NaN, Number.POSITIVE_INFINITY]) {
      await expect(adapter.waitForWork({ pollIntervalMs })).rejects.toMatchObject({
        code: 'INVALID_INPUT',
        message: 'Invalid pollIntervalMs: must be a number of milliseconds from 10 to 3600000',
      });
    }
    expect(adapter.idle.isAsleep(agent.id)).toBe(true);
  });
});

describe('HTTP behaviour', () => {
  it('retries idempotent reads on 5xx and 429 (honouring Retry-After), but never a write', async () => {
    const adapter = adapterFor();
    const issue = fake.seedIssue({ title: 'x', status: 'todo' });
    fake.fail('GET', /\/issues\//, 503, { times: 2 });
    expect((await adapter.getTask(issue.id)).title).toBe('x');
    expect(fake.requests.filter((r) => r.method === 'GET')).toHaveLength(3);

    fake.fail('GET', /inbox-lite/, 429, { headers: { 'retry-after': '1' } });
    const started = Date.now();
    await adapter.inbox();
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);

    fake.fail('POST', /checkout/, 503);
    const error = await refusal<TransportError>(adapter.checkout(issue.id));
    expect(error.status).toBe(503);
    expect(fake.requests.filter((r) => r.path.endsWith('/checkout'))).toHaveLength(1);
  });

  it('gives up after its retries and reports the status', async () => {
    fake.fail('GET', /\/issues\//, 500, { times: 5 });
    const error = await refusal<TransportError>(adapterFor(agent, { retries: 1 }).getTask('KER-1'));
    expect(error.status).toBe(500);
    expect(fake.requests).toHaveLength(2);
  });

  it('times out a slow call, and reports a server that is gone', async () => {
    const issue = fake.seedIssue({ title: 'x' });
    fake.fail('GET', /\/issues\//, 0, { delayMs: 500, times: 3 });
    const slow = await refusal<TransportError>(
      adapterFor(agent, { timeoutMs: 100, retries: 0 }).getTask(issue.id),
    );
    expect(slow.message).toBe(`GET ${fake.url}/api/issues/${issue.id} failed: timed out`);
    await fake.stop();
    const gone = await refusal<TransportError>(adapterFor(agent, { retries: 0 }).inbox());
    expect(gone.status).toBeUndefined();
    expect(gone.message).toBe(`GET ${fake.url}/api/agents/me/inbox-lite failed: no response`);
    fake = await new FakePaperclip().start();
  });

  it('never lets the API key into an error, its details, its JSON or a log of the adapter', async () => {
    const errors: unknown[] = [];
    const bad = new PaperclipAdapter({
      apiUrl: fake.url,
      apiKey: 'pcp_SECRET_KEY_123',
      agentId: agent.id,
      companyId: fake.companyId,
    });
    errors.push(await refusal(bad.inbox()));
    fake.fail('GET', /inbox-lite/, 500, { times: 3 });
    const secretful = adapterFor();
    errors.push(await refusal(secretful.inbox()));
    await fake.stop();
    errors.push(await refusal(secretful.inbox()));
    fake = await new FakePaperclip().start();
    for (const error of errors) {
      for (const text of [
        (error as Error).message,
        JSON.stringify(error),
        JSON.stringify((error as KernelError).details),
        inspect(error, { depth: 20, showHidden: true }),
      ]) {
        expect(text).not.toContain('pcp_SECRET_KEY_123');
        expect(text).not.toContain(agent.apiKey);
      }
    }
    expect((errors[0] as TransportError).status).toBe(401);
    for (const text of [
      JSON.stringify(secretful),
      inspect(secretful, { depth: 20, showHidden: true }),
    ]) {
      expect(text).not.toContain(agent.apiKey);
    }
  });
});

describe('EscalationHook', () => {
  it('forwards tasks entering blocked and every violation to the sink', async () => {
    const adapter = adapterFor();
    const received: Escalation[] = [];
    const hook = new EscalationHook(callbackSink((e) => void received.push(e)));
    const detach = hook.attach(adapter);
    const issue = fake.seedIssue({ title: 'x', status: 'todo' });
    await adapter.transitionTask(issue.id, 'blocked', { comment: 'need credentials' });
    await refusal(adapter.transitionTask(issue.id, 'done'));
    await refusal(adapter.createTask('Vague', 'x', { admission: {} }));
    await hook.flush();
    expect(received.map((e) => [e.kind, e.taskId, e.violation?.kind])).toEqual([
      ['blocked', issue.identifier, undefined],
      ['violation', issue.identifier, 'invalid_transition'],
      // Before Paperclip names it, a refused task goes by its title.
      ['violation', 'Vague', 'admission'],
    ]);
    expect(received[0]?.comment).toBe('need credentials');
    expect(received[1]?.violation?.agentId).toBe(agent.id);
    detach();
    await refusal(adapter.transitionTask(issue.id, 'done'));
    await hook.flush();
    expect(received).toHaveLength(3);
  });

  it('reports a failing sink to onError and keeps going', async () => {
    const adapter = adapterFor();
    const failures: unknown[] = [];
    const hook = new EscalationHook(
      callbackSink(() => {
        throw new Error('queue down');
      }),
      { onError: (error) => failures.push(error) },
    );
    hook.attach(adapter);
    await refusal(adapter.createTask('Vague', 'x', { admission: {} }));
    await hook.flush();
    expect((failures[0] as Error).message).toBe('queue down');
  });
});
