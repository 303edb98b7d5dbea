import type { ParseArgsConfig } from 'node:util';
import type { ArgRule } from './args.js';

/** Where the CLI reads and writes; `main` takes one so tests need no process. */
export interface CliIO {
  stdout: { write(text: string): unknown; isTTY?: boolean | undefined };
  stderr: { write(text: string): unknown };
  env: Record<string, string | undefined>;
  cwd: string;
  /** Reads all of standard input (`--args -`); absent where there is none to read (MCP tools). */
  readStdin?: (() => string) | undefined;
  /** Lets a long-running command (sleep) end early; `bin` wires it to SIGINT/SIGTERM. */
  signal?: AbortSignal | undefined;
}

/** Flags every command takes. */
export interface GlobalFlags {
  json: boolean;
  config: string | undefined;
}

/**
 * What a command gives back: one line (or `lines`, for a list: each stays one line) for people,
 * and `data`, printed as one JSON line with `--json` and given as structured content by the MCP
 * tools. `status` is the exit status when it is not 0 (an interrupted sleep ends with 130).
 */
export type CommandResult = ({ line: string } | { lines: readonly string[] }) & {
  data: unknown;
  status?: number;
};

/** Where a running command sends what it has before it ends: results of a blocking command, warnings. */
export interface Sink {
  /** A result that comes before the command's last one (sleep's SLEEP line, serve's LISTENING). */
  progress(result: CommandResult): void;
  /** A warning line (stderr for people; a text item of an MCP tool result). */
  warn(line: string): void;
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
  /** Does the work; a refusal is thrown as a `KernelError`, bad input as a {@link UsageError}. */
  run(ctx: CommandContext): Promise<CommandResult>;
}

/** A command's one-line summary and its loader. */
export interface Entry {
  summary: string;
  load(): Promise<Command>;
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
  out: Sink;
}
