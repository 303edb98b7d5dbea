import type { BudgetTracker, UsageHeadroom } from '@exec-kernel/budget';
import type { CoordinationClient } from '@exec-kernel/coordination-client';
import {
  type Clock,
  checkId,
  InvalidInputError,
  KernelError,
  type Violation,
  violationOf,
} from '@exec-kernel/core';
import type { ActionGuard } from '@exec-kernel/loop';
import type { LanguageModelMiddleware } from 'ai';
import {
  checkPriceTable,
  costOf,
  DEFAULT_PRICES,
  type ModelPrice,
  type PricedTokens,
  type PriceTable,
  priceOf,
} from './prices.js';
import {
  type BudgetSource,
  coordinationSource,
  type SpendWarning,
  trackerSource,
} from './sources.js';
import {
  type CallOptions,
  estimateTokens,
  type GenerateResult,
  type ModelCallUsage,
  type ProviderUsage,
  promptText,
  reportedTokens,
  type TokenEstimator,
} from './usage.js';

type WrapStream = NonNullable<LanguageModelMiddleware['wrapStream']>;
type Model = Parameters<WrapStream>[0]['model'];
type StreamResult = Awaited<ReturnType<WrapStream>>;
type StreamPart = StreamResult['stream'] extends ReadableStream<infer P> ? P : never;

/** What every {@link budgetMiddleware} takes, whatever keeps the budget. */
export interface BudgetMiddlewareCommon {
  /** The task the model's calls are spent on. */
  taskId: string;
  /** Prices by `provider/modelId`. Default: {@link DEFAULT_PRICES}. */
  prices?: PriceTable | undefined;
  /**
   * Lowers a call's `maxOutputTokens` so the answer fits what is left of the token and cost
   * budgets (the prompt's estimated tokens taken off first; at least 1). Default: `false`.
   */
  capOutputTokens?: boolean | undefined;
  /** Counts a text's tokens when the provider reported none. Default: {@link estimateTokens}. */
  estimateTokens?: TokenEstimator | undefined;
  /** Each call's tokens and cost, as they are recorded. */
  onUsage?: ((usage: ModelCallUsage) => void) | undefined;
  /** Each budget warning a call's spending raised (the task's or an ancestor's). */
  onWarning?: ((warning: SpendWarning) => void) | undefined;
  /** Each refusal, once, with the Violation recorded for it; the call then rejects with `error`. */
  onViolation?: ((violation: Violation, error: KernelError) => void) | undefined;
}

/** The budget kept by a `BudgetTracker` in this process (start the task on it first). */
export interface TrackerBudgetOptions extends BudgetMiddlewareCommon {
  tracker: BudgetTracker;
  /** Checks the model's tool calls against the action-loop rules before the tools run. */
  actions?: ActionGuard | undefined;
  /** Stamps the Violation records. Default: the system clock. */
  clock?: Clock | undefined;
}

/** The budget kept by the coordination service, on a task the agent holds a lease on. */
export interface CoordinationBudgetOptions extends BudgetMiddlewareCommon {
  client: CoordinationClient;
  /** The lease the agent holds (`job.lease.id` in a worker). */
  leaseId?: string | undefined;
  /** Sends the model's tool calls to the service's action-loop rules. Default: `true`. */
  actions?: boolean | undefined;
}

/** A budget kept by a {@link BudgetSource} of your own. */
export interface SourceBudgetOptions extends BudgetMiddlewareCommon {
  source: BudgetSource;
}

/** Options of {@link budgetMiddleware}: the task, what keeps its budget, and how calls are priced. */
export type BudgetMiddlewareOptions =
  | TrackerBudgetOptions
  | CoordinationBudgetOptions
  | SourceBudgetOptions;

/**
 * AI SDK language-model middleware that spends a task's budget at the model call. Before each
 * `generate` and `stream` it asks the budget whether tokens and dollars are left, and throws
 * `BudgetExceededError` when not: nothing is sent to the provider. After each call it records the
 * provider's usage (tokens, and their cost from `prices`) against the task and its ancestors; a
 * stream records when it finishes, and an aborted or failed one records an estimate of what it
 * sent and received. The call whose usage takes a budget past its limit is counted and rejects,
 * as `BudgetTracker.recordUsage` does. Tool calls the model makes are checked against the
 * action-loop rules (when the budget has them) before the AI SDK runs the tools.
 *
 * @throws RangeError for a malformed price table; InvalidInputError for a malformed task id.
 *
 * @example
 * ```ts
 * const tracker = new BudgetTracker();
 * tracker.startTask('task-1', { maxTokens: 20_000, maxCostUsd: 0.05 });
 * const model = wrapLanguageModel({
 *   model: openai('gpt-4o-mini'),
 *   middleware: budgetMiddleware({ taskId: 'task-1', tracker }),
 * });
 * await generateText({ model, prompt: 'Hello' }); // refused once the task's budget is spent
 * ```
 */
