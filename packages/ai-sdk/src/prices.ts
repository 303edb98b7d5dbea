/** What a model costs, in US dollars per million tokens. */
export interface ModelPrice {
  /** Input (prompt) tokens not read from a cache. */
  inputPerMTok: number;
  /** Output (completion) tokens, reasoning included. */
  outputPerMTok: number;
  /** Input tokens read from the provider's prompt cache. Default: `inputPerMTok`. */
  cacheReadPerMTok?: number | undefined;
  /** Input tokens written to the provider's prompt cache. Default: `inputPerMTok`. */
  cacheWritePerMTok?: number | undefined;
}

/**
 * Prices keyed by `provider/modelId`, where the provider is the AI SDK provider's name without its
 * API suffix (`openai` for `openai.chat` and `openai.responses`, `anthropic` for
 * `anthropic.messages`); an exact `openai.chat/gpt-4o` key wins over `openai/gpt-4o`.
 */
export type PriceTable = Readonly<Record<string, ModelPrice>>;

/**
 * A small table of list prices, USD per million tokens, standard tier, as published on the
 * providers' pricing pages (openai.com/api/pricing, docs.anthropic.com … /pricing,
 * ai.google.dev/gemini-api/docs/pricing) in August 2025. Prices change: check them, and give your
 * own table (`{ ...DEFAULT_PRICES, 'openai/my-model': { … } }`) for anything you rely on.
 */
export const DEFAULT_PRICES: PriceTable = Object.freeze({
  'openai/gpt-5': price(1.25, 10, 0.125),
  'openai/gpt-5-mini': price(0.25, 2, 0.025),
  'openai/gpt-5-nano': price(0.05, 0.4, 0.005),
  'openai/gpt-4.1': price(2, 8, 0.5),
  'openai/gpt-4.1-mini': price(0.4, 1.6, 0.1),
  'openai/gpt-4.1-nano': price(0.1, 0.4, 0.025),
  'openai/gpt-4o': price(2.5, 10, 1.25),
  'openai/gpt-4o-mini': price(0.15, 0.6, 0.075),
  'openai/o3': price(2, 8, 0.5),
  'openai/o4-mini': price(1.1, 4.4, 0.275),
  'anthropic/claude-opus-4-1': price(15, 75, 1.5, 18.75),
  'anthropic/claude-sonnet-4-5': price(3, 15, 0.3, 3.75),
  'anthropic/claude-sonnet-4-0': price(3, 15, 0.3, 3.75),
  'anthropic/claude-3-5-haiku-latest': price(0.8, 4, 0.08, 1),
  'google/gemini-2.5-pro': price(1.25, 10, 0.31),
  'google/gemini-2.5-flash': price(0.3, 2.5, 0.075),
  'google/gemini-2.5-flash-lite': price(0.1, 0.4, 0.025),
});

function price(
  inputPerMTok: number,
  outputPerMTok: number,
  cacheReadPerMTok?: number,
  cacheWritePerMTok?: number,
): ModelPrice {
  return Object.freeze({ inputPerMTok, outputPerMTok, cacheReadPerMTok, cacheWritePerMTok });
}

/**
 * Checks every price of a table.
 *
 * @throws RangeError naming the first entry with a price that is not a non-negative finite number.
 */
export function checkPriceTable(table: PriceTable): PriceTable {
  for (const [key, entry] of Object.entries(table)) {
    for (const field of [
      'inputPerMTok',
      'outputPerMTok',
      'cacheReadPerMTok',
      'cacheWritePerMTok',
    ] as const) {
      const value = entry[field];
      if (value === undefined && (field === 'cacheReadPerMTok' || field === 'cacheWritePerMTok'))
        continue;
      if (!(typeof value === 'number' && Number.isFinite(value) && value >= 0)) {
        throw new RangeError(
          `Price ${key}.${field} must be a non-negative number of dollars per million tokens, got ${String(value)}`,
        );
      }
    }
  }
  return table;
}

/** The price of a model: `provider/modelId`, else the provider's name before its first dot. */
export function priceOf(
  table: PriceTable,
  provider: string,
  modelId: string,
): ModelPrice | undefined {
  const exact = table[`${provider}/${modelId}`];
  if (exact !== undefined) return exact;
  const dot = provider.indexOf('.');
  return dot === -1 ? undefined : table[`${provider.slice(0, dot)}/${modelId}`];
}

/** The tokens of one call, split the way providers price them. */
export interface PricedTokens {
  /** Input tokens not read from or written to a cache. */
  input: number;
  cacheRead: number;
  cacheWrite: number;
  output: number;
}

/** What `tokens` cost at `price`, in dollars. */
export function costOf(tokens: PricedTokens, price: ModelPrice): number {
  const micro =
    tokens.input * price.inputPerMTok +
    tokens.cacheRead * (price.cacheReadPerMTok ?? price.inputPerMTok) +
    tokens.cacheWrite * (price.cacheWritePerMTok ?? price.inputPerMTok) +
    tokens.output * price.outputPerMTok;
  return micro / 1_000_000;
}
