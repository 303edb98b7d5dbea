import { LIMIT_MAXIMUMS } from '@exec-kernel/budget';
import type { ConfigSection } from './defaults.js';

/** How a value is checked, and how an environment variable's string is read into it. */
export type FieldType =
  | 'count'
  | 'amount'
  | 'fraction'
  | 'string'
  | 'url'
  | 'list'
  | 'threshold'
  | 'window';

/** One key of the file. */
export interface FieldSpec {
  /** The key as written in the file (snake_case). */
  readonly key: string;
  /** The key in the loaded object (camelCase). */
  readonly name: string;
  readonly type: FieldType;
  /** For counts: the smallest allowed value (1 where 0 makes no sense). */
  readonly min: 0 | 1;
  /** For counts and amounts: the largest allowed value (a safe integer). */
  readonly max: number | undefined;
  readonly nullable: boolean;
  readonly description: string;
  /** For lists: what the items are, as "a list of …" reads. Default: `'field names'`. */
  readonly items: string;
}

/** One section of the file. */
export interface SectionSpec {
  readonly name: ConfigSection;
  readonly description: string;
  readonly fields: readonly FieldSpec[];
  /** Keys refused in the file because they hold secrets, with where the secret goes instead. */
  readonly secrets: Readonly<Record<string, string>>;
}

function field(
  key: string,
  type: FieldType,
  description: string,
  options: { min?: 0 | 1; max?: number; nullable?: boolean; items?: string } = {},
): FieldSpec {
  return {
    key,
    name: snakeToCamel(key),
    type,
    min: options.min ?? 0,
    max: options.max,
    nullable: options.nullable ?? false,
    description,
    items: options.items ?? 'field names',
  };
}

// Each node is kept in the state file the CLI rewrites on every call: past a million it is a typo.
const MAX_HEAP_SIZE = 1_000_000;

// An action rule's count past a million is a typo. The window is held as a ring of that many
// entries per task in the state file, so it is kept far smaller.
const MAX_ACTION_COUNT = 1_000_000;
const MAX_ACTION_WINDOW = 10_000;

const TOKEN_HINT = 'set EXEC_KERNEL_COORDINATION_TOKEN instead (tokens never go in the file)';
const KEY_HINT = 'set PAPERCLIP_API_KEY instead (keys never go in the file)';

