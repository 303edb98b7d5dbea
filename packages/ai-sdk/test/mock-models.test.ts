import { BudgetTracker, type BudgetWarning } from '@exec-kernel/budget';
import {
  BudgetExceededError,
  InvalidInputError,
  type KernelError,
  LoopDetectionError,
  ManualClock,
  type Violation,
} from '@exec-kernel/core';
import { ActionGuard } from '@exec-kernel/loop';
import { generateText, stepCountIs, streamText, tool, wrapLanguageModel } from 'ai';
import { MockLanguageModelV3, simulateReadableStream } from 'ai/test';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  type BudgetMiddlewareCommon,
  budgetMiddleware,
  type ModelCallUsage,
  type SpendWarning,
  violationOf,
} from '../src/index.js';

// The AI SDK's own test models: what the middleware records is what the model reported, and a
// call refused for budget never reaches the model.

type GenerateResult = Awaited<ReturnType<MockLanguageModelV3['doGenerate']>>;
type StreamPart =
  Awaited<ReturnType<MockLanguageModelV3['doStream']>>['stream'] extends ReadableStream<infer P>
    ? P
    : never;

const PRICES = { 'test/model-a': { inputPerMTok: 2, outputPerMTok: 10, cacheReadPerMTok: 0.5 } };

function usage(input: number, output: number, cacheRead = 0): GenerateResult['usage'] {
  return {
    inputTokens: { total: input, noCache: input - cacheRead, cacheRead, cacheWrite: undefined },
    outputTokens: { total: output, text: output, reasoning: undefined },
  };
}

function answer(text: string, input: number, output: number): GenerateResult {
  return {
    content: [{ type: 'text', text }],
    finishReason: { unified: 'stop', raw: 'stop' },
    usage: usage(input, output),
    warnings: [],
  };
}

function toolCall(id: string, name: string, input: unknown, tokens = [10, 5]): GenerateResult {
  return {
    content: [{ type: 'tool-call', toolCallId: id, toolName: name, input: JSON.stringify(input) }],
    finishReason: { unified: 'tool-calls', raw: 'tool_calls' },
    usage: usage(tokens[0] ?? 0, tokens[1] ?? 0),
    warnings: [],
  };
}

function textStream(deltas: string[], finish?: { input: number; output: number }): StreamPart[] {
  const parts: StreamPart[] = [
    { type: 'stream-start', warnings: [] },
    { type: 'text-start', id: '1' },
    ...deltas.map((delta): StreamPart => ({ type: 'text-delta', id: '1', delta })),
    { type: 'text-end', id: '1' },
  ];
  if (finish !== undefined) {
    parts.push({
      type: 'finish',
      finishReason: { unified: 'stop', raw: 'stop' },
      usage: usage(finish.input, finish.output),
    });
  }
  return parts;
}

/** A tracker with the task started, and a middleware on it that logs what it reports. */
function setup(
  limits: { maxTokens?: number; maxCostUsd?: number },
  extra: Partial<BudgetMiddlewareCommon> & { actions?: ActionGuard } = {},
) {
  const clock = new ManualClock(Date.parse('2026-12-04T12:00:00Z'));
  const tracker = new BudgetTracker({ clock });
  tracker.startTask('task-1', limits);
  const usages: ModelCallUsage[] = [];
  const warnings: SpendWarning[] = [];
  const trackerWarnings: BudgetWarning[] = [];
  const violations: Array<{ violation: Violation; error: KernelError }> = [];
  tracker.onWarning((w) => trackerWarnings.push(w));
  const middleware = budgetMiddleware({
    taskId: 'task-1',
    tracker,
    clock,
    prices: PRICES,
    onUsage: (u) => usages.push(u),
    onWarning: (w) => warnings.push(w),
    onViolation: (violation, error) => violations.push({ violation, error }),
    ...extra,
  });
  return { tracker, middleware, usages, warnings, trackerWarnings, violations };
}

function mockModel(options: ConstructorParameters<typeof MockLanguageModelV3>[0]) {
  return new MockLanguageModelV3({ provider: 'test', modelId: 'model-a', ...options });
}

/** Streams `parts` one per read, 50 ms apart, and fails with an AbortError once `signal` aborts (as fetch does). */
function abortable(
  parts: StreamPart[],
  signal: AbortSignal | undefined,
): ReadableStream<StreamPart> {
  let index = 0;
  return new ReadableStream<StreamPart>({
    async pull(controller) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      if (signal?.aborted === true) {
        controller.error(new DOMException('This operation was aborted', 'AbortError'));
        return;
      }
      const part = parts[index++];
      if (part === undefined) controller.close();
      else controller.enqueue(part);
    },
  });
}

