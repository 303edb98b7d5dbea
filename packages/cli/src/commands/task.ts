import { LIMIT_MAXIMUMS } from '@exec-kernel/budget';
import {
  ConflictError,
  checkId,
  InvalidInputError,
  isTaskState,
  isTerminalState,
  NotFoundError,
  TASK_STATES,
  type TaskState,
} from '@exec-kernel/core';
import { validateAdmission } from '@exec-kernel/lifecycle';
import type { MemorySession, TaskRecord } from '@exec-kernel/memory';
import {
  type ArgRule,
  got,
  idArg,
  numberArg,
  requiredFlag,
  stringFlag,
  textArg,
  textProblem,
} from '../args.js';
import { BACKEND_OPTION, backendFor, coordinationFor, paperclipFor } from '../backend.js';
import { type Command, type CommandContext, UsageError } from '../context.js';
import { configFor, memoryFor } from '../services.js';

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

const TASK_ID = idArg('task id');
const AGENT_ID = idArg('agent id');

/** Seconds of a lease or a wait: the coordination client's timer must not overflow (24.8 days). */
const LEASE_SECONDS = numberArg({ exclusiveMin: true, max: LIMIT_MAXIMUMS.maxDurationSeconds });
const WAIT_SECONDS = numberArg({ max: 86_400 });

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

function requireTask(s: MemorySession, taskId: string): TaskRecord {
  const task = s.task(taskId);
  if (task === undefined) throw new NotFoundError({ resource: 'task', id: taskId });
  return task;
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
  --backend local|paperclip    where the task lives (default: paperclip inside a heartbeat)
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
    const parentTaskId = stringFlag(ctx.values, 'parent-task-id');
    const admission = admissionFrom(ctx.values);
    const backend = await backendFor(ctx);
    if (backend === 'coordination') {
      const client = await coordinationFor(ctx);
      const { task, deduplicated } = await client.enqueue({
        id: taskId,
        type: taskType,
        title: stringFlag(ctx.values, 'title'),
        parentId: parentTaskId,
        createdById: stringFlag(ctx.values, 'created-by-task-id'),
        admission,
      });
      const note = deduplicated ? ' (existing task)' : '';
      ctx.out.result(`CREATED: ${task.id} state=${task.state} depth=${task.depth}${note}`, task);
      return 0;
    }
    if (backend === 'paperclip') {
      const adapter = await paperclipFor(ctx, stringFlag(ctx.values, 'agent-id'));
      const task = await adapter.createTask(stringFlag(ctx.values, 'title') ?? taskId, taskType, {
        admission,
        parentTaskId,
        createdByTaskId: stringFlag(ctx.values, 'created-by-task-id'),
      });
      const name = task.identifier ?? task.id;
      const dedupe = task.deduplicated
        ? ` (existing issue: ${task.deduplicationReason ?? 'deduplicated'})`
        : '';
      ctx.out.result(`CREATED: ${name} state=${task.status} depth=${task.depth}${dedupe}`, task);
      return 0;
    }
    const agentId = requiredFlag(ctx.values, 'agent-id');
    const { config } = await configFor(ctx);
    const memory = await memoryFor(ctx);
    const { depth, record } = await memory.transaction((s) => {
      const existing = s.task(taskId);
      if (existing !== undefined) {
        throw new ConflictError(
          { resource: `task ${taskId}`, holder: existing.agentId },
          { message: `Task ${taskId} already exists` },
        );
      }
      s.idle.assertMayCreate(agentId, taskId);
      validateAdmission(admission, { required: config.admission.required, taskId });
      const depth = s.loop.checkNewTask(taskId, agentId, taskType, {
        parentTaskId,
        createdByTaskId: stringFlag(ctx.values, 'created-by-task-id'),
        title: stringFlag(ctx.values, 'title'),
      });
      const payingParent =
        parentTaskId !== undefined && s.budget.get(parentTaskId) ? parentTaskId : undefined;
      s.budget.startTask(taskId, { parentTaskId: payingParent });
      if (Object.keys(admission).length > 0) s.setAdmission(taskId, admission);
      return { depth, record: s.task(taskId) as TaskRecord };
    });
    ctx.out.result(`CREATED: ${taskId} state=${record.state} depth=${depth}`, record);
    return 0;
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
  --backend local|paperclip
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
    const backend = await backendFor(ctx);
    if (backend === 'coordination') {
      const moved = await (await coordinationFor(ctx)).transition(taskId, to, {
        ...(stringFlag(ctx.values, 'comment') === undefined
          ? {}
          : { comment: stringFlag(ctx.values, 'comment') as string }),
      });
      ctx.out.result(`OK: ${taskId} ${moved.from} -> ${moved.to}: ${moved.reason}`, moved);
      return 0;
    }
    if (backend === 'paperclip') {
      const adapter = await paperclipFor(ctx, stringFlag(ctx.values, 'agent-id'));
      const moved = await adapter.transitionTask(taskId, to, {
        comment: stringFlag(ctx.values, 'comment'),
        blockedByIssueIds: ctx.values['blocked-by'] as string[] | undefined,
        reviewerUserId: stringFlag(ctx.values, 'reviewer'),
      });
      const name = moved.identifier ?? moved.id;
      ctx.out.result(`OK: ${name} ${moved.from} -> ${moved.to}: ${moved.reason}`, moved);
      return 0;
    }
    const memory = await memoryFor(ctx);
    const result = await memory.transaction((s) => {
      requireTask(s, taskId);
      const lifecycle = s.lifecycle(taskId);
      const from = lifecycle?.state as TaskState;
      const reason = lifecycle?.transition(to, {
        reason: stringFlag(ctx.values, 'comment'),
        actor: stringFlag(ctx.values, 'agent-id'),
      }) as string;
      if (isTerminalState(to) && s.budget.get(taskId) !== undefined) s.budget.end(taskId);
      return { taskId, from, to, reason };
    });
    ctx.out.result(`OK: ${taskId} ${result.from} -> ${result.to}: ${result.reason}`, result);
    return 0;
  },
};

