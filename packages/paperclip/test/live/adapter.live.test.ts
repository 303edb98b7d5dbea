import {
  ConflictError,
  IdleEnforcementError,
  InvalidTransitionError,
  KernelError,
  type LoopDetectionError,
} from '@exec-kernel/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PaperclipAdapter } from '../../src/adapter.js';
import { readMarker } from '../../src/marker.js';
import { ADMISSION } from '../admission.js';
import { type Json, type PaperclipServer, startPaperclip } from './paperclip-server.js';

// The adapter against a real Paperclip 2026.916.1 server (see paperclip-server.ts): every rule
// Paperclip itself does not enforce is checked here end to end, and every refusal is shown to
// leave Paperclip untouched.

let server: PaperclipServer;
let alpha: PaperclipAdapter;
let bravo: PaperclipAdapter;
let current: Json; // the issue alpha's run works on

async function refusal<T extends KernelError>(promise: Promise<unknown>): Promise<T> {
  try {
    await promise;
  } catch (e) {
    if (KernelError.is(e)) return e as T;
    throw e;
  }
  throw new Error('expected a refusal');
}

async function issues(): Promise<Json[]> {
  const { body } = await server.board('GET', `/companies/${server.companyId}/issues`);
  return body;
}

async function boardIssue(fields: Record<string, unknown>): Promise<Json> {
  const { status, body } = await server.board(
    'POST',
    `/companies/${server.companyId}/issues`,
    fields,
  );
  expect(status).toBe(201);
  return body;
}

beforeAll(async () => {
  server = await startPaperclip();
  const [a, b] = server.agents as [(typeof server.agents)[0], (typeof server.agents)[0]];
  current = await boardIssue({
    title: 'Alpha current work',
    status: 'todo',
    assigneeAgentId: a.id,
  });
  const alphaRun = await server.issueRun(a.id, current.id);
  alpha = new PaperclipAdapter({
    apiUrl: server.url,
    apiKey: a.apiKey,
    agentId: a.id,
    runId: alphaRun,
    taskId: current.id,
    maxDepth: 3,
  });
  const bravoWork = await boardIssue({
    title: 'Bravo current work',
    status: 'todo',
    assigneeAgentId: b.id,
  });
  const bravoRun = await server.issueRun(b.id, bravoWork.id);
  // Bravo's own issue is done, so its inbox starts empty for the sleep test.
  await server.board('PATCH', `/issues/${bravoWork.id}`, { status: 'done' });
  bravo = PaperclipAdapter.fromEnv({
    PAPERCLIP_API_URL: `${server.url}/api`,
    PAPERCLIP_API_KEY: b.apiKey,
    PAPERCLIP_AGENT_ID: b.id,
    PAPERCLIP_RUN_ID: bravoRun,
  });
}, 600_000);

afterAll(async () => {
  await server?.stop();
});

