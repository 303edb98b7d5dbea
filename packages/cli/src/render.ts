import {
  type BudgetType,
  formatAmount,
  type KernelError,
  toViolation,
  UNPRINTABLE,
  type Violation,
} from '@exec-kernel/core';
import type { CliIO, CommandResult, Sink } from './context.js';

// What a terminal must never receive from user text: core's UNPRINTABLE, and unpaired surrogates.
const TO_ESCAPE = new RegExp(`${UNPRINTABLE.source}|\\p{Cs}`, 'gu');
// In a JSON line, JSON.stringify has escaped what is below U+0020 and unpaired surrogates: this
// finds the rest (DEL, C1 controls, separators and marks).
const JSON_TO_ESCAPE = new RegExp(UNPRINTABLE.source, 'gu');
const SHORT_ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function unicodeEscape(char: string): string {
  return `\\u${(char.codePointAt(0) as number).toString(16).padStart(4, '0')}`;
}

/**
 * `text` safe to print as (part of) one line: every control character, separator and invisible
 * mark written as an escape (`\n`, `\u001b`), so user text can neither break a line nor drive
 * the terminal.
 */
export function printable(text: string): string {
  return text.replace(TO_ESCAPE, (char) => SHORT_ESCAPES[char] ?? unicodeEscape(char));
}

/** A JSON line with the characters a terminal acts on but JSON.stringify leaves raw escaped too. */
export function jsonLine(data: unknown): string {
  return JSON.stringify(data).replace(JSON_TO_ESCAPE, unicodeEscape);
}

/** User text quoted for a message: escaped, and cut to 40 characters. */
export function quote(text: string): string {
  const short = text.length > 40 ? `${text.slice(0, 37)}...` : text;
  return `'${printable(short)}'`;
}

/** A result's human lines. */
export function linesOf(result: CommandResult): readonly string[] {
  return 'lines' in result ? result.lines : [result.line];
}

const ANSI = { green: '\u001b[32m', red: '\u001b[31m', yellow: '\u001b[33m', reset: '\u001b[0m' };

/**
 * The one renderer: writes results, warnings and refusals in the command's mode (human lines, or
 * JSON lines with `--json`) to a {@link CliIO}. User text is printed escaped (see {@link printable}).
 */
export class Renderer implements Sink {
  readonly #io: CliIO;
  readonly #json: boolean;
  readonly #color: boolean;
  /** Warnings not yet printed: they go out with the result, and not at all with a refusal. */
  #warnings: string[] = [];

  constructor(io: CliIO, json: boolean) {
    this.#io = io;
    this.#json = json;
    this.#color = io.env.NO_COLOR === undefined && (json ? false : io.stdout.isTTY === true);
  }

  /**
   * A successful result: its lines for people, its `data` as one JSON line with `--json`. A result
   * with no lines and no data (a server that has said everything on its own) prints nothing.
   */
  result(result: CommandResult): void {
    this.#flushWarnings();
    if (this.#json) {
      if (result.data !== undefined) this.#io.stdout.write(`${jsonLine(result.data)}\n`);
      return;
    }
    const lines = linesOf(result).map((l) => this.#paint(printable(l)));
    if (lines.length > 0) this.#io.stdout.write(`${lines.join('\n')}\n`);
  }

  progress(result: CommandResult): void {
    this.result(result);
  }

  /**
   * A warning line for stderr, printed just before the command's result. A command that is then
   * refused prints only its refusal: a step past the limit says EXCEEDED, not WARN then EXCEEDED.
   */
  warn(line: string): void {
    this.#warnings.push(`${this.#paint(printable(line))}\n`);
  }

  /** A refusal: one line on stderr, and with `--json` the `Violation` as a JSON line on stdout. */
  refuse(line: string, violation: Violation | undefined): void {
    this.#warnings = [];
    if (this.#json && violation !== undefined) this.#io.stdout.write(`${jsonLine(violation)}\n`);
    this.#io.stderr.write(`${this.#paint(printable(line))}\n`);
  }

  #flushWarnings(): void {
    if (this.#warnings.length === 0) return;
    this.#io.stderr.write(this.#warnings.join(''));
    this.#warnings = [];
  }

  #paint(line: string): string {
    if (!this.#color) return line;
    const match = /^([A-Z]+:)/.exec(line);
    if (match === null) return line;
    const prefix = match[1] as string;
    const colour = /^(VALID|ALLOWED|OK|CREATED|SLEEP|WAKE|WOKE)/.test(prefix)
      ? ANSI.green
      : prefix === 'WARN:'
        ? ANSI.yellow
        : ANSI.red;
    return `${colour}${prefix}${ANSI.reset}${line.slice(prefix.length)}`;
  }
}

/**
 * How a kernel error reads as a refusal: its one line and its `Violation`. The one place the CLI
 * and the MCP tools render them (an `InvalidInputError` from an id or a number included).
 */
export function refusal(error: KernelError): { line: string; violation: Violation } {
  const violation = toViolation(error);
  return { line: refusalLine(error, violation.kind), violation };
}

/** The one-line form of a refusal, in the seed's wording for the seed's commands. */
export function refusalLine(error: KernelError, kind: string): string {
  const d = error.details;
  switch (error.code) {
    case 'INVALID_TRANSITION':
      return `INVALID: ${error.message}`;
    case 'LOOP_DETECTED':
      return `DENIED: [${d.loopType}] ${error.message}`;
    case 'BUDGET_EXCEEDED':
      return `EXCEEDED: [${d.budgetType}] ${error.message}`;
    case 'IDLE_ENFORCED':
      return `DENIED: [idle] ${error.message}`;
    case 'TASK_ADMISSION':
      return `DENIED: [admission] ${error.message}`;
    default:
      return `ERROR: [${kind}] ${error.message}`;
  }
}

const BUDGET_NAMES: Record<BudgetType, string> = {
  steps: 'step',
  depth: 'depth',
  duration: 'duration',
  tokens: 'token',
  cost: 'cost',
};

/**
 * The one `WARN:` line for a budget past its warning fraction, on every backend. The amounts are
 * shown when known (a service reports an ancestor's warning without them).
 */
export function budgetWarningLine(w: {
  budgetType: BudgetType;
  taskId: string;
  fraction: number;
  observed?: number | undefined;
  limit?: number | undefined;
}): string {
  const amounts =
    w.observed === undefined || w.limit === undefined
      ? ''
      : ` (${formatAmount(w.observed)} of ${formatAmount(w.limit)})`;
  return `WARN: [${w.budgetType}] Task ${w.taskId} has used ${Math.round(w.fraction * 100)}% of its ${BUDGET_NAMES[w.budgetType]} budget${amounts}`;
}
