import { CoordinationClient } from '@exec-kernel/coordination-client';
import {
  BudgetExceededError,
  ConflictError,
  ForbiddenError,
  IdleEnforcementError,
  InvalidTransitionError,
  KernelError,
  type LoopDetectionError,
  NotFoundError,
  TaskAdmissionError,
  type TransportError,
  type Violation,
} from '@exec-kernel/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createApp } from '../src/http/app.js';
import type { InternalErrorReport } from '../src/http/guards.js';
import { type Caller, CoordinationService } from '../src/service.js';
import { MemoryStorage } from '../src/storage/memory.js';
import type { TaskUpdate } from '../src/storage/storage.js';

const ADMIN = 'admin-secret-token';
const ADMISSION = {
  consumer: 'users',
  painPoint: 'slow login',
  expectedValue: 'fast login',
  validationPath: 'bench',
};

let service: CoordinationService;
let app: ReturnType<typeof createApp>;
let admin: CoordinationClient;
let planner: CoordinationClient;
let worker: CoordinationClient;
let tokens: Record<string, string>;
let internalErrors: InternalErrorReport[];

function clientFor(token: string): CoordinationClient {
  return clientAround(token, (_request, pass) => pass());
}

/** A client on the in-process app whose requests `around` sees first, answering or passing on. */
function clientAround(
  token: string,
  around: (request: Request, pass: () => Promise<Response>) => Promise<Response>,
): CoordinationClient {
  return new CoordinationClient({
    url: 'http://coordination.test',
    token,
    retries: 0,
    fetch: (input, init) => {
      const request = input instanceof Request ? input : new Request(input, init);
      return around(request, () => Promise.resolve(app.fetch(request)));
    },
  });
}

async function refusal<T extends Error>(promise: Promise<unknown>): Promise<T> {
  try {
    await promise;
  } catch (e) {
    return e as T;
  }
  throw new Error('expected a refusal');
}

const raw = async (
  path: string,
  init: RequestInit & { token?: string | null | undefined } = {},
): Promise<Response> => {
  const headers = new Headers(init.headers);
  if (init.token !== null) headers.set('authorization', `Bearer ${init.token ?? ADMIN}`);
  if (init.body !== undefined) headers.set('content-type', 'application/json');
  return await app.request(path, { ...init, headers });
};

/** Reads an error body's `error` object. */
const errorOf = async (response: Response): Promise<{ code: string; message: string }> =>
  ((await response.json()) as { error: { code: string; message: string } }).error;

beforeEach(async () => {
  service = new CoordinationService({
    storage: new MemoryStorage(),
    adminToken: ADMIN,
    reapIntervalMs: 50,
    maxDepth: 3,
    budgetDefaults: { maxSteps: 10 },
  });
  await service.start();
  internalErrors = [];
  app = createApp(service, {
    maxBodyBytes: 64 * 1024,
    onInternalError: (report) => internalErrors.push(report),
  });
  admin = clientFor(ADMIN);
  tokens = {};
  for (const id of ['planner', 'worker', 'other'])
    tokens[id] = (await admin.registerAgent(id)).token;
  planner = clientFor(tokens.planner as string);
  worker = clientFor(tokens.worker as string);
});
afterEach(() => service.stop());

