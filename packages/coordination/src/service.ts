import { type Clock, NotFoundError, type Violation } from '@exec-kernel/core';
import type { ActionCheck, ActionResultRecord } from '@exec-kernel/loop';
import type {
  AgentRow,
  EscalationRow,
  EscalationStatus,
  EventRow,
  JsonValue,
  TaskRow,
} from './model.js';
import * as actions from './service/actions.js';
import * as auth from './service/auth.js';
import * as claims from './service/claims.js';
import { createContext, type ServiceContext } from './service/context.js';
import { enqueue } from './service/enqueue.js';
import * as escalations from './service/escalations.js';
import * as events from './service/events.js';
import * as leases from './service/leases.js';
import * as moves from './service/moves.js';
import { checkUsageLeft, type SpendDelta, spend } from './service/spending.js';
import * as taskContext from './service/task-context.js';
import type {
  Caller,
  Claimed,
  ClaimOptions,
  EnqueueInput,
  Lease,
  Moved,
  NextClaim,
  ServiceCounters,
  ServiceSettings,
  SpendWarning,
  TransitionOutcome,
  TransitionRequest,
  UsageLeft,
} from './service/types.js';
import { violationOf } from './service/violations.js';
import type { AgentHolding, Storage, TaskContext, TaskNote } from './storage/storage.js';

export type {
  ActionHistorySummary,
  ActionInput,
  ActionResultInput,
} from './service/actions.js';
export type { EscalationInput } from './service/escalations.js';
export type { SpendDelta } from './service/spending.js';
export { hashToken, newToken } from './service/tokens.js';
export type {
  Caller,
  Claimed,
  ClaimOptions,
  EnqueueInput,
  Lease,
  Moved,
  NextClaim,
  ServiceCounters,
  ServiceSettings,
  SpendWarning,
  TransitionOutcome,
  TransitionRequest,
  UsageLeft,
} from './service/types.js';

/**
 * The coordination rules over a storage engine: admission, loop, idle, lifecycle and budget
 * checks on every call, leases that expire, escalation of every violation and every `blocked`
 * task, and the event log. The HTTP layer only authenticates and validates shapes; everything
 * else happens here, so every engine gets the same behaviour. Each concern is a module of
 * `service/` working on one shared context; this class is their front.
 */
export class CoordinationService {
  readonly storage: Storage;
  readonly counters: ServiceCounters;
  readonly #ctx: ServiceContext;
  #stopReaper: (() => void) | undefined;

  constructor(
    options: { storage: Storage; adminToken: string; clock?: Clock | undefined } & ServiceSettings,
  ) {
    this.#ctx = createContext(options);
    this.storage = this.#ctx.storage;
    this.counters = this.#ctx.counters;
  }

  /** The clock the service reads (`systemClock` unless one was given): views are built by it. */
  get clock(): Clock {
    return this.#ctx.clock;
  }

  /** Aborted when the service stops: long-polls and event streams end. */
  get stopping(): AbortSignal {
    return this.#ctx.stopping.signal;
  }

  /** Opens the storage and starts the lease reaper. */
  async start(): Promise<void> {
    await this.storage.open();
    this.#stopReaper = leases.startReaper(this.#ctx);
  }

  /** Ends every long-poll claim and event stream now (they answer "nothing yet"). */
  abortWaits(): void {
    this.#ctx.stopping.abort();
  }

  /** Ends long-polls and streams, stops the reaper and closes the storage. Leases are kept. */
  async stop(): Promise<void> {
    this.abortWaits();
    this.#stopReaper?.();
    await this.storage.close();
  }

  // --- auth and agents -------------------------------------------------------------------------

