import type { BudgetEvent } from '@exec-kernel/budget';
import { checkId, NotFoundError } from '@exec-kernel/core';
import { type IdleEvent, type TransitionEvent, validateTransition } from '@exec-kernel/lifecycle';
import type { ActionEvent, ActionGuard, ActionHistoryJSON, RegisterEvent } from '@exec-kernel/loop';
import type { ActionRefusal, JsonValue, MemoryState, TaskNote, TaskRecord } from './state.js';

/**
 * One thing that happened, as memory records it. Each applies to any state, so an event recorded
 * in one process applies cleanly to the newer state another process left in the file.
 */
export type MemoryEvent =
  | { type: 'transition'; event: TransitionEvent }
  | { type: 'register'; event: RegisterEvent; at: string }
  | { type: 'budget'; event: BudgetEvent }
  | { type: 'idle'; event: IdleEvent }
  | { type: 'note'; taskId: string; note: TaskNote }
  | { type: 'context'; taskId: string; key: string; value: JsonValue | undefined; at: string }
  | { type: 'admission'; taskId: string; admission: Record<string, string>; at: string }
  | {
      type: 'action';
      taskId: string;
      /** An allowed call, a result attached to the newest call, or a refusal. */
      outcome: 'recorded' | 'result' | 'refused';
      /** The task's history after the observation (unchanged by a refusal). */
      history: ActionHistoryJSON;
      refusal?: ActionRefusal;
      at: string;
    };

/**
 * The memory event of an `ActionGuard` observation: the task's history after it and, for a
 * refusal, what was refused. `undefined` when the guard no longer holds the task.
 */
export function actionMemoryEvent(
  guard: ActionGuard,
  event: ActionEvent,
  at: string,
): MemoryEvent | undefined {
  const history = guard.history(event.taskId)?.toJSON();
  if (history === undefined) return undefined;
  const { taskId, outcome } = event;
  if (outcome !== 'refused') return { type: 'action', taskId, outcome, history, at };
  const { loopType, tool, count, message } = event.error;
  const refusal = { at, loopType, tool: tool ?? '', count: count ?? 0, message };
  return { type: 'action', taskId, outcome, history, refusal, at };
}

// Ancestor walks stop here, so a hand-edited file whose budget parents loop cannot hang a process.
const MAX_BUDGET_ANCESTORS = 10_000;

function budgetChain(state: MemoryState, task: TaskRecord): TaskRecord[] {
  const chain: TaskRecord[] = [];
  for (let t: TaskRecord | undefined = task; t?.budget !== undefined; ) {
    chain.push(t);
    if (chain.length > MAX_BUDGET_ANCESTORS) break;
    const parentId: string | undefined = t.budget.parentTaskId;
    t = parentId === undefined ? undefined : state.tasks.get(parentId);
  }
  return chain;
}

function applyBudget(state: MemoryState, event: BudgetEvent): void {
  if (event.type === 'start') {
    const task = state.ensureTask(event.taskId, event.startedAt);
    task.budget = {
      limits: { ...event.limits },
      stepsTaken: 0,
      tokens: 0,
      costUsd: 0,
      startedAt: event.startedAt,
    };
    if (event.parentTaskId !== undefined) task.budget.parentTaskId = event.parentTaskId;
    task.updatedAt = event.startedAt;
    return;
  }
  const task = state.tasks.get(event.taskId);
  if (task?.budget === undefined)
    throw new NotFoundError({ resource: 'budget task', id: event.taskId });
  state.touch();
  if (event.type === 'end') {
    task.budget.endedAt = event.endedAt;
    task.updatedAt = event.endedAt;
    return;
  }
  if (event.type === 'warning') {
    const warned = task.budget.warned ?? [];
    if (!warned.includes(event.budgetType)) task.budget.warned = [...warned, event.budgetType];
    return;
  }
  for (const t of budgetChain(state, task)) {
    const budget = t.budget as NonNullable<TaskRecord['budget']>;
    if (event.type === 'step') {
      budget.stepsTaken += event.count;
    } else {
      budget.tokens += event.tokens;
      budget.costUsd += event.costUsd;
    }
  }
}

