// Goal 11: what budgetMiddleware adds to a model call. The model is an in-process AI SDK model
// (LanguageModelV3) that answers at once with a fixed result and usage, so the figure is the
// middleware's own cost: its budget check before the call, and recording the usage after. Calls
// through the middleware and straight to the bare model alternate in rounds, so machine noise hits
// both alike; a figure is the median over rounds of the mean per call in a round. The same is
// measured with the budget kept by the coordination service (a process of its own, on SQLite, as
// in bench/coordination.js), where the check and the record are one HTTP request each.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { budgetMiddleware } from '@exec-kernel/ai-sdk';
import { BudgetTracker, LIMIT_MAXIMUMS } from '@exec-kernel/budget';
import { CoordinationClient } from '@exec-kernel/coordination/client';
import { ActionGuard } from '@exec-kernel/loop';
import { generateText, wrapLanguageModel } from 'ai';
import { startService } from './coordination.js';
import { median } from './harness.js';

const USAGE = {
  inputTokens: { total: 1200, noCache: 200, cacheRead: 1000, cacheWrite: 0 },
  outputTokens: { total: 80, text: 80, reasoning: 0 },
};
const TEXT_RESULT = {
  content: [{ type: 'text', text: 'The answer is 42.' }],
  finishReason: { unified: 'stop', raw: 'stop' },
  usage: USAGE,
  warnings: [],
};
const TOOL_RESULT = {
  ...TEXT_RESULT,
  content: [
    { type: 'tool-call', toolCallId: 'c1', toolName: 'read_file', input: '{"path":"src/a.ts"}' },
  ],
  finishReason: { unified: 'tool-calls', raw: 'tool_calls' },
};
const STREAM_PARTS = [
  { type: 'stream-start', warnings: [] },
  { type: 'text-start', id: '1' },
  ...['The ', 'answer ', 'is ', '42.'].map((delta) => ({ type: 'text-delta', id: '1', delta })),
  { type: 'text-end', id: '1' },
  { type: 'finish', finishReason: { unified: 'stop', raw: 'stop' }, usage: USAGE },
];
const PARAMS = {
  prompt: [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: [{ type: 'text', text: 'What is six times seven?' }] },
  ],
  maxOutputTokens: 256,
};

/** A model that answers at once: the baseline, and what the middleware wraps. */
function bareModel(result = TEXT_RESULT) {
  return {
    specificationVersion: 'v3',
    provider: 'openai.chat',
    modelId: 'gpt-4o-mini',
    supportedUrls: {},
    doGenerate: async () => result,
    doStream: async () => ({
      stream: new ReadableStream({
        start(controller) {
          for (const part of STREAM_PARTS) controller.enqueue(part);
          controller.close();
        },
      }),
    }),
  };
}

async function drain(stream) {
  const reader = stream.getReader();
  while (!(await reader.read()).done);
}

/**
 * Median over `rounds` of (mean ms per call through `wrapped`) and (… through `bare`), and of
 * their difference within a round; which goes first alternates.
 */
async function paired(bare, wrapped, call, { rounds, calls }) {
  const times = { bare: [], wrapped: [], added: [] };
  const timeOne = async (model) => {
    const started = performance.now();
    for (let i = 0; i < calls; i++) await call(model);
    return (performance.now() - started) / calls;
  };
  for (let round = 0; round < rounds; round++) {
    let b;
    let w;
    if (round % 2 === 0) {
      b = await timeOne(bare);
      w = await timeOne(wrapped);
    } else {
      w = await timeOne(wrapped);
      b = await timeOne(bare);
    }
    times.bare.push(b);
    times.wrapped.push(w);
    times.added.push(w - b);
  }
  return {
    bareMs: median(times.bare),
    wrappedMs: median(times.wrapped),
    addedMs: median(times.added),
  };
}

const generate = (model) => model.doGenerate(PARAMS);
const stream = async (model) => drain((await model.doStream(PARAMS)).stream);

function localTracker() {
  const tracker = new BudgetTracker();
  tracker.startTask('bench', {
    maxTokens: LIMIT_MAXIMUMS.maxTokens,
    maxCostUsd: LIMIT_MAXIMUMS.maxCostUsd,
  });
  return tracker;
}