function describeTask(task: TaskRecord, elapsedSeconds: number | undefined): string[] {
  const lines = [`${task.taskId}  ${task.state}`];
  const field = (label: string, value: string | number | undefined) => {
    if (value !== undefined) lines.push(`  ${`${label}:`.padEnd(10)} ${value}`);
  };
  field('agent', task.agentId);
  field('type', task.taskType);
  field('title', task.title);
  field('parent', task.parentTaskId);
  field('creator', task.createdByTaskId);
  field('depth', task.depth);
  if (task.budget !== undefined) {
    const b = task.budget;
    const parts = [`${b.stepsTaken}/${b.limits.maxSteps} steps`];
    if (elapsedSeconds !== undefined)
      parts.push(`${Math.floor(elapsedSeconds)}s/${b.limits.maxDurationSeconds}s`);
    if (b.tokens > 0 || b.limits.maxTokens !== null)
      parts.push(`${b.tokens}/${b.limits.maxTokens ?? '∞'} tokens`);
    if (b.costUsd > 0 || b.limits.maxCostUsd !== null)
      parts.push(`$${b.costUsd}/${b.limits.maxCostUsd ?? '∞'}`);
    field('budget', `${parts.join(', ')}${b.endedAt === undefined ? '' : ' (closed)'}`);
  }
  for (const [key, value] of Object.entries(task.admission ?? {})) field(key, value);
  if (task.history.length > 0) {
    lines.push('  history:');
    for (const h of task.history) {
      lines.push(
        `    ${h.at}  ${h.from} -> ${h.to}  ${h.reason}${h.actor === undefined ? '' : `  (${h.actor})`}`,
      );
    }
  }
  if (task.notes.length > 0) {
    lines.push('  notes:');
    for (const n of task.notes)
      lines.push(`    ${n.at}  ${n.author === undefined ? '' : `${n.author}: `}${n.text}`);
  }
  const context = Object.entries(task.context);
  if (context.length > 0) {
    lines.push('  context:');
    for (const [k, v] of context) lines.push(`    ${k}=${JSON.stringify(v)}`);
  }
  return lines;
}

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
    const backend = await backendFor(ctx);
    if (backend === 'coordination') {
      const task = await (await coordinationFor(ctx)).getTask(taskId);
      const lease =
        task.leaseOwner === null ? '' : `  leased by ${task.leaseOwner} until ${task.leaseUntil}`;
      ctx.out.result(
        `${task.id}  ${task.state}  ${task.type}  depth=${task.depth}  steps=${task.stepsTaken}/${task.limits.maxSteps}${lease}`,
        task,
      );
      return 0;
    }
    if (backend === 'paperclip') {
      const issue = await (await paperclipFor(ctx)).getTask(taskId);
      const line = `${issue.identifier ?? issue.id}  ${issue.status}  ${issue.title}`;
      ctx.out.result(line, issue);
      return 0;
    }
    const session = await (await memoryFor(ctx)).snapshot();
    const task = requireTask(session, taskId);
    const budget = task.budget === undefined ? undefined : session.budget.get(taskId);
    const elapsedSeconds =
      task.budget?.endedAt !== undefined
        ? (Date.parse(task.budget.endedAt) - Date.parse(task.budget.startedAt)) / 1000
        : budget?.elapsedSeconds;
    ctx.out.result(describeTask(task, elapsedSeconds), {
      ...task,
      stepsTaken: task.budget?.stepsTaken ?? 0,
      depth: task.depth ?? 0,
      elapsedSeconds: elapsedSeconds ?? null,
    });
    return 0;
  },
};

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
    const backend = await backendFor(ctx);
    if (backend === 'coordination') {
      const agentId = stringFlag(ctx.values, 'agent-id');
      const { tasks } = await (await coordinationFor(ctx)).listTasks({
        ...(state === undefined ? {} : { state }),
        ...(agentId === undefined ? {} : { agentId }),
        limit: 1000,
      });
      const rows = tasks.map((t) =>
        `${t.id}  ${t.state}  ${t.agentId}  ${t.type}  depth=${t.depth}  ${t.title ?? ''}`.trimEnd(),
      );
      ctx.out.result(rows.length === 0 ? 'No tasks.' : rows, { tasks });
      return 0;
    }
    if (backend === 'paperclip') {
      const adapter = await paperclipFor(ctx, stringFlag(ctx.values, 'agent-id'));
      const issues = await adapter.listTasks(state === undefined ? {} : { status: state });
      const rows = issues.map(
        (i) => `${i.identifier ?? i.id}  ${i.status}  ${i.priority ?? '-'}  ${i.title}`,
      );
      ctx.out.result(rows.length === 0 ? 'No tasks.' : rows, { tasks: issues });
      return 0;
    }
    const tasks = await (await memoryFor(ctx)).listTasks({
      state,
      agentId: stringFlag(ctx.values, 'agent-id'),
    });
    const rows = tasks.map((t) =>
      [
        t.taskId,
        t.state,
        t.agentId ?? '-',
        t.taskType ?? '-',
        `depth=${t.depth ?? 0}`,
        `steps=${t.budget?.stepsTaken ?? 0}/${t.budget?.limits.maxSteps ?? '-'}`,
        t.title ?? '',
      ]
        .join('  ')
        .trimEnd(),
    );
    ctx.out.result(rows.length === 0 ? 'No tasks.' : rows, {
      tasks: tasks.map((t) => ({
        taskId: t.taskId,
        state: t.state,
        agentId: t.agentId ?? null,
        taskType: t.taskType ?? null,
        title: t.title ?? null,
        depth: t.depth ?? 0,
        stepsTaken: t.budget?.stepsTaken ?? 0,
      })),
    });
    return 0;
  },
};