/** Streams `parts` one per read, then fails with `error`. */
function failing(parts: StreamPart[], error: Error): ReadableStream<StreamPart> {
  let index = 0;
  return new ReadableStream<StreamPart>({
    pull(controller) {
      const part = parts[index++];
      if (part === undefined) controller.error(error);
      else controller.enqueue(part);
    },
  });
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to be refused');
}

describe('generateText through the budget middleware', () => {
  it('records the tokens and cost the model reported, for the task', async () => {
    const { tracker, middleware, usages } = setup({ maxTokens: 10_000 });
    const inner = mockModel({
      doGenerate: [answer('one', 120, 30), answer('two', 200, 50)],
    });
    const model = wrapLanguageModel({ model: inner, middleware });
    expect((await generateText({ model, prompt: 'hi' })).text).toBe('one');
    expect((await generateText({ model, prompt: 'again' })).text).toBe('two');
    const state = tracker.get('task-1');
    expect(state?.tokens).toBe(400);
    // 320 input at $2/M and 80 output at $10/M.
    expect(state?.costUsd).toBeCloseTo((320 * 2 + 80 * 10) / 1e6, 12);
    expect(usages).toEqual([
      {
        taskId: 'task-1',
        provider: 'test',
        modelId: 'model-a',
        inputTokens: 120,
        outputTokens: 30,
        totalTokens: 150,
        cacheReadTokens: 0,
        costUsd: (120 * 2 + 30 * 10) / 1e6,
        priced: true,
        estimated: false,
      },
      expect.objectContaining({ inputTokens: 200, outputTokens: 50, totalTokens: 250 }),
    ]);
  });

  it('prices cached input at the cache price', async () => {
    const { tracker, middleware } = setup({});
    const inner = mockModel({
      doGenerate: { ...answer('x', 1000, 100), usage: usage(1000, 100, 800) },
    });
    await generateText({ model: wrapLanguageModel({ model: inner, middleware }), prompt: 'p' });
    // 200 uncached at $2, 800 cached at $0.5, 100 out at $10.
    expect(tracker.get('task-1')?.costUsd).toBeCloseTo((200 * 2 + 800 * 0.5 + 100 * 10) / 1e6, 12);
    expect(tracker.get('task-1')?.tokens).toBe(1100);
  });

  it('refuses the call after the budget is spent, before it reaches the model', async () => {
    const { tracker, middleware, violations } = setup({ maxTokens: 300 });
    const inner = mockModel({ doGenerate: [answer('a', 100, 50), answer('b', 100, 50)] });
    const model = wrapLanguageModel({ model: inner, middleware });
    await generateText({ model, prompt: 'one' });
    await generateText({ model, prompt: 'two' });
    expect(tracker.get('task-1')?.tokens).toBe(300);

    const error = await rejection(generateText({ model, prompt: 'three', maxRetries: 0 }));
    expect(BudgetExceededError.is(error)).toBe(true);
    expect((error as Error).message).toBe(
      'Task task-1 has no token budget left: 300 tokens used, max 300',
    );
    expect(inner.doGenerateCalls).toHaveLength(2);
    expect(tracker.get('task-1')?.tokens).toBe(300);
    expect(violations).toHaveLength(1);
    expect(violations[0]?.error).toBe(error);
    expect(violations[0]?.violation).toEqual(violationOf(error));
    expect(violations[0]?.violation).toMatchObject({
      kind: 'budget_tokens',
      code: 'BUDGET_EXCEEDED',
      taskId: 'task-1',
      limit: 300,
      observed: 300,
      at: '2026-12-04T12:00:00.000Z',
    });
  });

  it('refuses on a spent cost budget too', async () => {
    const { middleware } = setup({ maxCostUsd: 0.0005 });
    const inner = mockModel({ doGenerate: [answer('a', 100, 50), answer('b', 1, 1)] });
    const model = wrapLanguageModel({ model: inner, middleware });
    // 100 × $2/M + 50 × $10/M = $0.0007: counted, and the call that overran rejects.
    const overrun = await rejection(generateText({ model, prompt: 'one', maxRetries: 0 }));
    expect(overrun).toMatchObject({ budgetType: 'cost', limit: 0.0005 });
    const error = await rejection(generateText({ model, prompt: 'two', maxRetries: 0 }));
    expect(error).toMatchObject({ budgetType: 'cost', observed: 0.0007 });
    expect(inner.doGenerateCalls).toHaveLength(1);
  });

  it('counts the call that overruns, rejects it, and reports one violation for it', async () => {
    const { tracker, middleware, violations } = setup({ maxTokens: 200 });
    const inner = mockModel({ doGenerate: answer('long', 150, 100) });
    const model = wrapLanguageModel({ model: inner, middleware });
    const error = await rejection(generateText({ model, prompt: 'p', maxRetries: 0 }));
    expect(error).toBeInstanceOf(BudgetExceededError);
    expect((error as Error).message).toBe(
      'Task task-1 exceeded token budget: 250 tokens used, max 200',
    );
    expect(tracker.get('task-1')?.tokens).toBe(250);
    expect(violations.map((v) => v.violation.observed)).toEqual([250]);
  });

  it('warns once at warnAt, through the tracker and the middleware', async () => {
    const { middleware, warnings, trackerWarnings } = setup({ maxTokens: 1000 });
    const inner = mockModel({
      doGenerate: [answer('a', 300, 100), answer('b', 300, 100), answer('c', 50, 50)],
    });
    const model = wrapLanguageModel({ model: inner, middleware });
    await generateText({ model, prompt: 'one' });
    expect(warnings).toEqual([]);
    await generateText({ model, prompt: 'two' });
    await generateText({ model, prompt: 'three' });
    expect(warnings).toEqual([{ taskId: 'task-1', budgetType: 'tokens', fraction: 0.8 }]);
    expect(trackerWarnings).toEqual([
      { taskId: 'task-1', budgetType: 'tokens', fraction: 0.8, limit: 1000, observed: 800 },
    ]);
  });

  it("counts a child task's calls for its parent, and refuses the child when the parent is spent", async () => {
    const tracker = new BudgetTracker();
    tracker.startTask('parent', { maxTokens: 500 });
    tracker.startTask('child-a', { parentTaskId: 'parent' });
    tracker.startTask('child-b', { parentTaskId: 'parent' });
    const inner = mockModel({ doGenerate: answer('x', 200, 50) });
    const modelA = wrapLanguageModel({
      model: inner,
      middleware: budgetMiddleware({ taskId: 'child-a', tracker, prices: PRICES }),
    });
    const modelB = wrapLanguageModel({
      model: inner,
      middleware: budgetMiddleware({ taskId: 'child-b', tracker, prices: PRICES }),
    });
    await generateText({ model: modelA, prompt: 'a1' });
    await generateText({ model: modelB, prompt: 'b1' });
    expect(tracker.get('parent')?.tokens).toBe(500);
    const error = await rejection(generateText({ model: modelB, prompt: 'b2', maxRetries: 0 }));
    expect(error).toMatchObject({ budgetType: 'tokens', taskId: 'parent', observed: 500 });
    expect(inner.doGenerateCalls).toHaveLength(2);
  });

  it('caps maxOutputTokens to what is left once the prompt is counted', async () => {
    const { middleware } = setup(
      { maxTokens: 1000 },
      { capOutputTokens: true, estimateTokens: (text) => text.split(/\s+/).length },
    );
    const inner = mockModel({
      doGenerate: [answer('x', 300, 50), answer('x', 300, 50), answer('x', 5, 5)],
    });
    const model = wrapLanguageModel({ model: inner, middleware });
    await generateText({ model, prompt: 'count these four words', maxOutputTokens: 5000 });
    await generateText({ model, prompt: 'count these four words', maxOutputTokens: 100 });
    await generateText({ model, prompt: 'count these four words', maxOutputTokens: 5000 });
    // 1000 left less 4 prompt tokens; then the smaller asked for stays; then 300 left less 4.
    expect(inner.doGenerateCalls.map((c) => c.maxOutputTokens)).toEqual([996, 100, 296]);
  });

  it('caps by dollars left at the output price', async () => {
    const { middleware } = setup(
      { maxCostUsd: 0.01 },
      { capOutputTokens: true, estimateTokens: () => 500 },
    );
    const inner = mockModel({ doGenerate: answer('x', 10, 10) });
    await generateText({ model: wrapLanguageModel({ model: inner, middleware }), prompt: 'p' });
    // $0.01 less 500 prompt tokens at $2/M = $0.009, at $10/M output: 900 tokens.
    expect(inner.doGenerateCalls[0]?.maxOutputTokens).toBe(900);
  });

  it('refuses a model without a price when the task has a cost budget, sending nothing', async () => {
    const { middleware } = setup({ maxCostUsd: 1 });
    const inner = new MockLanguageModelV3({
      provider: 'acme.chat',
      modelId: 'secret',
      doGenerate: answer('x', 1, 1),
    });
    const error = await rejection(
      generateText({ model: wrapLanguageModel({ model: inner, middleware }), prompt: 'p' }),
    );
    expect(error).toBeInstanceOf(InvalidInputError);
    expect((error as Error).message).toBe(
      'Invalid prices: has no price for acme.chat/secret, so the cost budget of task task-1 cannot be kept; add the model to the price table',
    );
    expect(inner.doGenerateCalls).toHaveLength(0);
  });

  it('records tokens at no cost for an unpriced model when no cost budget applies', async () => {
    const { tracker, middleware, usages } = setup({ maxTokens: 1000 });
    const inner = new MockLanguageModelV3({
      provider: 'acme.chat',
      modelId: 'secret',
      doGenerate: answer('x', 10, 20),
    });
    await generateText({ model: wrapLanguageModel({ model: inner, middleware }), prompt: 'p' });
    expect(tracker.get('task-1')).toMatchObject({ tokens: 30, costUsd: 0 });
    expect(usages[0]).toMatchObject({ priced: false, costUsd: 0, totalTokens: 30 });
  });

  it('estimates the tokens of a provider that reports no usage', async () => {
    const { tracker, middleware, usages } = setup({}, { estimateTokens: (text) => text.length });
    const inner = mockModel({
      doGenerate: {
        ...answer('12345', 0, 0),
        usage: {
          inputTokens: {
            total: undefined,
            noCache: undefined,
            cacheRead: undefined,
            cacheWrite: undefined,
          },
          outputTokens: { total: undefined, text: undefined, reasoning: undefined },
        },
      },
    });
    await generateText({ model: wrapLanguageModel({ model: inner, middleware }), prompt: 'abc' });
    expect(usages[0]).toMatchObject({ inputTokens: 3, outputTokens: 5, estimated: true });
    expect(tracker.get('task-1')?.tokens).toBe(8);
  });
});