describe('a task from enqueue to done', () => {
  it('enqueues, claims with a lease, heartbeats, steps and completes, logging every event', async () => {
    const { task, deduplicated } = await planner.enqueue({
      id: 't1',
      type: 'build',
      title: 'Build it',
      admission: ADMISSION,
      idempotencyKey: 'k1',
    });
    expect(task).toMatchObject({
      id: 't1',
      state: 'todo',
      agentId: 'planner',
      depth: 0,
      attempts: 0,
    });
    expect(deduplicated).toBe(false);
    expect(
      (await planner.enqueue({ type: 'build', admission: ADMISSION, idempotencyKey: 'k1' }))
        .deduplicated,
    ).toBe(true);

    const claimed = await worker.claim({ types: ['build'], leaseSeconds: 30 });
    expect(claimed?.task).toMatchObject({
      id: 't1',
      state: 'in_progress',
      leaseOwner: 'worker',
      attempts: 1,
    });
    const lease = claimed?.lease as { id: string; until: string };
    expect(Date.parse(lease.until)).toBeGreaterThan(Date.now());
    const beat = await worker.heartbeat('t1', { leaseId: lease.id, leaseSeconds: 60 });
    expect(Date.parse(beat.lease.until)).toBeGreaterThan(Date.parse(lease.until));
    expect((await worker.step('t1', { count: 2, leaseId: lease.id })).task.stepsTaken).toBe(2);
    const done = await worker.transition('t1', 'done', { leaseId: lease.id, comment: 'built' });
    expect(done).toMatchObject({ from: 'in_progress', to: 'done', reason: 'Work completed' });
    expect(done.task).toMatchObject({ state: 'done', leaseOwner: null, leaseUntil: null });

    const { events } = await admin.events({ limit: 100 });
    expect(events.filter((e) => e.taskId === 't1').map((e) => e.type)).toEqual([
      'task.enqueued',
      'task.claimed',
      'task.step',
      'task.transitioned',
    ]);
    const page = await admin.events({ after: events[1]?.seq ?? 0, limit: 2 });
    expect(page.events.map((e) => e.seq)).toEqual([events[2]?.seq, events[3]?.seq]);
    expect(page.next).toBe(events[3]?.seq);
  });

  it('claims by priority, then age, within the asked types; 204 when nothing waits', async () => {
    await planner.enqueue({ id: 'low', type: 'build', admission: ADMISSION });
    await planner.enqueue({ id: 'high', type: 'build', priority: 5, admission: ADMISSION });
    await planner.enqueue({ id: 'review', type: 'review', priority: 9, admission: ADMISSION });
    await planner.enqueue({ id: 'later', type: 'build', admission: ADMISSION, state: 'backlog' });
    expect((await worker.claim({ types: ['build'] }))?.task.id).toBe('high');
    expect((await worker.claim({ types: ['build'] }))?.task.id).toBe('low');
    expect(await worker.claim({ types: ['build'] })).toBeUndefined();
    expect((await worker.claim())?.task.id).toBe('review');
    const response = await raw('/v1/tasks/claim', {
      method: 'POST',
      body: '{}',
      token: tokens.worker,
    });
    expect(response.status).toBe(204);
  });

  it('long-polls: a waiting claim returns as soon as a task arrives', async () => {
    const started = Date.now();
    const waiting = worker.claim({ waitSeconds: 10 });
    setTimeout(
      () => void planner.enqueue({ id: 'arrives', type: 'build', admission: ADMISSION }),
      150,
    );
    expect((await waiting)?.task.id).toBe('arrives');
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('claims a named task, and says who holds one already taken', async () => {
    await planner.enqueue({ id: 'named', type: 'build', admission: ADMISSION });
    expect((await worker.claimTask('named')).task.leaseOwner).toBe('worker');
    const taken = await refusal<ConflictError>(
      clientFor(tokens.other as string).claimTask('named'),
    );
    expect(taken).toBeInstanceOf(ConflictError);
    expect(taken.message).toBe(
      'Task named is in_progress, leased by worker; only todo tasks can be claimed',
    );
    expect(await refusal(worker.claimTask('ghost'))).toBeInstanceOf(NotFoundError);
  });

  it('lists tasks by state with a cursor', async () => {
    for (const id of ['a', 'b', 'c'])
      await planner.enqueue({ id, type: 'x', admission: ADMISSION });
    await worker.claimTask('b');
    expect((await admin.listTasks({ state: 'todo' })).tasks.map((t) => t.id)).toEqual(['a', 'c']);
    const first = await admin.listTasks({ limit: 2 });
    expect(first.tasks.map((t) => t.id)).toEqual(['a', 'b']);
    expect((await admin.listTasks({ after: first.next as number })).tasks.map((t) => t.id)).toEqual(
      ['c'],
    );
    expect((await admin.getTask('b')).leaseOwner).toBe('worker');
  });
});

describe('rules enforced server-side, each violation escalated with its Violation record', () => {
  async function lastEscalation() {
    const { escalations } = await admin.listEscalations({ status: 'open' });
    return escalations.at(-1);
  }

  it('refuses an incomplete admission case, naming every missing field', async () => {
    const error = await refusal<TaskAdmissionError & { violation: Violation }>(
      planner.enqueue({ id: 'vague', type: 'x', admission: { consumer: 'someone' } }),
    );
    expect(error).toBeInstanceOf(TaskAdmissionError);
    expect(error.missing).toEqual(['painPoint', 'expectedValue', 'validationPath']);
    expect(error.violation).toMatchObject({
      kind: 'admission',
      agentId: 'planner',
      taskId: 'vague',
    });
    expect(await lastEscalation()).toMatchObject({
      kind: 'violation',
      taskId: 'vague',
      agentId: 'planner',
      violation: { kind: 'admission' },
    });
    expect(await refusal(admin.getTask('vague'))).toBeInstanceOf(NotFoundError);
  });

  it('refuses loops: an agent re-creating its own work, a cycle, and nesting past max depth', async () => {
    await planner.enqueue({ id: 'plan', type: 'plan', title: 'Plan Q3', admission: ADMISSION });
    const identity = await refusal<LoopDetectionError>(
      planner.enqueue({
        id: 'plan-again',
        type: 'plan',
        title: 'plan q3',
        createdById: 'plan',
        admission: ADMISSION,
      }),
    );
    expect([identity.loopType, identity.chain]).toEqual(['identity', ['plan-again', 'plan']]);
    const cycle = await refusal<LoopDetectionError>(
      planner.enqueue({ id: 'self', type: 'x', parentId: 'self', admission: ADMISSION }),
    );
    expect(cycle.loopType).toBe('cycle');
    let parent = 'plan';
    for (let depth = 1; depth <= 3; depth++) {
      const { task } = await planner.enqueue({
        id: `d${depth}`,
        type: `t${depth}`,
        parentId: parent,
        admission: ADMISSION,
      });
      expect(task.depth).toBe(depth);
      parent = task.id;
    }
    const deep = await refusal<LoopDetectionError>(
      planner.enqueue({ id: 'd4', type: 't4', parentId: 'd3', admission: ADMISSION }),
    );
    expect([deep.loopType, deep.depth, deep.maxDepth]).toEqual(['depth', 4, 3]);
    const kinds = (await admin.listEscalations()).escalations.map((e) => e.violation?.kind);
    expect(kinds).toEqual(['loop_identity', 'loop_cycle', 'loop_depth']);
  });

  it('refuses task creation by a sleeping agent until it wakes; a claim wakes it', async () => {
    await planner.sleep('planner', { timeoutSeconds: 60 });
    expect((await planner.getAgent('planner')).asleep).toBe(true);
    const error = await refusal<IdleEnforcementError>(
      planner.enqueue({ type: 'x', admission: ADMISSION }),
    );
    expect(error).toBeInstanceOf(IdleEnforcementError);
    expect((await lastEscalation())?.violation?.kind).toBe('idle');
    expect((await planner.wake('planner')).wasAsleep).toBe(true);
    await planner.enqueue({ id: 'work', type: 'x', admission: ADMISSION });
    await worker.sleep('worker', { timeoutSeconds: 60 });
    await worker.claim();
    expect((await worker.getAgent('worker')).asleep).toBe(false);
  });

  it('moves only along the table: refuses the rest, and escalates blocked tasks', async () => {
    await planner.enqueue({ id: 't', type: 'x', admission: ADMISSION });
    const { lease } = (await worker.claim()) as { lease: { id: string } };
    const invalid = await refusal<InvalidTransitionError>(
      worker.transition('t', 'backlog', { leaseId: lease.id }),
    );
    expect(invalid).toBeInstanceOf(InvalidTransitionError);
    expect(invalid.reason).toBe('No valid transition from in_progress to backlog');
    await worker.transition('t', 'blocked', {
      leaseId: lease.id,
      comment: 'waiting for credentials',
    });
    expect(await lastEscalation()).toMatchObject({
      kind: 'blocked',
      taskId: 't',
      comment: 'waiting for credentials',
    });
    // The lease ended with in_progress: the worker can no longer move it; its owner and the admin can.
    expect(await refusal<ForbiddenError>(worker.transition('t', 'todo'))).toMatchObject({
      code: 'FORBIDDEN',
    });
    expect((await planner.transition('t', 'todo')).reason).toBe('Task unblocked');
    expect((await admin.transition('t', 'blocked')).task.state).toBe('blocked');
    expect((await admin.transition('t', 'todo')).reason).toBe('Task unblocked');
    expect((await admin.transition('t', 'cancelled')).task.state).toBe('cancelled');
    expect((await refusal<InvalidTransitionError>(admin.transition('t', 'todo'))).reason).toBe(
      'Cannot transition from terminal state cancelled',
    );
  });

  it('lets the owner move a task nobody holds, but not start it without a claim', async () => {
    await planner.enqueue({ id: 'later', type: 'x', admission: ADMISSION, state: 'backlog' });
    expect(await worker.claim()).toBeUndefined();
    expect(await refusal<ForbiddenError>(worker.transition('later', 'todo'))).toMatchObject({
      code: 'FORBIDDEN',
    });
    expect((await planner.transition('later', 'todo')).task.state).toBe('todo');
    const start = await refusal<ConflictError>(planner.transition('later', 'in_progress'));
    expect(start).toBeInstanceOf(ConflictError);
    expect(start.message).toBe(
      'Task later starts with a claim (POST /v1/tasks/later/claim), not a transition',
    );
    expect((await worker.claim())?.task.id).toBe('later');
    await worker.transition('later', 'done');
    // The table speaks first, whoever asks: a finished task is refused as finished.
    const reopened = await refusal<InvalidTransitionError>(planner.transition('later', 'todo'));
    expect(reopened.reason).toBe('Cannot transition from terminal state done');
    expect(await lastEscalation()).toMatchObject({
      kind: 'violation',
      taskId: 'later',
      agentId: 'planner',
    });
  });

  it('enforces budgets on the task and its ancestors: the overrun is counted, the task blocked, the violation escalated', async () => {
    await planner.enqueue({
      id: 'parent',
      type: 'plan',
      admission: ADMISSION,
      budget: { maxSteps: 4 },
    });
    await planner.enqueue({
      id: 'child',
      type: 'build',
      parentId: 'parent',
      admission: ADMISSION,
      budget: { maxSteps: 100, maxTokens: 1000 },
    });
    const { lease } = (await worker.claimTask('child')) as { lease: { id: string } };
    const { warnings } = await worker.step('child', { count: 4, leaseId: lease.id });
    expect(warnings).toEqual([{ taskId: 'parent', budgetType: 'steps', fraction: 1 }]);
    const over = await refusal<BudgetExceededError & { violation: Violation }>(
      worker.step('child', { leaseId: lease.id }),
    );
    expect(over).toBeInstanceOf(BudgetExceededError);
    expect([over.taskId, over.observed, over.limit]).toEqual(['parent', 5, 4]);
    expect(over.violation).toMatchObject({ kind: 'budget_steps', limit: 4, observed: 5 });
    expect(await admin.getTask('child')).toMatchObject({
      state: 'blocked',
      stepsTaken: 5,
      leaseOwner: null,
    });
    expect((await admin.getTask('parent')).stepsTaken).toBe(5);
    expect((await lastEscalation())?.violation?.kind).toBe('budget_steps');
    expect(await refusal(worker.usage('child', { tokens: 5 }))).toBeInstanceOf(ConflictError);
  });
});

describe('finishing and claiming in one request', () => {
  it('claims the next task after the transition commits, or gives null when none waits', async () => {
    await planner.enqueue({ id: 'n1', type: 'build', admission: ADMISSION, priority: 1 });
    await planner.enqueue({ id: 'n2', type: 'build', admission: ADMISSION });
    await planner.enqueue({ id: 'n3', type: 'review', admission: ADMISSION });
    const first = (await worker.claim()) as { task: { id: string }; lease: { id: string } };
    expect(first.task.id).toBe('n1');
    const moved = await worker.transition('n1', 'done', {
      leaseId: first.lease.id,
      next: { types: ['build'], leaseSeconds: 5 },
    });
    expect(moved).toMatchObject({ task: { id: 'n1', state: 'done' }, from: 'in_progress' });
    expect(moved.next?.task).toMatchObject({
      id: 'n2',
      state: 'in_progress',
      leaseOwner: 'worker',
    });
    expect(Date.parse(moved.next?.lease.until as string) - Date.now()).toBeLessThanOrEqual(5_000);
    const last = await worker.transition('n2', 'done', {
      leaseId: moved.next?.lease.id as string,
      next: { types: ['build'] },
    });
    expect(last.next).toBeNull();
    // Without `next`, the answer has none.
    const n3 = await worker.claimTask('n3');
    const plain = await worker.transition('n3', 'done', { leaseId: n3.lease.id });
    expect(Object.hasOwn(plain, 'next')).toBe(false);
  });

  it('claims nothing when the transition is refused, and only agents may ask', async () => {
    await planner.enqueue({ id: 'r1', type: 'build', admission: ADMISSION });
    await planner.enqueue({ id: 'r2', type: 'build', admission: ADMISSION });
    const claimed = (await worker.claim()) as { task: { id: string }; lease: { id: string } };
    const refused = await refusal<KernelError>(
      worker.transition('r1', 'todo', { leaseId: claimed.lease.id, next: {} }),
    );
    expect(KernelError.is(refused) && refused.code).toBe('INVALID_TRANSITION');
    expect((await admin.getTask('r2')).state).toBe('todo');
    const asAdmin = await refusal<ForbiddenError>(admin.transition('r1', 'done', { next: {} }));
    expect(asAdmin).toMatchObject({ code: 'FORBIDDEN' });
    expect((await admin.getTask('r1')).state).toBe('in_progress');
  });

  it('finishes a batch and claims the next ones in the same request', async () => {
    for (const id of ['m1', 'm2', 'm3', 'm4', 'm5'])
      await planner.enqueue({ id, type: 'build', admission: ADMISSION });
    const batch = await worker.claimMany({ max: 2 });
    const { results, claims } = await worker.transitionManyThenClaim(
      batch.map((c) => ({ id: c.task.id, to: 'done' as const, leaseId: c.lease.id })),
      { max: 2 },
    );
    expect(results.map((r) => r.ok)).toEqual([true, true]);
    expect(claims.map((c) => c.task.id)).toEqual(['m3', 'm4']);
    expect(new Set(claims.map((c) => c.lease.id)).size).toBe(1);
    const again = await worker.transitionManyThenClaim(
      claims.map((c) => ({ id: c.task.id, to: 'done' as const, leaseId: c.lease.id })),
      { max: 5, types: ['review'] },
    );
    expect(again.claims).toEqual([]);
    expect((await admin.getTask('m5')).state).toBe('todo');
  });

  it('claims after a move decided on the task as read, when no lease is named', async () => {
    for (const id of ['u1', 'u2', 'u3', 'u4'])
      await planner.enqueue({ id, type: 'build', admission: ADMISSION });
    await worker.claimTask('u1');
    const moved = await worker.transition('u1', 'done', { next: {} });
    expect([moved.task.state, moved.next?.task.id]).toEqual(['done', 'u2']);
    const batch = await worker.transitionManyThenClaim(
      [
        { id: 'u2', to: 'done' },
        { id: 'u3', to: 'done' },
      ],
      { max: 3 },
    );
    expect(batch.results.map((r) => r.ok)).toEqual([true, false]);
    // u3 waits and is older, but the request named it.
    expect(batch.claims.map((c) => c.task.id)).toEqual(['u4']);
    expect((await admin.getTask('u3')).state).toBe('todo');
  });

  it('never claims, with a batch, a task the same batch moves after the claim', async () => {
    await planner.enqueue({ id: 'v1', type: 'build', admission: ADMISSION });
    await worker.enqueue({ id: 'mine', type: 'build', admission: ADMISSION, priority: 9 });
    await planner.enqueue({ id: 'v2', type: 'build', admission: ADMISSION });
    const held = await worker.claimTask('v1');
    const { results, claims } = await worker.transitionManyThenClaim(
      [
        { id: 'v1', to: 'done', leaseId: held.lease.id },
        { id: 'mine', to: 'cancelled' },
      ],
      { max: 2 },
    );
    expect(results.map((r) => r.ok)).toEqual([true, true]);
    expect(claims.map((c) => c.task.id)).toEqual(['v2']);
    expect((await admin.getTask('mine')).state).toBe('cancelled');
  });

  it('lets the worker helper take each next task from the finish of the last', async () => {
    for (let i = 0; i < 6; i++)
      await planner.enqueue({ id: `w-${i}`, type: 'build', admission: ADMISSION });
    const seen: string[] = [];
    const handled = await worker.work(
      async (job) => {
        seen.push(job.task.id);
        return 'done';
      },
      { untilIdle: true, waitSeconds: 0 },
    );
    expect(handled).toBe(6);
    expect(seen).toEqual(['w-0', 'w-1', 'w-2', 'w-3', 'w-4', 'w-5']);
    const metrics = await (await app.request('/metrics')).text();
    const requests = (route: string, status = 200) =>
      Number(new RegExp(`route="${route}",status="${status}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
    // One claim to start, six finishes that each brought the next, one empty claim to end.
    expect(requests('/v1/tasks/:id/transition')).toBe(6);
    expect(requests('/v1/tasks/claim') + requests('/v1/tasks/claim', 204)).toBe(2);
  });

  it('gives back a task claimed for the next round when the worker stops', async () => {
    for (const id of ['s1', 's2'])
      await planner.enqueue({ id, type: 'build', admission: ADMISSION });
    const stop = new AbortController();
    // The worker is stopped as the answer to its first finish (which claimed s2) arrives.
    const stopping = clientAround(tokens.worker as string, async (request, pass) => {
      const response = await pass();
      if (request.url.endsWith('/s1/transition')) stop.abort();
      return response;
    });
    const handled = await stopping.work(async () => 'done', {
      signal: stop.signal,
      waitSeconds: 1,
    });
    expect(handled).toBe(1);
    expect((await admin.getTask('s1')).state).toBe('done');
    expect(await admin.getTask('s2')).toMatchObject({
      state: 'todo',
      leaseOwner: null,
      attempts: 1,
    });
  });
});

describe('batches', () => {
  it('claims up to max under one lease, waiting for the first; an empty list when none came', async () => {
    for (const [id, priority] of [
      ['a', 0],
      ['b', 3],
      ['c', 0],
    ] as const) {
      await planner.enqueue({ id, type: 'build', priority, admission: ADMISSION });
    }
    const claims = await worker.claimMany({ max: 2 });
    expect(claims.map((c) => c.task.id)).toEqual(['b', 'a']);
    expect(claims[0]?.lease).toEqual(claims[1]?.lease);
    expect((await worker.claimMany({ max: 5 })).map((c) => c.task.id)).toEqual(['c']);
    expect(await worker.claimMany({ max: 5 })).toEqual([]);
    const waiting = worker.claimMany({ max: 5, waitSeconds: 10 });
    setTimeout(
      () => void planner.enqueue({ id: 'late', type: 'build', admission: ADMISSION }),
      100,
    );
    expect((await waiting).map((c) => c.task.id)).toEqual(['late']);
    const tooMany = await raw('/v1/tasks/claim-many', {
      method: 'POST',
      body: JSON.stringify({ max: 101 }),
      token: tokens.worker,
    });
    expect(tooMany.status).toBe(400);
    expect(await refusal<ForbiddenError>(admin.claimMany({ max: 1 }))).toMatchObject({
      code: 'FORBIDDEN',
    });
  });

  it('applies transitions item by item: a refused one is reported and escalated, the rest go through', async () => {
    for (const id of ['t1', 't2', 't3'])
      await planner.enqueue({ id, type: 'x', admission: ADMISSION });
    await planner.enqueue({ id: 'theirs', type: 'x', admission: ADMISSION, priority: -1 });
    const claims = await worker.claimMany({ max: 3 });
    const lease = claims[0]?.lease.id as string;
    const otherClaim = (await clientFor(tokens.other as string).claim()) as {
      task: { id: string };
    };
    expect(otherClaim.task.id).toBe('theirs');
    const results = await worker.transitionMany([
      { id: 't1', to: 'done', leaseId: lease },
      { id: 't2', to: 'backlog', leaseId: lease },
      { id: 'theirs', to: 'done' },
      { id: 'ghost', to: 'done' },
      { id: 't3', to: 'blocked', leaseId: lease, comment: 'needs a key' },
    ]);
    expect(results.map((r) => [r.id, r.ok])).toEqual([
      ['t1', true],
      ['t2', false],
      ['theirs', false],
      ['ghost', false],
      ['t3', true],
    ]);
    const [done, invalid, foreign, ghost] = results;
    expect(done).toMatchObject({
      ok: true,
      from: 'in_progress',
      reason: 'Work completed',
      task: { state: 'done' },
    });
    expect(!invalid?.ok && invalid?.error).toBeInstanceOf(InvalidTransitionError);
    // The service's typed refusal, rebuilt by the client from its code.
    expect(!foreign?.ok && foreign?.error).toBeInstanceOf(ForbiddenError);
    expect(!foreign?.ok && foreign?.error).toMatchObject({
      code: 'FORBIDDEN',
      message: 'Task theirs is leased by other, not worker',
    });
    expect(!ghost?.ok && ghost?.error).toBeInstanceOf(NotFoundError);
    expect((await admin.getTask('t2')).state).toBe('in_progress');
    const { escalations } = await admin.listEscalations();
    expect(escalations.map((e) => [e.kind, e.taskId])).toEqual(
      expect.arrayContaining([
        ['violation', 't2'],
        ['blocked', 't3'],
      ]),
    );
    const empty = await raw('/v1/tasks/transition-many', {
      method: 'POST',
      body: JSON.stringify({ transitions: [] }),
      token: tokens.worker,
    });
    expect(empty.status).toBe(400);
  });

  it('reports an item whose lease ended between the read and the write, and applies the rest', async () => {
    // Another instance's reaper requeues `a` after the batch read it and before it writes.
    class RacingStorage extends MemoryStorage {
      override async updateTasks(updates: readonly TaskUpdate[]) {
        await super.updateTask(
          'a',
          { state: 'in_progress' },
          { state: 'todo', leaseOwner: null, leaseId: null, leaseUntil: null },
          { events: [] },
        );
        return super.updateTasks(updates);
      }
    }
    const racing = new CoordinationService({ storage: new RacingStorage(), adminToken: ADMIN });
    await racing.start();
    try {
      const { token } = await racing.registerAgent({ kind: 'admin' }, 'w');
      const caller = (await racing.authenticate(token)) as Caller;
      for (const id of ['a', 'b'])
        await racing.enqueue(caller, { id, type: 'x', admission: ADMISSION });
      const { tasks, lease } = await racing.claimMany(caller, { max: 2 });
      expect(tasks.map((t) => t.id)).toEqual(['a', 'b']);
      const [lost, kept] = await racing.transitionMany(caller, [
        { id: 'a', to: 'done', leaseId: lease.id },
        { id: 'b', to: 'done', leaseId: lease.id },
      ]);
      expect(lost).toMatchObject({ id: 'a', ok: false });
      const error = lost?.ok === false ? lost.error : undefined;
      expect(error).toBeInstanceOf(ConflictError);
      expect(String(error)).toBe(
        `ConflictError: Lease ${lease.id} on task a has ended: the task is todo now`,
      );
      expect(kept).toMatchObject({ id: 'b', ok: true, task: { state: 'done' } });
      expect((await racing.getTask('a')).state).toBe('todo');
    } finally {
      await racing.stop();
    }
  });
});

describe('leases', () => {
  it('returns a task whose holder stopped heartbeating to the queue, counting the attempt', async () => {
    await planner.enqueue({ id: 'flaky', type: 'x', admission: ADMISSION, maxAttempts: 2 });
    const first = (await worker.claim({ leaseSeconds: 0.1 })) as { lease: { id: string } };
    await new Promise((r) => setTimeout(r, 400));
    expect(await admin.getTask('flaky')).toMatchObject({
      state: 'todo',
      attempts: 1,
      leaseOwner: null,
    });
    expect(await refusal(worker.heartbeat('flaky', { leaseId: first.lease.id }))).toBeInstanceOf(
      ConflictError,
    );
    const { events } = await admin.events({ limit: 100 });
    expect(events.find((e) => e.type === 'task.lease_expired')?.data).toMatchObject({
      attempts: 1,
      requeued: true,
    });

    const second = (await worker.claim({ leaseSeconds: 0.1 })) as { task: { attempts: number } };
    expect(second.task.attempts).toBe(2);
    await new Promise((r) => setTimeout(r, 400));
    expect((await admin.getTask('flaky')).state).toBe('blocked');
    const { escalations } = await admin.listEscalations();
    expect(escalations.at(-1)).toMatchObject({
      kind: 'attempts_exhausted',
      taskId: 'flaky',
      agentId: 'worker',
    });
  });

  it('a lease taken over after expiry fences the old holder out', async () => {
    await planner.enqueue({ id: 'f', type: 'x', admission: ADMISSION });
    const old = (await worker.claim({ leaseSeconds: 0.1 })) as { lease: { id: string } };
    await new Promise((r) => setTimeout(r, 300));
    await worker.claim();
    const error = await refusal<ConflictError>(
      worker.transition('f', 'done', { leaseId: old.lease.id }),
    );
    expect(error.message).toBe(
      `Lease ${old.lease.id} on task f has ended: the task was claimed again, by worker`,
    );
  });

  it('a worker finishing a task reaped from it hears its lease is gone, and nothing escalates', async () => {
    await planner.enqueue({ id: 'reaped', type: 'x', admission: ADMISSION });
    await planner.enqueue({ id: 'kept', type: 'x', admission: ADMISSION });
    const old = (await worker.claim({ leaseSeconds: 0.1 })) as { lease: { id: string } };
    await new Promise((r) => setTimeout(r, 400));
    expect((await admin.getTask('reaped')).state).toBe('todo');
    const before = (await admin.listEscalations()).escalations.length;

    const error = await refusal<ConflictError>(
      worker.transition('reaped', 'done', { leaseId: old.lease.id }),
    );
    expect(error).toBeInstanceOf(ConflictError);
    expect(error.message).toBe(
      `Lease ${old.lease.id} on task reaped has ended: the task is todo now`,
    );

    // In a batch, and twice in one batch: the second finds the task already done.
    const { lease } = await worker.claimTask('kept');
    const outcomes = await worker.transitionMany([
      { id: 'reaped', to: 'done', leaseId: old.lease.id },
      { id: 'kept', to: 'done', leaseId: lease.id },
      { id: 'kept', to: 'done', leaseId: lease.id },
    ]);
    expect(outcomes.map((o) => o.ok)).toEqual([false, true, false]);
    expect(outcomes.map((o) => (o.ok ? o.from : String(o.error)))).toEqual([
      `ConflictError: Lease ${old.lease.id} on task reaped has ended: the task is todo now`,
      'in_progress',
      `ConflictError: Lease ${lease.id} on task kept has ended: the task is done now`,
    ]);
    expect((await admin.getTask('reaped')).state).toBe('todo');
    expect((await admin.listEscalations()).escalations).toHaveLength(before);
  });

  it('a claim wakes a sleeping agent, in the log right after the claim', async () => {
    await planner.enqueue({ id: 'wake-me', type: 'x', admission: ADMISSION });
    await worker.sleep('worker', { timeoutSeconds: 60, reason: 'no_tasks' });
    const { events: before } = await admin.events({ limit: 1000 });
    await worker.claim();
    expect((await admin.getAgent('worker')).sleepUntil).toBeNull();
    const { events } = await admin.events({ after: before.at(-1)?.seq ?? 0, limit: 100 });
    expect(events.map((e) => [e.type, e.agentId, e.data])).toEqual([
      ['task.claimed', 'worker', expect.objectContaining({ attempts: 1 })],
      ['agent.wake', 'worker', { reason: 'task_available' }],
    ]);
  });

  it('release gives the task back to the queue', async () => {
    await planner.enqueue({ id: 'r', type: 'x', admission: ADMISSION });
    const { lease } = (await worker.claim()) as { lease: { id: string } };
    expect((await worker.release('r', { leaseId: lease.id })).state).toBe('todo');
    expect((await worker.claim())?.task).toMatchObject({ id: 'r', attempts: 2 });
  });
});

describe('escalations', () => {
  it('are acknowledged and resolved by the admin only, and requeue puts a blocked task back', async () => {
    await planner.enqueue({ id: 'stuck', type: 'x', admission: ADMISSION });
    const { lease } = (await worker.claim()) as { lease: { id: string } };
    await worker.transition('stuck', 'blocked', { leaseId: lease.id, comment: 'need a key' });
    const [item] = (await admin.listEscalations({ status: 'open' })).escalations;
    expect(item?.kind).toBe('blocked');
    expect(await refusal<ForbiddenError>(worker.acknowledge(item?.id as string))).toMatchObject({
      code: 'FORBIDDEN',
    });
    expect((await admin.acknowledge(item?.id as string)).status).toBe('acknowledged');
    expect(await refusal(admin.acknowledge(item?.id as string))).toBeInstanceOf(ConflictError);
    const resolved = await admin.resolve(item?.id as string, {
      resolution: 'key added',
      requeue: true,
    });
    expect(resolved).toMatchObject({
      status: 'resolved',
      resolution: 'key added',
      resolvedBy: 'admin',
    });
    expect(await admin.getTask('stuck')).toMatchObject({ state: 'todo', attempts: 0 });
    expect((await admin.listEscalations({ status: 'open' })).escalations).toEqual([]);
    expect(await refusal(admin.resolve('esc_missing'))).toBeInstanceOf(NotFoundError);
  });

  it('can be raised by hand, as the paperclip sink does', async () => {
    const raised = await worker.escalate({
      kind: 'blocked',
      taskId: 'KER-7',
      comment: 'Paperclip issue blocked',
    });
    expect(raised).toMatchObject({
      kind: 'blocked',
      taskId: 'KER-7',
      agentId: 'worker',
      status: 'open',
    });
  });
});

describe('auth', () => {
  it('answers 401 without a token or with a wrong one', async () => {
    for (const token of [null, 'nope', '']) {
      const response = await raw('/v1/tasks', { token });
      expect(response.status).toBe(401);
      expect((await errorOf(response)).code).toBe('UNAUTHENTICATED');
    }
    expect((await raw('/healthz', { token: null })).status).toBe(200);
  });

  it('answers 403 when an agent acts as someone else or does admin work', async () => {
    await planner.enqueue({ id: 'mine', type: 'x', admission: ADMISSION });
    const { lease } = (await worker.claim()) as { lease: { id: string } };
    const other = clientFor(tokens.other as string);
    const cases: Array<[string, Promise<unknown>]> = [
      [
        'enqueue as another agent',
        other.enqueue({ type: 'x', admission: ADMISSION, agentId: 'planner' }),
      ],
      ['transition a task leased by another', other.transition('mine', 'done')],
      ['step a task leased by another', other.step('mine')],
      ['heartbeat a task leased by another', other.heartbeat('mine', { leaseId: lease.id })],
      ['release a task leased by another', other.release('mine')],
      ['sleep another agent', other.sleep('worker')],
      ['wake another agent', other.wake('worker')],
      ['read another agent', other.getAgent('worker')],
      ['register agents', other.registerAgent('x')],
      ['claim as the admin', admin.claim()],
    ];
    for (const [what, attempt] of cases) {
      const error = await refusal(attempt);
      expect({ what, forbidden: ForbiddenError.is(error) }).toEqual({ what, forbidden: true });
    }
    const direct = await raw('/v1/tasks/mine/transition', {
      method: 'POST',
      body: JSON.stringify({ to: 'done' }),
      token: tokens.other,
    });
    expect(await errorOf(direct)).toMatchObject({
      code: 'FORBIDDEN',
      message: 'Task mine is leased by worker, not other',
    });
  });

  it('stores agent tokens hashed and rotates them on re-registration', async () => {
    const stored = await service.storage.getAgent('worker');
    expect(stored?.tokenHash).not.toContain(tokens.worker);
    expect(stored?.tokenHash).toMatch(/^[0-9a-f]{64}$/);
    await admin.registerAgent('worker');
    expect(await refusal<TransportError>(worker.claim())).toMatchObject({ status: 401 });
  });
});

describe('bad input', () => {
  it('answers malformed JSON 400, schema errors 400, oversized bodies 413, unknown things 404', async () => {
    const cases: Array<[string, Promise<Response>, number, string]> = [
      [
        'malformed JSON',
        raw('/v1/tasks', { method: 'POST', body: '{"type": "x",' }),
        400,
        'BAD_JSON',
      ],
      ['missing field', raw('/v1/tasks', { method: 'POST', body: '{}' }), 400, 'VALIDATION'],
      [
        'unknown field',
        raw('/v1/tasks', { method: 'POST', body: JSON.stringify({ type: 'x', colour: 'red' }) }),
        400,
        'VALIDATION',
      ],
      [
        'wrong type',
        raw('/v1/tasks/claim', {
          method: 'POST',
          body: JSON.stringify({ waitSeconds: 'soon' }),
          token: tokens.worker,
        }),
        400,
        'VALIDATION',
      ],
      [
        'bad budget',
        raw('/v1/tasks', {
          method: 'POST',
          body: JSON.stringify({ type: 'x', admission: ADMISSION, budget: { maxSteps: -1 } }),
        }),
        400,
        'VALIDATION',
      ],
      [
        'oversized body',
        raw('/v1/tasks', {
          method: 'POST',
          body: JSON.stringify({ type: 'x', payload: 'x'.repeat(100_000) }),
        }),
        413,
        'PAYLOAD_TOO_LARGE',
      ],
      ['unknown task', raw('/v1/tasks/ghost'), 404, 'NOT_FOUND'],
      [
        'unknown escalation',
        raw('/v1/escalations/ghost/ack', { method: 'POST' }),
        404,
        'NOT_FOUND',
      ],
      ['unknown route', raw('/v1/nothing-here'), 404, 'NOT_FOUND'],
      [
        'bad state in a move',
        raw('/v1/tasks/ghost/transition', { method: 'POST', body: JSON.stringify({ to: 'done' }) }),
        404,
        'NOT_FOUND',
      ],
    ];
    for (const [what, pending, status, code] of cases) {
      const response = await pending;
      const error = await errorOf(response);
      expect({ what, status: response.status, code: error.code }).toEqual({ what, status, code });
      expect(typeof error.message).toBe('string');
    }
  });

  it('gives the validation problem in the message', async () => {
    const response = await raw('/v1/tasks', { method: 'POST', body: JSON.stringify({ type: 42 }) });
    expect((await errorOf(response)).message).toMatch(/^type: /);
  });
});

describe('operations', () => {
  it('serves /healthz, Prometheus /metrics and the OpenAPI document', async () => {
    expect(await (await app.request('/healthz')).json()).toEqual({
      status: 'ok',
      storage: 'memory',
    });
    await planner.enqueue({ type: 'x', admission: ADMISSION });
    await refusal(planner.enqueue({ type: 'x', admission: {} }));
    const metrics = await (await app.request('/metrics')).text();
    expect(metrics).toContain('exec_kernel_tasks_enqueued_total 1');
    expect(metrics).toContain('exec_kernel_violations_total{kind="admission"} 1');
    expect(metrics).toContain('exec_kernel_tasks{state="todo"} 1');
    expect(metrics).toMatch(
      /exec_kernel_http_requests_total\{method="POST",route="\/v1\/tasks",status="201"\} 1/,
    );
    const doc = (await (await app.request('/openapi.json')).json()) as {
      paths: Record<string, unknown>;
      components: { schemas: Record<string, { properties: Record<string, unknown> }> };
    };
    expect(Object.keys(doc.paths).sort()).toEqual(
      [
        '/healthz',
        '/metrics',
        '/openapi.json',
        '/v1/agents',
        '/v1/agents/{id}',
        '/v1/agents/{id}/sleep',
        '/v1/agents/{id}/wake',
        '/v1/escalations',
        '/v1/escalations/{id}/ack',
        '/v1/escalations/{id}/resolve',
        '/v1/events',
        '/v1/events/stream',
        '/v1/tasks',
        '/v1/tasks/claim',
        '/v1/tasks/claim-many',
        '/v1/tasks/transition-many',
        '/v1/tasks/{id}',
        '/v1/tasks/{id}/actions',
        '/v1/tasks/{id}/actions/result',
        '/v1/tasks/{id}/claim',
        '/v1/tasks/{id}/context',
        '/v1/tasks/{id}/context/{key}',
        '/v1/tasks/{id}/heartbeat',
        '/v1/tasks/{id}/notes',
        '/v1/tasks/{id}/release',
        '/v1/tasks/{id}/steps',
        '/v1/tasks/{id}/transition',
        '/v1/tasks/{id}/usage',
        '/v1/tasks/{id}/usage/check',
      ].sort(),
    );
    expect(doc.components.schemas.Violation?.properties).toHaveProperty('kind');
  });

  it('answers 503 with Retry-After while the database is out of reach, 500 for a bug', async () => {
    await planner.enqueue({ id: 'there', type: 'x', admission: ADMISSION });
    const getTask = service.storage.getTask.bind(service.storage);
    const fail = (error: Error & { code?: string }) => {
      service.storage.getTask = async () => {
        throw error;
      };
    };
    fail(
      Object.assign(new Error('write CONNECTION_CLOSED 127.0.0.1:5432'), {
        code: 'CONNECTION_CLOSED',
      }),
    );
    const down = await raw('/v1/tasks/there');
    expect(down.status).toBe(503);
    expect(down.headers.get('retry-after')).toBe('1');
    expect((await errorOf(down)).code).toBe('UNAVAILABLE');
    fail(Object.assign(new Error('the database system is shutting down'), { code: '57P03' }));
    expect((await raw('/v1/tasks/there')).status).toBe(503);
    fail(new TypeError('undefined is not a function'));
    const bug = await raw('/v1/tasks/there');
    expect(bug.status).toBe(500);
    const { ref } = internalErrors[0] as InternalErrorReport;
    expect(await errorOf(bug)).toEqual({
      code: 'INTERNAL',
      message: `Internal error (ref ${ref})`,
      details: { ref },
    });
    expect(internalErrors).toMatchObject([
      { ref, method: 'GET', path: '/v1/tasks/there', error: { name: 'TypeError' } },
    ]);
    service.storage.getTask = getTask;
    expect((await raw('/v1/tasks/there')).status).toBe(200);
  });

  it('reports unhealthy when the storage does not answer', async () => {
    await service.storage.close();
    const response = await app.request('/healthz');
    expect(response.status).toBe(503);
    expect(((await response.json()) as { status: string }).status).toBe('unhealthy');
    await service.storage.open();
  });
});

describe('the worker helper', () => {
  it('claims, heartbeats and completes; a handler that throws gets its task blocked and escalated', async () => {
    await planner.enqueue({ id: 'ok-1', type: 'build', admission: ADMISSION });
    await planner.enqueue({ id: 'fails', type: 'build', admission: ADMISSION, priority: -1 });
    await planner.enqueue({ id: 'ok-2', type: 'build', admission: ADMISSION, priority: -2 });
    const seen: string[] = [];
    const errors: unknown[] = [];
    const handled = await worker.work(
      async (job) => {
        seen.push(job.task.id);
        await job.step();
        if (job.task.id === 'fails') throw new Error('compiler crashed');
        return 'done';
      },
      { untilIdle: true, waitSeconds: 0, onError: (e) => errors.push(e) },
    );
    expect(handled).toBe(3);
    expect(seen).toEqual(['ok-1', 'fails', 'ok-2']);
    expect((await admin.getTask('ok-1')).state).toBe('done');
    expect((await admin.getTask('fails')).state).toBe('blocked');
    expect((errors[0] as Error).message).toBe('compiler crashed');
    const [escalation] = (await admin.listEscalations()).escalations;
    expect(escalation).toMatchObject({
      kind: 'blocked',
      taskId: 'fails',
      comment: 'Worker failed: compiler crashed',
    });
  });

  it('gives a task back, not blocked, when its handler failed only because the service did not answer', async () => {
    await planner.enqueue({ id: 'outage', type: 'build', admission: ADMISSION });
    let refused = 0;
    const flaky = clientAround(tokens.worker as string, async (request, pass) => {
      if (request.url.endsWith('/steps') && refused++ === 0) {
        const body = { error: { code: 'UNAVAILABLE', message: 'The storage does not answer' } };
        return Response.json(body, { status: 503 });
      }
      return pass();
    });
    const errors: unknown[] = [];
    const handled = await flaky.work(
      async (job) => {
        await job.step();
        return 'done';
      },
      { untilIdle: true, waitSeconds: 0, onError: (e) => errors.push(e) },
    );
    expect(handled).toBe(2);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'TRANSPORT', status: 503 });
    expect(await admin.getTask('outage')).toMatchObject({ state: 'done', attempts: 2 });
    expect((await admin.listEscalations()).escalations).toEqual([]);
    const { events } = await admin.events({ limit: 1000 });
    expect(events.filter((e) => e.taskId === 'outage').map((e) => e.type)).toEqual([
      'task.enqueued',
      'task.claimed',
      'task.released',
      'task.claimed',
      'task.step',
      'task.transitioned',
    ]);
  });

  it('runs several tasks at once, claiming and finishing them in batches', async () => {
    for (let i = 0; i < 12; i++)
      await planner.enqueue({ id: `b-${i}`, type: 'build', admission: ADMISSION });
    await planner.enqueue({ id: 'b-fails', type: 'build', admission: ADMISSION, priority: -1 });
    let running = 0;
    let most = 0;
    const handled = await worker.work(
      async (job) => {
        running++;
        most = Math.max(most, running);
        await new Promise((r) => setTimeout(r, 20));
        running--;
        if (job.task.id === 'b-fails') throw new Error('flaky test');
        return 'done';
      },
      { concurrency: 4, untilIdle: true, waitSeconds: 0, onError: () => {} },
    );
    expect(handled).toBe(13);
    expect(most).toBe(4);
    const { tasks } = await admin.listTasks({ state: 'done', limit: 100 });
    expect(tasks).toHaveLength(12);
    expect((await admin.getTask('b-fails')).state).toBe('blocked');
    // Claims came four at a time; finished tasks were reported together.
    const { events } = await admin.events({ limit: 1000 });
    const claims = events.filter((e) => e.type === 'task.claimed');
    const leases = new Set(claims.map((e) => (e.data as { leaseId: string }).leaseId));
    expect(claims).toHaveLength(13);
    expect(leases.size).toBeLessThan(13);
    const metrics = await (await app.request('/metrics')).text();
    const requests = (route: string) =>
      Number(new RegExp(`route="${route}",status="200"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
    expect(requests('/v1/tasks/transition-many')).toBeGreaterThan(0);
    expect(requests('/v1/tasks/transition-many')).toBeLessThan(13);
    expect(requests('/v1/tasks/:id/transition')).toBe(1); // the failed one, blocked
    await expect(worker.work(async () => 'done', { concurrency: 0 })).rejects.toThrow(RangeError);
  });

  it('stops on its signal, and rebuilds kernel errors with their violation', async () => {
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 100);
    expect(await worker.work(async () => 'done', { signal: stop.signal, waitSeconds: 5 })).toBe(0);
    const error = await refusal<KernelError & { violation?: Violation }>(
      planner.enqueue({ type: 'x' }),
    );
    expect(KernelError.is(error) && error.code).toBe('TASK_ADMISSION');
    expect(error.violation?.kind).toBe('admission');
  });
});