  /** The caller a bearer token stands for, or `undefined` for an unknown token. */
  authenticate(token: string): Promise<Caller | undefined> {
    return auth.authenticate(this.#ctx, token);
  }

  /** Registers an agent (or gives it a new token); the token is returned once and stored hashed. */
  registerAgent(caller: Caller, agentId: string): Promise<{ agentId: string; token: string }> {
    return auth.registerAgent(this.#ctx, caller, agentId);
  }

  /** An agent as stored: the admin reads any, an agent itself. */
  getAgent(caller: Caller, agentId: string): Promise<AgentRow> {
    return auth.getAgent(this.#ctx, caller, agentId);
  }

  /**
   * Admin: a page of agents by id (after `afterId`), each with the ids of the tasks it holds under
   * a lease live now, by the service's clock.
   */
  listAgents(
    caller: Caller,
    page: { afterId?: string | undefined; limit: number },
  ): Promise<AgentHolding[]> {
    return auth.listAgents(this.#ctx, caller, page);
  }

  /** A task's key/value context and its notes, oldest first. Any caller may read them. */
  getContext(taskId: string): Promise<TaskContext> {
    return taskContext.getContext(this.#ctx, taskId);
  }

  /**
   * Sets one key of a task's context (`undefined` removes it); returns the whole context. Only the
   * task's agent, its lease holder or the admin may.
   */
  setContext(
    caller: Caller,
    taskId: string,
    key: string,
    value: JsonValue | undefined,
  ): Promise<Record<string, JsonValue>> {
    return taskContext.setContext(this.#ctx, caller, taskId, key, value);
  }

  /** Adds a note to a task, written by the caller. */
  addNote(caller: Caller, taskId: string, text: string): Promise<TaskNote> {
    return taskContext.addNote(this.#ctx, caller, taskId, text);
  }

  /** Puts an agent to sleep: until woken or timed out, it may not enqueue tasks. */
  sleep(
    caller: Caller,
    agentId: string,
    options: { timeoutSeconds?: number | undefined; reason?: string | undefined },
  ): Promise<AgentRow> {
    return auth.sleep(this.#ctx, caller, agentId, options);
  }

  /** Ends an agent's sleep; says whether it was asleep. */
  wake(
    caller: Caller,
    agentId: string,
    reason: 'woken' | 'task_available' = 'woken',
  ): Promise<{ agent: AgentRow; wasAsleep: boolean }> {
    return auth.wake(this.#ctx, caller, agentId, reason);
  }

  // --- tasks -----------------------------------------------------------------------------------

  /**
   * Enqueues a task once `admitTask` lets it in (idle, admission, loop, budget, in that order),
   * with an idempotency key honoured per agent.
   *
   * @throws IdleEnforcementError, TaskAdmissionError, LoopDetectionError or BudgetExceededError
   * (each also escalated); InvalidInputError for invalid budget limits.
   */
  enqueue(caller: Caller, input: EnqueueInput): Promise<{ task: TaskRow; created: boolean }> {
    return enqueue(this.#ctx, caller, input);
  }

  /** @throws NotFoundError for an unknown task. */
  async getTask(id: string): Promise<TaskRow> {
    const task = await this.storage.getTask(id);
    if (task === undefined) throw new NotFoundError({ resource: 'task', id });
    return task;
  }

  listTasks(filter: Parameters<Storage['listTasks']>[0]): Promise<TaskRow[]> {
    return this.storage.listTasks(filter);
  }

  /**
   * Claims the next `todo` task (of the given types) for the calling agent, waiting up to
   * `waitSeconds` for one; or, with `taskId`, that task at once. A sleeping agent that gets work
   * is woken (`task_available`).
   *
   * @throws ConflictError when the named task is not `todo`; NotFoundError when it does not exist.
   */
  claim(
    caller: Caller,
    options: ClaimOptions & { taskId?: string | undefined },
  ): Promise<{ task: TaskRow; lease: Lease } | undefined> {
    return claims.claim(this.#ctx, caller, options);
  }

  /**
   * Claims up to `max` of the next `todo` tasks under one lease, waiting up to `waitSeconds` for
   * the first. An empty list when none came.
   */
  claimMany(
    caller: Caller,
    options: ClaimOptions & { max: number; exceptIds?: readonly string[] | undefined },
  ): Promise<Claimed> {
    return claims.claimMany(this.#ctx, caller, options);
  }

  /**
   * Moves a task along the lifecycle table. Agents move only tasks they hold the lease on; the
   * admin moves any. Leaving `in_progress` ends the lease; entering `blocked` escalates.
   *
   * @throws InvalidTransitionError (escalated) for a move the table refuses.
   */
  transition(caller: Caller, id: string, request: TransitionRequest): Promise<Moved> {
    return moves.transition(this.#ctx, caller, id, request);
  }

  /**
   * {@link transition}, then the caller's next task (`next`), in one storage transaction when the
   * caller names its lease. `next` in the result is `undefined` when none was claimed. Agents only.
   */
  transitionThenClaim(
    caller: Caller,
    id: string,
    request: TransitionRequest,
    next: NextClaim,
  ): Promise<Moved & { next: Claimed | undefined }> {
    return moves.transitionThenClaim(this.#ctx, caller, id, request, next);
  }

  /**
   * Several transitions, each checked and applied on its own as {@link transition} would; the
   * result says item by item what happened, and a refused one does not stop the rest.
   */
  transitionMany(
    caller: Caller,
    items: ReadonlyArray<TransitionRequest & { id: string }>,
  ): Promise<TransitionOutcome[]> {
    return moves.transitionMany(this.#ctx, caller, items);
  }

  /** {@link transitionMany}, then the caller's next tasks (`next`). Agents only. */
  transitionManyThenClaim(
    caller: Caller,
    items: ReadonlyArray<TransitionRequest & { id: string }>,
    next: NextClaim,
  ): Promise<{ outcomes: TransitionOutcome[]; next: Claimed | undefined }> {
    return moves.transitionManyThenClaim(this.#ctx, caller, items, next);
  }

  /**
   * Records spending on a task and every budget ancestor, then checks their budgets, the task's
   * first. Spending is counted even when it exceeds; the task is then blocked, and the violation
   * escalated.
   *
   * @throws BudgetExceededError naming the task whose budget was exceeded.
   */
  spend(
    caller: Caller,
    id: string,
    delta: SpendDelta,
  ): Promise<{ task: TaskRow; warnings: SpendWarning[] }> {
    return spend(this.#ctx, caller, id, delta);
  }

  /**
   * Checks, before spending (a model call, say), that the task and each ancestor still have
   * tokens and dollars left, on the caller's lease (the admin needs none): answers the least left
   * over the chain (`null`: unlimited). Tasks in a terminal state are skipped. Records no spending
   * and does not block the task; a refusal is escalated like every violation.
   *
   * @throws BudgetExceededError naming the first task with a token or cost budget used up
   * (`observed >= limit`); NotFoundError for an unknown task; ConflictError or ForbiddenError
   * for a lease the caller does not hold, as {@link spend} refuses it.
   */
  checkUsageLeft(
    caller: Caller,
    id: string,
    options: { leaseId?: string | undefined } = {},
  ): Promise<UsageLeft> {
    return checkUsageLeft(this.#ctx, caller, id, options);
  }

  // --- actions ---------------------------------------------------------------------------------

  /**
   * Records one tool call of the agent holding the task's lease and checks it against the
   * action-loop rules (`actionRules`), on the task's history as saved; concurrent calls on one
   * task apply one after the other.
   *
   * @throws LoopDetectionError (escalated) when the call reaches a rule's `blockAt`; nothing is
   * recorded. ForbiddenError for the admin or another agent; ConflictError for a lost lease.
   */
  recordAction(caller: Caller, taskId: string, input: actions.ActionInput): Promise<ActionCheck> {
    return actions.recordAction(this.#ctx, caller, taskId, input);
  }

  /**
   * Records the result of the task's newest call; answers the call it was attached to, with any
   * warnings it raised.
   *
   * @throws LoopDetectionError `no_progress` (escalated); InvalidInputError when there is no call
   * to attach it to, or the newest already has one.
   */
  recordActionResult(
    caller: Caller,
    taskId: string,
    input: actions.ActionResultInput,
  ): Promise<ActionResultRecord> {
    return actions.recordActionResult(this.#ctx, caller, taskId, input);
  }

  /** A task's action history (its lease holder, its agent or the admin); none once it finished. */
  getActions(caller: Caller, taskId: string): Promise<actions.ActionHistorySummary> {
    return actions.getActions(this.#ctx, caller, taskId);
  }

  // --- leases ----------------------------------------------------------------------------------

  /** Extends the caller's lease. */
  heartbeat(
    caller: Caller,
    id: string,
    options: { leaseId?: string | undefined; leaseSeconds?: number | undefined },
  ): Promise<{ task: TaskRow; lease: Lease }> {
    return leases.heartbeat(this.#ctx, caller, id, options);
  }

  /** Gives a leased task back to the queue (`todo`); the attempt stays counted. */
  release(caller: Caller, id: string, options: { leaseId?: string | undefined }): Promise<TaskRow> {
    return leases.release(this.#ctx, caller, id, options);
  }

  /**
   * Returns tasks whose holder stopped heartbeating to the queue, or, once they used up their
   * attempts, blocks and escalates them instead of letting them loop forever.
   */
  reapExpiredLeases(): Promise<number> {
    return leases.reapExpiredLeases(this.#ctx);
  }

  // --- escalations -----------------------------------------------------------------------------

  listEscalations(filter: {
    status?: EscalationStatus | undefined;
    afterSeq?: number | undefined;
    limit: number;
  }): Promise<EscalationRow[]> {
    return escalations.listEscalations(this.#ctx, filter);
  }

  /** Raises an escalation from outside the service's own rules (a stuck agent, a Paperclip violation). */
  escalate(caller: Caller, input: escalations.EscalationInput): Promise<EscalationRow> {
    return escalations.escalate(this.#ctx, caller, input);
  }

  /** Marks an open escalation seen (admin only). */
  acknowledge(caller: Caller, id: string): Promise<EscalationRow> {
    return escalations.acknowledge(this.#ctx, caller, id);
  }

  /** Resolves an escalation (admin only); with `requeue`, its blocked task goes back to `todo`. */
  resolve(
    caller: Caller,
    id: string,
    options: { resolution?: string | undefined; requeue?: boolean | undefined },
  ): Promise<EscalationRow> {
    return escalations.resolve(this.#ctx, caller, id, options);
  }

  /**
   * The Violation record the service escalated for a rule violation it threw (what an error
   * answer carries as `error.violation`), or `undefined` for any other error.
   */
  violationOf(error: unknown): Violation | undefined {
    return violationOf(this.#ctx, error);
  }

  // --- events and health -----------------------------------------------------------------------

  /**
   * Events after `afterSeq`, in order; a gap still committing is waited for (`eventGapMs`). With
   * `taskId`, only that task's events.
   */
  readEvents(afterSeq: number, limit: number, taskId?: string | undefined): Promise<EventRow[]> {
    return events.readEvents(this.#ctx, afterSeq, limit, taskId);
  }

  /** Waits until events after the reader's cursor may exist, for `ms` at most. */
  waitForEvents(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return events.waitForEvents(this.#ctx, ms, signal);
  }

  /** Whether the storage answers within `timeoutMs`. */
  async healthy(timeoutMs = 2000): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.storage.ping(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error('timeout')), timeoutMs);
        }),
      ]);
      return true;
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }
}