describe('PaperclipAdapter against a live Paperclip server', () => {
  let task: Json;

  it('creates a task with its admission case, type and creator', async () => {
    const created = await alpha.createTask('Optimize login', 'performance', {
      admission: ADMISSION,
      assignee: server.agents[0]?.id,
      status: 'todo',
    });
    expect(created).toMatchObject({
      title: 'Optimize login',
      status: 'todo',
      depth: 0,
      deduplicated: false,
    });
    expect(created.identifier).toMatch(/^[A-Z]+-\d+$/);
    const { body } = await server.board('GET', `/issues/${created.id}`);
    expect(readMarker(body.description)).toEqual({
      taskType: 'performance',
      createdByTaskId: current.id,
    });
    expect(body.description).toContain('**Pain point:** login page is slow');
    expect(body.createdByAgentId).toBe(alpha.agentId);
    task = body;
  });

  it('surfaces Paperclip de-duplicating a same-title create', async () => {
    const again = await alpha.createTask('optimize   LOGIN', 'performance', {
      admission: ADMISSION,
      createdByTaskId: undefined,
      assignee: server.agents[0]?.id,
      status: 'todo',
    });
    expect(again).toMatchObject({
      id: task.id,
      deduplicated: true,
      deduplicationReason: 'recent_open_title',
    });
  });

  it('refuses a looping subtask with nothing written to Paperclip', async () => {
    const before = (await issues()).length;
    const identity = await refusal<LoopDetectionError>(
      alpha.createTask('Optimize login', 'performance', {
        admission: ADMISSION,
        createdByTaskId: task.id,
      }),
    );
    expect(identity.loopType).toBe('identity');
    expect(identity.chain).toEqual(['Optimize login', task.identifier]);

    const child = await alpha.createTask('Profile the login query', 'analysis', {
      admission: ADMISSION,
      parentTaskId: task.id,
    });
    const grandchild = await alpha.createTask('Index the sessions table', 'change', {
      admission: ADMISSION,
      parentTaskId: child.id,
    });
    const great = await alpha.createTask('Benchmark the index', 'bench', {
      admission: ADMISSION,
      parentTaskId: grandchild.id,
    });
    expect([child.depth, grandchild.depth, great.depth]).toEqual([1, 2, 3]);
    const deep = await refusal<LoopDetectionError>(
      alpha.createTask('One level too deep', 'bench', {
        admission: ADMISSION,
        parentTaskId: great.id,
      }),
    );
    expect([deep.loopType, deep.depth, deep.maxDepth]).toEqual(['depth', 4, 3]);
    expect((await issues()).length).toBe(before + 3);
  });

  it('checks a task out, and walks it through the lifecycle to done', async () => {
    const started = await alpha.transitionTask(task.id, 'in_progress', { comment: 'starting' });
    expect(started).toMatchObject({ from: 'todo', to: 'in_progress', reason: 'Work started' });
    expect(started.issue).toMatchObject({
      status: 'in_progress',
      assigneeAgentId: alpha.agentId,
      checkoutRunId: alpha.runId,
    });
    const done = await alpha.transitionTask(task.id, 'done', { comment: 'p95 down 45%' });
    expect(done.reason).toBe('Work completed');

    const other = await alpha.createTask('Document the login budget', 'docs', {
      admission: ADMISSION,
      status: 'backlog',
    });
    expect(other.status).toBe('backlog');
    expect((await alpha.transitionTask(other.id, 'todo')).reason).toBe('Task ready');
    expect((await alpha.checkout(other.id)).status).toBe('in_progress');
    expect((await alpha.transitionTask(other.id, 'done')).to).toBe('done');
  });

  it('refuses reopening done before any write, though Paperclip would accept it', async () => {
    const before = (await server.board('GET', `/issues/${task.id}`)).body;
    const error = await refusal<InvalidTransitionError>(alpha.transitionTask(task.id, 'todo'));
    expect(error).toBeInstanceOf(InvalidTransitionError);
    expect(error.reason).toBe('Cannot transition from terminal state done');
    const after = (await server.board('GET', `/issues/${task.id}`)).body;
    expect([after.status, after.updatedAt]).toEqual(['done', before.updatedAt]);
  });

  it("gives a second agent's checkout a ConflictError naming the holder", async () => {
    const contended = await alpha.createTask('Fix the session cookie', 'bugfix', {
      admission: ADMISSION,
      assignee: server.agents[0]?.id,
      status: 'todo',
    });
    await alpha.transitionTask(contended.id, 'in_progress');
    const error = await refusal<ConflictError>(bravo.checkout(contended.id));
    expect(error).toBeInstanceOf(ConflictError);
    expect(error.holder).toBe(alpha.agentId);
    const write = await refusal<ConflictError>(bravo.transitionTask(contended.id, 'done'));
    expect(write).toBeInstanceOf(ConflictError);
    expect(
      (await alpha.transitionTask(contended.id, 'blocked', { comment: 'waiting for ops' })).to,
    ).toBe('blocked');
  });

  it('refuses task creation while the agent sleeps', async () => {
    const before = (await issues()).length;
    alpha.sleep({ timeoutSeconds: 60 });
    expect(
      await refusal(alpha.createTask('Speculative cleanup', 'chore', { admission: ADMISSION })),
    ).toBeInstanceOf(IdleEnforcementError);
    expect((await issues()).length).toBe(before);
    alpha.wake();
  });

  it('ends a sleep early when an issue is assigned', async () => {
    expect(await bravo.inbox()).toEqual([]);
    bravo.sleep({ timeoutSeconds: 60 });
    const waiting = bravo.waitForWork({ pollIntervalMs: 200 });
    setTimeout(() => {
      void boardIssue({ title: 'Work for Bravo', status: 'todo', assigneeAgentId: bravo.agentId });
    }, 500);
    const started = Date.now();
    const result = await waiting;
    expect(result.reason).toBe('task_available');
    expect(result.tasks.map((t) => t.title)).toEqual(['Work for Bravo']);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(bravo.idle.isAsleep(bravo.agentId)).toBe(false);
  });
});