describe('streamText through the budget middleware', () => {
  it('records the usage of the last chunk when the stream finishes', async () => {
    const { tracker, middleware, usages } = setup({ maxTokens: 1000 });
    const inner = mockModel({
      doStream: {
        stream: simulateReadableStream({
          chunks: textStream(['Hello', ', ', 'world'], { input: 40, output: 7 }),
        }),
      },
    });
    const result = streamText({
      model: wrapLanguageModel({ model: inner, middleware }),
      prompt: 'p',
    });
    expect(await result.text).toBe('Hello, world');
    expect((await result.usage).totalTokens).toBe(47);
    expect(tracker.get('task-1')?.tokens).toBe(47);
    expect(usages).toEqual([expect.objectContaining({ totalTokens: 47, estimated: false })]);
  });

  it('refuses a stream once the budget is spent, before it reaches the model', async () => {
    const { tracker, middleware, violations } = setup({ maxTokens: 47 });
    tracker.recordUsage('task-1', { tokens: 47 });
    const inner = mockModel({
      doStream: {
        stream: simulateReadableStream({ chunks: textStream(['x'], { input: 1, output: 1 }) }),
      },
    });
    const errors: unknown[] = [];
    const result = streamText({
      model: wrapLanguageModel({ model: inner, middleware }),
      prompt: 'p',
      onError: ({ error }) => {
        errors.push(error);
      },
    });
    await result.consumeStream();
    expect(inner.doStreamCalls).toHaveLength(0);
    expect(errors).toHaveLength(1);
    expect(BudgetExceededError.is(errors[0])).toBe(true);
    expect(violations).toHaveLength(1);
  });

  it('records an estimate of what an aborted stream sent and received', async () => {
    const { tracker, middleware, usages } = setup(
      { maxTokens: 1000 },
      { estimateTokens: (text) => text.length },
    );
    const controller = new AbortController();
    const inner = mockModel({
      doStream: async ({ abortSignal }) => ({
        stream: abortable(
          textStream(['abc', 'defg', 'never', 'sent'], { input: 900, output: 900 }),
          abortSignal,
        ),
      }),
    });
    const result = streamText({
      model: wrapLanguageModel({ model: inner, middleware }),
      prompt: 'hello',
      abortSignal: controller.signal,
    });
    let seen = '';
    const reading = (async () => {
      for await (const delta of result.textStream) {
        seen += delta;
        if (seen === 'abcdefg') controller.abort();
      }
    })();
    await reading.catch(() => {});
    await expect.poll(() => usages.length).toBe(1);
    // 5 characters of prompt, and the 7 received before the abort: never the 1,800 of the end.
    expect(usages[0]).toMatchObject({ inputTokens: 5, outputTokens: 7, estimated: true });
    expect(tracker.get('task-1')?.tokens).toBe(12);
  });

  it('records an estimate when the provider stream fails half-way', async () => {
    const { tracker, middleware } = setup({}, { estimateTokens: (text) => text.length });
    const inner = mockModel({
      doStream: async () => ({
        stream: failing(textStream(['partial']).slice(0, 3), new Error('connection reset')),
      }),
    });
    const result = streamText({
      model: wrapLanguageModel({ model: inner, middleware }),
      prompt: 'hi',
      onError: () => {},
    });
    await result.consumeStream();
    await expect.poll(() => tracker.get('task-1')?.tokens).toBe(2 + 7);
  });
});