/**
 * Applies an event to a state.
 *
 * @throws InvalidTransitionError when a recorded move is no longer valid from the stored state
 *   (another process moved the task meanwhile).
 * @throws NotFoundError when budget spending names a task whose budget the state does not hold.
 * @throws InvalidInputError when a new task, agent, type or context key breaks core's id rule
 *   (`checkId`); records already stored are read as they are.
 */
export function applyEvent(state: MemoryState, e: MemoryEvent): void {
  switch (e.type) {
    case 'transition': {
      const { taskId, to, at } = e.event;
      const task = state.ensureTask(taskId, at, e.event.from);
      // A task that never moved holds only a default state; the lifecycle's start is authoritative.
      if (task.history.length === 0) task.state = e.event.from;
      validateTransition(task.state, to, taskId);
      const { taskId: _, ...record } = e.event;
      task.history.push({ ...record, from: task.state });
      task.state = to;
      task.updatedAt = at;
      return;
    }
    case 'register': {
      const { node, depth } = e.event;
      checkId(node.agentId, 'agent id');
      checkId(node.taskType, 'task type');
      if (node.parentTaskId !== undefined) checkId(node.parentTaskId, 'parent task id');
      if (node.createdByTaskId !== undefined) checkId(node.createdByTaskId, 'creator task id');
      const task = state.ensureTask(node.taskId, e.at);
      task.agentId = node.agentId;
      task.taskType = node.taskType;
      task.depth = depth;
      setOptional(task, 'title', node.title);
      setOptional(task, 'parentTaskId', node.parentTaskId);
      setOptional(task, 'createdByTaskId', node.createdByTaskId);
      task.updatedAt = e.at;
      return;
    }
    case 'budget':
      applyBudget(state, e.event);
      return;
    case 'idle': {
      const agent = state.ensureAgent(e.event.agentId);
      if (e.event.type === 'sleep') {
        const { type: _, ...sleep } = e.event;
        agent.sleep = sleep;
      } else {
        const { type: _, ...wake } = e.event;
        delete agent.sleep;
        agent.lastWake = wake;
      }
      return;
    }
    case 'note': {
      const task = state.ensureTask(e.taskId, e.note.at);
      task.notes.push(e.note);
      task.updatedAt = e.note.at;
      return;
    }
    case 'context': {
      checkId(e.key, 'context key');
      const task = state.ensureTask(e.taskId, e.at);
      // Defined, not assigned: a key such as `__proto__` is kept like any other, never a prototype.
      if (e.value === undefined) delete task.context[e.key];
      else
        Object.defineProperty(task.context, e.key, {
          value: e.value,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      task.updatedAt = e.at;
      return;
    }
    case 'admission': {
      const task = state.ensureTask(e.taskId, e.at);
      task.admission = { ...e.admission };
      task.updatedAt = e.at;
      return;
    }
    case 'action': {
      const task = state.ensureTask(e.taskId, e.at);
      // The history is the one the guard holds after the call: exact inside a transaction, the
      // newest writer's when sessions save in the background.
      const actions = { history: e.history, refused: task.actions?.refused ?? 0 } as NonNullable<
        TaskRecord['actions']
      >;
      if (task.actions?.lastRefusal !== undefined) actions.lastRefusal = task.actions.lastRefusal;
      if (e.refusal !== undefined) {
        actions.refused += 1;
        actions.lastRefusal = e.refusal;
      }
      task.actions = actions;
      task.updatedAt = e.at;
      return;
    }
  }
}

function setOptional<K extends 'title' | 'parentTaskId' | 'createdByTaskId'>(
  task: TaskRecord,
  key: K,
  value: string | undefined,
): void {
  if (value === undefined) delete task[key];
  else task[key] = value;
}
