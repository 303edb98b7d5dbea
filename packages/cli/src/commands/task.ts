import {
  checkId,
  InvalidInputError,
  isTaskState,
  TASK_STATES,
  type TaskState,
} from '@exec-kernel/core';
import {
  type ArgRule,
  got,
  idArg,
  requiredFlag,
  stringFlag,
  textArg,
  textProblem,
} from '../args.js';
import { BACKEND_OPTION } from '../backends/backend.js';
import { backendFor } from '../backends/select.js';
import { type Command, type CommandContext, type CommandResult, UsageError } from '../context.js';

const ADMISSION_FLAGS = {
  consumer: 'consumer',
  'pain-point': 'painPoint',
  'expected-value': 'expectedValue',
  'validation-path': 'validationPath',
} as const;

// The coordination service's own caps on a title and a comment; an admission answer is a sentence.
const MAX_TITLE = 1000;
const MAX_COMMENT = 10_000;
const MAX_ADMISSION_TEXT = 1000;

/** The rule for a `<task-id>`. */
export const TASK_ID: ArgRule = idArg('task id');
/** The rule for `--agent-id`. */
export const AGENT_ID: ArgRule = idArg('agent id');

function admissionFrom(values: CommandContext['values']): Record<string, string> {
  const admission: Record<string, string> = {};
  for (const [flag, field] of Object.entries(ADMISSION_FLAGS)) {
    const value = stringFlag(values, flag);
    if (value !== undefined) admission[field] = value;
  }
  for (const pair of (values.admission as string[] | undefined) ?? []) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new UsageError(`--admission takes field=value, ${got(pair)}`);
    const field = checkId(pair.slice(0, at), 'admission field');
    const value = pair.slice(at + 1);
    const problem = textProblem(value, MAX_ADMISSION_TEXT);
    if (problem !== undefined)
      throw new InvalidInputError({ field: `admission ${field}`, problem });
    admission[field] = value;
  }
  return admission;
}

export const taskCreate: Command = {
  usage: `Usage: exec-kernel task create <task-id> --agent-id <id> --type <type> [options]

Creates a task in the store, in state todo, with a budget from the config. Refused (exit 1) when
the agent is asleep, when the admission case is incomplete (every missing field is named), or
when the task would loop (cycle, identity or depth; see check-loop).

On Paperclip (--backend paperclip, or PAPERCLIP_API_URL and PAPERCLIP_API_KEY set, as in every
heartbeat) the same checks run against Paperclip's issues, then the issue is created: <task-id>
is its title unless --title is given, and Paperclip names it (KER-12). --agent-id defaults to
PAPERCLIP_AGENT_ID there.

Options:
  --agent-id <id>              the agent creating and owning the task (required)
  --type <type>                the task's type, e.g. feature, research (required)
  --title <text>               tells apart same-type tasks on the creator chain
  --parent-task-id <id>        the task this one decomposes (sets depth; its budget also pays)
  --created-by-task-id <id>    the task whose work produced this one
  --consumer <text>            who the work is for
  --pain-point <text>          what hurts them
  --expected-value <text>      what fixing it is worth
  --validation-path <text>     how anyone will know it worked
  --admission <field=value>    any other admission field the config requires (repeatable)
  --backend <b>                local, paperclip or coordination (default: paperclip inside a
                               heartbeat, coordination with EXEC_KERNEL_COORDINATION_URL)
`,
  options: {
    ...BACKEND_OPTION,
    'agent-id': { type: 'string' },
    type: { type: 'string' },
    title: { type: 'string' },
    'parent-task-id': { type: 'string' },
    'created-by-task-id': { type: 'string' },
    consumer: { type: 'string' },
    'pain-point': { type: 'string' },
    'expected-value': { type: 'string' },
    'validation-path': { type: 'string' },
    admission: { type: 'string', multiple: true },
  },
  positionals: { min: 1, max: 1, names: '<task-id>' },
  args: {
    'task-id': TASK_ID,
    'agent-id': AGENT_ID,
    type: idArg('task type'),
    title: textArg('title', MAX_TITLE),
    'parent-task-id': idArg('parent task id'),
    'created-by-task-id': idArg('creator task id'),
    ...(Object.fromEntries(
      Object.keys(ADMISSION_FLAGS).map((flag) => [flag, textArg(`--${flag}`, MAX_ADMISSION_TEXT)]),
    ) as Record<string, ArgRule>),
  },
  async run(ctx) {
    const [taskId] = ctx.positionals as [string];
    const taskType = requiredFlag(ctx.values, 'type');
    const admission = admissionFrom(ctx.values);
    const created = await (await backendFor(ctx)).create({
      taskId,
      agentId: stringFlag(ctx.values, 'agent-id'),
      taskType,
      title: stringFlag(ctx.values, 'title'),
      parentTaskId: stringFlag(ctx.values, 'parent-task-id'),
      createdByTaskId: stringFlag(ctx.values, 'created-by-task-id'),
      admission,
    });
    const { name, state, depth, note } = created;
    return { line: `CREATED: ${name} state=${state} depth=${depth}${note}`, data: created.data };
  },
};