/** Every section and key of `.exec-kernel.yml`, in file order. The single source of the schema. */
export const SECTIONS: readonly SectionSpec[] = [
  {
    name: 'lifecycle',
    description: 'Limits of the task graph the loop detector keeps.',
    secrets: {},
    fields: [
      field(
        'max_depth',
        'count',
        'Deepest nesting allowed for a new task (a root task is depth 0).',
        { max: LIMIT_MAXIMUMS.maxDepth },
      ),
      field(
        'max_heap_size',
        'count',
        'Most task nodes held in memory; past that the oldest finished ones are evicted first.',
        { min: 1, max: MAX_HEAP_SIZE },
      ),
    ],
  },
  {
    name: 'budget',
    description:
      'Limits a task gets when it is started without its own. A limit is the amount allowed.',
    secrets: {},
    fields: [
      field('max_steps', 'count', 'Steps a task may take.', { max: LIMIT_MAXIMUMS.maxSteps }),
      field('max_depth', 'count', 'Depth a task may reach.', { max: LIMIT_MAXIMUMS.maxDepth }),
      field('max_duration_seconds', 'count', 'Wall-clock seconds a task may run.', {
        max: LIMIT_MAXIMUMS.maxDurationSeconds,
      }),
      field('max_tokens', 'count', 'Model tokens a task may use; null for unlimited.', {
        max: LIMIT_MAXIMUMS.maxTokens,
        nullable: true,
      }),
      field('max_cost_usd', 'amount', 'Dollars a task may spend; null for unlimited.', {
        max: LIMIT_MAXIMUMS.maxCostUsd,
        nullable: true,
      }),
      field('warn_at', 'fraction', 'Fraction of a limit, in (0, 1], at which a warning fires.'),
    ],
  },
  {
    name: 'idle',
    description: 'How long an agent with nothing to do sleeps.',
    secrets: {},
    fields: [
      field(
        'default_timeout_seconds',
        'count',
        'Seconds an agent sleeps when no timeout is given.',
        { min: 1, max: LIMIT_MAXIMUMS.maxDurationSeconds },
      ),
    ],
  },
  {
    name: 'admission',
    description: 'What a new task must say about itself before it is admitted.',
    secrets: {},
    fields: [
      field(
        'required',
        'list',
        'Admission fields every new task must fill in (snake_case or camelCase); [] requires none.',
      ),
    ],
  },
  {
    name: 'actions',
    description:
      "Action-loop rules over a task's tool calls (@exec-kernel/loop's ActionGuard). Each rule is " +
      'a mapping of thresholds (a key left out keeps its default) or false to turn it off.',
    secrets: {},
    fields: [
      field(
        'repeat',
        'threshold',
        'The same call (tool and arguments) so many times in a row: warn_at warns, block_at is refused.',
        { max: MAX_ACTION_COUNT },
      ),
      field(
        'ping_pong',
        'threshold',
        'Two or three calls in turn, repeated so many times: warn_at warns, block_at is refused.',
        { max: MAX_ACTION_COUNT },
      ),
      field(
        'window',
        'window',
        'The same call so many times within the last size calls: warn_at warns, block_at is refused.',
        { max: MAX_ACTION_COUNT },
      ),
      field(
        'no_progress',
        'threshold',
        'The same result so many times in a row, whatever the calls: warn_at warns, block_at is refused.',
        { max: MAX_ACTION_COUNT },
      ),
      field('exempt_tools', 'list', 'Tools no rule counts (waiting or polling tools).', {
        items: 'tool names',
      }),
    ],
  },
  {
    name: 'store',
    description: 'Where the CLI keeps state between calls.',
    secrets: {},
    fields: [field('path', 'string', "State file, relative to this file's directory.")],
  },
  {
    name: 'coordination',
    description:
      'The shared coordination service. Its token comes only from EXEC_KERNEL_COORDINATION_TOKEN.',
    secrets: { token: TOKEN_HINT },
    fields: [
      field('url', 'url', 'Base URL of the coordination service (http or https); null for none.', {
        nullable: true,
      }),
    ],
  },
  {
    name: 'paperclip',
    description: 'The Paperclip API. Its key comes only from PAPERCLIP_API_KEY.',
    secrets: { api_key: KEY_HINT, key: KEY_HINT },
    fields: [
      field('api_url', 'url', 'Base URL of the Paperclip API (http or https); null for none.', {
        nullable: true,
      }),
      field('company_id', 'string', 'Paperclip company id; null for none.', { nullable: true }),
    ],
  },
];

/** The keys of an action rule's threshold mapping, in file order. */
export const THRESHOLD_KEYS: readonly string[] = ['warn_at', 'block_at'];
/** The keys of the window rule's mapping: the thresholds and `size`. */
export const WINDOW_KEYS: readonly string[] = ['size', 'warn_at', 'block_at'];

/** The largest window an `actions.window.size` may give. */
export const ACTION_WINDOW_MAXIMUM: number = MAX_ACTION_WINDOW;

/** `pain_point` → `painPoint`. */
export function snakeToCamel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** `painPoint` → `pain_point`; names that would not come back unchanged are left as they are. */
export function camelToSnake(name: string): string {
  if (!/^[a-z][a-zA-Z0-9]*$/.test(name)) return name;
  const snake = name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
  return snakeToCamel(snake) === name ? snake : name;
}

/**
 * The closest of `candidates` to `word` (case-insensitive edit distance at most 2, and less than
 * half the word), for a "did you mean" hint.
 */
export function suggest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.min(2, Math.ceil(word.length / 2) - 1);
  for (const candidate of candidates) {
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (d <= bestDistance && (best === undefined || d < bestDistance)) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
