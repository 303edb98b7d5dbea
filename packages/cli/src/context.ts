import type { ParseArgsConfig } from 'node:util';
import { type KernelError, toViolation, UNPRINTABLE, type Violation } from '@exec-kernel/core';
import type { ArgRule } from './args.js';

/** Where the CLI reads and writes; `main` takes one so tests need no process. */
export interface CliIO {
  stdout: { write(text: string): unknown; isTTY?: boolean | undefined };
  stderr: { write(text: string): unknown };
  env: Record<string, string | undefined>;
  cwd: string;
  /** Lets a long-running command (sleep) end early; `bin` wires it to SIGINT/SIGTERM. */
  signal?: AbortSignal | undefined;
}

/** Flags every command takes. */
export interface GlobalFlags {
  json: boolean;
  config: string | undefined;
}

/** What a command module exports. */
export interface Command {
  /** Usage text printed by `--help`; the first line is the synopsis. */
  usage: string;
  /** The command's own flags (the global ones are added). */
  options: NonNullable<ParseArgsConfig['options']>;
  /** Positional arguments: at least `min`, at most `max` (`Infinity` for a tail). */
  positionals: { min: number; max: number; names: string };
  /**
   * How arguments are checked before `run`, by positional name (`task-id` for `<task-id>`) or
   * option name. A rule for a tail positional (`<text...>`) applies to its words joined by spaces.
   * Numbers checked here reach `run` parsed, in `ctx.numbers`.
   */
  args?: Readonly<Record<string, ArgRule>>;
  run(ctx: CommandContext): Promise<number>;
}

/**
 * Thrown for bad command-line input; printed as one `ERROR:` line with a pointer to `--help`
 * (left out when `--help` would not help, as for a missing package).
 * Recognised by name: each command is bundled on its own, with its own copy of this class.
 */
export class UsageError extends Error {
  override name = 'UsageError';
  /** Whether the line ends with the pointer to `--help`. */
  readonly pointToHelp: boolean;

  constructor(message: string, options: { pointToHelp?: boolean } = {}) {
    super(message);
    this.pointToHelp = options.pointToHelp ?? true;
  }

  static is(value: unknown): value is UsageError {
    return value instanceof Error && value.name === 'UsageError';
  }
}

/** Everything a command needs; the slow parts (config, store) come from `./services.js` on first use. */
export interface CommandContext {
  /** `task create`, `validate`, … as typed. */
  name: string;
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
  /** The number options given, parsed and checked against the command's `args` rules. */
  numbers: Readonly<Record<string, number | undefined>>;
  flags: GlobalFlags;
  io: CliIO;
  out: Output;
}

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

const ANSI = { green: '\u001b[32m', red: '\u001b[31m', yellow: '\u001b[33m', reset: '\u001b[0m' };

/** Writes results, warnings and refusals in the command's mode (human lines or JSON lines). */
export class Output {
  readonly #io: CliIO;
  readonly #json: boolean;
  readonly #color: boolean;

  constructor(io: CliIO, json: boolean) {
    this.#io = io;
    this.#json = json;
    // Asked lazily: finding out whether stdout is a terminal can cost a module load.
    this.#color = io.env.NO_COLOR === undefined && (json ? false : io.stdout.isTTY === true);
  }

  get json(): boolean {
    return this.#json;
  }

  /**
   * A successful result: `line` for people (or `lines`, for a list: each stays one line), `data`
   * as one JSON line with `--json`. User text in them is printed escaped (see {@link printable}).
   */
  result(line: string | readonly string[], data: unknown): void {
    if (this.#json) {
      this.#io.stdout.write(`${jsonLine(data)}\n`);
      return;
    }
    const lines = typeof line === 'string' ? [line] : line;
    this.#io.stdout.write(`${lines.map((l) => this.#paint(printable(l))).join('\n')}\n`);
  }

  /** A warning line on stderr. */
  warn(line: string): void {
    this.#io.stderr.write(`${this.#paint(printable(line))}\n`);
  }

  /** A refusal: one line on stderr, and with `--json` the `Violation` as a JSON line on stdout. */
  refuse(line: string, violation: Violation | undefined): void {
    if (this.#json && violation !== undefined) this.#io.stdout.write(`${jsonLine(violation)}\n`);
    this.#io.stderr.write(`${this.#paint(printable(line))}\n`);
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
