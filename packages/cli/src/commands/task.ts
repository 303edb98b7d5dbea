import {
  ConflictError,
  isTaskState,
  isTerminalState,
  NotFoundError,
  TASK_STATES,
  type TaskState,
} from '@exec-kernel/core';
import { validateAdmission } from '@exec-kernel/lifecycle';
import type { MemorySession, TaskRecord } from '@exec-kernel/memory';
import { requiredFlag, stringFlag } from '../args.js';
import { type Command, type CommandContext, UsageError } from '../context.js';
import { configFor, memoryFor } from '../services.js';

const ADMISSION_FLAGS = {
  consumer: 'consumer',
  'pain-point': 'painPoint',
  'expected-value': 'expectedValue',
  'validation-path': 'validationPath',
} as const;

function admissionFrom(values: CommandContext['values']): Record<string, string> {
  const admission: Record<string, string> = {};
  for (const [flag, field] of Object.entries(ADMISSION_FLAGS)) {
    const value = stringFlag(values, flag);
    if (value !== undefined) admission[field] = value;
  }
  for (const pair of (values.admission as string[] | undefined) ?? []) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new UsageError(`--admission takes field=value, got '${pair}'`);
    admission[pair.slice(0, at)] = pair.slice(at + 1);
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
`,
  options: {
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
  async run(ctx) {
    const [taskId] = ctx.positionals as [string];
    const agentId = requiredFlag(ctx.values, 'agent-id');
    const taskType = requiredFlag(ctx.values, 'type');
    const parentTaskId = stringFlag(ctx.values, 'parent-task-id');
    const admission = admissionFrom(ctx.values);
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

Options:
  --comment <text>   recorded in the history instead of the table's reason
  --agent-id <id>    who made the move
`,
  options: { comment: { type: 'string' }, 'agent-id': { type: 'string' } },
  positionals: { min: 2, max: 2, names: '<task-id> <state>' },
  async run(ctx) {
    const [taskId, to] = ctx.positionals as [string, TaskState];
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

function describeTask(task: TaskRecord, elapsedSeconds: number | undefined): string {
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
  return lines.join('\n');
}

export const taskShow: Command = {
  usage: `Usage: exec-kernel task show <task-id> [--json]

Shows a task: state, agent, type, depth, budget, admission, history, notes and context. With
--json, the stored record plus stepsTaken, depth and elapsedSeconds.
`,
  options: {},
  positionals: { min: 1, max: 1, names: '<task-id>' },
  async run(ctx) {
    const [taskId] = ctx.positionals as [string];
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

Lists tasks, oldest first: id, state, agent, type, depth, steps and title.
`,
  options: { state: { type: 'string' }, 'agent-id': { type: 'string' } },
  positionals: { min: 0, max: 0, names: '' },
  async run(ctx) {
    const state = stringFlag(ctx.values, 'state');
    if (state !== undefined && !isTaskState(state)) {
      throw new UsageError(`--state must be one of ${TASK_STATES.join(', ')}, got '${state}'`);
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
    ctx.out.result(rows.length === 0 ? 'No tasks.' : rows.join('\n'), {
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
