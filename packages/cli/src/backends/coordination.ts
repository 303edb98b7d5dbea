import { setTimeout as delay } from 'node:timers/promises';
import type { AgentView, CoordinationClient } from '@exec-kernel/coordination-client';
import { type BudgetType, type TaskState, toIsoTime } from '@exec-kernel/core';
import { validateTransition, type WakeReason } from '@exec-kernel/lifecycle';
import type { ActionCheck } from '@exec-kernel/loop';
import type { JsonValue, TaskNote } from '@exec-kernel/memory';
import type { CommandContext } from '../context.js';
import { budgetWarningLine } from '../render.js';
import { configFor } from '../services.js';
import type {
  ActionAnswer,
  ActionInput,
  ActionResultAnswer,
  Asleep,
  ClaimedTask,
  Created,
  CreateInput,
  Described,
  Held,
  Moved,
  SleepInput,
  Stepped,
  TaskBackend,
  TransitionInput,
  Woken,
} from './backend.js';

// How often a sleeping process asks the service whether its agent is still asleep.
const POLL_MS = 250;

/**
 * A client of the coordination service at `coordination.url` (or `EXEC_KERNEL_COORDINATION_URL`),
 * with the token from `EXEC_KERNEL_COORDINATION_TOKEN`.
 */
export async function clientFor(ctx: CommandContext): Promise<CoordinationClient> {
  const [{ CoordinationClient }, { config }] = await Promise.all([
    import('@exec-kernel/coordination-client'),
    configFor(ctx),
  ]);
  const { url, token } = config.coordination;
  const missing = [
    url === null ? 'EXEC_KERNEL_COORDINATION_URL' : '',
    token === null ? 'EXEC_KERNEL_COORDINATION_TOKEN' : '',
  ].filter(Boolean);
  if (url === null || token === null) {
    const { ConfigError } = await import('@exec-kernel/core');
    throw new ConfigError(`The coordination service is not configured: set ${missing.join(', ')}`, {
      path: 'env',
      key: missing[0],
    });
  }
  return new CoordinationClient({ url, token });
}

/**
 * Resolves with why an agent's sleep on the service ended, watching the agent view: its timeout,
 * a wake (by anyone, or a replacing sleep), or `signal`. The view does not say why a wake came, so
 * a wake reads `woken`.
 */
async function waitForServiceWake(
  client: CoordinationClient,
  agentId: string,
  until: string,
  signal: AbortSignal | undefined,
): Promise<WakeReason | 'interrupted'> {
  const untilMs = Date.parse(until);
  while (true) {
    if (signal?.aborted) return 'interrupted';
    const left = untilMs - Date.now();
    if (left <= 0) return 'timeout';
    try {
      await delay(Math.min(POLL_MS, left), undefined, signal === undefined ? {} : { signal });
    } catch {
      return 'interrupted';
    }
    let agent: AgentView;
    try {
      agent = await client.getAgent(agentId);
    } catch (error) {
      const { isUnavailable } = await import('@exec-kernel/coordination-client');
      // A service restarting keeps the sleep; ask again at the next poll.
      if (isUnavailable(error)) continue;
      throw error;
    }
    if (!agent.asleep || agent.sleepUntil !== until)
      return Date.now() >= untilMs ? 'timeout' : 'woken';
  }
}

/** Tasks on a coordination service: every rule is the service's; this backend only asks. */
export class CoordinationBackend implements TaskBackend {
  readonly name = 'coordination' as const;
  readonly #ctx: CommandContext;
  #client: Promise<CoordinationClient> | undefined;

  constructor(ctx: CommandContext) {
    this.#ctx = ctx;
  }