/** Each case: `{ name, bareMs, wrappedMs, addedMs, calls, rounds }`. */
export async function runAiSdk(options = {}) {
  const local = { rounds: options.rounds ?? 40, calls: options.calls ?? 2000 };
  const results = [];
  const add = (name, settings, m, baseline = 'bare') =>
    results.push({ name, baseline, ...settings, ...m });

  {
    const bare = bareModel();
    const wrapped = wrapLanguageModel({
      model: bare,
      middleware: budgetMiddleware({ taskId: 'bench', tracker: localTracker() }),
    });
    // Warm-up: the JIT settles before anything is timed.
    await paired(bare, wrapped, generate, { rounds: 4, calls: local.calls });
    add('doGenerate, local tracker', local, await paired(bare, wrapped, generate, local));
    add(
      'doStream (read to the end), local tracker',
      local,
      await paired(bare, wrapped, stream, local),
    );
    const capped = wrapLanguageModel({
      model: bare,
      middleware: budgetMiddleware({
        taskId: 'bench',
        tracker: localTracker(),
        capOutputTokens: true,
      }),
    });
    add(
      'doGenerate, local tracker, capOutputTokens',
      local,
      await paired(bare, capped, generate, local),
    );
    const viaSdk = { rounds: local.rounds, calls: local.calls / 4 };
    add(
      'generateText(), local tracker',
      viaSdk,
      await paired(
        bare,
        wrapped,
        (model) => generateText({ model, prompt: 'What is six times seven?' }),
        viaSdk,
      ),
    );
  }
  {
    // A tool call in every answer, checked by an ActionGuard that allows it (a fresh task per
    // round would be needed to stay under `repeat`; the rule is off so every call is counted).
    const bare = bareModel(TOOL_RESULT);
    const guard = new ActionGuard({
      repeat: false,
      window: false,
      pingPong: false,
      noProgress: false,
    });
    const wrapped = wrapLanguageModel({
      model: bare,
      middleware: budgetMiddleware({ taskId: 'bench', tracker: localTracker(), actions: guard }),
    });
    add(
      'doGenerate + tool call, local tracker and ActionGuard',
      local,
      await paired(bare, wrapped, generate, local),
    );
  }

  if (options.coordination !== false) {
    const dir = mkdtempSync(join(tmpdir(), 'exec-kernel-bench-ai-sdk-'));
    const service = await startService(`sqlite:${join(dir, 'queue.db')}`, 'ai-sdk', {});
    try {
      const { token } = await service.admin.registerAgent('agent');
      const client = new CoordinationClient({ url: service.url, token });
      await client.enqueue({
        type: 'bench',
        admission: { consumer: 'bench', painPoint: 'p', expectedValue: 'v', validationPath: 't' },
        budget: { maxTokens: LIMIT_MAXIMUMS.maxTokens, maxCostUsd: LIMIT_MAXIMUMS.maxCostUsd },
      });
      const claimed = await client.claim({ leaseSeconds: 3600 });
      if (claimed === null || claimed === undefined)
        throw new Error('the bench task was not claimed');
      const bare = bareModel();
      const wrapped = wrapLanguageModel({
        model: bare,
        middleware: budgetMiddleware({
          taskId: claimed.task.id,
          client,
          leaseId: claimed.lease.id,
        }),
      });
      const remote = {
        rounds: options.coordinationRounds ?? 10,
        calls: options.coordinationCalls ?? 100,
      };
      // The service process warms up too: its JIT needs some hundreds of requests.
      await paired(bare, wrapped, generate, { rounds: 2, calls: 500 });
      add(
        'doGenerate, coordination service (SQLite)',
        remote,
        await paired(bare, wrapped, generate, remote),
      );
      // The same two requests made by hand, alternating with the middleware's: what is left of the
      // difference is the middleware's own share of a coordination-backed call.
      const byHand = {
        ...bare,
        doGenerate: async () => {
          await client.checkUsage(claimed.task.id, { leaseId: claimed.lease.id });
          await client.usage(claimed.task.id, {
            tokens: 1280,
            costUsd: 0.0001,
            leaseId: claimed.lease.id,
          });
          return TEXT_RESULT;
        },
      };
      add(
        'doGenerate, coordination service, against its two requests by hand',
        remote,
        await paired(byHand, wrapped, generate, remote),
        'by hand',
      );
    } finally {
      await service.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return results;
}