export const taskTransition: Command = {
  usage: `Usage: exec-kernel task transition <task-id> <state> [--comment <text>] [--agent-id <id>]

Moves a task to another state, if the lifecycle table allows it. Reaching done or cancelled
closes the task's budget.

States: ${TASK_STATES.join(', ')}

On Paperclip the move is checked against the table before any write (Paperclip itself lets done
be reopened); todo -> in_progress is a checkout.

Options:
  --comment <text>     recorded in the history instead of the table's reason
  --agent-id <id>      who made the move
  --blocked-by <id>    Paperclip: an issue blocking this one, for blocked (repeatable)
  --reviewer <user>    Paperclip: the human reviewing, for in_review
  --backend local|paperclip|coordination
`,
  options: {
    ...BACKEND_OPTION,
    comment: { type: 'string' },
    'agent-id': { type: 'string' },
    'blocked-by': { type: 'string', multiple: true },
    reviewer: { type: 'string' },
  },
  positionals: { min: 2, max: 2, names: '<task-id> <state>' },
  args: {
    'task-id': TASK_ID,
    state: idArg('state'),
    comment: textArg('comment', MAX_COMMENT),
    'agent-id': AGENT_ID,
    'blocked-by': idArg('blocking task id'),
    reviewer: idArg('reviewer'),
  },
  async run(ctx) {
    const [taskId, to] = ctx.positionals as [string, TaskState];
    const moved = await (await backendFor(ctx)).transition({
      taskId,
      to,
      comment: stringFlag(ctx.values, 'comment'),
      agentId: stringFlag(ctx.values, 'agent-id'),
      blockedBy: ctx.values['blocked-by'] as string[] | undefined,
      reviewer: stringFlag(ctx.values, 'reviewer'),
    });
    return {
      line: `OK: ${moved.name} ${moved.from} -> ${moved.to}: ${moved.reason}`,
      data: moved.data,
    };
  },
};

export const taskShow: Command = {
  usage: `Usage: exec-kernel task show <task-id> [--json]

Shows a task: state, agent, type, depth, budget, admission, history, notes and context. With
--json, the stored record plus stepsTaken, depth and elapsedSeconds. On Paperclip: the issue.
`,
  options: { ...BACKEND_OPTION },
  positionals: { min: 1, max: 1, names: '<task-id>' },
  args: { 'task-id': TASK_ID },
  async run(ctx) {
    const [taskId] = ctx.positionals as [string];
    const { lines, data } = await (await backendFor(ctx)).show(taskId);
    return { lines, data };
  },
};

/** A list's rows, or the line that says there are none. */
export function rowsOf(rows: readonly string[], data: unknown): CommandResult {
  return rows.length === 0 ? { line: 'No tasks.', data } : { lines: rows, data };
}

export const taskList: Command = {
  usage: `Usage: exec-kernel task list [--state <state>] [--agent-id <id>] [--json]

Lists tasks, oldest first: id, state, agent, type, depth, steps and title. On Paperclip: the
issues assigned to the agent (PAPERCLIP_AGENT_ID, or --agent-id), by priority.
`,
  options: { ...BACKEND_OPTION, state: { type: 'string' }, 'agent-id': { type: 'string' } },
  positionals: { min: 0, max: 0, names: '' },
  args: { state: idArg('state'), 'agent-id': AGENT_ID },
  async run(ctx) {
    const state = stringFlag(ctx.values, 'state');
    if (state !== undefined && !isTaskState(state)) {
      throw new UsageError(`--state must be one of ${TASK_STATES.join(', ')}, ${got(state)}`);
    }
    const { lines, data } = await (await backendFor(ctx)).list({
      state,
      agentId: stringFlag(ctx.values, 'agent-id'),
    });
    return rowsOf(lines, data);
  },
};
