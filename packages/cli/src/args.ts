import { LIMIT_MAXIMUMS } from '@exec-kernel/budget';
import { textProblem as coreTextProblem, InvalidInputError, idProblem } from '@exec-kernel/core';
import { type CommandContext, UsageError } from './context.js';
import { quote } from './render.js';

type Values = CommandContext['values'];

/** What a number argument accepts. */
export interface NumberRule {
  /** Whole numbers only. Default: false. */
  integer?: boolean;
  /** The smallest value. Default: 0. */
  min?: number;
  /** Whether `min` itself is refused. Default: false. */
  exclusiveMin?: boolean;
  /** The largest value. Default: `Number.MAX_SAFE_INTEGER`. */
  max?: number;
}

/**
 * How a command's positional or option is checked before the command runs: an id under core's
 * one id rule, free text of bounded length, or a number in a range. The MCP tools take their
 * input schemas from the same rules.
 */
export type ArgRule =
  | { kind: 'id'; field: string }
  | { kind: 'text'; field: string; max: number }
  | { kind: 'json'; field: string; max: number }
  | ({ kind: 'number' } & NumberRule);

/** An id (task, agent, type, state …), checked with core's `checkId`; `field` names it in errors. */
export function idArg(field: string): ArgRule {
  return { kind: 'id', field };
}

/** Free text of at most `max` characters (titles, comments, notes); escapes are never printed raw. */
export function textArg(field: string, max: number): ArgRule {
  return { kind: 'text', field, max };
}

/**
 * A JSON value given as its text (at most `max` characters), such as a tool call's arguments.
 * `-` is left to the command (it reads the text from standard input); an MCP tool takes the value
 * itself.
 */
export function jsonArg(field: string, max: number): ArgRule {
  return { kind: 'json', field, max };
}

/** The JSON value of a {@link jsonArg}'s text. @throws InvalidInputError when it is not JSON. */
export function parseJsonArg(text: string, rule: ArgRule & { kind: 'json' }): unknown {
  const problem = textProblem(text, rule.max);
  if (problem !== undefined) throw new InvalidInputError({ field: rule.field, problem });
  try {
    return JSON.parse(text);
  } catch {
    // JSON.parse's own message quotes the input; ours never does.
    throw new InvalidInputError({ field: rule.field, problem: 'must be JSON' });
  }
}

/** A number argument. */
export function numberArg(rule: NumberRule): ArgRule {
  return { kind: 'number', ...rule };
}

/** The step, token and dollar amounts of one call, and the limits, as far as budget accepts them. */
export const BUDGET_NUMBERS: Readonly<
  Record<'steps' | 'seconds' | 'tokens' | 'dollars' | 'depth', ArgRule>
> = {
  steps: numberArg({ integer: true, max: LIMIT_MAXIMUMS.maxSteps }),
  seconds: numberArg({ max: LIMIT_MAXIMUMS.maxDurationSeconds }),
  tokens: numberArg({ integer: true, max: LIMIT_MAXIMUMS.maxTokens }),
  dollars: numberArg({ max: LIMIT_MAXIMUMS.maxCostUsd }),
  depth: numberArg({ integer: true, max: LIMIT_MAXIMUMS.maxDepth }),
};

// Decimal notation only: `0x10`, `0b1`, `Infinity` and ` 5` are not numbers a person types.
const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?$/i;

/**
 * Why `raw` is not a number under `rule`, or the number. Problems name the rule, never the value.
 */
export function parseNumber(raw: string, rule: NumberRule): number | { problem: string } {
  const { integer = false, min = 0, exclusiveMin = false, max = Number.MAX_SAFE_INTEGER } = rule;
  if (raw === '') return { problem: 'must not be empty' };
  if (!DECIMAL.test(raw))
    return { problem: integer ? 'must be a whole number' : 'must be a number' };
  const value = Number(raw);
  if (min >= 0 && value < 0) return { problem: 'must not be negative' };
  if (integer && !Number.isInteger(value)) return { problem: 'must be a whole number' };
  if (exclusiveMin ? value <= min : value < min)
    return { problem: exclusiveMin ? `must be greater than ${min}` : `must be at least ${min}` };
  if (value > max) return { problem: `must be at most ${max}` };
  return value;
}

/**
 * Why text is not acceptable under a text rule, or undefined: longer than `max`, or refused by
 * core's one text rule (`textProblem`: no control characters but tab and line breaks, no unpaired
 * surrogates), as the coordination service refuses it too.
 */
export function textProblem(value: string, max: number): string | undefined {
  if (value.length > max) return `must be at most ${max} characters, got ${value.length}`;
  return coreTextProblem(value);
}

/**
 * Checks `value` (a positional or an option as given) against `rule`.
 *
 * @throws InvalidInputError naming `name` (`--count`, `task id`) and the problem.
 */
export function checkArg(value: string, rule: ArgRule, name: string): number | string {
  switch (rule.kind) {
    case 'id': {
      const problem = idProblem(value);
      if (problem !== undefined) throw new InvalidInputError({ field: rule.field, problem });
      return value;
    }
    case 'text': {
      const problem = textProblem(value, rule.max);
      if (problem !== undefined) throw new InvalidInputError({ field: rule.field, problem });
      return value;
    }
    case 'json':
      if (value !== '-') parseJsonArg(value, rule);
      return value;
    case 'number': {
      const parsed = parseNumber(value, rule);
      if (typeof parsed !== 'number')
        throw new InvalidInputError({ field: name, problem: parsed.problem });
      return parsed;
    }
  }
}

/** A string flag's value, if given. */
export function stringFlag(values: Values, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

/** A string flag that must be given and non-blank. */
export function requiredFlag(values: Values, name: string): string {
  const value = stringFlag(values, name);
  if (value === undefined || value.trim() === '')
    throw new UsageError(`Missing required option --${name}`);
  return value;
}

/**
 * A numeric flag's value, if given: decimal notation, within `rule` (by default a non-negative
 * safe integer range).
 *
 * @throws InvalidInputError naming the flag (`Invalid --count: must not be negative`).
 */
export function numberFlag(
  values: Values,
  name: string,
  rule: NumberRule = {},
): number | undefined {
  const raw = stringFlag(values, name);
  if (raw === undefined) return undefined;
  return checkArg(raw, numberArg(rule), `--${name}`) as number;
}

/** `got 'x'` for an enumerated option, the value escaped and cut short. */
export function got(value: string): string {
  return `got ${quote(value)}`;
}
