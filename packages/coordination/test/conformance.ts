import { ConflictError } from '@exec-kernel/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NewEscalationRow, NewEvent, NewTaskRow, TaskRow } from '../src/model.js';
import type {
  ChangeSignal,
  ClaimEvent,
  ClaimRequest,
  Expectation,
  Storage,
} from '../src/storage/storage.js';
import { contextConformance } from './conformance-context.js';
import { lapsedLeaseConformance } from './conformance-leases.js';

/** What an engine's test file hands the suite: a fresh, opened storage, and how to clean up. */
export interface ConformanceTarget {
  storage: Storage;
  /** Closes and opens the same data again (omit for engines that keep nothing). */
  reopen?: () => Promise<Storage>;
  cleanup: () => Promise<void>;
}

const LIMITS = {
  maxSteps: 50,
  maxDepth: 10,
  maxDurationSeconds: 1800,
  maxTokens: null,
  maxCostUsd: null,
};

let counter = 0;

/** A new task row with sensible defaults. */
export function taskRow(fields: Partial<NewTaskRow> = {}): NewTaskRow {
  counter++;
  return {
    id: `task-${counter}`,
    type: 'build',
    title: null,
    state: 'todo',
    priority: 0,
    agentId: 'agent-a',
    parentId: null,
    createdById: null,
    depth: 0,
    admission: { consumer: 'c', painPoint: 'p', expectedValue: 'v', validationPath: 't' },
    payload: { n: counter, nested: { list: [1, 'two', null, true] } },
    idempotencyKey: null,
    attempts: 0,
    maxAttempts: 3,
    leaseOwner: null,
    leaseId: null,
    leaseUntil: null,
    limits: { ...LIMITS },
    stepsTaken: 0,
    tokens: 0,
    costUsd: 0,
    warned: [],
    startedAt: null,
    createdAt: 1_000,
    updatedAt: 1_000,
    ...fields,
  };
}

export function event(type: string, fields: Partial<NewEvent> = {}): NewEvent {
  return { type, taskId: null, agentId: null, data: {}, at: 1_000, ...fields };
}

function escalationRow(fields: Partial<NewEscalationRow> = {}): NewEscalationRow {
  counter++;
  return {
    id: `esc-${counter}`,
    kind: 'violation',
    status: 'open',
    taskId: null,
    agentId: 'agent-a',
    violation: {
      kind: 'budget_steps',
      code: 'BUDGET_EXCEEDED',
      taskId: 't',
      limit: 1,
      observed: 2,
      message: 'Task t exceeded step budget: 2 steps taken, max 1',
      at: '2026-01-01T00:00:00.000Z',
      details: { budgetType: 'steps', taskId: 't', limit: 1, observed: 2 },
    },
    comment: null,
    createdAt: 2_000,
    acknowledgedAt: null,
    acknowledgedBy: null,
    resolvedAt: null,
    resolvedBy: null,
    resolution: null,
    ...fields,
  };
}

/** A claim request by `agentId` with a fresh lease until 60_000, at 5_000. */
export const claimRequest = (
  agentId: string,
  fields: Partial<ClaimRequest> = {},
): ClaimRequest => ({
  agentId,
  types: null,
  leaseId: `lease-${++counter}`,
  leaseUntil: 60_000,
  now: 5_000,
  ...fields,
});

/** The claim event template the suite claims with. */
export const claimed: ClaimEvent = {
  type: 'task.claimed',
  agentId: 'claimant',
  data: { leaseId: 'from-the-template', nested: { list: [1, null] } },
  at: 5_000,
};

/**
 * The behaviour every storage engine must have. Each engine's test file calls this with a
 * factory; the service relies on nothing an engine does beyond what is checked here.
 */
