import type { MemorySession, TaskRecord } from '@exec-kernel/memory';
import type { Described } from './backend.js';

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

/**
 * A stored task for `task show`: every field on its own line; as data, the record plus
 * `stepsTaken`, `depth` and `elapsedSeconds`.
 */
export function shownTask(session: MemorySession, task: TaskRecord): Described {
  const budget = task.budget === undefined ? undefined : session.budget.get(task.taskId);
  const elapsedSeconds =
    task.budget?.endedAt !== undefined
      ? (Date.parse(task.budget.endedAt) - Date.parse(task.budget.startedAt)) / 1000
      : budget?.elapsedSeconds;
  return {
    lines: describeTask(task, elapsedSeconds),
    data: {
      ...task,
      stepsTaken: task.budget?.stepsTaken ?? 0,
      depth: task.depth ?? 0,
      elapsedSeconds: elapsedSeconds ?? null,
    },
  };
}

/** Stored tasks for `task list`: one row each; as data, a summary of each. */
export function listedTasks(tasks: readonly TaskRecord[]): Described {
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
  return {
    lines: rows,
    data: {
      tasks: tasks.map((t) => ({
        taskId: t.taskId,
        state: t.state,
        agentId: t.agentId ?? null,
        taskType: t.taskType ?? null,
        title: t.title ?? null,
        depth: t.depth ?? 0,
        stepsTaken: t.budget?.stepsTaken ?? 0,
      })),
    },
  };
}