async function remoteOnly(
  ctx: CommandContext,
  verb: string,
): Promise<'paperclip' | 'coordination'> {
  const backend = await backendFor(ctx);
  if (backend === 'local') {
    throw new UsageError(
      `task ${verb} needs a task service: run inside a Paperclip heartbeat (PAPERCLIP_API_URL and PAPERCLIP_API_KEY), set EXEC_KERNEL_COORDINATION_URL, or pass --backend`,
    );
  }
  return backend;
}

export const taskCheckout: Command = {
  usage: `Usage: exec-kernel task checkout <task-id> [--agent-id <id>] [--backend paperclip|coordination]

Claims a task for this agent (todo -> in_progress): a Paperclip checkout for this run, or a lease
on a coordination service. Exit 1 with the holder named when someone else has it.
`,
  options: {
    ...BACKEND_OPTION,
    'agent-id': { type: 'string' },
    'lease-seconds': { type: 'string' },
  },
  positionals: { min: 1, max: 1, names: '<task-id>' },
  args: { 'task-id': TASK_ID, 'agent-id': AGENT_ID, 'lease-seconds': LEASE_SECONDS },
  async run(ctx) {
    const [taskId] = ctx.positionals as [string];
    if ((await remoteOnly(ctx, 'checkout')) === 'coordination') {
      const leaseSeconds = ctx.numbers['lease-seconds'];
      const { task, lease } = await (await coordinationFor(ctx)).claimTask(
        taskId,
        leaseSeconds === undefined ? {} : { leaseSeconds },
      );
      ctx.out.result(
        `OK: ${task.id} checked out (${task.state}, lease ${lease.id} until ${lease.until})`,
        { task, lease },
      );
      return 0;
    }
    const issue = await (await paperclipFor(ctx, stringFlag(ctx.values, 'agent-id'))).checkout(
      taskId,
    );
    ctx.out.result(`OK: ${issue.identifier ?? issue.id} checked out (${issue.status})`, issue);
    return 0;
  },
};