export function storageConformance(name: string, create: () => Promise<ConformanceTarget>): void {
  describe(`storage conformance: ${name}`, () => {
    let target: ConformanceTarget;
    let storage: Storage;

    beforeEach(async () => {
      target = await create();
      storage = target.storage;
    });
    afterEach(async () => {
      await target.cleanup();
    });

    it('answers ping once open', async () => {
      await expect(storage.ping()).resolves.toBeUndefined();
      expect(storage.location).not.toMatch(/:[^/@]*@/); // never a password
    });

    it('inserts, reads back every field, and writes the event', async () => {
      const row = taskRow({
        title: 'Fix login',
        priority: 5,
        warned: ['steps'],
        limits: { ...LIMITS, maxTokens: 100, maxCostUsd: 1.5 },
      });
      const { task, created } = await storage.insertTask(
        row,
        event('task.enqueued', { taskId: row.id, data: { a: 1 } }),
      );
      expect(created).toBe(true);
      expect(task).toEqual({ ...row, seq: task.seq });
      expect(await storage.getTask(row.id)).toEqual(task);
      expect(await storage.getTask('nope')).toBeUndefined();
      const other = (await storage.insertTask(taskRow(), event('task.enqueued'))).task;
      const many = await storage.getTasks([other.id, 'nope', row.id, other.id]);
      expect(many.sort((a, b) => a.seq - b.seq)).toEqual([task, other]);
      expect(await storage.getTasks([])).toEqual([]);
      const events = await storage.readEvents(0, 10);
      expect(events).toHaveLength(2);
      expect(events[0]).toMatchObject({
        type: 'task.enqueued',
        taskId: row.id,
        data: { a: 1 },
        at: 1_000,
      });
    });

    it('returns the existing task for a repeated idempotency key of the same agent', async () => {
      const first = await storage.insertTask(
        taskRow({ idempotencyKey: 'k1' }),
        event('task.enqueued'),
      );
      const again = await storage.insertTask(
        taskRow({ idempotencyKey: 'k1' }),
        event('task.enqueued'),
      );
      expect(again).toEqual({ task: first.task, created: false });
      const other = await storage.insertTask(
        taskRow({ idempotencyKey: 'k1', agentId: 'agent-b' }),
        event('task.enqueued'),
      );
      expect(other.created).toBe(true);
      expect(await storage.readEvents(0, 10)).toHaveLength(2);
    });

    it('refuses a duplicate id with a ConflictError', async () => {
      await storage.insertTask(taskRow({ id: 'same' }), event('task.enqueued'));
      await expect(
        storage.insertTask(taskRow({ id: 'same' }), event('task.enqueued')),
      ).rejects.toBeInstanceOf(ConflictError);
      expect(await storage.readEvents(0, 10)).toHaveLength(1);
    });

    it('lists by filter, in insertion order, with a cursor and a limit', async () => {
      const a = (await storage.insertTask(taskRow({ type: 'x' }), event('e'))).task;
      const b = (await storage.insertTask(taskRow({ type: 'y', agentId: 'agent-b' }), event('e')))
        .task;
      const c = (await storage.insertTask(taskRow({ type: 'x', state: 'backlog' }), event('e')))
        .task;
      expect(a.seq < b.seq && b.seq < c.seq).toBe(true);
      const ids = async (filter: Parameters<Storage['listTasks']>[0]) =>
        (await storage.listTasks(filter)).map((t) => t.id);
      expect(await ids({ limit: 10 })).toEqual([a.id, b.id, c.id]);
      expect(await ids({ type: 'x', limit: 10 })).toEqual([a.id, c.id]);
      expect(await ids({ state: 'todo', limit: 10 })).toEqual([a.id, b.id]);
      expect(await ids({ agentId: 'agent-b', limit: 10 })).toEqual([b.id]);
      expect(await ids({ afterSeq: a.seq, limit: 1 })).toEqual([b.id]);
      expect(await storage.countTasks()).toMatchObject({ todo: 2, backlog: 1, done: 0 });
    });

    it('returns a lineage along parent and creator links, once each', async () => {
      const root = (await storage.insertTask(taskRow(), event('e'))).task;
      const creator = (await storage.insertTask(taskRow({ parentId: root.id }), event('e'))).task;
      const mid = (
        await storage.insertTask(
          taskRow({ parentId: root.id, createdById: creator.id }),
          event('e'),
        )
      ).task;
      await storage.insertTask(taskRow(), event('e'));
      const found = (await storage.lineage([mid.id])).map((t) => t.id).sort();
      expect(found).toEqual([root.id, creator.id, mid.id].sort());
      expect(await storage.lineage(['missing'])).toEqual([]);
    });

    it('claims by priority then age, only todo, only the asked types, or the named task', async () => {
      const low = (await storage.insertTask(taskRow({ priority: 0 }), event('e'))).task;
      const high = (await storage.insertTask(taskRow({ priority: 9 }), event('e'))).task;
      const high2 = (await storage.insertTask(taskRow({ priority: 9 }), event('e'))).task;
      const other = (
        await storage.insertTask(taskRow({ priority: 99, type: 'review' }), event('e'))
      ).task;
      await storage.insertTask(taskRow({ priority: 100, state: 'backlog' }), event('e'));

      const first = await storage.claim(claimRequest('agent-w', { types: ['build'] }), claimed);
      expect(first).toMatchObject({
        id: high.id,
        state: 'in_progress',
        leaseOwner: 'agent-w',
        leaseUntil: 60_000,
        attempts: 1,
        startedAt: 5_000,
        updatedAt: 5_000,
      });
      expect(first?.leaseId).toMatch(/^lease-/);
      expect(
        (await storage.claim(claimRequest('agent-w', { types: ['build'] }), claimed))?.id,
      ).toBe(high2.id);
      expect((await storage.claim(claimRequest('agent-w'), claimed))?.id).toBe(other.id);
      expect(
        await storage.claim(claimRequest('agent-w', { types: ['deploy'] }), claimed),
      ).toBeUndefined();
      expect(
        await storage.claim(claimRequest('agent-w', { taskId: high.id }), claimed),
      ).toBeUndefined();
      expect(
        (await storage.claim(claimRequest('agent-v', { taskId: low.id }), claimed))?.leaseOwner,
      ).toBe('agent-v');
      expect(await storage.claim(claimRequest('agent-w'), claimed)).toBeUndefined();
      const claims = (await storage.readEvents(0, 100)).filter((e) => e.type === 'task.claimed');
      expect(claims.map((e) => e.taskId)).toEqual([high.id, high2.id, other.id, low.id]);
    });

    it('never hands the same task to two concurrent claims', async () => {
      for (let i = 0; i < 10; i++) await storage.insertTask(taskRow(), event('e'));
      const results = await Promise.all(
        Array.from({ length: 25 }, (_, i) => storage.claim(claimRequest(`agent-${i}`), claimed)),
      );
      const ids = results.filter((t) => t !== undefined).map((t) => t?.id);
      expect(ids).toHaveLength(10);
      expect(new Set(ids).size).toBe(10);
    });

    it('claims several at once in claim order under one lease, never one task twice', async () => {
      const low = (await storage.insertTask(taskRow({ type: 'build' }), event('e'))).task;
      const high = (await storage.insertTask(taskRow({ type: 'build', priority: 5 }), event('e')))
        .task;
      const other = (await storage.insertTask(taskRow({ type: 'review' }), event('e'))).task;
      await storage.insertTask(taskRow({ type: 'build', state: 'backlog' }), event('e'));
      const before = (await storage.readEvents(0, 1000)).length;

      const batch = await storage.claimMany(claimRequest('w', { types: ['build'] }), 10, claimed);
      expect(batch.map((t) => t.id)).toEqual([high.id, low.id]);
      expect(new Set(batch.map((t) => t.leaseId)).size).toBe(1);
      expect(
        batch.every((t) => t.state === 'in_progress' && t.leaseOwner === 'w' && t.attempts === 1),
      ).toBe(true);
      const events = (await storage.readEvents(0, 1000)).slice(before);
      expect(events.map((e) => [e.type, e.taskId])).toEqual([
        ['task.claimed', high.id],
        ['task.claimed', low.id],
      ]);
      expect(
        (await storage.claimMany(claimRequest('w', { types: ['build'] }), 10, claimed)).map(
          (t) => t.id,
        ),
      ).toEqual([]);
      expect((await storage.claimMany(claimRequest('w'), 1, claimed)).map((t) => t.id)).toEqual([
        other.id,
      ]);

      for (let i = 0; i < 30; i++) await storage.insertTask(taskRow(), event('e'));
      const racing = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          storage.claimMany(claimRequest(`agent-${i}`), 5, claimed),
        ),
      );
      const ids = racing.flat().map((t) => t.id);
      expect(ids).toHaveLength(30);
      expect(new Set(ids).size).toBe(30);
      expect(racing.every((r) => r.length <= 5)).toBe(true);
    });

    it("writes each claimed task's event from the template, with its attempt count", async () => {
      const first = (await storage.insertTask(taskRow({ priority: 1 }), event('e'))).task;
      const second = (await storage.insertTask(taskRow(), event('e'))).task;
      const before = (await storage.readEvents(0, 1000)).length;
      await storage.claimMany(claimRequest('w'), 5, claimed);
      await storage.updateTask(
        first.id,
        { state: 'in_progress' },
        { state: 'todo', leaseOwner: null, leaseId: null, leaseUntil: null },
        { events: [] },
      );
      await storage.claim(claimRequest('w', { taskId: first.id }), { ...claimed, at: 6_000 });
      const events = (await storage.readEvents(0, 1000)).slice(before);
      const data = (attempts: number) => ({ attempts, ...claimed.data });
      expect(events.map(({ seq: _, ...e }) => e)).toEqual([
        { type: 'task.claimed', taskId: first.id, agentId: 'claimant', data: data(1), at: 5_000 },
        { type: 'task.claimed', taskId: second.id, agentId: 'claimant', data: data(1), at: 5_000 },
        { type: 'task.claimed', taskId: first.id, agentId: 'claimant', data: data(2), at: 6_000 },
      ]);
    });

    it('wakes a sleeping claimant in the claim that gives it work, and only then', async () => {
      const agent = (id: string, sleepUntil: number | null) => ({
        id,
        tokenHash: `hash-${id}`,
        sleepUntil,
        sleepReason: sleepUntil === null ? null : 'no_tasks',
        sleepSince: sleepUntil === null ? null : 1_000,
        createdAt: 1,
      });
      await storage.putAgent(agent('sleeper', 9_000));
      await storage.putAgent(agent('expired', 4_000));
      await storage.putAgent(agent('unasked', 9_000));
      const wake = (agentId: string) =>
        event('agent.wake', { agentId, data: { reason: 'task_available' } });
      const request = (agentId: string, fields: Record<string, unknown> = {}) =>
        claimRequest(agentId, { now: 5_000, wake: wake(agentId), ...fields });

      // No work: nobody is woken.
      expect(await storage.claimMany(request('sleeper'), 3, claimed)).toEqual([]);
      expect(await storage.claim(request('sleeper'), claimed)).toBeUndefined();
      expect((await storage.getAgent('sleeper'))?.sleepUntil).toBe(9_000);

      for (let i = 0; i < 5; i++) await storage.insertTask(taskRow(), event('e'));
      const before = (await storage.readEvents(0, 1000)).length;
      expect(await storage.claimMany(request('sleeper'), 2, claimed)).toHaveLength(2);
      expect(await storage.getAgent('sleeper')).toEqual(agent('sleeper', null));
      const events = (await storage.readEvents(0, 1000)).slice(before);
      expect(events.map((e) => [e.type, e.agentId])).toEqual([
        ['task.claimed', 'claimant'],
        ['task.claimed', 'claimant'],
        ['agent.wake', 'sleeper'],
      ]);
      expect(events[2]?.data).toEqual({ reason: 'task_available' });

      // Awake already (its sleep ran out), or no wake asked for: a claim leaves the agent as is.
      expect(await storage.claim(request('expired'), claimed)).toBeDefined();
      expect(await storage.claim(request('unasked', { wake: undefined }), claimed)).toBeDefined();
      expect(await storage.getAgent('expired')).toEqual(agent('expired', 4_000));
      expect(await storage.getAgent('unasked')).toEqual(agent('unasked', 9_000));
      const later = (await storage.readEvents(0, 1000)).slice(before + events.length);
      expect(later.map((e) => e.type)).toEqual(['task.claimed', 'task.claimed']);

      // A named claim wakes too.
      const named = (await storage.insertTask(taskRow(), event('e'))).task;
      await storage.updateAgent('sleeper', { sleepUntil: 9_000 }, undefined);
      await storage.claim(request('sleeper', { taskId: named.id }), claimed);
      expect((await storage.getAgent('sleeper'))?.sleepUntil).toBeNull();
    });

    it('applies a batch of compare-and-sets each on its own, with their events', async () => {
      for (let i = 0; i < 3; i++) await storage.insertTask(taskRow(), event('e'));
      const [a, b, c] = await storage.claimMany(claimRequest('w'), 3, claimed);
      if (a === undefined || b === undefined || c === undefined)
        throw new Error('expected three claims');
      const before = (await storage.readEvents(0, 1000)).length;
      const done = (t: TaskRow, leaseId: string | null) => ({
        id: t.id,
        expect: { state: 'in_progress' as const, leaseId },
        changes: {
          state: 'done' as const,
          leaseOwner: null,
          leaseId: null,
          leaseUntil: null,
          updatedAt: 7_000,
        },
        extras: { events: [event('task.transitioned', { taskId: t.id })] },
      });
      const results = await storage.updateTasks([
        done(a, a.leaseId),
        done(b, 'not-the-lease'),
        done(c, c.leaseId),
      ]);
      expect(results.map((r) => r?.state)).toEqual(['done', undefined, 'done']);
      expect((await storage.getTask(b.id))?.state).toBe('in_progress');
      const events = (await storage.readEvents(0, 1000)).slice(before);
      expect(events.map((e) => e.taskId)).toEqual([a.id, c.id]);
      expect(await storage.updateTasks([])).toEqual([]);
      // The same task twice: the first applies, the second finds it moved.
      const reopen = {
        id: a.id,
        expect: { state: 'done' as const },
        changes: { state: 'todo' as const, updatedAt: 8_000 },
        extras: { events: [] },
      };
      const twice = await storage.updateTasks([reopen, reopen]);
      expect(twice.map((r) => r?.state)).toEqual(['todo', undefined]);
    });

    it('updates on a lease only while it runs, and reaps it only once it has ended', async () => {
      for (let i = 0; i < 4; i++) await storage.insertTask(taskRow(), event('e'));
      // Leases until 60_000 (claimRequest's default).
      const [a, b, c, d] = await storage.claimMany(claimRequest('w'), 4, claimed);
      if (a === undefined || b === undefined || c === undefined || d === undefined)
        throw new Error('expected four claims');
      const finish = (t: TaskRow, expect: Partial<Expectation>) => ({
        id: t.id,
        expect: { state: 'in_progress' as const, leaseId: t.leaseId, leaseOwner: 'w', ...expect },
        changes: { state: 'done' as const, leaseOwner: null, leaseId: null, leaseUntil: null },
        extras: { events: [event('task.transitioned', { taskId: t.id })] },
      });
      const before = (await storage.readEvents(0, 1000)).length;
      // At the lease's last moment it still runs; a moment later it does not.
      expect((await storage.updateTask(a.id, finish(a, {}).expect, {}, { events: [] }))?.id).toBe(
        a.id,
      );
      const live = { leaseLiveAt: 60_000 };
      const late = { leaseLiveAt: 60_001 };
      expect(await storage.updateTask(a.id, finish(a, late).expect, {}, { events: [] })).toBe(
        undefined,
      );
      // A batch of like moves, each judged on its own lease time.
      const batch = await storage.updateTasks([finish(a, late), finish(b, live)]);
      expect(batch.map((t) => t?.state)).toEqual([undefined, 'done']);
      const next = {
        request: claimRequest('w', { leaseId: 'after' }),
        max: 1,
        event: claimed,
      };
      expect(await storage.updateThenClaim([finish(a, late)], next)).toEqual({
        tasks: [undefined],
        claimed: undefined,
      });
      expect((await storage.updateThenClaim([finish(c, live)], next)).tasks[0]?.state).toBe('done');
      const written = (await storage.readEvents(0, 1000)).slice(before);
      expect(written.map((e) => e.taskId)).toEqual([b.id, c.id]);
      // The reaper's side: only a lease that ended before its time is taken back.
      const reap = (t: TaskRow, endedBefore: number) =>
        storage.updateTask(
          t.id,
          { state: 'in_progress', leaseId: t.leaseId, leaseEndedBefore: endedBefore },
          { state: 'todo', leaseOwner: null, leaseId: null, leaseUntil: null },
          { events: [] },
        );
      expect(await reap(d, 60_000)).toBeUndefined();
      expect((await reap(d, 60_001))?.state).toBe('todo');
      expect(await reap(a, 1e12)).toBeDefined();
      expect((await storage.getTask(a.id))?.state).toBe('todo');
    });

    it('passes over the tasks a claim is told to, however high they rank', async () => {
      const [a, b, c] = [
        (await storage.insertTask(taskRow({ priority: 5 }), event('e'))).task,
        (await storage.insertTask(taskRow(), event('e'))).task,
        (await storage.insertTask(taskRow(), event('e'))).task,
      ];
      const one = await storage.claimMany(claimRequest('w', { exceptIds: [a.id] }), 1, claimed);
      expect(one.map((t) => t.id)).toEqual([b.id]);
      const rest = await storage.claimMany(
        claimRequest('w', { exceptIds: [a.id, c.id], types: ['build'] }),
        5,
        claimed,
      );
      expect(rest).toEqual([]);
      expect((await storage.claim(claimRequest('w', { exceptIds: [] }), claimed))?.id).toBe(a.id);
    });

    it('finishes and claims the next in one write, only when an update applied, never a task it names', async () => {
      const tasks: TaskRow[] = [];
      for (let i = 0; i < 5; i++)
        tasks.push((await storage.insertTask(taskRow(), event('e'))).task);
      const [a, b, c, d, e] = tasks as [TaskRow, TaskRow, TaskRow, TaskRow, TaskRow];
      const held = await storage.claimMany(claimRequest('w', { leaseId: 'held' }), 2, claimed);
      expect(held.map((t) => t.id)).toEqual([a.id, b.id]);
      await storage.putAgent({
        id: 'w',
        tokenHash: 'hash-w',
        sleepUntil: 9_000,
        sleepReason: 'no_tasks',
        sleepSince: 1_000,
        createdAt: 1,
      });
      const move = (t: TaskRow, leaseId: string, to: 'done' | 'todo', leaseOwner = 'w') => ({
        id: t.id,
        expect: { state: 'in_progress' as const, leaseId, leaseOwner },
        changes: { state: to, leaseOwner: null, leaseId: null, leaseUntil: null, updatedAt: 7_000 },
        extras: { events: [event('task.transitioned', { taskId: t.id, data: { to } })] },
      });
      const next = (max: number) => ({
        request: claimRequest('w', {
          leaseId: `next-${max}`,
          wake: event('agent.wake', { agentId: 'w', data: { reason: 'task_available' } }),
        }),
        max,
        event: claimed,
      });
      const log = async () => (await storage.readEvents(0, 1000)).length;

      // The update does not apply: nothing is claimed, nothing written.
      let before = await log();
      expect(await storage.updateThenClaim([move(a, 'not-the-lease', 'done')], next(1))).toEqual({
        tasks: [undefined],
        claimed: undefined,
      });
      expect(
        await storage.updateThenClaim(
          [move(a, 'held', 'done', 'not-the-holder'), move(b, 'held', 'done', 'not-the-holder')],
          next(1),
        ),
      ).toEqual({ tasks: [undefined, undefined], claimed: undefined });
      expect(await log()).toBe(before);
      expect((await storage.getTask(c.id))?.state).toBe('todo');

      // It applies: the claim follows, passing over the task just put back though it is oldest.
      before = await log();
      const one = await storage.updateThenClaim([move(a, 'held', 'todo')], next(2));
      expect(one.tasks.map((t) => [t?.id, t?.state])).toEqual([[a.id, 'todo']]);
      expect(one.claimed?.map((t) => [t.id, t.state, t.leaseId, t.leaseOwner, t.attempts])).toEqual(
        [
          [c.id, 'in_progress', 'next-2', 'w', 1],
          [d.id, 'in_progress', 'next-2', 'w', 1],
        ],
      );
      const written = (await storage.readEvents(0, 1000)).slice(before);
      expect(written.map((ev) => [ev.type, ev.taskId])).toEqual([
        ['task.transitioned', a.id],
        ['task.claimed', c.id],
        ['task.claimed', d.id],
        ['agent.wake', null],
      ]);
      expect(written[1]?.data).toEqual({ ...claimed.data, attempts: 1 });
      expect((await storage.getAgent('w'))?.sleepUntil).toBeNull();

      // A batch: one applies, so the claim is made, but not of a task the batch names.
      before = await log();
      const two = await storage.updateThenClaim(
        [move(b, 'held', 'done'), move(a, 'not-the-lease', 'done')],
        next(5),
      );
      expect(two.tasks.map((t) => t?.state)).toEqual(['done', undefined]);
      expect(two.claimed?.map((t) => t.id)).toEqual([e.id]);
      expect((await storage.readEvents(0, 1000)).slice(before).map((ev) => ev.taskId)).toEqual([
        b.id,
        e.id,
      ]);
      expect((await storage.getTask(a.id))?.state).toBe('todo');

      // None applies: no claim, though a task waits.
      expect(
        await storage.updateThenClaim(
          [move(b, 'held', 'done'), move(c, 'not-the-lease', 'done')],
          next(5),
        ),
      ).toEqual({ tasks: [undefined, undefined], claimed: undefined });
      expect((await storage.getTask(a.id))?.state).toBe('todo');

      // Moves that differ: each applies on its own, the claim still passes over what they name.
      const f = (await storage.insertTask(taskRow(), event('e'))).task;
      const g = (await storage.insertTask(taskRow(), event('e'))).task;
      await storage.claim(claimRequest('w', { taskId: f.id, leaseId: 'held-2' }), claimed);
      await storage.claim(claimRequest('w', { taskId: g.id, leaseId: 'held-2' }), claimed);
      before = await log();
      const mixed = await storage.updateThenClaim(
        [move(f, 'held-2', 'done'), move(g, 'held-2', 'todo')],
        next(2),
      );
      expect(mixed.tasks.map((t) => [t?.id, t?.state])).toEqual([
        [f.id, 'done'],
        [g.id, 'todo'],
      ]);
      expect(mixed.claimed?.map((t) => t.id)).toEqual([a.id]);
      const order = (await storage.readEvents(0, 1000)).slice(before);
      expect(order.map((ev) => [ev.type, ev.taskId])).toEqual([
        ['task.transitioned', f.id],
        ['task.transitioned', g.id],
        ['task.claimed', a.id],
      ]);
    });

    it('keeps startedAt from the first claim and counts every attempt', async () => {
      const task = (await storage.insertTask(taskRow(), event('e'))).task;
      const one = await storage.claim(claimRequest('w', { now: 5_000 }), claimed);
      await storage.updateTask(
        task.id,
        { state: 'in_progress', leaseId: one?.leaseId },
        { state: 'todo', leaseOwner: null, leaseId: null, leaseUntil: null },
        { events: [] },
      );
      const two = await storage.claim(claimRequest('w', { now: 9_000 }), claimed);
      expect([two?.attempts, two?.startedAt]).toEqual([2, 5_000]);
    });

    it('updates only when the expectation holds, with its events and escalation in the same write', async () => {
      const task = (await storage.insertTask(taskRow(), event('e'))).task;
      const lease = await storage.claim(claimRequest('w'), claimed);
      expect(
        await storage.updateTask(
          task.id,
          { state: 'todo' },
          { state: 'done' },
          { events: [event('never')] },
        ),
      ).toBeUndefined();
      expect(
        await storage.updateTask(
          task.id,
          { state: 'in_progress', leaseOwner: 'someone-else' },
          { state: 'done' },
          { events: [] },
        ),
      ).toBeUndefined();
      expect(
        await storage.updateTask(
          task.id,
          { state: 'in_progress', leaseId: 'stale' },
          { state: 'done' },
          { events: [] },
        ),
      ).toBeUndefined();
      const escalation = escalationRow({
        kind: 'blocked',
        taskId: task.id,
        violation: null,
        comment: 'stuck',
      });
      const blocked = await storage.updateTask(
        task.id,
        { state: 'in_progress', leaseOwner: 'w', leaseId: lease?.leaseId },
        {
          state: 'blocked',
          leaseOwner: null,
          leaseId: null,
          leaseUntil: null,
          updatedAt: 7_000,
          warned: ['steps', 'cost'],
        },
        {
          events: [event('task.transitioned', { taskId: task.id }), event('escalation.created')],
          escalation,
        },
      );
      expect(blocked).toMatchObject({
        state: 'blocked',
        leaseOwner: null,
        updatedAt: 7_000,
        warned: ['steps', 'cost'],
      });
      expect(await storage.getTask(task.id)).toEqual(blocked);
      const types = (await storage.readEvents(0, 100)).map((e) => e.type);
      expect(types).toEqual(['e', 'task.claimed', 'task.transitioned', 'escalation.created']);
      expect(await storage.getEscalation(escalation.id)).toMatchObject({
        kind: 'blocked',
        taskId: task.id,
        comment: 'stuck',
      });
      expect(
        await storage.updateTask('missing', { state: 'todo' }, { state: 'done' }, { events: [] }),
      ).toBeUndefined();
    });

    it('adds spending to every task named, atomically with its event', async () => {
      const a = (await storage.insertTask(taskRow(), event('e'))).task;
      const b = (await storage.insertTask(taskRow(), event('e'))).task;
      const rows = await storage.addSpending(
        [a.id, b.id],
        { steps: 2, tokens: 10, costUsd: 0.25 },
        3_000,
        event('task.step'),
      );
      expect(rows?.map((r) => [r.id, r.stepsTaken, r.tokens, r.costUsd, r.updatedAt])).toEqual([
        [a.id, 2, 10, 0.25, 3_000],
        [b.id, 2, 10, 0.25, 3_000],
      ]);
      await Promise.all(
        Array.from({ length: 20 }, () =>
          storage.addSpending(
            [a.id],
            { steps: 1, tokens: 0, costUsd: 0.1 },
            4_000,
            event('task.step'),
          ),
        ),
      );
      const after = await storage.getTask(a.id);
      expect(after?.stepsTaken).toBe(22);
      expect(after?.costUsd).toBeCloseTo(2.25, 9);
    });

    it('counts spending once per task however often it is named, and skips unknown ids', async () => {
      const a = (await storage.insertTask(taskRow(), event('e'))).task;
      const rows = await storage.addSpending(
        [a.id, 'ghost', a.id],
        { steps: 1, tokens: 5, costUsd: 0.5 },
        3_000,
        event('task.step'),
      );
      expect(rows?.map((r) => [r.id, r.stepsTaken, r.tokens])).toEqual([[a.id, 1, 5]]);
      expect((await storage.getTask(a.id))?.stepsTaken).toBe(1);
    });

    it('lists expired leases, oldest first', async () => {
      for (let i = 0; i < 3; i++) await storage.insertTask(taskRow(), event('e'));
      const early = await storage.claim(claimRequest('w', { leaseUntil: 1_000 }), claimed);
      const late = await storage.claim(claimRequest('w', { leaseUntil: 2_000 }), claimed);
      await storage.claim(claimRequest('w', { leaseUntil: 99_000 }), claimed);
      expect((await storage.listExpiredLeases(5_000, 10)).map((t) => t.id)).toEqual([
        early?.id,
        late?.id,
      ]);
      expect((await storage.listExpiredLeases(5_000, 1)).map((t) => t.id)).toEqual([early?.id]);
      expect(await storage.listExpiredLeases(500, 10)).toEqual([]);
    });

    it('stores agents and finds them by token hash', async () => {
      const agent = {
        id: 'agent-a',
        tokenHash: 'h1',
        sleepUntil: null,
        sleepReason: null,
        sleepSince: null,
        createdAt: 1,
      };
      await storage.putAgent(agent);
      await storage.putAgent({ ...agent, id: 'agent-b', tokenHash: 'h2' });
      expect(await storage.getAgent('agent-a')).toEqual(agent);
      expect((await storage.findAgentByTokenHash('h2'))?.id).toBe('agent-b');
      expect(await storage.findAgentByTokenHash('nope')).toBeUndefined();
      await storage.putAgent({ ...agent, tokenHash: 'h3' });
      expect(await storage.findAgentByTokenHash('h1')).toBeUndefined();
      const slept = await storage.updateAgent(
        'agent-a',
        { sleepUntil: 9, sleepReason: 'no_tasks', sleepSince: 3 },
        event('agent.sleep'),
      );
      expect(slept).toMatchObject({
        sleepUntil: 9,
        sleepReason: 'no_tasks',
        sleepSince: 3,
        tokenHash: 'h3',
      });
      expect(await storage.updateAgent('ghost', { sleepUntil: 1 }, undefined)).toBeUndefined();
      expect((await storage.listAgents()).map((a) => a.id).sort()).toEqual(['agent-a', 'agent-b']);
      expect((await storage.readEvents(0, 10)).map((e) => e.type)).toEqual(['agent.sleep']);
    });

    it('refuses an escalation whose id exists, writing neither it nor its event', async () => {
      const first = await storage.insertEscalation(escalationRow(), event('escalation.created'));
      const events = (await storage.readEvents(0, 1000)).length;
      const again = storage.insertEscalation(
        escalationRow({ id: first.id, kind: 'blocked', violation: null }),
        event('escalation.created'),
      );
      await expect(again).rejects.toBeInstanceOf(ConflictError);
      await expect(again).rejects.toThrow(`Escalation ${first.id} already exists`);
      expect(await storage.getEscalation(first.id)).toEqual(first);
      expect(await storage.readEvents(0, 1000)).toHaveLength(events);

      // Nor does a compare-and-set that would add it: the task stays as it was.
      const task = (await storage.insertTask(taskRow({ state: 'in_progress' }), event('e'))).task;
      const count = (await storage.readEvents(0, 1000)).length;
      const update = {
        id: task.id,
        expect: { state: 'in_progress' as const },
        changes: { state: 'blocked' as const, updatedAt: 9_000 },
        extras: {
          events: [event('task.transitioned')],
          escalation: escalationRow({ id: first.id, kind: 'blocked', violation: null }),
        },
      };
      await expect(
        storage.updateTask(update.id, update.expect, update.changes, update.extras),
      ).rejects.toBeInstanceOf(ConflictError);
      await expect(storage.updateTasks([update])).rejects.toBeInstanceOf(ConflictError);
      expect(await storage.getTask(task.id)).toEqual(task);
      expect(await storage.readEvents(0, 1000)).toHaveLength(count);
    });

    it('stores escalations, lists them by status with a cursor, and moves them by compare-and-set', async () => {
      const one = await storage.insertEscalation(escalationRow(), event('escalation.created'));
      const two = await storage.insertEscalation(
        escalationRow({ kind: 'attempts_exhausted', violation: null }),
        event('escalation.created'),
      );
      expect(one.seq < two.seq).toBe(true);
      expect((await storage.getEscalation(one.id))?.violation?.details).toEqual({
        budgetType: 'steps',
        taskId: 't',
        limit: 1,
        observed: 2,
      });
      const acked = await storage.updateEscalation(
        one.id,
        ['open'],
        { status: 'acknowledged', acknowledgedAt: 5, acknowledgedBy: 'admin' },
        event('escalation.acknowledged'),
      );
      expect(acked).toMatchObject({ status: 'acknowledged', acknowledgedBy: 'admin' });
      expect(
        await storage.updateEscalation(
          one.id,
          ['open'],
          { status: 'acknowledged' },
          event('never'),
        ),
      ).toBeUndefined();
      expect(
        (await storage.listEscalations({ status: 'open', limit: 10 })).map((e) => e.id),
      ).toEqual([two.id]);
      expect(
        (await storage.listEscalations({ afterSeq: one.seq, limit: 10 })).map((e) => e.id),
      ).toEqual([two.id]);
      expect(await storage.countOpenEscalations()).toBe(2);
      await storage.updateEscalation(
        two.id,
        ['open', 'acknowledged'],
        { status: 'resolved', resolvedAt: 6, resolvedBy: 'admin', resolution: 'fixed' },
        event('escalation.resolved'),
      );
      expect(await storage.countOpenEscalations()).toBe(1);
      expect((await storage.readEvents(0, 10)).map((e) => e.type)).toEqual([
        'escalation.created',
        'escalation.created',
        'escalation.acknowledged',
        'escalation.resolved',
      ]);
    });

    it('reads the event log in order from a cursor', async () => {
      for (let i = 0; i < 5; i++) await storage.appendEvent(event('tick', { data: { i } }));
      const all = await storage.readEvents(0, 100);
      expect(all.map((e) => (e.data as { i: number }).i)).toEqual([0, 1, 2, 3, 4]);
      expect(all.every((e, i) => i === 0 || e.seq > (all[i - 1] as { seq: number }).seq)).toBe(
        true,
      );
      const after = await storage.readEvents((all[1] as { seq: number }).seq, 2);
      expect(after.map((e) => (e.data as { i: number }).i)).toEqual([2, 3]);
      expect(await storage.readEvents((all[4] as { seq: number }).seq, 10)).toEqual([]);
    });

    it('signals writes that can make a task claimable, and appended events', async () => {
      const signals: ChangeSignal[] = [];
      const off = storage.onChange((s) => signals.push(s));
      const settle = () => new Promise((r) => setTimeout(r, 200));
      await storage.insertTask(taskRow(), event('e'));
      await settle();
      expect(signals).toContain('task');
      signals.length = 0;
      const task = (await storage.insertTask(taskRow({ state: 'backlog' }), event('e'))).task;
      await settle();
      expect(signals).not.toContain('task');
      expect(signals).toContain('event');
      signals.length = 0;
      await storage.updateTask(
        task.id,
        { state: 'backlog' },
        { state: 'todo' },
        { events: [event('moved')] },
      );
      await settle();
      expect(signals).toContain('task');
      off();
      signals.length = 0;
      await storage.appendEvent(event('after-off'));
      await settle();
      expect(signals).toEqual([]);
    });

    lapsedLeaseConformance(() => storage);
    contextConformance(
      () => storage,
      () => target,
    );

    it('keeps everything across a close and reopen', async () => {
      if (target.reopen === undefined) return;
      const task = (await storage.insertTask(taskRow({ payload: { keep: true } }), event('e')))
        .task;
      await storage.putAgent({
        id: 'agent-a',
        tokenHash: 'h',
        sleepUntil: null,
        sleepReason: null,
        sleepSince: null,
        createdAt: 1,
      });
      const escalation = await storage.insertEscalation(
        escalationRow(),
        event('escalation.created'),
      );
      storage = await target.reopen();
      expect(await storage.getTask(task.id)).toEqual(task);
      expect((await storage.getAgent('agent-a'))?.tokenHash).toBe('h');
      expect(await storage.getEscalation(escalation.id)).toEqual(escalation);
      expect(await storage.readEvents(0, 10)).toHaveLength(2);
      const next = (await storage.insertTask(taskRow(), event('e'))).task;
      expect(next.seq).toBeGreaterThan(task.seq);
    });

    it('lists agents by id, each with the tasks it holds under a live lease, by cursor', async () => {
      const agent = (id: string) => ({
        id,
        tokenHash: `hash-${id}`,
        sleepUntil: null,
        sleepReason: null,
        sleepSince: null,
        createdAt: 1,
      });
      // Inserted out of order, with ids a collation would sort apart from their code points.
      for (const id of ['b-2', 'a', 'B', 'b', 'é']) await storage.putAgent(agent(id));
      const leased = (id: string, owner: string, leaseUntil: number, state = 'in_progress') =>
        storage.insertTask(
          taskRow({
            id,
            state: state as NewTaskRow['state'],
            leaseOwner: owner,
            leaseId: `lease-${id}`,
            leaseUntil,
          }),
          event('task.enqueued', { taskId: id }),
        );
      await leased('t-2', 'a', 6_000);
      await leased('t-1', 'a', 5_000); // live: runs until now
      await leased('t-3', 'a', 4_999); // lapsed, not yet reaped
      await leased('t-4', 'a', 9_000, 'done'); // finished with the lease still on the row
      await leased('t-5', 'b', 9_000);
      await leased('t-6', 'nobody', 9_000);
      const all = await storage.listAgentsHolding({ limit: 10, now: 5_000 });
      expect(all.map(({ agent, holding }) => [agent.id, holding])).toEqual([
        ['B', []],
        ['a', ['t-1', 't-2']],
        ['b', ['t-5']],
        ['b-2', []],
        ['é', []],
      ]);
      expect(all[1]?.agent).toEqual(agent('a'));
      const first = await storage.listAgentsHolding({ limit: 2, now: 5_000 });
      expect(first.map((a) => a.agent.id)).toEqual(['B', 'a']);
      const rest = await storage.listAgentsHolding({ afterId: 'a', limit: 2, now: 5_000 });
      expect(rest.map(({ agent, holding }) => [agent.id, holding])).toEqual([
        ['b', ['t-5']],
        ['b-2', []],
      ]);
      expect(await storage.listAgentsHolding({ afterId: 'é', limit: 2, now: 5_000 })).toEqual([]);
      const later = await storage.listAgentsHolding({ limit: 10, now: 6_001 });
      expect(later.map((a) => a.holding)).toEqual([[], [], ['t-5'], [], []]);
    });

    it("reads one task's events by cursor, a full page past the others'", async () => {
      for (let i = 0; i < 6; i++) {
        await storage.appendEvent(event('e', { taskId: 'mine', data: { i } }));
        await storage.appendEvent(event('e', { taskId: 'other', data: { i } }));
        await storage.appendEvent(event('e', { data: { i } }));
      }
      const page = await storage.readEvents(0, 4, 'mine');
      expect(page.map((e) => [e.taskId, e.data])).toEqual([0, 1, 2, 3].map((i) => ['mine', { i }]));
      const seqs = page.map((e) => e.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      const next = await storage.readEvents(page.at(-1)?.seq ?? 0, 4, 'mine');
      expect(next.map((e) => e.data)).toEqual([{ i: 4 }, { i: 5 }]);
      expect(await storage.readEvents(next.at(-1)?.seq ?? 0, 4, 'mine')).toEqual([]);
      expect(await storage.readEvents(0, 4, 'nope')).toEqual([]);
      expect(await storage.readEvents(0, 100)).toHaveLength(18);
    });
  });
}
