import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { BudgetTracker } from '@exec-kernel/budget';
import { BudgetExceededError, LoopDetectionError } from '@exec-kernel/core';
import { ActionGuard } from '@exec-kernel/loop';
import { generateText, stepCountIs, streamText, tool, wrapLanguageModel } from 'ai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { budgetMiddleware, type ModelCallUsage } from '../src/index.js';

// The real provider path: the AI SDK's OpenAI-compatible provider talks HTTP to a small chat
// completions server on 127.0.0.1, so what the middleware sees is the provider's own parsing of
// the usage the server sends (in the body, or in the last chunk of a stream).

interface Scripted {
  /** What the next completion says: text, or a tool call. */
  reply: { text: string } | { tool: string; args: unknown };
  usage: { prompt: number; completion: number; cached?: number };
}

let server: Server;
let baseURL = '';
const requests: Array<Record<string, unknown>> = [];
let script: Scripted[] = [];

function completionBody(reply: Scripted['reply'], id: number) {
  return 'text' in reply
    ? { role: 'assistant', content: reply.text }
    : {
        role: 'assistant',
        content: null,
        tool_calls: [
          {
            id: `call_${id}`,
            type: 'function',
            function: { name: reply.tool, arguments: JSON.stringify(reply.args) },
          },
        ],
      };
}

function usageBody(usage: Scripted['usage']) {
  return {
    prompt_tokens: usage.prompt,
    completion_tokens: usage.completion,
    total_tokens: usage.prompt + usage.completion,
    prompt_tokens_details: { cached_tokens: usage.cached ?? 0 },
  };
}

async function readJson(request: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
}

beforeAll(async () => {
  server = createServer(async (request, response) => {
    if (request.method !== 'POST' || request.url !== '/v1/chat/completions') {
      response.writeHead(404).end();
      return;
    }
    const body = await readJson(request);
    requests.push(body);
    const next = script.shift();
    if (next === undefined) {
      response.writeHead(500, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: { message: 'no scripted reply left' } }));
      return;
    }
    const id = requests.length;
    const finish = 'text' in next.reply ? 'stop' : 'tool_calls';
    if (body.stream !== true) {
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(
        JSON.stringify({
          id: `chatcmpl-${id}`,
          object: 'chat.completion',
          created: 1_764_806_400,
          model: body.model,
          choices: [{ index: 0, message: completionBody(next.reply, id), finish_reason: finish }],
          usage: usageBody(next.usage),
        }),
      );
      return;
    }
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
      `data: ${JSON.stringify({ id: `chatcmpl-${id}`, object: 'chat.completion.chunk', created: 1_764_806_400, model: body.model, choices, ...extra })}\n\n`;
    if ('text' in next.reply) {
      response.write(chunk([{ index: 0, delta: { role: 'assistant', content: '' } }]));
      for (const word of next.reply.text.split(/(?<= )/)) {
        response.write(chunk([{ index: 0, delta: { content: word } }]));
      }
    } else {
      response.write(
        chunk([
          {
            index: 0,
            delta: {
              role: 'assistant',
              tool_calls: [
                {
                  index: 0,
                  id: `call_${id}`,
                  type: 'function',
                  function: { name: next.reply.tool, arguments: JSON.stringify(next.reply.args) },
                },
              ],
            },
          },
        ]),
      );
    }
    response.write(chunk([{ index: 0, delta: {}, finish_reason: finish }]));
    // OpenAI's stream_options.include_usage: one last chunk with no choices and the usage.
    const options = body.stream_options as { include_usage?: boolean } | undefined;
    if (options?.include_usage === true)
      response.write(chunk([], { usage: usageBody(next.usage) }));
    response.end('data: [DONE]\n\n');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});

afterAll(async () => {
  server.close();
  await once(server, 'close');
});

beforeEach(() => {
  requests.length = 0;
  script = [];
});

const PRICES = { 'local/tiny-1': { inputPerMTok: 1, outputPerMTok: 4, cacheReadPerMTok: 0.25 } };

function localModel(
  taskId: string,
  tracker: BudgetTracker,
  options: { actions?: ActionGuard; includeUsage?: boolean } = {},
) {
  const provider = createOpenAICompatible({
    name: 'local',
    baseURL,
    apiKey: 'test-key',
    includeUsage: options.includeUsage ?? true,
  });
  const usages: ModelCallUsage[] = [];
  const model = wrapLanguageModel({
    model: provider('tiny-1'),
    middleware: budgetMiddleware({
      taskId,
      tracker,
      actions: options.actions,
      prices: PRICES,
      onUsage: (u) => usages.push(u),
    }),
  });
  return { model, usages };
}

