import { readFile, stat } from 'node:fs/promises';
import { InvalidInputError } from '@exec-kernel/core';
import { type ActionLoopWarning, resultDigest } from '@exec-kernel/loop';
import { type ArgRule, idArg, jsonArg, parseJsonArg, stringFlag, textArg } from '../args.js';
import { BACKEND_OPTION } from '../backends/backend.js';
import { backendFor } from '../backends/select.js';
import { type Command, type CommandContext, UsageError } from '../context.js';

// Arguments and results are digested, never stored, but each call reads them whole.
const MAX_ARGS = 65_536;
const MAX_RESULT_TEXT = 65_536;
const MAX_RESULT_FILE = 64 * 1024 * 1024;
const DIGEST = /^[0-9a-f]{8,128}$/i;

const ARGS_RULE = jsonArg('--args', MAX_ARGS) as ArgRule & { kind: 'json' };

const RESULT_OPTIONS = {
  result: { type: 'string' },
  'result-file': { type: 'string' },
  'result-digest': { type: 'string' },
} as const;

const RESULT_HELP = `  --result <text>          the call's result, as text
  --result-file <path>     the call's result: the text of a file (a test log, a command's output)
  --result-digest <hex>    the result's digest, when the caller computed it (8 to 128 hex digits)`;

/** The call's arguments: `--args` JSON, `--args -` JSON read from standard input, or `{}`. */
function argsOf(ctx: CommandContext): unknown {
  const text = stringFlag(ctx.values, 'args');
  if (text === undefined) return {};
  if (text !== '-') return parseJsonArg(text, ARGS_RULE);
  if (ctx.io.readStdin === undefined) throw new UsageError('--args - needs standard input');
  return parseJsonArg(ctx.io.readStdin().trim(), ARGS_RULE);
}

/** The digest of the result given by one of the result options, or undefined for none. */
async function resultDigestOf(ctx: CommandContext): Promise<string | undefined> {
  const given = Object.keys(RESULT_OPTIONS).filter((name) => ctx.values[name] !== undefined);
  if (given.length > 1) {
    throw new UsageError(
      `Give one of --result, --result-file, --result-digest, not ${given.length}`,
    );
  }
  const text = stringFlag(ctx.values, 'result');
  if (text !== undefined) return resultDigest(text);
  const digest = stringFlag(ctx.values, 'result-digest');
  if (digest !== undefined) {
    if (!DIGEST.test(digest)) {
      throw new InvalidInputError({
        field: '--result-digest',
        problem: 'must be 8 to 128 hex digits',
      });
    }
    return digest.toLowerCase();
  }
  const file = stringFlag(ctx.values, 'result-file');
  if (file === undefined) return undefined;
  let content: string;
  try {
    const { size } = await stat(file);
    if (size > MAX_RESULT_FILE) {
      throw new InvalidInputError({
        field: '--result-file',
        problem: `must be at most ${MAX_RESULT_FILE} bytes, got ${size}`,
      });
    }
    content = await readFile(file, 'utf8');
  } catch (error) {
    if (InvalidInputError.is(error)) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new InvalidInputError(
      { field: '--result-file', problem: `cannot be read (${code})` },
      { cause: error },
    );
  }
  // The same digest as `--result` with the same text.
  return resultDigest(content);
}

function warnAll(ctx: CommandContext, warnings: readonly ActionLoopWarning[]): void {
  for (const w of warnings) ctx.out.warn(`WARN: [${w.loopType}] ${w.message}`);
}

export const action: Command = {
  usage: `Usage: exec-kernel action <task-id> <tool> [--args <json> | --args -] [result option]

Checks a tool call an agent is about to make (or has made) on a task against the action-loop
rules, and records it: the same call again and again (repeat), two or three calls in turn
(ping_pong), one call too often among the recent ones (window), the same result whatever the call
(no_progress). A refused call exits 1 with one DENIED line and is not recorded; a call close to
being refused prints a WARN line on stderr. Thresholds come from the config's actions section.
The task must exist (exec-kernel task create) and be open. Safe to run from many processes at once.

Options:
  --args <json>            the call's arguments, any JSON (key order does not matter); - reads
                           them from standard input. Default: {}
${RESULT_HELP}

Examples:
  exec-kernel action task-1 read_file --args '{"path":"a.ts"}'   ALLOWED: read_file call 1 of task-1 (1 in a row)
`,
  options: { ...BACKEND_OPTION, args: { type: 'string' }, ...RESULT_OPTIONS },
  positionals: { min: 2, max: 2, names: '<task-id> <tool>' },
  args: {
    'task-id': idArg('task id'),
    tool: idArg('tool name'),
    args: ARGS_RULE,
    result: textArg('result', MAX_RESULT_TEXT),
    'result-file': textArg('result file', 4096),
  },
  async run(ctx) {
    const [taskId, tool] = ctx.positionals as [string, string];
    const args = argsOf(ctx);
    const digest = await resultDigestOf(ctx);
    const backend = await backendFor(ctx);
    const { check } = await backend.recordAction({ taskId, tool, args, resultDigest: digest });
    warnAll(ctx, check.warnings);
    const line = check.exempt
      ? `ALLOWED: ${tool} is exempt for ${taskId} (not counted)`
      : `ALLOWED: ${tool} call ${check.calls} of ${taskId} (${check.repeats} in a row)`;
    return { line, data: check };
  },
};

export const actionResult: Command = {
  usage: `Usage: exec-kernel action-result <task-id> (--result <text> | --result-file <path> | --result-digest <hex>)

Records the result of a task's newest call (recorded by exec-kernel action before the tool ran),
for the no_progress rule: the same result so many times in a row is refused (exit 1, one DENIED
line, nothing recorded), and a call whose result changed starts counting anew.

Options:
${RESULT_HELP}

Examples:
  exec-kernel action-result task-1 --result-file out.log   OK: result of read_file call 1 of task-1 recorded
`,
  options: { ...BACKEND_OPTION, ...RESULT_OPTIONS },
  positionals: { min: 1, max: 1, names: '<task-id>' },
  args: {
    'task-id': idArg('task id'),
    result: textArg('result', MAX_RESULT_TEXT),
    'result-file': textArg('result file', 4096),
  },
  async run(ctx) {
    const [taskId] = ctx.positionals as [string];
    const digest = await resultDigestOf(ctx);
    if (digest === undefined) {
      throw new UsageError('Missing one of --result, --result-file, --result-digest');
    }
    const answer = await (await backendFor(ctx)).recordActionResult(taskId, digest);
    warnAll(ctx, answer.warnings);
    return {
      line: `OK: result of ${answer.tool} call ${answer.calls} of ${taskId} recorded`,
      data: answer,
    };
  },
};
