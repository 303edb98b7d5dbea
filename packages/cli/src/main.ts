import { readFileSync } from 'node:fs';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { KernelError } from '@exec-kernel/core';
import { checkArg } from './args.js';
import {
  type CliIO,
  type Command,
  type CommandContext,
  Output,
  printable,
  quote,
  refusal,
  UsageError,
} from './context.js';
import { processIO } from './io.js';

/** A command's one-line summary and its loader. */
export interface Entry {
  summary: string;
  load(): Promise<Command>;
}

// Commands load on first use, so `validate` never pays for the store or the config parser.
const COMMANDS: Record<string, Entry> = {
  validate: {
    summary: 'check a lifecycle move: validate <from> <to>',
    load: () => import('./commands/validate.js').then((m) => m.validate),
  },
  'check-loop': {
    summary: 'check a new task against the loop rules (nothing is registered)',
    load: () => import('./commands/check-loop.js').then((m) => m.checkLoop),
  },
  'check-budget': {
    summary: 'check steps and elapsed time against a budget',
    load: () => import('./commands/check-budget.js').then((m) => m.checkBudget),
  },
  sleep: {
    summary: 'go idle: no task creation until woken or timed out (blocks)',
    load: () => import('./commands/sleep.js').then((m) => m.sleep),
  },
  wake: {
    summary: "end an agent's sleep",
    load: () => import('./commands/sleep.js').then((m) => m.wake),
  },
  step: {
    summary: "record steps on a task's budget",
    load: () => import('./commands/step.js').then((m) => m.step),
  },
  'task create': {
    summary: 'create a task (idle, admission and loop checked)',
    load: () => import('./commands/task.js').then((m) => m.taskCreate),
  },
  'task transition': {
    summary: 'move a task to another state',
    load: () => import('./commands/task.js').then((m) => m.taskTransition),
  },
  'task show': {
    summary: 'show a task: state, budget, depth, history, notes, context',
    load: () => import('./commands/task.js').then((m) => m.taskShow),
  },
  'task list': {
    summary: 'list tasks, optionally by state or agent',
    load: () => import('./commands/task.js').then((m) => m.taskList),
  },
  'task checkout': {
    summary: 'claim a task for this agent (Paperclip or a coordination service)',
    load: () => import('./commands/task.js').then((m) => m.taskCheckout),
  },
  'task claim': {
    summary: 'claim the next task from a coordination service',
    load: () => import('./commands/task.js').then((m) => m.taskClaim),
  },
  'task release': {
    summary: 'give a checked-out task back (Paperclip or a coordination service)',
    load: () => import('./commands/task.js').then((m) => m.taskRelease),
  },
  'context get': {
    summary: "print a task's context (one key or all)",
    load: () => import('./commands/context.js').then((m) => m.contextGet),
  },
  'context set': {
    summary: 'set a context value on a task',
    load: () => import('./commands/context.js').then((m) => m.contextSet),
  },
  'context note': {
    summary: 'add a note to a task',
    load: () => import('./commands/context.js').then((m) => m.contextNote),
  },
  serve: {
    summary: 'run the coordination service (a shared task queue for many agents)',
    load: () => import('./commands/serve.js').then((m) => m.serve),
  },
  'config show': {
    summary: 'print the effective configuration',
    load: () => import('./commands/config.js').then((m) => m.configShow),
  },
  'config validate': {
    summary: 'check the configuration file',
    load: () => import('./commands/config.js').then((m) => m.configValidate),
  },
  mcp: {
    summary: 'serve these commands as MCP tools over stdio (for agent harnesses)',
    load: () => import('./commands/mcp.js').then((m) => m.mcp),
  },
};

/** Every command by name, with its summary and loader (the MCP server builds its tools from them). */
export function commandEntries(): Readonly<Record<string, Entry>> {
  return COMMANDS;
}

const GROUPS = new Set(['task', 'context', 'config']);

/** This CLI's version, from its package.json. */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

const SHORT_USAGE = [
  'Usage: exec-kernel <command> [arguments] [--json] [--config <file>]',
  "Run 'exec-kernel --help' for the commands.",
  '',
].join('\n');