describe('tool calls through the budget middleware', () => {
  it('records every step of a multi-step tool run exactly', async () => {
    const { tracker, middleware, usages } = setup({ maxTokens: 10_000 });
    const inner = mockModel({
      doGenerate: [
        toolCall('c1', 'weather', { city: 'Oslo' }, [50, 10]),
        toolCall('c2', 'weather', { city: 'Rome' }, [80, 12]),
        answer('Oslo is colder.', 120, 6),
      ],
    });
    const ran: string[] = [];
    const result = await generateText({
      model: wrapLanguageModel({ model: inner, middleware }),
      prompt: 'Which is colder?',
      tools: {
        weather: tool({
          inputSchema: z.object({ city: z.string() }),
          execute: async ({ city }) => {
            ran.push(city);
            return { city, celsius: city === 'Oslo' ? -3 : 12 };
          },
        }),
      },
      stopWhen: stepCountIs(5),
    });
    expect(result.text).toBe('Oslo is colder.');
    expect(ran).toEqual(['Oslo', 'Rome']);
    expect(usages.map((u) => u.totalTokens)).toEqual([60, 92, 126]);
    expect(tracker.get('task-1')?.tokens).toBe(60 + 92 + 126);
    expect((await result.totalUsage).totalTokens).toBe(60 + 92 + 126);
  });

  it('stops a model that repeats a tool call before the tool runs', async () => {
    const guard = new ActionGuard({ repeat: { warnAt: 2, blockAt: 3 } });
    const { middleware, violations } = setup({ maxTokens: 10_000 }, { actions: guard });
    const inner = mockModel({
      doGenerate: [1, 2, 3, 4].map((n) => toolCall(`c${n}`, 'read_file', { path: 'a.ts' })),
    });
    let ran = 0;
    const error = await rejection(
      generateText({
        model: wrapLanguageModel({ model: inner, middleware }),
        prompt: 'Fix the bug',
        tools: {
          read_file: tool({
            inputSchema: z.object({ path: z.string() }),
            execute: async () => {
              ran++;
              return 'same contents';
            },
          }),
        },
        stopWhen: stepCountIs(10),
      }),
    );
    expect(LoopDetectionError.is(error)).toBe(true);
    expect(error).toMatchObject({ loopType: 'repeat', tool: 'read_file', count: 3 });
    expect(ran).toBe(2);
    expect(inner.doGenerateCalls).toHaveLength(3);
    expect(violations.map((v) => v.violation.kind)).toEqual(['loop_repeat']);
  });

  it('hands each tool result back to the guard, which stops a run that makes no progress', async () => {
    const guard = new ActionGuard({
      repeat: { warnAt: 99, blockAt: 100 },
      noProgress: { warnAt: 2, blockAt: 3 },
    });
    const { middleware } = setup({}, { actions: guard });
    const inner = mockModel({
      doGenerate: [1, 2, 3, 4, 5].map((n) => toolCall(`c${n}`, 'run_tests', { attempt: n })),
    });
    let ran = 0;
    const error = await rejection(
      generateText({
        model: wrapLanguageModel({ model: inner, middleware }),
        prompt: 'Make the tests pass',
        tools: {
          run_tests: tool({
            inputSchema: z.object({ attempt: z.number() }),
            execute: async () => {
              ran++;
              return '3 failed';
            },
          }),
        },
        stopWhen: stepCountIs(10),
      }),
    );
    expect(error).toMatchObject({ loopType: 'no_progress' });
    // The fourth step was refused when the third identical result came back with its prompt.
    expect(inner.doGenerateCalls).toHaveLength(3);
    expect(
      guard
        .history('task-1')
        ?.toJSON()
        .recent.map(([, , result]) => result !== null),
    ).toEqual([true, true, false]);
    expect(ran).toBe(3);
  });

  it('checks a streamed tool call before streamText runs the tool', async () => {
    const guard = new ActionGuard({ repeat: { warnAt: 1, blockAt: 2 } });
    guard.observe({ taskId: 'task-1', tool: 'deploy', args: { env: 'prod' } });
    const { middleware } = setup({}, { actions: guard });
    const inner = mockModel({
      doStream: {
        stream: simulateReadableStream({
          chunks: [
            { type: 'stream-start', warnings: [] },
            {
              type: 'tool-call',
              toolCallId: 's1',
              toolName: 'deploy',
              input: JSON.stringify({ env: 'prod' }),
            },
            {
              type: 'finish',
              finishReason: { unified: 'tool-calls', raw: 'tool_calls' },
              usage: usage(10, 5),
            },
          ] satisfies StreamPart[],
        }),
      },
    });
    let deployed = 0;
    const errors: unknown[] = [];
    const result = streamText({
      model: wrapLanguageModel({ model: inner, middleware }),
      prompt: 'ship it',
      tools: {
        deploy: tool({
          inputSchema: z.object({ env: z.string() }),
          execute: async () => {
            deployed++;
            return 'deployed';
          },
        }),
      },
      onError: ({ error }) => {
        errors.push(error);
      },
    });
    await result.consumeStream();
    expect(deployed).toBe(0);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ loopType: 'repeat', tool: 'deploy' });
  });
});

