import { KernelError, type Violation } from '@exec-kernel/core';
import { checkArg } from './args.js';
import type {
  CliIO,
  Command,
  CommandContext,
  CommandResult,
  GlobalFlags,
  Sink,
} from './context.js';
import { UsageError } from './context.js';
import { printable, refusal } from './render.js';

/** A command to run with its arguments already split, from a command line or an MCP tool call. */
export interface Invocation {
  /** `task create`, `validate`, … */
  name: string;
  command: Command;
  values: CommandContext['values'];
  positionals: string[];
  flags: GlobalFlags;
  io: CliIO;
  out: Sink;
}

/**
 * How a run ended: its last result, a refusal (a `KernelError`: exit 1), bad input (exit 1) or an
 * internal error (exit 2), each with the one line that tells it.
 */
export type Outcome =
  | { kind: 'done'; result: CommandResult; status: number }
  | { kind: 'refused'; line: string; violation: Violation; status: 1 }
  | { kind: 'usage'; line: string; status: 1 }
  | { kind: 'internal'; line: string; stack: string | undefined; status: 2 };

/** The positional names of a synopsis: `<task-id> [key]` → `task-id`, `key`; `<text...>` a tail. */
export function positionalNames(names: string): Array<{ name: string; tail: boolean }> {
  return [...names.matchAll(/[<[]([a-z-]+)(\.\.\.)?[>\]]/g)].map((m) => ({
    name: m[1] as string,
    tail: m[2] !== undefined,
  }));
}

/**
 * Checks every argument that has a rule, before the command does anything, and returns the
 * parsed numbers.
 *
 * @throws InvalidInputError for the first argument that breaks its rule.
 */
function checkArgs(
  command: Command,
  values: CommandContext['values'],
  positionals: string[],
): Record<string, number | undefined> {
  const rules = command.args ?? {};
  const numbers: Record<string, number | undefined> = {};
  positionalNames(command.positionals.names).forEach(({ name, tail }, index) => {
    const rule = rules[name];
    const value = tail ? positionals.slice(index).join(' ') : positionals[index];
    if (rule === undefined || value === undefined || (tail && index >= positionals.length)) return;
    checkArg(value, rule, name);
  });
  for (const [name, rule] of Object.entries(rules)) {
    const given = values[name];
    if (given === undefined || typeof given === 'boolean') continue;
    for (const value of Array.isArray(given) ? given : [given]) {
      const checked = checkArg(value, rule, `--${name}`);
      if (typeof checked === 'number') numbers[name] = checked;
    }
  }
  return numbers;
}

/** Turns anything a command threw into the outcome that tells it. */
export function outcomeOf(error: unknown, name: string): Exclude<Outcome, { kind: 'done' }> {
  if (UsageError.is(error)) {
    const message = printable(error.message);
    const hint = error.pointToHelp ? `. Run 'exec-kernel ${name} --help' for usage.` : '';
    return { kind: 'usage', line: `ERROR: ${message}${hint}`, status: 1 };
  }
  if (KernelError.is(error)) return { kind: 'refused', ...refusal(error), status: 1 };
  const message = printable(error instanceof Error ? error.message : String(error));
  return {
    kind: 'internal',
    line: `ERROR: internal error: ${message} (set EXEC_KERNEL_DEBUG=1 for details)`,
    stack: error instanceof Error ? error.stack : undefined,
    status: 2,
  };
}

/**
 * Checks the arguments' count and rules, then runs the command. Never throws: what went wrong is
 * the outcome. The command line (`main`) and the MCP tools both run commands through this.
 */
export async function invoke(call: Invocation): Promise<Outcome> {
  const { name, command, values, positionals } = call;
  try {
    const { min, max, names } = command.positionals;
    if (positionals.length < min || positionals.length > max) {
      throw new UsageError(
        positionals.length < min
          ? `Missing arguments: exec-kernel ${name} ${names}`
          : `Too many arguments: exec-kernel ${name} ${names}`,
      );
    }
    const numbers = checkArgs(command, values, positionals);
    const ctx: CommandContext = {
      name,
      values,
      positionals,
      numbers,
      flags: call.flags,
      io: call.io,
      out: call.out,
    };
    const result = await command.run(ctx);
    return { kind: 'done', result, status: result.status ?? 0 };
  } catch (error) {
    return outcomeOf(error, name);
  }
}
