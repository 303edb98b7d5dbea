import type { BudgetLimits } from '@exec-kernel/budget';
import { ConflictError, isTerminalState, NotFoundError, type TaskState } from '@exec-kernel/core';
import { admitTask, type TaskCandidate, type WakeReason } from '@exec-kernel/lifecycle';
import type { JsonValue, MemorySession, TaskNote, TaskRecord } from '@exec-kernel/memory';
import { type CommandContext, UsageError } from '../context.js';
import { configFor, memoryFor } from '../services.js';
import {
  type ActionAnswer,
  type ActionInput,
  type ActionResultAnswer,
  type Asleep,
  type ClaimedTask,
  type Created,
  type CreateInput,
  type Described,
  type Held,
  type Moved,
  needsService,
  type SleepInput,
  type Stepped,
  type TaskBackend,
  type TransitionInput,
  type Woken,
} from './backend.js';
import { waitForLocalWake } from './local-sleep.js';
import { listedTasks, shownTask } from './local-views.js';

function requireTask(s: MemorySession, taskId: string): TaskRecord {
  const task = s.task(taskId);
  if (task === undefined) throw new NotFoundError({ resource: 'task', id: taskId });
  return task;
}

/**
 * The task an action is recorded on: one the store knows and that is still open. An unknown id is
 * refused rather than given a fresh history, so a misspelt task id cannot escape the rules.
 */
function requireOpenTask(s: MemorySession, taskId: string): TaskRecord {
  const task = s.task(taskId);
  if (task === undefined) {
    throw new NotFoundError(
      { resource: 'task', id: taskId },
      { message: `Task ${taskId} not found; create it with 'exec-kernel task create'` },
    );
  }
  if (isTerminalState(task.state)) {
    throw new NotFoundError(
      { resource: 'open task', id: taskId },
      { message: `Task ${taskId} is ${task.state}; it records no more actions` },
    );
  }
  return task;
}

/** The candidate `admitTask` checks: the request's fields, the unset ones left out. */
function candidateOf(input: CreateInput, agentId: string): TaskCandidate {
  const candidate: TaskCandidate = {
    taskId: input.taskId,
    agentId,
    taskType: input.taskType,
    admission: input.admission,
  };
  if (input.title !== undefined) candidate.title = input.title;
  if (input.parentTaskId !== undefined) candidate.parentTaskId = input.parentTaskId;
  if (input.createdByTaskId !== undefined) candidate.createdByTaskId = input.createdByTaskId;
  return candidate;
}

/** The budget limits of the config's `budget` section (without `warnAt`). */
function limitsOf(budget: BudgetLimits): BudgetLimits {
  const { maxSteps, maxDepth, maxDurationSeconds, maxTokens, maxCostUsd } = budget;
  return { maxSteps, maxDepth, maxDurationSeconds, maxTokens, maxCostUsd };
}

/**
 * Tasks in the local file store (`store.path`), shared by every call in the project. Creation is
 * decided by `admitTask` over the store's loop graph and the agent's stored sleep.
 */
export class LocalBackend implements TaskBackend {
  readonly name = 'local' as const;
  readonly #ctx: CommandContext;

  constructor(ctx: CommandContext) {
    this.#ctx = ctx;
  }