describe('task context, notes and steps on a live Paperclip', () => {
  let issue: Json;
  let worker: PaperclipAdapter; // alpha, on a run of its own (a run's writes elsewhere are capped)

  beforeAll(async () => {
    const created = await alpha.createTask('Context for the login work', 'research', {
      admission: ADMISSION,
    });
    // New issues start in todo, unassigned, as a task starts on every backend.
    expect(created.issue).toMatchObject({ status: 'todo', assigneeAgentId: null });
    issue = created.issue;
    await server.board('PATCH', `/issues/${issue.id}`, { assigneeAgentId: alpha.agentId });
    const runId = await server.issueRun(alpha.agentId, issue.id);
    worker = new PaperclipAdapter({
      apiUrl: server.url,
      apiKey: server.agents[0]?.apiKey as string,
      agentId: alpha.agentId,
      runId,
      budget: { maxSteps: 3 },
    });
  }, 60_000);

  it('keeps key/value context in the exec-kernel-context document, revision by revision', async () => {
    expect((await worker.getContext(issue.identifier)).context).toEqual({});
    await worker.setContext(issue.identifier, 'branch', 'fix/login');
    expect(await worker.setContext(issue.id, 'attempts', [1, { ok: false }])).toEqual({
      branch: 'fix/login',
      attempts: [1, { ok: false }],
    });
    const { status, body } = await server.board(
      'GET',
      `/issues/${issue.id}/documents/exec-kernel-context`,
    );
    expect(status).toBe(200);
    expect(body).toMatchObject({
      key: 'exec-kernel-context',
      format: 'markdown',
      latestRevisionNumber: 2,
      createdByAgentId: alpha.agentId,
    });
    expect(body.body).toContain('```json\n{\n  "branch": "fix/login",');

    // Paperclip refuses an update that does not name the latest revision…
    const stale = await server.board('PUT', `/issues/${issue.id}/documents/exec-kernel-context`, {
      format: 'markdown',
      body: 'overwritten',
    });
    expect(stale.status).toBe(409);
    expect(stale.body.details.currentRevisionId).toBe(body.latestRevisionId);
    // …so a writer that read before someone else wrote is refused, and the adapter reads again.
    const human = await server.board('PUT', `/issues/${issue.id}/documents/exec-kernel-context`, {
      format: 'markdown',
      body: body.body.replace('"fix/login"', '"fix/login-2"'),
      baseRevisionId: body.latestRevisionId,
    });
    expect(human.status).toBe(200);
    const outdated = await server.board(
      'PUT',
      `/issues/${issue.id}/documents/exec-kernel-context`,
      {
        format: 'markdown',
        body: 'lost update',
        baseRevisionId: body.latestRevisionId,
      },
    );
    expect(outdated.status).toBe(409);
    await worker.setContext(issue.id, 'attempts', undefined);
    expect((await bravo.getContext(issue.id)).context).toEqual({ branch: 'fix/login-2' });
  });

  it('adds notes as comments and reads them back oldest first', async () => {
    const note = await worker.addNote(issue.identifier, 'cache warmed before measuring');
    expect(note).toMatchObject({ text: 'cache warmed before measuring', author: alpha.agentId });
    await worker.addNote(issue.id, 'second look: p95 still 3 s');
    const { notes } = await worker.getContext(issue.identifier);
    expect(notes.map((n) => n.text)).toEqual([
      'cache warmed before measuring',
      'second look: p95 still 3 s',
    ]);
    const { body } = await server.board('GET', `/issues/${issue.id}/comments`);
    expect(body.map((c: Json) => c.authorAgentId)).toEqual([alpha.agentId, alpha.agentId]);
  });

  it('counts steps in the issue and refuses the one past the budget', async () => {
    expect((await worker.step(issue.identifier, { count: 3 })).remaining).toBe(0);
    const error = await refusal<KernelError>(worker.step(issue.id));
    expect(error.message).toBe(
      `Task ${issue.identifier} exceeded step budget: 4 steps taken, max 3`,
    );
    const { body } = await server.board('GET', `/issues/${issue.id}/documents/exec-kernel-budget`);
    expect(body.body).toContain('"stepsTaken": 4');
  });

  it('sends ids with / ? # % as one path segment: Paperclip finds no such issue', async () => {
    for (const id of [`${issue.identifier}/comments`, `${issue.identifier}?x=1`, 'a#b', '100%']) {
      for (const call of [
        () => worker.getTask(id),
        () => worker.checkout(id),
        () => worker.release(id),
        () => worker.comment(id, 'hi'),
        () => worker.getContext(id),
        () => worker.addNote(id, 'hi'),
      ]) {
        const error = await refusal<KernelError>(call());
        expect([error.code, error.message]).toEqual(['NOT_FOUND', `Issue ${id} not found`]);
      }
    }
  });
});
