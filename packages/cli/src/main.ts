import { type ParseArgsConfig, parseArgs } from 'node:util';
import type { CliIO, CommandContext } from './context.js';
import { UsageError } from './context.js';
import { invoke, type Outcome, outcomeOf } from './invoke.js';
import { processIO } from './io.js';
import { COMMANDS, GROUPS } from './registry.js';
import { printable, quote, Renderer } from './render.js';
import { version } from './version.js';

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
  const out = new Renderer(io, json);
  const options: NonNullable<ParseArgsConfig['options']> = {
    ...command.options,
    json: { type: 'boolean' },
    config: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    try {
      const args = joinNegativeValues(rest, options);
      parsed = parseArgs({ args, options, allowPositionals: true, strict: true, tokens: true });
    } catch (error) {
      throw new UsageError(parseErrorMessage(error as Error));
    }
    refuseRepeats(parsed.tokens ?? [], options);
  } catch (error) {
    return render(outcomeOf(error, name), out, io);
  }
  const values = parsed.values as CommandContext['values'];
  if (values.help === true) {
    io.stdout.write(`${command.usage.trimEnd()}\n`);
    return 0;
  }
  const outcome = await invoke({
    name,
    command,
    values,
    positionals: parsed.positionals,
    flags: { json, config: values.config as string | undefined },
    io,
    out,
  });
  return render(outcome, out, io);
}

/** Prints how a run ended and returns its exit status. */
function render(outcome: Outcome, out: Renderer, io: CliIO): number {
  switch (outcome.kind) {
    case 'done':
      out.result(outcome.result);
      break;
    case 'refused':
      out.refuse(outcome.line, outcome.violation);
      break;
    case 'usage':
      io.stderr.write(`${outcome.line}\n`);
      break;
    case 'internal':
      io.stderr.write(`${outcome.line}\n`);
      if (io.env.EXEC_KERNEL_DEBUG) io.stderr.write(`${outcome.stack ?? ''}\n`);
      break;
  }
  return outcome.status;
}
