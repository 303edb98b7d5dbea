import type { TaskState, Violation } from '@exec-kernel/core';
import { rebuildError } from './errors.js';
import { readEvents } from './event-stream.js';
import type {
  ActionCheckView,
  ActionHistoryView,
  ActionRequest,
  ActionResultRequest,
  ActionResultResponse,
  AgentListItemView,
  AgentView,
  BudgetWarningView,
  Claimed,
  EnqueueInput,
  EscalationView,
  EventView,
  HealthView,
  NoteView,
  TaskContextView,
  TaskView,
  TransitionItemResult,
  UsageCheckView,
} from './protocol/types.js';
import { type ClientOptions, searchParams, Transport } from './transport.js';
import { type JobHandler, type WorkOptions, work } from './worker.js';

export type { ClientOptions } from './transport.js';

/** What became of one item of {@link CoordinationClient.transitionMany}. */
export type TransitionResult =
  | { id: string; ok: true; task: TaskView; from: TaskState; reason: string }
  | { id: string; ok: false; error: Error };

/**
 * The coordination service from an agent's (or an admin's) side: a typed method per route, and
 * errors rebuilt into the core classes (`LoopDetectionError`, `BudgetExceededError`, …, with the
 * server's `violation` record attached as `error.violation`).
 *
 * @example
 * ```ts
 * const client = new CoordinationClient({ url, token });
 * await client.work(async (job) => {
 *   await job.step();
 *   // … the work …
 *   return 'done';
 * }, { types: ['build'] });
 * ```
 */
export class CoordinationClient {
  readonly url: string;
  readonly #transport: Transport;

  constructor(options: ClientOptions) {
    this.#transport = new Transport(options);
    this.url = this.#transport.url;
  }

  // --- agents ------------------------------------------------------------------------------------

  /** Admin: registers an agent (or rotates its token); the token is returned once. */
  registerAgent(id: string): Promise<{ agentId: string; token: string }> {
    return this.#transport.send('post', 'v1/agents', { id });
  }

  /**
   * Admin: a page of agents ordered by id, each with `holding`, the ids of the tasks it holds
   * under a live lease. `next` is the `after` of the following page, `null` on the last.
   */
  listAgents(
    options: { after?: string; limit?: number } = {},
  ): Promise<{ agents: AgentListItemView[]; next: string | null }> {
    return this.#transport.send('get', 'v1/agents', undefined, searchParams(options));
  }

  async getAgent(id: string): Promise<AgentView> {
    return (
      await this.#transport.send<{ agent: AgentView }>('get', `v1/agents/${encodeURIComponent(id)}`)
    ).agent;
  }

