import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CoordinationServer, startCoordinationServer } from '@exec-kernel/coordination';
import { CoordinationClient } from '@exec-kernel/coordination-client';
import {
  BudgetExceededError,
  type KernelError,
  LoopDetectionError,
  type Violation,
} from '@exec-kernel/core';
import { generateText, stepCountIs, streamText, tool, wrapLanguageModel } from 'ai';
import { MockLanguageModelV3, simulateReadableStream } from 'ai/test';
import postgres from 'postgres';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { budgetMiddleware, type SpendWarning, violationOf } from '../src/index.js';

// The budget kept by a real coordination service over HTTP, on SQLite and on PostgreSQL: agents
// spend on the tasks they hold, and a parent's budget bounds all its children together.

const PG_URL = process.env.EXEC_KERNEL_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';
const ADMIN = 'ai-sdk-test-admin';
const ADMISSION = { consumer: 'c', painPoint: 'p', expectedValue: 'v', validationPath: 't' };
const PRICES = { 'test/model-a': { inputPerMTok: 2, outputPerMTok: 10 } };

type GenerateResult = Awaited<ReturnType<MockLanguageModelV3['doGenerate']>>;

function answer(
  input: number,
  output: number,
  content?: GenerateResult['content'],
): GenerateResult {
  return {
    content: content ?? [{ type: 'text', text: 'ok' }],
    finishReason: { unified: content === undefined ? 'stop' : 'tool-calls', raw: undefined },
    usage: {
      inputTokens: { total: input, noCache: input, cacheRead: undefined, cacheWrite: undefined },
      outputTokens: { total: output, text: output, reasoning: undefined },
    },
    warnings: [],
  };
}

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