  #connect(): Promise<CoordinationClient> {
    this.#client ??= clientFor(this.#ctx);
    return this.#client;
  }

  async create(input: CreateInput): Promise<Created> {
    const { task, deduplicated } = await (await this.#connect()).enqueue({
      id: input.taskId,
      type: input.taskType,
      title: input.title,
      parentId: input.parentTaskId,
      createdById: input.createdByTaskId,
      admission: input.admission,
    });
    const note = deduplicated ? ' (existing task)' : '';
    return { name: task.id, state: task.state, depth: task.depth, note, data: task };
  }

  async transition(input: TransitionInput): Promise<Moved> {
    const client = await this.#connect();
    if (input.to === 'in_progress' && (await client.getTask(input.taskId)).state === 'todo') {
      // On the service, work on a todo task starts with a claim (the lease makes the caller its
      // holder), as it starts with a checkout on Paperclip.
      const { task, lease } = await client.claimTask(input.taskId);
      return {
        name: input.taskId,
        from: 'todo',
        to: task.state,
        reason: validateTransition('todo', 'in_progress'),
        data: { task, lease },
      };
    }
    const moved = await client.transition(
      input.taskId,
      input.to,
      input.comment === undefined ? {} : { comment: input.comment },
    );
    return {
      name: input.taskId,
      from: moved.from,
      to: moved.to,
      reason: moved.reason,
      data: moved,
    };
  }

  async show(taskId: string): Promise<Described> {
    const task = await (await this.#connect()).getTask(taskId);
    const lease =
      task.leaseOwner === null ? '' : `  leased by ${task.leaseOwner} until ${task.leaseUntil}`;
    return {
      lines: [
        `${task.id}  ${task.state}  ${task.type}  depth=${task.depth}  steps=${task.stepsTaken}/${task.limits.maxSteps}${lease}`,
      ],
      data: task,
    };
  }

  async list(filter: {
    state: TaskState | undefined;
    agentId: string | undefined;
  }): Promise<Described> {
    const { tasks } = await (await this.#connect()).listTasks({
      ...(filter.state === undefined ? {} : { state: filter.state }),
      ...(filter.agentId === undefined ? {} : { agentId: filter.agentId }),
      limit: 1000,
    });
    const rows = tasks.map((t) =>
      `${t.id}  ${t.state}  ${t.agentId}  ${t.type}  depth=${t.depth}  ${t.title ?? ''}`.trimEnd(),
    );
    return { lines: rows, data: { tasks } };
  }

  async step(taskId: string, count: number): Promise<Stepped> {
    const { task, warnings } = await (await this.#connect()).step(taskId, { count });
    for (const w of warnings) {
      // The task's own amounts are in its view; an ancestor's are not sent with the warning.
      const own = w.taskId === task.id && w.budgetType === 'steps';
      this.#ctx.out.warn(
        budgetWarningLine({
          ...w,
          budgetType: w.budgetType as BudgetType,
          ...(own ? { observed: task.stepsTaken, limit: task.limits.maxSteps } : {}),
        }),
      );
    }
    return {
      name: taskId,
      stepsTaken: task.stepsTaken,
      maxSteps: task.limits.maxSteps,
      left: Math.max(0, task.limits.maxSteps - task.stepsTaken),
      data: { task, warnings },
    };
  }

  async checkout(taskId: string, options: { leaseSeconds?: number | undefined }): Promise<Held> {
    const { leaseSeconds } = options;
    const { task, lease } = await (await this.#connect()).claimTask(
      taskId,
      leaseSeconds === undefined ? {} : { leaseSeconds },
    );
    return { name: task.id, state: task.state, lease, data: { task, lease } };
  }

  async release(taskId: string): Promise<Held> {
    const task = await (await this.#connect()).release(taskId);
    return { name: task.id, state: task.state, data: task };
  }

  async claim(options: {
    waitSeconds: number;
    leaseSeconds: number | undefined;
    types: string[] | undefined;
  }): Promise<ClaimedTask | undefined> {
    const claimed = await (await this.#connect()).claim({
      waitSeconds: options.waitSeconds,
      ...(options.leaseSeconds === undefined ? {} : { leaseSeconds: options.leaseSeconds }),
      ...(options.types === undefined ? {} : { types: options.types }),
    });
    if (claimed === undefined) return undefined;
    const { task, lease } = claimed;
    return { taskId: task.id, type: task.type, lease, data: claimed };
  }

  async sleep(input: SleepInput): Promise<Asleep> {
    const client = await this.#connect();
    const since = toIsoTime(Date.now());
    const agent = await client.sleep(input.agentId, {
      timeoutSeconds: input.timeoutSeconds,
      reason: input.reason,
    });
    const until = agent.sleepUntil ?? since;
    return {
      sleep: { agentId: agent.id, reason: agent.sleepReason ?? input.reason, since, until },
      wait: (signal) => waitForServiceWake(client, agent.id, until, signal),
    };
  }

  async wake(agentId: string, reason: WakeReason): Promise<Woken> {
    const { agent, wasAsleep } = await (await this.#connect()).wake(
      agentId,
      reason === 'timeout' ? 'woken' : reason,
    );
    return wasAsleep
      ? { woken: true, data: { woken: true, agentId, reason, agent } }
      : { woken: false, data: { woken: false, agentId } };
  }

  async getContext(taskId: string): Promise<Record<string, JsonValue>> {
    const { context } = await (await this.#connect()).getContext(taskId);
    return context as Record<string, JsonValue>;
  }

  async setContext(taskId: string, key: string, value: JsonValue): Promise<void> {
    await (await this.#connect()).setContext(taskId, key, value);
  }

  async addNote(taskId: string, text: string): Promise<TaskNote> {
    // The service records the caller (the token's agent) as the author.
    const note = await (await this.#connect()).addNote(taskId, text);
    return { at: note.at, text: note.text, author: note.agentId };
  }

  // The service checks the calls with the same kernel; a JSON answer holds no `undefined`, so its
  // views are the kernel's shapes.
  async recordAction(input: ActionInput): Promise<ActionAnswer> {
    const { taskId, tool, args, resultDigest } = input;
    const check = await (await this.#connect()).recordAction(taskId, {
      tool,
      args,
      ...(resultDigest === undefined ? {} : { resultDigest }),
    });
    return { check: check as ActionCheck };
  }

  async recordActionResult(taskId: string, resultDigest: string): Promise<ActionResultAnswer> {
    const recorded = await (await this.#connect()).recordActionResult(taskId, { resultDigest });
    return recorded as ActionResultAnswer;
  }
}
