import type { TaskState } from '@exec-kernel/core';
import type { WakeReason } from '@exec-kernel/lifecycle';
import type { JsonValue, TaskNote } from '@exec-kernel/memory';
import type { PaperclipAdapter } from '@exec-kernel/paperclip';
import { type CommandContext, UsageError } from '../context.js';
import { configFor, memoryFor } from '../services.js';
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
import { LocalBackend } from './local.js';

/**
 * The Paperclip adapter for this call, from the heartbeat's `PAPERCLIP_*` variables, with the
 * config's loop and admission settings and the agent's sleep state from the local store (so
 * `exec-kernel sleep` also stops task creation on Paperclip).
 */
async function adapterFor(ctx: CommandContext, agentId?: string): Promise<PaperclipAdapter> {
  const [{ PaperclipAdapter }, { config }, memory] = await Promise.all([
    import('@exec-kernel/paperclip'),
    configFor(ctx),
    memoryFor(ctx),
  ]);
  const { idle } = await memory.snapshot();
  const env = ctx.io.env;
  return PaperclipAdapter.fromEnv(env, {
    maxDepth: config.lifecycle.maxDepth,
    admissionRequired: config.admission.required,
    budget: config.budget,
    actionRules: config.actions,
    idle,
    ...(config.paperclip.apiUrl !== null && !env.PAPERCLIP_API_URL
      ? { apiUrl: config.paperclip.apiUrl }
      : {}),
    ...(config.paperclip.companyId !== null && !env.PAPERCLIP_COMPANY_ID
      ? { companyId: config.paperclip.companyId }
      : {}),
    ...(agentId === undefined ? {} : { agentId }),
  });
}

/**
 * Tasks as Paperclip issues. Steps count in the issue's budget document and context lives in its
 * context document and comments, so every process working the issue shares them. Paperclip has
 * no sleep gate, so sleep and wake stay in the local store, which the adapter reads: a sleeping
 * agent's creation is refused before anything reaches Paperclip.
 */
export class PaperclipBackend implements TaskBackend {
  readonly name = 'paperclip' as const;
  readonly #ctx: CommandContext;
  readonly #local: LocalBackend;

  constructor(ctx: CommandContext) {
    this.#ctx = ctx;
    this.#local = new LocalBackend(ctx);
  }

  async create(input: CreateInput): Promise<Created> {
    const adapter = await adapterFor(this.#ctx, input.agentId);
    const task = await adapter.createTask(input.title ?? input.taskId, input.taskType, {
      // Refusals name the task as the caller does, as on every other backend.
      name: input.taskId,
      admission: input.admission,
      parentTaskId: input.parentTaskId,
      createdByTaskId: input.createdByTaskId,
    });
    const note = task.deduplicated
      ? ` (existing issue: ${task.deduplicationReason ?? 'deduplicated'})`
      : '';
    const name = task.identifier ?? task.id;
    return { name, state: task.status, depth: task.depth, note, data: task };
  }

  async transition(input: TransitionInput): Promise<Moved> {
    const adapter = await adapterFor(this.#ctx, input.agentId);
    const moved = await adapter.transitionTask(input.taskId, input.to, {
      comment: input.comment,
      blockedByIssueIds: input.blockedBy,
      reviewerUserId: input.reviewer,
    });
    const name = moved.identifier ?? moved.id;
    return { name, from: moved.from, to: moved.to, reason: moved.reason, data: moved };
  }

  async show(taskId: string): Promise<Described> {
    const issue = await (await adapterFor(this.#ctx)).getTask(taskId);
    return {
      lines: [`${issue.identifier ?? issue.id}  ${issue.status}  ${issue.title}`],
      data: issue,
    };
  }

  async list(filter: {
    state: TaskState | undefined;
    agentId: string | undefined;
  }): Promise<Described> {
    const adapter = await adapterFor(this.#ctx, filter.agentId);
    const issues = await adapter.listTasks(
      filter.state === undefined ? {} : { status: filter.state },
    );
    const rows = issues.map(
      (i) => `${i.identifier ?? i.id}  ${i.status}  ${i.priority ?? '-'}  ${i.title}`,
    );
    return { lines: rows, data: { tasks: issues } };
  }

  async step(taskId: string, count: number): Promise<Stepped> {
    const steps = await (await adapterFor(this.#ctx)).step(taskId, { count });
    return {
      name: taskId,
      stepsTaken: steps.stepsTaken,
      maxSteps: steps.maxSteps,
      left: steps.remaining,
      data: steps,
    };
  }

  async checkout(taskId: string, options: { agentId?: string | undefined }): Promise<Held> {
    const issue = await (await adapterFor(this.#ctx, options.agentId)).checkout(taskId);
    return { name: issue.identifier ?? issue.id, state: issue.status, data: issue };
  }

  async release(taskId: string, options: { agentId?: string | undefined }): Promise<Held> {
    const issue = await (await adapterFor(this.#ctx, options.agentId)).release(taskId);
    return { name: issue.identifier ?? issue.id, state: issue.status, data: issue };
  }

  async claim(): Promise<ClaimedTask | undefined> {
    throw new UsageError('task claim needs a coordination service (EXEC_KERNEL_COORDINATION_URL)');
  }

  sleep(input: SleepInput): Promise<Asleep> {
    return this.#local.sleep(input);
  }

  wake(agentId: string, reason: WakeReason): Promise<Woken> {
    return this.#local.wake(agentId, reason);
  }

  async getContext(taskId: string): Promise<Record<string, JsonValue>> {
    return (await (await adapterFor(this.#ctx)).getContext(taskId)).context as Record<
      string,
      JsonValue
    >;
  }

  async setContext(taskId: string, key: string, value: JsonValue): Promise<void> {
    await (await adapterFor(this.#ctx)).setContext(taskId, key, value);
  }

  async addNote(taskId: string, text: string): Promise<TaskNote> {
    const note = await (await adapterFor(this.#ctx)).addNote(taskId, text);
    return {
      at: note.at ?? new Date().toISOString(),
      text: note.text,
      ...(note.author === undefined ? {} : { author: note.author }),
    };
  }

  // The service's action routes are being added; until they are wired here, refuse in one line.
  async recordAction(input: ActionInput): Promise<ActionAnswer> {
    const { taskId, tool, args, resultDigest } = input;
    const adapter = await adapterFor(this.#ctx);
    const check = await adapter.recordAction(taskId, {
      tool,
      args,
      ...(resultDigest === undefined ? {} : { resultDigest }),
    });
    return { check };
  }

  async recordActionResult(taskId: string, resultDigest: string): Promise<ActionResultAnswer> {
    return (await adapterFor(this.#ctx)).recordActionResult(taskId, undefined, resultDigest);
  }
}