async function start(engine: 'sqlite' | 'postgres'): Promise<CoordinationServer> {
  if (engine === 'sqlite') {
    const dir = await mkdtemp(join(tmpdir(), 'ek-ai-sdk-'));
    const server = await startCoordinationServer({
      db: `sqlite:${join(dir, 'queue.db')}`,
      adminToken: ADMIN,
      port: 0,
    });
    stops.push(async () => {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    });
    return server;
  }
  const schema = `ek_ai_sdk_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
  const server = await startCoordinationServer({
    db: `${PG_URL}?schema=${schema}`,
    adminToken: ADMIN,
    port: 0,
  });
  stops.push(async () => {
    await server.close();
    const db = postgres(PG_URL, { max: 1, onnotice: () => {} });
    await db.unsafe(`drop schema if exists "${schema}" cascade`);
    await db.end();
  });
  return server;
}

async function agents(server: CoordinationServer, ...names: string[]) {
  const admin = new CoordinationClient({ url: server.url, token: ADMIN });
  const clients: CoordinationClient[] = [];
  for (const name of names) {
    const { token } = await admin.registerAgent(name);
    clients.push(new CoordinationClient({ url: server.url, token }));
  }
  return { admin, clients };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to be refused');
}

describe.each(['sqlite', 'postgres'] as const)(
  'budgetMiddleware on the coordination service (%s)',
  (engine) => {
    it('two agents share a parent budget: the second is refused once the first spent it', async () => {
      const server = await start(engine);
      const { admin, clients } = await agents(server, 'planner', 'agent-a', 'agent-b');
      const [planner, agentA, agentB] = clients as [
        CoordinationClient,
        CoordinationClient,
        CoordinationClient,
      ];
      await planner.enqueue({
        id: 'epic',
        type: 'plan',
        admission: ADMISSION,
        budget: { maxTokens: 1000, maxCostUsd: 1 },
      });
      await planner.enqueue({ id: 'part-a', type: 'work', parentId: 'epic', admission: ADMISSION });
      await planner.enqueue({ id: 'part-b', type: 'work', parentId: 'epic', admission: ADMISSION });
      const leaseA = (await agentA.claimTask('part-a')).lease;
      const leaseB = (await agentB.claimTask('part-b')).lease;

      const inner = new MockLanguageModelV3({
        provider: 'test',
        modelId: 'model-a',
        doGenerate: [answer(300, 100), answer(100, 50), answer(400, 50)],
      });
      const violations: Array<{ violation: Violation; error: KernelError }> = [];
      const warnings: SpendWarning[] = [];
      const modelFor = (client: CoordinationClient, taskId: string, leaseId: string) =>
        wrapLanguageModel({
          model: inner,
          middleware: budgetMiddleware({
            taskId,
            client,
            leaseId,
            prices: PRICES,
            onWarning: (w) => warnings.push(w),
            onViolation: (violation, error) => violations.push({ violation, error }),
          }),
        });
      const modelA = modelFor(agentA, 'part-a', leaseA.id);
      const modelB = modelFor(agentB, 'part-b', leaseB.id);

      await generateText({ model: modelB, prompt: 'b starts' });
      await generateText({ model: modelA, prompt: 'a works' });
      await generateText({ model: modelA, prompt: 'a finishes the budget' });
      const epic = await admin.getTask('epic');
      expect(epic.tokens).toBe(1000);
      expect(epic.costUsd).toBeCloseTo((800 * 2 + 200 * 10) / 1e6, 12);
      expect((await admin.getTask('part-a')).tokens).toBe(600);
      expect((await admin.getTask('part-b')).tokens).toBe(400);
      // 550 → 1000 of 1000: past warnAt (0.8) in one call, so the one warning reads 1.
      expect(warnings).toEqual([{ taskId: 'epic', budgetType: 'tokens', fraction: 1 }]);

      const escalationsBefore = (await admin.listEscalations()).escalations.length;
      const error = await rejection(
        generateText({ model: modelB, prompt: 'b again', maxRetries: 0 }),
      );
      expect(BudgetExceededError.is(error)).toBe(true);
      expect((error as Error).message).toBe(
        'Task epic has no token budget left: 1000 tokens used, max 1000',
      );
      expect(inner.doGenerateCalls).toHaveLength(3);
      expect(violations).toHaveLength(1);
      expect(violations[0]?.violation).toEqual(violationOf(error));
      expect(violations[0]?.violation).toMatchObject({ kind: 'budget_tokens', taskId: 'epic' });
      const { escalations } = await admin.listEscalations();
      expect(escalations).toHaveLength(escalationsBefore + 1);
      expect(escalations.at(-1)).toMatchObject({ kind: 'violation', taskId: 'epic' });
      // Nothing was spent by the refusal, and part-b is still the agent's to finish.
      expect((await admin.getTask('epic')).tokens).toBe(1000);
      expect((await admin.getTask('part-b')).state).toBe('in_progress');
    });

    it('records a stream when it finishes, and the overrun that blocks the task', async () => {
      const server = await start(engine);
      const { admin, clients } = await agents(server, 'agent');
      const [agent] = clients as [CoordinationClient];
      await agent.enqueue({
        id: 't',
        type: 'work',
        admission: ADMISSION,
        budget: { maxTokens: 100 },
      });
      const { lease } = await agent.claimTask('t');
      const parts = (input: number, output: number) => [
        { type: 'stream-start' as const, warnings: [] },
        { type: 'text-start' as const, id: '1' },
        { type: 'text-delta' as const, id: '1', delta: 'hello' },
        { type: 'text-end' as const, id: '1' },
        {
          type: 'finish' as const,
          finishReason: { unified: 'stop' as const, raw: undefined },
          usage: answer(input, output).usage,
        },
      ];
      const inner = new MockLanguageModelV3({
        provider: 'test',
        modelId: 'model-a',
        doStream: [
          { stream: simulateReadableStream({ chunks: parts(40, 20) }) },
          { stream: simulateReadableStream({ chunks: parts(40, 20) }) },
        ],
      });
      const model = wrapLanguageModel({
        model: inner,
        middleware: budgetMiddleware({
          taskId: 't',
          client: agent,
          leaseId: lease.id,
          prices: PRICES,
        }),
      });
      expect(await streamText({ model, prompt: 'one' }).text).toBe('hello');
      expect((await admin.getTask('t')).tokens).toBe(60);
      const errors: unknown[] = [];
      await streamText({
        model,
        prompt: 'two',
        onError: ({ error }) => {
          errors.push(error);
        },
      }).consumeStream();
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({
        name: 'BudgetExceededError',
        budgetType: 'tokens',
        observed: 120,
      });
      const task = await admin.getTask('t');
      expect(task.tokens).toBe(120);
      expect(task.state).toBe('blocked');
    });

    it("sends the model's tool calls to the service's action rules before the tools run", async () => {
      const server = await start(engine);
      const { clients } = await agents(server, 'agent');
      const [agent] = clients as [CoordinationClient];
      await agent.enqueue({ id: 't', type: 'work', admission: ADMISSION });
      const { lease } = await agent.claimTask('t');
      const call = (n: number) =>
        answer(10, 5, [
          {
            type: 'tool-call',
            toolCallId: `c${n}`,
            toolName: 'read_file',
            input: '{"path":"a.ts"}',
          },
        ]);
      const inner = new MockLanguageModelV3({
        provider: 'test',
        modelId: 'model-a',
        doGenerate: [1, 2, 3, 4, 5, 6].map(call),
      });
      let reads = 0;
      const error = await rejection(
        generateText({
          model: wrapLanguageModel({
            model: inner,
            middleware: budgetMiddleware({
              taskId: 't',
              client: agent,
              leaseId: lease.id,
              prices: PRICES,
            }),
          }),
          prompt: 'fix it',
          tools: {
            read_file: tool({
              inputSchema: z.object({ path: z.string() }),
              execute: async () => {
                reads++;
                return 'contents';
              },
            }),
          },
          stopWhen: stepCountIs(20),
        }),
      );
      // The service's default repeat rule: the fifth identical call in a row is refused.
      expect(LoopDetectionError.is(error)).toBe(true);
      expect(error).toMatchObject({ loopType: 'repeat', tool: 'read_file', count: 5 });
      expect(violationOf(error)).toMatchObject({ kind: 'loop_repeat' });
      expect(reads).toBe(4);
      const history = await agent.getActions('t');
      expect(history.calls).toBe(4);
    });
  },
);