  /** Puts an agent to sleep: it may not enqueue until woken or timed out. */
  async sleep(
    agentId: string,
    options: { timeoutSeconds?: number; reason?: string } = {},
  ): Promise<AgentView> {
    return (
      await this.#transport.send<{ agent: AgentView }>(
        'post',
        `v1/agents/${encodeURIComponent(agentId)}/sleep`,
        options,
      )
    ).agent;
  }

  wake(
    agentId: string,
    reason?: 'woken' | 'task_available',
  ): Promise<{ agent: AgentView; wasAsleep: boolean }> {
    return this.#transport.send(
      'post',
      `v1/agents/${encodeURIComponent(agentId)}/wake`,
      reason === undefined ? {} : { reason },
    );
  }

  // --- tasks -------------------------------------------------------------------------------------

  /** Enqueues a task; `deduplicated` is true when the idempotency key matched an existing one. */
  async enqueue(input: EnqueueInput): Promise<{ task: TaskView; deduplicated: boolean }> {
    const result = await this.#transport.send<{ task: TaskView; deduplicated?: true }>(
      'post',
      'v1/tasks',
      input,
    );
    return { task: result.task, deduplicated: result.deduplicated === true };
  }

  listTasks(
    filter: {
      state?: TaskState;
      type?: string;
      agentId?: string;
      leaseOwner?: string;
      after?: number;
      limit?: number;
    } = {},
  ): Promise<{ tasks: TaskView[]; next: number | null }> {
    return this.#transport.send('get', 'v1/tasks', undefined, searchParams(filter));
  }

  /**
   * Claims up to `max` tasks (1–100) under one lease, waiting up to `waitSeconds` for the first;
   * an empty list when none came. For a worker that runs several tasks at once.
   */
  async claimMany(options: {
    max: number;
    types?: string[];
    leaseSeconds?: number;
    waitSeconds?: number;
    signal?: AbortSignal;
  }): Promise<Claimed[]> {
    const { signal, ...body } = options;
    const result = await this.#transport.send<{ claims: Claimed[] }>(
      'post',
      'v1/tasks/claim-many',
      body,
      undefined,
      {
        extraTimeoutMs: (options.waitSeconds ?? 0) * 1000,
        signal,
      },
    );
    return result.claims;
  }

  /**
   * Several transitions (up to 100) in one request, each checked and applied on its own. Never
   * throws for a refused item: its result carries the error, rebuilt like a thrown one.
   */
  async transitionMany(
    items: ReadonlyArray<{ id: string; to: TaskState; leaseId?: string; comment?: string }>,
  ): Promise<TransitionResult[]> {
    const { results } = await this.#transport.send<{ results: TransitionItemResult[] }>(
      'post',
      'v1/tasks/transition-many',
      { transitions: items },
    );
    return this.#transitionResults(results);
  }

  /**
   * {@link transitionMany}, then, in the same request, a claim of up to `next.max` of the next
   * tasks (never waiting): a worker finishing a batch gets its next one without a request of its
   * own. `claims` is empty when nothing was waiting.
   */
  async transitionManyThenClaim(
    items: ReadonlyArray<{ id: string; to: TaskState; leaseId?: string; comment?: string }>,
    next: { max: number; types?: string[]; leaseSeconds?: number },
  ): Promise<{ results: TransitionResult[]; claims: Claimed[] }> {
    const { results, claims } = await this.#transport.send<{
      results: TransitionItemResult[];
      claims: Claimed[];
    }>('post', 'v1/tasks/transition-many', { transitions: items, next });
    return { results: this.#transitionResults(results), claims };
  }

  #transitionResults(results: TransitionItemResult[]): TransitionResult[] {
    return results.map((r) =>
      r.ok
        ? {
            id: r.id,
            ok: true,
            task: r.task as TaskView,
            from: r.from as TaskState,
            reason: r.reason as string,
          }
        : {
            id: r.id,
            ok: false,
            error: rebuildError(r.error, 'POST', `${this.url}/v1/tasks/transition-many`),
          },
    );
  }

  async getTask(id: string): Promise<TaskView> {
    return (
      await this.#transport.send<{ task: TaskView }>('get', `v1/tasks/${encodeURIComponent(id)}`)
    ).task;
  }

  /** A task's key/value context and its notes (oldest first), shared by every agent. */
  getContext(taskId: string): Promise<TaskContextView> {
    return this.#transport.send('get', `v1/tasks/${encodeURIComponent(taskId)}/context`);
  }

  /**
   * Sets one key of a task's context (`undefined` removes it); returns the whole context. Only the
   * task's agent, its lease holder or the admin may.
   */
  async setContext(taskId: string, key: string, value: unknown): Promise<Record<string, unknown>> {
    const path = `v1/tasks/${encodeURIComponent(taskId)}/context/${encodeURIComponent(key)}`;
    const answer = await this.#transport.send<{ context: Record<string, unknown> }>(
      value === undefined ? 'delete' : 'put',
      path,
      value === undefined ? undefined : { value },
    );
    return answer.context;
  }

  /** Adds a note to a task, written by the caller. */
  async addNote(taskId: string, text: string): Promise<NoteView> {
    const path = `v1/tasks/${encodeURIComponent(taskId)}/notes`;
    return (await this.#transport.send<{ note: NoteView }>('post', path, { text })).note;
  }

  /** Claims the next task, waiting up to `waitSeconds`; `undefined` when there was none. */
  claim(
    options: {
      types?: string[];
      leaseSeconds?: number;
      waitSeconds?: number;
      signal?: AbortSignal;
    } = {},
  ): Promise<Claimed | undefined> {
    const { signal, ...body } = options;
    return this.#transport.send<Claimed | undefined>('post', 'v1/tasks/claim', body, undefined, {
      extraTimeoutMs: (options.waitSeconds ?? 0) * 1000,
      signal,
    });
  }

  /** Claims a named task (it must be `todo`). */
  claimTask(id: string, options: { leaseSeconds?: number } = {}): Promise<Claimed> {
    return this.#transport.send('post', `v1/tasks/${encodeURIComponent(id)}/claim`, options);
  }

  heartbeat(
    id: string,
    options: { leaseId?: string; leaseSeconds?: number } = {},
  ): Promise<Claimed> {
    return this.#transport.send('post', `v1/tasks/${encodeURIComponent(id)}/heartbeat`, options);
  }

  /**
   * Moves a task along the lifecycle table. With `next`, the service then claims the next task in
   * the same request (never waiting), and `next` in the result is that claim, or `null` when
   * nothing was waiting: a worker's finish-then-claim in one round trip.
   */
  transition(
    id: string,
    to: TaskState,
    options: {
      leaseId?: string;
      comment?: string;
      next?: { types?: string[]; leaseSeconds?: number };
    } = {},
  ): Promise<{
    task: TaskView;
    from: TaskState;
    to: TaskState;
    reason: string;
    next?: Claimed | null;
  }> {
    return this.#transport.send('post', `v1/tasks/${encodeURIComponent(id)}/transition`, {
      to,
      ...options,
    });
  }

  step(
    id: string,
    options: { count?: number; leaseId?: string } = {},
  ): Promise<{ task: TaskView; warnings: BudgetWarningView[] }> {
    return this.#transport.send('post', `v1/tasks/${encodeURIComponent(id)}/steps`, options);
  }

  usage(
    id: string,
    options: { tokens?: number; costUsd?: number; leaseId?: string },
  ): Promise<{ task: TaskView; warnings: BudgetWarningView[] }> {
    return this.#transport.send('post', `v1/tasks/${encodeURIComponent(id)}/usage`, options);
  }

  /**
   * Checks, before spending (a model call, say), that the task and each of its ancestors still
   * have tokens and dollars left, on the caller's lease; answers the least left over the chain
   * (`remaining.tokens`, `remaining.costUsd`; `null` when unlimited). Records no spending.
   *
   * @throws BudgetExceededError (rebuilt from the `422 BUDGET_EXCEEDED` answer) naming the first
   * task whose token or cost budget is used up, with the escalated Violation as
   * `error.violation`; NotFoundError for an unknown task; ConflictError or ForbiddenError for a
   * lease the caller does not hold, as {@link usage} refuses it.
   */
  checkUsage(taskId: string, options: { leaseId?: string } = {}): Promise<UsageCheckView> {
    const path = `v1/tasks/${encodeURIComponent(taskId)}/usage/check`;
    return this.#transport.send('post', path, options);
  }

  // --- actions -----------------------------------------------------------------------------------

  /**
   * Records one tool call on a task whose lease the caller holds, checked by the service against
   * the action-loop rules: the answer counts it (`calls`, `repeats`, `inWindow`) and carries any
   * `warnings`. A call that reaches a rule's `blockAt` is refused with a `LoopDetectionError`
   * (`loopType` `repeat`, `ping_pong`, `window` or `no_progress`) whose `violation` is the
   * escalated record; nothing is recorded then.
   */
  recordAction(taskId: string, action: ActionRequest): Promise<ActionCheckView> {
    return this.#transport.send('post', `v1/tasks/${encodeURIComponent(taskId)}/actions`, action);
  }

  /**
   * Records the result (or its digest: exactly one) of the task's newest call; answers which call
   * it was attached to (`tool`, `calls`, `resultDigest`) and any `warnings`. Refused with a `LoopDetectionError` (`no_progress`) when the same result keeps
   * coming back.
   */
  recordActionResult(taskId: string, result: ActionResultRequest): Promise<ActionResultResponse> {
    const path = `v1/tasks/${encodeURIComponent(taskId)}/actions/result`;
    return this.#transport.send('post', path, result);
  }

  /** A task's action history (its lease holder, its agent or the admin); empty once it finished. */
  getActions(taskId: string): Promise<ActionHistoryView> {
    return this.#transport.send('get', `v1/tasks/${encodeURIComponent(taskId)}/actions`);
  }

  async release(id: string, options: { leaseId?: string } = {}): Promise<TaskView> {
    return (
      await this.#transport.send<{ task: TaskView }>(
        'post',
        `v1/tasks/${encodeURIComponent(id)}/release`,
        options,
      )
    ).task;
  }

  // --- escalations, events, health ---------------------------------------------------------------

  listEscalations(
    filter: { status?: 'open' | 'acknowledged' | 'resolved'; after?: number; limit?: number } = {},
  ): Promise<{ escalations: EscalationView[]; next: number | null }> {
    return this.#transport.send('get', 'v1/escalations', undefined, searchParams(filter));
  }

  /**
   * Raises an escalation by hand (an agent that is stuck, or a violation seen elsewhere, such as
   * on Paperclip): it joins the queue with the service's own.
   */
  async escalate(input: {
    kind: 'blocked' | 'violation';
    taskId?: string;
    comment?: string;
    violation?: Violation;
  }): Promise<EscalationView> {
    return (
      await this.#transport.send<{ escalation: EscalationView }>('post', 'v1/escalations', input)
    ).escalation;
  }

  async acknowledge(id: string): Promise<EscalationView> {
    return (
      await this.#transport.send<{ escalation: EscalationView }>(
        'post',
        `v1/escalations/${encodeURIComponent(id)}/ack`,
      )
    ).escalation;
  }

  async resolve(
    id: string,
    options: { resolution?: string; requeue?: boolean } = {},
  ): Promise<EscalationView> {
    return (
      await this.#transport.send<{ escalation: EscalationView }>(
        'post',
        `v1/escalations/${encodeURIComponent(id)}/resolve`,
        options,
      )
    ).escalation;
  }

  /** The event log after `after` (a seq); with `taskId`, only that task's events. */
  events(
    options: { after?: number; limit?: number; taskId?: string } = {},
  ): Promise<{ events: EventView[]; next: number }> {
    return this.#transport.send('get', 'v1/events', undefined, searchParams(options));
  }

  /** The event log as a live stream (Server-Sent Events), from after `after`, until `signal` aborts. */
  async *stream(options: { after?: number; signal?: AbortSignal } = {}): AsyncGenerator<EventView> {
    const response = await this.#transport.ky.get('v1/events/stream', {
      timeout: false,
      retry: 0,
      searchParams: searchParams({ after: options.after }),
      headers: { accept: 'text/event-stream' },
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
    yield* readEvents(response.body as ReadableStream<Uint8Array>, options.signal);
  }

  /**
   * `/healthz`: `ok` when the service and its storage answer; `location` (where the database is)
   * only when the client holds the admin token.
   */
  async health(): Promise<HealthView> {
    const response = await this.#transport.ky.get('healthz', { throwHttpErrors: false, retry: 0 });
    return (await response.json()) as HealthView;
  }

  // --- the worker helper -------------------------------------------------------------------------

  /**
   * Works tasks one at a time (or `concurrency` at once): claim (waiting for work), heartbeat
   * while the handler runs, then move the task to the state the handler returns (default `done`).
   * A handler that throws gets its task blocked (which escalates it) and the worker carries on,
   * except when what it threw is the service not answering one of its calls: that task goes back
   * to the queue. Returns how many tasks it started, once stopped through `signal` (after the
   * tasks in hand are finished, see {@link WorkOptions.signal}) or (with `untilIdle`) when a claim
   * finds nothing. The loop itself is {@link work} in `worker.ts`.
   */
  work(handler: JobHandler, options: WorkOptions = {}): Promise<number> {
    return work(this, handler, options);
  }
}