describe('an OpenAI-compatible provider over HTTP', () => {
  it('records the usage of a completion as the provider parsed it, cached tokens priced apart', async () => {
    const tracker = new BudgetTracker();
    tracker.startTask('t1', { maxTokens: 10_000, maxCostUsd: 1 });
    const { model, usages } = localModel('t1', tracker);
    script = [{ reply: { text: 'Paris.' }, usage: { prompt: 1200, completion: 30, cached: 1000 } }];
    const result = await generateText({ model, prompt: 'Capital of France?' });
    expect(result.text).toBe('Paris.');
    expect(usages).toEqual([
      {
        taskId: 't1',
        provider: 'local.chat',
        modelId: 'tiny-1',
        inputTokens: 1200,
        outputTokens: 30,
        totalTokens: 1230,
        cacheReadTokens: 1000,
        // 200 uncached at $1/M, 1000 cached at $0.25/M, 30 out at $4/M.
        costUsd: (200 * 1 + 1000 * 0.25 + 30 * 4) / 1e6,
        priced: true,
        estimated: false,
      },
    ]);
    expect(tracker.get('t1')?.tokens).toBe(1230);
  });

  it('records the usage a stream sends in its last chunk', async () => {
    const tracker = new BudgetTracker();
    tracker.startTask('t1', { maxTokens: 10_000 });
    const { model, usages } = localModel('t1', tracker);
    script = [{ reply: { text: 'one two three four' }, usage: { prompt: 42, completion: 4 } }];
    const result = streamText({ model, prompt: 'Count to four' });
    expect(await result.text).toBe('one two three four');
    expect(requests[0]?.stream_options).toEqual({ include_usage: true });
    expect(usages[0]).toMatchObject({ inputTokens: 42, outputTokens: 4, estimated: false });
    expect(tracker.get('t1')?.tokens).toBe(46);
  });

  it('estimates a stream whose server sends no usage, rather than counting nothing', async () => {
    const tracker = new BudgetTracker();
    tracker.startTask('t1');
    const { model, usages } = localModel('t1', tracker, { includeUsage: false });
    script = [{ reply: { text: 'twelve chars' }, usage: { prompt: 999, completion: 999 } }];
    await streamText({ model, prompt: 'sixteen chars!!!' }).consumeStream();
    // About four characters a token: 16 sent, 12 received.
    expect(usages[0]).toMatchObject({ inputTokens: 4, outputTokens: 3, estimated: true });
    expect(tracker.get('t1')?.tokens).toBe(7);
  });

  it('sends no request once the budget is spent', async () => {
    const tracker = new BudgetTracker();
    tracker.startTask('t1', { maxTokens: 100 });
    const { model } = localModel('t1', tracker);
    script = [
      { reply: { text: 'a' }, usage: { prompt: 60, completion: 40 } },
      { reply: { text: 'b' }, usage: { prompt: 1, completion: 1 } },
    ];
    await generateText({ model, prompt: 'first' });
    let refused: unknown;
    try {
      await generateText({ model, prompt: 'second', maxRetries: 0 });
    } catch (error) {
      refused = error;
    }
    expect(BudgetExceededError.is(refused)).toBe(true);
    expect(requests).toHaveLength(1);
  });

  it('runs tools step by step, and stops a repeated call before its tool runs', async () => {
    const tracker = new BudgetTracker();
    tracker.startTask('t1', { maxTokens: 100_000 });
    const guard = new ActionGuard({ repeat: { warnAt: 2, blockAt: 3 } });
    const { model, usages } = localModel('t1', tracker, { actions: guard });
    const search = { tool: 'search', args: { q: 'exec-kernel' } };
    script = [1, 2, 3].map(() => ({ reply: search, usage: { prompt: 100, completion: 10 } }));
    let searches = 0;
    let refused: unknown;
    try {
      await generateText({
        model,
        prompt: 'Find it',
        tools: {
          search: tool({
            inputSchema: z.object({ q: z.string() }),
            execute: async () => {
              searches++;
              return 'no results';
            },
          }),
        },
        stopWhen: stepCountIs(10),
      });
    } catch (error) {
      refused = error;
    }
    expect(LoopDetectionError.is(refused)).toBe(true);
    expect(searches).toBe(2);
    expect(requests).toHaveLength(3);
    // The tool results went back to the provider in the later requests.
    expect(JSON.stringify(requests[1]?.messages)).toContain('no results');
    expect(usages.map((u) => u.totalTokens)).toEqual([110, 110, 110]);
    expect(tracker.get('t1')?.tokens).toBe(330);
  });
});
