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