export function budgetMiddleware(options: BudgetMiddlewareOptions): LanguageModelMiddleware {
  const { taskId, onUsage, onWarning, onViolation } = options;
  checkId(taskId, 'task id');
  const source = sourceOf(options);
  const prices = checkPriceTable(options.prices ?? DEFAULT_PRICES);
  const estimator = options.estimateTokens ?? estimateTokens;
  // Budgets count whole tokens: an estimator's fraction rounds up, and anything not a count is 0.
  const estimate = (text: string): number => {
    const tokens = estimator(text);
    return Number.isFinite(tokens) && tokens > 0 ? Math.ceil(tokens) : 0;
  };
  const capOutput = options.capOutputTokens ?? false;
  // The model's newest tool call, whose result the next prompt should bring back.
  let awaitingResult: string | undefined;

  const refusing = async <T>(work: () => T | PromiseLike<T>): Promise<T> => {
    try {
      return await work();
    } catch (error) {
      const violation = violationOf(error);
      if (violation !== undefined && KernelError.is(error)) onViolation?.(violation, error);
      throw error;
    }
  };

  /** Records a returning tool result, checks the budget, and caps the call: all before sending. */
  const before = async (
    params: CallOptions,
    model: Model,
  ): Promise<{ params: CallOptions; price: ModelPrice | undefined }> => {
    await recordToolResult(params);
    const headroom = await refusing(() => source.checkUsageLeft(taskId));
    const price = priceOf(prices, model.provider, model.modelId);
    if (price === undefined && headroom.costUsd !== null) {
      throw new InvalidInputError({
        field: 'prices',
        problem: `has no price for ${model.provider}/${model.modelId}, so the cost budget of task ${taskId} cannot be kept; add the model to the price table`,
      });
    }
    if (!capOutput || (headroom.tokens === null && headroom.costUsd === null)) {
      return { params, price };
    }
    const cap = outputCap(headroom, price, estimate(promptText(params)));
    if (params.maxOutputTokens !== undefined && params.maxOutputTokens <= cap) {
      return { params, price };
    }
    return { params: { ...params, maxOutputTokens: cap }, price };
  };

  const recordToolResult = async (params: CallOptions): Promise<void> => {
    const awaited = awaitingResult;
    if (awaited === undefined || source.recordToolResult === undefined) return;
    awaitingResult = undefined;
    const output = toolResultIn(params, awaited);
    if (output === undefined) return;
    const record = source.recordToolResult;
    await refusing(() => record(taskId, output.value));
  };

  const recordToolCall = async (toolCallId: string, toolName: string, input: string) => {
    const record = source.recordToolCall;
    if (record === undefined) return;
    await refusing(() => record(taskId, { tool: toolName, args: parseInput(input) }));
    awaitingResult = toolCallId;
  };

  /** Records one finished (or abandoned) call: reported usage, else an estimate. */
  const after = async (
    model: Model,
    params: CallOptions,
    price: ModelPrice | undefined,
    usage: ProviderUsage | undefined,
    received: () => string,
  ): Promise<void> => {
    let tokens = reportedTokens(usage);
    const estimated = tokens === undefined;
    if (tokens === undefined) {
      tokens = {
        input: estimate(promptText(params)),
        cacheRead: 0,
        cacheWrite: 0,
        output: estimate(received()),
      };
    }
    const inputTokens = tokens.input + tokens.cacheRead + tokens.cacheWrite;
    const call: ModelCallUsage = {
      taskId,
      provider: model.provider,
      modelId: model.modelId,
      inputTokens,
      outputTokens: tokens.output,
      totalTokens: inputTokens + tokens.output,
      cacheReadTokens: tokens.cacheRead,
      costUsd: price === undefined ? 0 : costOf(tokens, price),
      priced: price !== undefined,
      estimated,
    };
    onUsage?.(call);
    if (call.totalTokens === 0 && call.costUsd === 0) return;
    const warnings = await refusing(() =>
      source.recordUsage(taskId, { tokens: call.totalTokens, costUsd: call.costUsd }),
    );
    if (onWarning !== undefined) for (const warning of warnings) onWarning(warning);
  };

  /** Sends the call; one that fails after an abort records an estimate of the prompt it sent. */
  const send = async <R>(
    model: Model,
    call: { params: CallOptions; price: ModelPrice | undefined },
    request: () => PromiseLike<R>,
  ): Promise<R> => {
    try {
      return await request();
    } catch (error) {
      // An aborted request reached the provider, which bills what it read.
      if (call.params.abortSignal?.aborted === true) {
        await after(model, call.params, call.price, undefined, () => '').catch(() => {});
      }
      throw error;
    }
  };

  return {
    specificationVersion: 'v3',

    async wrapGenerate({ doGenerate, params, model }) {
      const call = await before(params, model);
      const result = await send(model, call, () =>
        call.params === params ? doGenerate() : model.doGenerate(call.params),
      );
      await after(model, call.params, call.price, result.usage, () => contentText(result));
      for (const part of result.content) {
        if (part.type === 'tool-call' && part.providerExecuted !== true) {
          await recordToolCall(part.toolCallId, part.toolName, part.input);
        }
      }
      return result;
    },

    async wrapStream({ doStream, params, model }) {
      const call = await before(params, model);
      const result = await send(model, call, () =>
        call.params === params ? doStream() : model.doStream(call.params),
      );
      const received: string[] = [];
      let settled = false;
      const settle = (usage: ProviderUsage | undefined): Promise<void> => {
        if (settled) return Promise.resolve();
        settled = true;
        return after(model, call.params, call.price, usage, () => received.join(''));
      };
      const reader = result.stream.getReader();
      const stream = new ReadableStream<StreamPart>({
        async pull(controller) {
          let next: Awaited<ReturnType<typeof reader.read>>;
          try {
            next = await reader.read();
          } catch (error) {
            await settle(undefined).catch(() => {});
            controller.error(error);
            return;
          }
          try {
            if (next.done) {
              await settle(undefined);
              controller.close();
              return;
            }
            const part = next.value;
            if (
              part.type === 'text-delta' ||
              part.type === 'reasoning-delta' ||
              part.type === 'tool-input-delta'
            ) {
              received.push(part.delta);
            } else if (part.type === 'tool-call' && part.providerExecuted !== true) {
              await recordToolCall(part.toolCallId, part.toolName, part.input);
            } else if (part.type === 'finish') {
              try {
                await settle(part.usage);
              } catch (error) {
                // The call that overran: its error first, then its finish, so the AI SDK still
                // accounts for what it spent.
                controller.enqueue({ type: 'error', error });
              }
            }
            controller.enqueue(part);
          } catch (error) {
            // A refused tool call never reaches the AI SDK, so the tool never runs; the stream
            // ends with the refusal as its error part, as a provider's failure would.
            controller.enqueue({ type: 'error', error });
            controller.close();
            await reader.cancel(error).catch(() => {});
          }
        },
        async cancel(reason) {
          try {
            await reader.cancel(reason);
          } finally {
            await settle(undefined).catch(() => {});
          }
        },
      });
      return { ...result, stream };
    },
  };
}