function globalUsage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  const lines = Object.entries(COMMANDS).map(
    ([name, e]) => `  ${name.padEnd(width)}  ${e.summary}`,
  );
  return [
    'Usage: exec-kernel <command> [arguments] [--json] [--config <file>]',
    '',
    'Keeps AI agents honest: strict task lifecycle, no looping work, budgets, no busywork while idle.',
    '',
    'Commands:',
    ...lines,
    '',
    'Every command takes --json (one JSON object per line: the result, or the Violation),',
    '--config <file> (default: .exec-kernel.yml found upward from here) and --help.',
    'Exit status: 0 on success, 1 for a refusal or a usage error, 2 for an internal error.',
    '',
  ].join('\n');
}

function groupUsage(group: string): string {
  const lines = Object.entries(COMMANDS)
    .filter(([name]) => name.startsWith(`${group} `))
    .map(([name, e]) => `  exec-kernel ${name.padEnd(16)}  ${e.summary}`);
  return [`Usage: exec-kernel ${group} <command> ...`, '', ...lines, ''].join('\n');
}

function closest(word: string, candidates: string[]): string | undefined {
  const distance = (a: string, b: string): number => {
    const row = Array.from({ length: b.length + 1 }, (_, i) => i);
    for (let i = 1; i <= a.length; i++) {
      let previous = row[0] as number;
      row[0] = i;
      for (let j = 1; j <= b.length; j++) {
        const current = row[j] as number;
        row[j] = Math.min(
          current + 1,
          (row[j - 1] as number) + 1,
          previous + (a[i - 1] === b[j - 1] ? 0 : 1),
        );
        previous = current;
      }
    }
    return row[b.length] as number;
  };
  let best: string | undefined;
  let bestDistance = 3;
  for (const c of candidates) {
    const d = distance(word, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return best;
}

/** Turns node's parseArgs errors into one short line. */
function parseErrorMessage(error: Error & { code?: string }): string {
  // The option as typed, up to its value placeholder: `--steps` of "Option '--steps <value>' …".
  const option = /'(-[^' ]*)/.exec(error.message)?.[1];
  switch (error.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `Unknown option ${quote(option ?? '?')}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (option === undefined) return 'Invalid option value';
      if (/ambiguous/.test(error.message))
        return `Option ${quote(option)} needs a value; for one that starts with '-', write ${option}=<value>`;
      if (/does not take an argument/.test(error.message))
        return `Option ${quote(option)} takes no value`;
      return `Option ${quote(option)} needs a value`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return 'Unexpected argument';
    default:
      return printable(error.message.split('\n')[0] ?? 'Invalid arguments');
  }
}

const NEGATIVE_NUMBER = /^-(?:\d|\.\d)/;

/**
 * `--steps -3` as `--steps=-3`: parseArgs reads a value that starts with `-` as an option, so a
 * negative number would be refused as a missing value instead of as a negative number.
 */
function joinNegativeValues(args: string[], options: ParseArgsConfig['options']): string[] {
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--') {
      joined.push(...args.slice(i));
      break;
    }
    const next = args[i + 1];
    const option = arg.startsWith('--') ? options?.[arg.slice(2)] : undefined;
    if (option?.type === 'string' && next !== undefined && NEGATIVE_NUMBER.test(next)) {
      joined.push(`${arg}=${next}`);
      i++;
    } else joined.push(arg);
  }
  return joined;
}

/** Refuses a single-valued option given twice: which one would win is not for the caller to guess. */
function refuseRepeats(
  tokens: NonNullable<ReturnType<typeof parseArgs>['tokens']>,
  options: NonNullable<ParseArgsConfig['options']>,
): void {
  const seen = new Set<string>();
  for (const token of tokens) {
    if (token.kind !== 'option') continue;
    const option = options[token.name];
    if (option === undefined || option.type !== 'string' || option.multiple === true) continue;
    if (seen.has(token.name))
      throw new UsageError(`Option ${quote(`--${token.name}`)} given more than once`);
    seen.add(token.name);
  }
}

/** The positional names of a synopsis: `<task-id> [key]` → `task-id`, `key`; `<text...>` a tail. */
function positionalNames(names: string): Array<{ name: string; tail: boolean }> {
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

/**
 * Runs the `exec-kernel` command line with `argv` (without `node` and the script) and returns the
 * exit status: 0 on success, 1 for a refusal or a usage error, 2 for an internal error. Never calls
 * `process.exit`, so tests can run it in-process with their own `io`.
 *
 * @example
 * ```ts
 * const status = await main(['validate', 'todo', 'in_progress']); // prints VALID: Work started
 * ```
 */
export async function main(argv: string[], io: CliIO = processIO()): Promise<number> {
  const [first, second] = argv;
  if (first === undefined) {
    io.stderr.write(SHORT_USAGE);
    return 1;
  }
  if (first === '--help' || first === '-h' || first === 'help') {
    io.stdout.write(globalUsage());
    return 0;
  }
  if (first === '--version' || first === '-v') {
    io.stdout.write(`${version()}\n`);
    return 0;
  }

  let name = first;
  let rest = argv.slice(1);
  if (GROUPS.has(first)) {
    if (second === '--help' || second === '-h') {
      io.stdout.write(groupUsage(first));
      return 0;
    }
    if (second === undefined) {
      const verbs = Object.keys(COMMANDS)
        .filter((name) => name.startsWith(`${first} `))
        .map((name) => name.slice(first.length + 1));
      io.stderr.write(
        `ERROR: Missing command: exec-kernel ${first} <${verbs.join('|')}>. Run 'exec-kernel ${first} --help'.\n`,
      );
      return 1;
    }
    name = `${first} ${second}`;
    rest = argv.slice(2);
  }
  const entry = COMMANDS[name];
  if (entry === undefined) {
    const suggestion = closest(name, Object.keys(COMMANDS));
    const hint = suggestion === undefined ? '' : ` Did you mean '${suggestion}'?`;
    io.stderr.write(`ERROR: Unknown command ${quote(name)}.${hint} Run 'exec-kernel --help'.\n`);
    return 1;
  }

  const command = await entry.load();
  const end = rest.indexOf('--');
  // Known before parsing, so a refusal while parsing is still given in the asked-for form.
  const json = (end === -1 ? rest : rest.slice(0, end)).includes('--json');
  const out = new Output(io, json);
  const usageHint = `Run 'exec-kernel ${name} --help' for usage.`;
  try {
    const options: NonNullable<ParseArgsConfig['options']> = {
      ...command.options,
      json: { type: 'boolean' },
      config: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    };
    let parsed: ReturnType<typeof parseArgs>;
    try {
      const args = joinNegativeValues(rest, options);
      parsed = parseArgs({ args, options, allowPositionals: true, strict: true, tokens: true });
    } catch (error) {
      throw new UsageError(parseErrorMessage(error as Error));
    }
    refuseRepeats(parsed.tokens ?? [], options);
    const values = parsed.values as CommandContext['values'];
    if (values.help === true) {
      io.stdout.write(`${command.usage.trimEnd()}\n`);
      return 0;
    }
    const { min, max, names } = command.positionals;
    if (parsed.positionals.length < min || parsed.positionals.length > max) {
      throw new UsageError(
        parsed.positionals.length < min
          ? `Missing arguments: exec-kernel ${name} ${names}`
          : `Too many arguments: exec-kernel ${name} ${names}`,
      );
    }

    const numbers = checkArgs(command, values, parsed.positionals);
    const ctx: CommandContext = {
      name,
      values,
      positionals: parsed.positionals,
      numbers,
      flags: { json, config: values.config as string | undefined },
      io,
      out,
    };
    return await command.run(ctx);
  } catch (error) {
    if (UsageError.is(error)) {
      const message = printable(error.message);
      io.stderr.write(
        error.pointToHelp ? `ERROR: ${message}. ${usageHint}\n` : `ERROR: ${message}\n`,
      );
      return 1;
    }
    if (KernelError.is(error)) {
      const { line, violation } = refusal(error);
      out.refuse(line, violation);
      return 1;
    }
    const message = printable(error instanceof Error ? error.message : String(error));
    io.stderr.write(`ERROR: internal error: ${message} (set EXEC_KERNEL_DEBUG=1 for details)\n`);
    if (io.env.EXEC_KERNEL_DEBUG) io.stderr.write(`${(error as Error)?.stack ?? ''}\n`);
    return 2;
  }
}