  async create(input: CreateInput): Promise<Created> {
    const { taskId } = input;
    if (input.agentId === undefined || input.agentId.trim() === '')
      throw new UsageError('Missing required option --agent-id');
    const agentId = input.agentId;
    const { config } = await configFor(this.#ctx);
    const memory = await memoryFor(this.#ctx);
    const { depth, record } = await memory.transaction((s) => {
      const existing = s.task(taskId);
      if (existing !== undefined) {
        throw new ConflictError(
          { resource: `task ${taskId}`, holder: existing.agentId },
          { message: `Task ${taskId} already exists` },
        );
      }
      const sleep = s.state.agents.get(agentId)?.sleep;
      const candidate = candidateOf(input, agentId);
      const decision = admitTask(candidate, {
        now: Date.now(),
        sleep:
          sleep === undefined
            ? undefined
            : { untilMs: Date.parse(sleep.until), reason: sleep.reason },
        required: config.admission.required,
        loop: s.loop,
        budgetDefaults: limitsOf(config.budget),
      });
      if (!decision.ok) throw decision.error;
      s.loop.registerNode(candidate);
      const parent = input.parentTaskId;
      const payingParent = parent !== undefined && s.budget.get(parent) ? parent : undefined;
      s.budget.startTask(taskId, { ...decision.limits, parentTaskId: payingParent });
      const admission = decision.admission;
      if (admission !== undefined && Object.keys(admission).length > 0)
        s.setAdmission(taskId, { ...admission });
      return { depth: decision.depth, record: s.task(taskId) as TaskRecord };
    });
    return { name: taskId, state: record.state, depth, note: '', data: record };
  }

  async transition(input: TransitionInput): Promise<Moved> {
    const { taskId, to } = input;
    const memory = await memoryFor(this.#ctx);
    const moved = await memory.transaction((s) => {
      requireTask(s, taskId);
      const lifecycle = s.lifecycle(taskId);
      const from = lifecycle?.state as TaskState;
      const reason = lifecycle?.transition(to, {
        reason: input.comment,
        actor: input.agentId,
      }) as string;
      if (isTerminalState(to) && s.budget.get(taskId) !== undefined) s.budget.end(taskId);
      return { taskId, from, to, reason };
    });
    return { name: taskId, from: moved.from, to: moved.to, reason: moved.reason, data: moved };
  }

  async show(taskId: string): Promise<Described> {
    const session = await (await memoryFor(this.#ctx)).snapshot();
    return shownTask(session, requireTask(session, taskId));
  }

  async list(filter: {
    state: TaskState | undefined;
    agentId: string | undefined;
  }): Promise<Described> {
    return listedTasks(await (await memoryFor(this.#ctx)).listTasks(filter));
  }

  async step(taskId: string, count: number): Promise<Stepped> {
    const memory = await memoryFor(this.#ctx);
    const result = await memory.transaction((s) => {
      const task = s.task(taskId);
      if (task === undefined) {
        throw new NotFoundError(
          { resource: 'task', id: taskId },
          { message: `Task ${taskId} not found; create it with 'exec-kernel task create'` },
        );
      }
      if (isTerminalState(task.state)) {
        throw new NotFoundError(
          { resource: 'open budget', id: taskId },
          { message: `Task ${taskId} is ${task.state}; its budget is closed` },
        );
      }
      if (s.budget.get(taskId) === undefined) {
        const parent = task.parentTaskId;
        s.budget.startTask(taskId, {
          parentTaskId: parent !== undefined && s.budget.get(parent) ? parent : undefined,
        });
      }
      const state = s.budget.recordStep(taskId, count);
      return {
        taskId,
        stepsTaken: state.stepsTaken,
        maxSteps: state.limits.maxSteps,
        remaining: state.remaining(),
      };
    });
    return {
      name: taskId,
      stepsTaken: result.stepsTaken,
      maxSteps: result.maxSteps,
      left: result.remaining.steps,
      data: result,
    };
  }

  async checkout(): Promise<Held> {
    throw needsService('checkout');
  }

  async release(): Promise<Held> {
    throw needsService('release');
  }

  async claim(): Promise<ClaimedTask | undefined> {
    throw needsService('claim');
  }

  async sleep(input: SleepInput): Promise<Asleep> {
    const memory = await memoryFor(this.#ctx);
    const record = await memory.transaction((s) => s.idle.sleep(input));
    return { sleep: record, wait: (signal) => waitForLocalWake(memory, record, signal) };
  }

  async wake(agentId: string, reason: WakeReason): Promise<Woken> {
    const memory = await memoryFor(this.#ctx);
    const woke = await memory.transaction((s) => s.idle.wake(agentId, reason));
    return woke === undefined
      ? { woken: false, data: { woken: false, agentId } }
      : { woken: true, data: { woken: true, ...woke } };
  }

  async getContext(taskId: string): Promise<Record<string, JsonValue>> {
    return requireTask(await (await memoryFor(this.#ctx)).snapshot(), taskId).context;
  }

  async setContext(taskId: string, key: string, value: JsonValue): Promise<void> {
    await (await memoryFor(this.#ctx)).transaction((s) => {
      requireTask(s, taskId);
      s.setContext(taskId, key, value);
    });
  }

  async recordAction(input: ActionInput): Promise<ActionAnswer> {
    const { taskId, tool, args, resultDigest } = input;
    const check = await (await memoryFor(this.#ctx)).transaction((s) => {
      requireOpenTask(s, taskId);
      return s.actionsOf(taskId).observe({ taskId, tool, args, resultDigest });
    });
    return { check };
  }

  async recordActionResult(taskId: string, resultDigest: string): Promise<ActionResultAnswer> {
    return (await memoryFor(this.#ctx)).transaction((s) => {
      requireOpenTask(s, taskId);
      return s.actionsOf(taskId).recordResult(taskId, undefined, resultDigest);
    });
  }

  async addNote(taskId: string, text: string, author: string | undefined): Promise<TaskNote> {
    return (await memoryFor(this.#ctx)).transaction((s) => {
      requireTask(s, taskId);
      return s.note(taskId, text, author);
    });
  }
}
