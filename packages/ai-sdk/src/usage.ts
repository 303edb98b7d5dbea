import type { LanguageModelMiddleware } from 'ai';
import type { PricedTokens } from './prices.js';

type WrapGenerate = NonNullable<LanguageModelMiddleware['wrapGenerate']>;
/** The call options a language model receives (the AI SDK's `LanguageModelV3CallOptions`). */
export type CallOptions = Parameters<WrapGenerate>[0]['params'];
/** What a model's `doGenerate` answers. */
export type GenerateResult = Awaited<ReturnType<WrapGenerate>>;
/** The usage a provider reports (the AI SDK's `LanguageModelV3Usage`). */
export type ProviderUsage = GenerateResult['usage'];

/** Counts the tokens of a text, for a call whose provider reported no usage. */
export type TokenEstimator = (text: string) => number;

/** About four characters a token: what providers quote for English text. Rounds up. */
export const estimateTokens: TokenEstimator = (text) => Math.ceil(text.length / 4);

/** One model call's tokens and cost, as recorded against the task. */
export interface ModelCallUsage {
  taskId: string;
  /** The AI SDK provider (`openai.chat`) and model id the call went to. */
  provider: string;
  modelId: string;
  inputTokens: number;
  outputTokens: number;
  totalTokens: number;
  /** Of `inputTokens`, those read from the provider's prompt cache. */
  cacheReadTokens: number;
  /** Dollars, from the price table; `0` when the model has no price there. */
  costUsd: number;
  /** Whether the model's price was in the table (`costUsd` is then what the call cost). */
  priced: boolean;
  /**
   * The provider reported no usage (the stream was aborted or failed before its end, or the
   * provider sends none), so the tokens were estimated from the text sent and received.
   */
  estimated: boolean;
}

/**
 * The provider's usage split for pricing, or `undefined` when it reported no token counts at all.
 * A count the provider left out is taken as 0; uncached input is the total less what the cache
 * read and wrote when the provider gives only the total.
 */
export function reportedTokens(usage: ProviderUsage | undefined): PricedTokens | undefined {
  if (usage === undefined) return undefined;
  const input = usage.inputTokens;
  const outputTotal = usage.outputTokens?.total;
  if (input?.total === undefined && input?.noCache === undefined && outputTotal === undefined)
    return undefined;
  const cacheRead = count(input?.cacheRead);
  const cacheWrite = count(input?.cacheWrite);
  const uncached =
    input?.noCache !== undefined
      ? count(input.noCache)
      : Math.max(0, count(input?.total) - cacheRead - cacheWrite);
  return { input: uncached, cacheRead, cacheWrite, output: count(outputTotal) };
}

function count(value: number | undefined): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.round(value) : 0;
}

/**
 * The text of a prompt as a provider reads it: system text, message text, tool calls' input and
 * tool results, and the tool definitions. Files and images are left out (their token cost depends
 * on the provider).
 */
export function promptText(params: CallOptions): string {
  const parts: string[] = [];
  for (const message of params.prompt) {
    if (message.role === 'system') {
      parts.push(message.content);
      continue;
    }
    for (const part of message.content) {
      if (part.type === 'text' || part.type === 'reasoning') parts.push(part.text);
      else if (part.type === 'tool-call') parts.push(part.toolName, JSON.stringify(part.input));
      else if (part.type === 'tool-result') parts.push(part.toolName, JSON.stringify(part.output));
    }
  }
  for (const tool of params.tools ?? []) parts.push(JSON.stringify(tool));
  return parts.join('\n');
}
