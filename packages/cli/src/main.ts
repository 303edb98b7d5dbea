import { readFileSync } from 'node:fs';
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { KernelError, toViolation } from '@exec-kernel/core';
import {
  type CliIO,
  type Command,
  type CommandContext,
  Output,
  refusalLine,
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
  const option = /'(-[^']*)'/.exec(error.message)?.[1];
  switch (error.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `Unknown option '${option ?? '?'}'`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return option === undefined ? 'Invalid option value' : `Option '${option}' needs a value`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return 'Unexpected argument';
    default:
      return error.message.split('\n')[0] ?? 'Invalid arguments';
  }
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
    io.stderr.write(globalUsage());
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
    if (second === undefined || second === '--help' || second === '-h') {
      (second === undefined ? io.stderr : io.stdout).write(groupUsage(first));
      return second === undefined ? 1 : 0;
    }
    name = `${first} ${second}`;
    rest = argv.slice(2);
  }
  const entry = COMMANDS[name];
  if (entry === undefined) {
    const suggestion = closest(name, Object.keys(COMMANDS));
    const hint = suggestion === undefined ? '' : ` Did you mean '${suggestion}'?`;
    io.stderr.write(`ERROR: Unknown command '${name}'.${hint} Run 'exec-kernel --help'.\n`);
    return 1;
  }

  const command = await entry.load();
  const json = rest.includes('--json');
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
      parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
    } catch (error) {
      throw new UsageError(parseErrorMessage(error as Error));
    }
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

    const ctx: CommandContext = {
      name,
      values,
      positionals: parsed.positionals,
      flags: { json, config: values.config as string | undefined },
      io,
      out,
    };
    return await command.run(ctx);
  } catch (error) {
    if (UsageError.is(error)) {
      io.stderr.write(
        error.pointToHelp ? `ERROR: ${error.message}. ${usageHint}\n` : `ERROR: ${error.message}\n`,
      );
      return 1;
    }
    if (KernelError.is(error)) {
      const violation = toViolation(error);
      out.refuse(refusalLine(error, violation.kind), violation);
      return 1;
    }
    const message = error instanceof Error ? error.message : String(error);
    io.stderr.write(`ERROR: internal error: ${message} (set EXEC_KERNEL_DEBUG=1 for details)\n`);
    if (io.env.EXEC_KERNEL_DEBUG) io.stderr.write(`${(error as Error)?.stack ?? ''}\n`);
    return 2;
  }
}
