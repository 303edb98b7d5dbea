import { CoordinationClient, type EscalationView } from '@exec-kernel/coordination-client';
import {
  BudgetExceededError,
  ConflictError,
  ForbiddenError,
  NotFoundError,
} from '@exec-kernel/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN,
  ADMISSION,
  call,
  type Engine,
  startServer,
  type TestServer,
} from './http-helpers.js';

// `POST /v1/tasks/{id}/usage/check` over real HTTP on both databases: before a model call, the
// service applies budget's `evaluateUsageLeft` to the task and every ancestor, as stored, so an
// agent is refused once a budget it shares with another agent is used up.

const refusal = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => {
      throw new Error('expected a refusal');
    },
    (error: unknown) => error,
  );

describe.each<Engine>(['sqlite', 'postgres'])(
  'checking usage left before spending (%s)',
  (engine) => {
    let running: TestServer;
    let admin: CoordinationClient;
    let seq = 0;

    beforeAll(async () => {
      running = await startServer(engine);
      admin = new CoordinationClient({ url: running.url, token: ADMIN, retries: 0 });
    });
    afterAll(async () => {
      await running?.stop();
    });

    /** A fresh agent's client, under an id no other test uses. */
    async function agent(name: string): Promise<CoordinationClient> {
      return (await agentWithToken(name)).client;
    }

    async function agentWithToken(
      name: string,
    ): Promise<{ client: CoordinationClient; id: string; token: string }> {
      const id = `${name}-${++seq}`;
      const { token } = await admin.registerAgent(id);
      return { client: new CoordinationClient({ url: running.url, token, retries: 0 }), id, token };
    }

    /** A fresh task id. */
    const taskId = (name: string) => `${name}-${++seq}`;

    /** Enqueues a task as `client` and claims it; returns its lease id. */
    async function held(
      client: CoordinationClient,
      id: string,
      extra: { parentId?: string; budget?: { maxTokens?: number; maxCostUsd?: number } } = {},
    ): Promise<string> {
      await client.enqueue({ id, type: 'model', admission: ADMISSION, ...extra });
      return (await client.claimTask(id)).lease.id;
    }

    const violationEscalations = async (): Promise<EscalationView[]> =>
      (await admin.listEscalations({ limit: 1000 })).escalations.filter(
        (e) => e.kind === 'violation',
      );

    it('answers the least left over the task and its parent, null where unlimited', async () => {
      const worker = await agent('worker');
      const [parent, child] = [taskId('parent'), taskId('child')];
      await worker.enqueue({
        id: parent,
        type: 'plan',
        admission: ADMISSION,
        budget: { maxTokens: 1000 },
      });
      const leaseId = await held(worker, child, { parentId: parent, budget: { maxTokens: 5000 } });
      expect(await worker.checkUsage(child, { leaseId })).toEqual({
        taskId: child,
        remaining: { tokens: 1000, costUsd: null },
      });
      await worker.usage(child, { tokens: 300, leaseId });
      expect(await worker.checkUsage(child, { leaseId })).toEqual({
        taskId: child,
        remaining: { tokens: 700, costUsd: null },
      });
      // The admin needs no lease; the answer is the same.
      expect((await admin.checkUsage(child)).remaining).toEqual({ tokens: 700, costUsd: null });
    });

    it('answers null for both when nothing in the chain is limited', async () => {
      const { client: worker, token } = await agentWithToken('free');
      const id = taskId('free');
      const leaseId = await held(worker, id);
      const answer = await call(running.url, 'POST', `/v1/tasks/${id}/usage/check`, {
        token,
        body: { leaseId },
      });
      expect(answer).toMatchObject({
        status: 200,
        body: { taskId: id, remaining: { tokens: null, costUsd: null } },
      });
    });

    it("refuses agent B once agent A's usage brings their shared parent to its limit, escalating once", async () => {
      const [planner, a] = [await agent('planner'), await agent('a')];
      const { client: b, id: agentB } = await agentWithToken('b');
      const [parent, childA, childB] = [taskId('shared'), taskId('child-a'), taskId('child-b')];
      await planner.enqueue({
        id: parent,
        type: 'plan',
        admission: ADMISSION,
        budget: { maxTokens: 1000 },
      });
      const leaseA = await held(a, childA, { parentId: parent });
      const leaseB = await held(b, childB, { parentId: parent });
      await a.usage(childA, { tokens: 600, leaseId: leaseA });
      expect((await b.checkUsage(childB, { leaseId: leaseB })).remaining.tokens).toBe(400);
      // Exactly at the limit: the spend itself is within budget, but nothing is left.
      await a.usage(childA, { tokens: 400, leaseId: leaseA });
      expect((await admin.getTask(parent)).tokens).toBe(1000);

      const before = await violationEscalations();
      const error = await refusal(b.checkUsage(childB, { leaseId: leaseB }));
      expect(error).toBeInstanceOf(BudgetExceededError);
      const refused = error as BudgetExceededError & { violation?: Record<string, unknown> };
      expect(refused.message).toBe(
        `Task ${parent} has no token budget left: 1000 tokens used, max 1000`,
      );
      expect(refused.details).toMatchObject({
        budgetType: 'tokens',
        taskId: parent,
        limit: 1000,
        observed: 1000,
      });
      expect(refused.violation).toMatchObject({
        kind: 'budget_tokens',
        code: 'BUDGET_EXCEEDED',
        taskId: parent,
        agentId: agentB,
        message: refused.message,
      });

      const after = await violationEscalations();
      expect(after).toHaveLength(before.length + 1);
      const added = after.filter((e) => !before.some((old) => old.id === e.id));
      expect(added).toHaveLength(1);
      expect(added[0]).toMatchObject({
        status: 'open',
        taskId: parent,
        violation: { kind: 'budget_tokens', message: refused.message },
      });
      const metrics = await (await fetch(`${running.url}/metrics`)).text();
      expect(metrics).toMatch(/exec_kernel_violations_total\{kind="budget_tokens"\} [1-9]/);

      // A's own task is refused too: the parent is used up for every child.
      expect(await refusal(a.checkUsage(childA, { leaseId: leaseA }))).toBeInstanceOf(
        BudgetExceededError,
      );
    });

    it('neither records spending nor blocks the task, refused or not', async () => {
      const worker = await agent('idle');
      const id = taskId('kept');
      const leaseId = await held(worker, id, { budget: { maxTokens: 100 } });
      await worker.usage(id, { tokens: 40, costUsd: 0.25, leaseId });
      for (let i = 0; i < 3; i++) await worker.checkUsage(id, { leaseId });
      let task = await worker.getTask(id);
      expect([task.tokens, task.costUsd, task.state]).toEqual([40, 0.25, 'in_progress']);

      await worker.usage(id, { tokens: 60, leaseId });
      expect(await refusal(worker.checkUsage(id, { leaseId }))).toBeInstanceOf(BudgetExceededError);
      task = await worker.getTask(id);
      expect([task.tokens, task.costUsd, task.state]).toEqual([100, 0.25, 'in_progress']);
      expect(task.leaseOwner).not.toBeNull();
      const { events } = await admin.events({ limit: 1000 });
      const mine = events.filter((e) => e.taskId === id);
      expect(mine.filter((e) => e.type === 'task.usage')).toHaveLength(2);
      const moves = mine.filter((e) => e.type === 'task.transitioned');
      expect(moves.map((e) => (e.data as { to: string }).to)).not.toContain('blocked');
      const blocked = (await admin.listEscalations({ limit: 1000 })).escalations.filter(
        (e) => e.kind === 'blocked' && e.taskId === id,
      );
      expect(blocked).toEqual([]);
      // The lease still holds: the worker carries on (here, it finishes).
      expect((await worker.transition(id, 'done', { leaseId })).to).toBe('done');
    });

    it('refuses once the cost budget is used up', async () => {
      const worker = await agent('spender');
      const id = taskId('costly');
      const leaseId = await held(worker, id, { budget: { maxCostUsd: 0.5 } });
      await worker.usage(id, { costUsd: 0.2, leaseId });
      expect((await worker.checkUsage(id, { leaseId })).remaining).toEqual({
        tokens: null,
        costUsd: 0.3,
      });
      await worker.usage(id, { costUsd: 0.3, leaseId });
      const error = await refusal(worker.checkUsage(id, { leaseId }));
      expect(error).toBeInstanceOf(BudgetExceededError);
      expect((error as Error).message).toBe(
        `Task ${id} has no cost budget left: $0.5 spent, max $0.5`,
      );
      expect(error).toMatchObject({
        details: { budgetType: 'cost', taskId: id },
        violation: { kind: 'budget_cost', taskId: id },
      });
    });

    it('skips an ancestor in a terminal state', async () => {
      const worker = await agent('orphan');
      const [parent, child] = [taskId('gone'), taskId('left')];
      await worker.enqueue({
        id: parent,
        type: 'plan',
        admission: ADMISSION,
        budget: { maxTokens: 10 },
      });
      const leaseId = await held(worker, child, { parentId: parent, budget: { maxTokens: 500 } });
      await worker.usage(child, { tokens: 10, leaseId });
      expect(await refusal(worker.checkUsage(child, { leaseId }))).toBeInstanceOf(
        BudgetExceededError,
      );
      await admin.transition(parent, 'cancelled');
      expect((await worker.checkUsage(child, { leaseId })).remaining).toEqual({
        tokens: 490,
        costUsd: null,
      });
    });

    it('gives a caller not holding the lease the error a spend gives it', async () => {
      const [holder, other] = [await agent('holder'), await agent('other')];
      const id = taskId('theirs');
      const leaseId = await held(holder, id, { budget: { maxTokens: 1000 } });

      const spent = await refusal(other.usage(id, { tokens: 1 }));
      const checked = await refusal(other.checkUsage(id));
      expect(checked).toBeInstanceOf(ForbiddenError);
      expect(checked).toMatchObject({
        code: (spent as ForbiddenError).code,
        message: (spent as ForbiddenError).message,
      });

      const stale = await refusal(other.checkUsage(id, { leaseId: 'not-this-one' }));
      expect(stale).toBeInstanceOf(ConflictError);
      expect(stale).toMatchObject({
        message: ((await refusal(other.usage(id, { tokens: 1, leaseId: 'not-this-one' }))) as Error)
          .message,
      });

      await holder.release(id, { leaseId });
      const gone = await refusal(holder.checkUsage(id, { leaseId }));
      const goneSpend = await refusal(holder.usage(id, { tokens: 1, leaseId }));
      expect(gone).toBeInstanceOf(ConflictError);
      expect(gone).toMatchObject({
        message: (goneSpend as Error).message,
        details: { reason: 'moved' },
      });
      expect((await admin.getTask(id)).tokens).toBe(0);
    });

    it('answers NotFoundError for an unknown task, and refuses a body the schema does not know', async () => {
      const worker = await agent('lost');
      const missing = await refusal(worker.checkUsage('no-such-task'));
      expect(missing).toBeInstanceOf(NotFoundError);
      expect(await refusal(admin.checkUsage('no-such-task'))).toBeInstanceOf(NotFoundError);
      const strict = await call(running.url, 'POST', '/v1/tasks/no-such-task/usage/check', {
        body: { leaseId: 'x', tokens: 5 },
      });
      expect(strict).toMatchObject({ status: 400, code: 'VALIDATION' });
    });
  },
);