describe('budgetMiddleware options', () => {
  it('refuses a malformed price or task id when it is made, not at the first call', () => {
    const tracker = new BudgetTracker();
    expect(() =>
      budgetMiddleware({
        taskId: 't',
        tracker,
        prices: { 'openai/x': { inputPerMTok: -1, outputPerMTok: 1 } },
      }),
    ).toThrow(
      'Price openai/x.inputPerMTok must be a non-negative number of dollars per million tokens, got -1',
    );
    expect(() => budgetMiddleware({ taskId: ' ', tracker })).toThrow(InvalidInputError);
  });

  it("rounds an estimator's fractions up to whole tokens", async () => {
    const tracker = new BudgetTracker();
    tracker.startTask('t');
    const inner = new MockLanguageModelV3({
      provider: 'acme.chat',
      modelId: 'm',
      doGenerate: {
        ...answer('', 0, 0),
        usage: { inputTokens: {} as never, outputTokens: {} as never },
      },
    });
    const model = wrapLanguageModel({
      model: inner,
      middleware: budgetMiddleware({
        taskId: 't',
        tracker,
        estimateTokens: (text) => text.length / 10,
      }),
    });
    await generateText({ model, prompt: 'eleven char' });
    // 11 characters / 10 = 1.1 → 2 input tokens; an empty answer is 0.
    expect(tracker.get('t')?.tokens).toBe(2);
  });

  it('looks a price up by the exact provider first, then by its name before the dot', async () => {
    const tracker = new BudgetTracker();
    tracker.startTask('t', { maxCostUsd: 1 });
    const prices = {
      'acme/m': { inputPerMTok: 1, outputPerMTok: 1 },
      'acme.responses/m': { inputPerMTok: 100, outputPerMTok: 100 },
    };
    for (const provider of ['acme.chat', 'acme.responses']) {
      const inner = new MockLanguageModelV3({
        provider,
        modelId: 'm',
        doGenerate: answer('x', 5, 5),
      });
      const model = wrapLanguageModel({
        model: inner,
        middleware: budgetMiddleware({ taskId: 't', tracker, prices }),
      });
      await generateText({ model, prompt: 'p' });
    }
    expect(tracker.get('t')?.costUsd).toBeCloseTo((10 * 1 + 10 * 100) / 1e6, 12);
  });
});