function sourceOf(options: BudgetMiddlewareOptions): BudgetSource {
  if ('source' in options) return options.source;
  if ('tracker' in options) {
    return trackerSource(options.tracker, { actions: options.actions, clock: options.clock });
  }
  return coordinationSource(options.client, {
    leaseId: options.leaseId,
    actions: options.actions,
  });
}

/** The most output tokens that fit what is left, once the prompt's share is taken off. */
function outputCap(
  headroom: UsageHeadroom,
  price: ModelPrice | undefined,
  promptTokens: number,
): number {
  let cap = Number.POSITIVE_INFINITY;
  if (headroom.tokens !== null) cap = headroom.tokens - promptTokens;
  if (headroom.costUsd !== null && price !== undefined && price.outputPerMTok > 0) {
    const prompt: PricedTokens = { input: promptTokens, cacheRead: 0, cacheWrite: 0, output: 0 };
    const dollarsLeft = headroom.costUsd - costOf(prompt, price);
    cap = Math.min(cap, Math.floor((dollarsLeft * 1_000_000) / price.outputPerMTok));
  }
  return Math.max(1, Math.floor(cap));
}

/** The output of the tool result for `toolCallId` in the prompt, if it is there. */
function toolResultIn(params: CallOptions, toolCallId: string): { value: unknown } | undefined {
  for (let i = params.prompt.length - 1; i >= 0; i--) {
    const message = params.prompt[i];
    if (message === undefined || message.role === 'system') continue;
    for (const part of message.content) {
      if (part.type === 'tool-result' && part.toolCallId === toolCallId) {
        return { value: part.output };
      }
    }
  }
  return undefined;
}

function parseInput(input: string): unknown {
  try {
    return JSON.parse(input);
  } catch {
    return input;
  }
}

function contentText(result: GenerateResult): string {
  let text = '';
  for (const part of result.content) {
    if (part.type === 'text' || part.type === 'reasoning') text += part.text;
    else if (part.type === 'tool-call') text += part.input;
  }
  return text;
}