export const taskRelease: Command = {
  usage: `Usage: exec-kernel task release <task-id> [--agent-id <id>] [--backend paperclip|coordination]

Gives a checked-out task back: in_progress returns to todo.
`,
  options: { ...BACKEND_OPTION, 'agent-id': { type: 'string' } },
  positionals: { min: 1, max: 1, names: '<task-id>' },
  args: { 'task-id': TASK_ID, 'agent-id': AGENT_ID },
  async run(ctx) {
    const [taskId] = ctx.positionals as [string];
    if ((await remoteOnly(ctx, 'release')) === 'coordination') {
      const task = await (await coordinationFor(ctx)).release(taskId);
      ctx.out.result(`OK: ${task.id} released (${task.state})`, task);
      return 0;
    }
    const issue = await (await paperclipFor(ctx, stringFlag(ctx.values, 'agent-id'))).release(
      taskId,
    );
    ctx.out.result(`OK: ${issue.identifier ?? issue.id} released (${issue.status})`, issue);
    return 0;
  },
};

export const taskClaim: Command = {
  usage: `Usage: exec-kernel task claim [--type <type>]... [--wait <seconds>] [--lease-seconds <s>]

Claims the next todo task from a coordination service (highest priority, then oldest), waiting up
to --wait seconds for one. Prints the task and its lease; exit 0 with "No task." when none came.
`,
  options: {
    ...BACKEND_OPTION,
    type: { type: 'string', multiple: true },
    wait: { type: 'string' },
    'lease-seconds': { type: 'string' },
  },
  positionals: { min: 0, max: 0, names: '' },
  args: { type: idArg('task type'), wait: WAIT_SECONDS, 'lease-seconds': LEASE_SECONDS },
  async run(ctx) {
    if ((await remoteOnly(ctx, 'claim')) !== 'coordination') {
      throw new UsageError(
        'task claim needs a coordination service (EXEC_KERNEL_COORDINATION_URL)',
      );
    }
    const waitSeconds = ctx.numbers.wait ?? 0;
    const leaseSeconds = ctx.numbers['lease-seconds'];
    const claimed = await (await coordinationFor(ctx)).claim({
      waitSeconds,
      ...(leaseSeconds === undefined ? {} : { leaseSeconds }),
      ...(ctx.values.type === undefined ? {} : { types: ctx.values.type as string[] }),
    });
    if (claimed === undefined) {
      ctx.out.result('No task.', { task: null });
      return 0;
    }
    const { task, lease } = claimed;
    ctx.out.result(
      `CLAIMED: ${task.id} type=${task.type} lease=${lease.id} until=${lease.until}`,
      claimed,
    );
    return 0;
  },
};
