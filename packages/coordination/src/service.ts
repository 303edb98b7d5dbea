import { createHash, randomBytes, randomUUID } from 'node:crypto';
import {
  type BudgetLimits,
  type BudgetLimitsInput,
  DEFAULT_LIMITS,
  evaluateBudget,
  resolveLimits,
} from '@exec-kernel/budget';
import {
  type BudgetType,
  type Clock,
  ConflictError,
  checkId,
  IdleEnforcementError,
  InvalidInputError,
  isTerminalState,
  type KernelError,
  NotFoundError,
  systemClock,
  type TaskState,
  toIsoTime,
  toViolation,
  type Violation,
} from '@exec-kernel/core';
import { ADMISSION_FIELDS, validateAdmission, validateTransition } from '@exec-kernel/lifecycle';
import { evaluateNewTask, type StoredWorkNode } from '@exec-kernel/loop';
import { isViolation, ServiceError } from './errors.js';
import { checkEnqueueInput, checkEscalationInput } from './input.js';
import { leaseGoneError } from './lease.js';
import type {
  AgentRow,
  EscalationRow,
  EscalationStatus,
  EventRow,
  JsonValue,
  NewEvent,
  TaskRow,
} from './model.js';
import type {
  ClaimEvent,
  FollowingClaim,
  Storage,
  TaskChanges,
  TaskUpdate,
} from './storage/storage.js';

/** Rules and limits of a service; every field has a default. */
export interface ServiceSettings {
  /** Deepest nesting along `parentId` (config `lifecycle.max_depth`). Default: `10`. */
  maxDepth?: number | undefined;
  /** Admission fields new tasks need (config `admission.required`). Default: all four. */
  admissionRequired?: readonly string[] | undefined;
  /** Budget limits of tasks enqueued without their own (config `budget.*`). */
  budgetDefaults?: BudgetLimitsInput | undefined;
  /** Budget warning threshold (config `budget.warn_at`). Default: `0.8`. */
  warnAt?: number | undefined;
  /** Sleep length when an agent sleeps without a timeout (config `idle.default_timeout_seconds`). Default: `300`. */
  idleTimeoutSeconds?: number | undefined;
  /** Lease length when a claim does not ask for one. Default: `60` s. */
  defaultLeaseSeconds?: number | undefined;
  /** Longest lease a claim or heartbeat may ask for. Default: `3600` s. */
  maxLeaseSeconds?: number | undefined;
  /** Claims allowed before a task whose leases keep expiring is escalated. Default: `3`. */
  maxAttempts?: number | undefined;
  /** Longest long-poll wait of a claim. Default: `60` s. */
  maxWaitSeconds?: number | undefined;
  /** How often expired leases are looked for. Default: `1000` ms. */
  reapIntervalMs?: number | undefined;
  /** How long the event reader waits for a gap in the log to fill (a write still committing). Default: `2000` ms. */
  eventGapMs?: number | undefined;
}

/** Who is calling: the admin, or an agent acting as itself. */
export type Caller = { kind: 'admin' } | { kind: 'agent'; agentId: string };

/** What an enqueue asks for. */
export interface EnqueueInput {
  id?: string | undefined;
  type: string;
  title?: string | undefined;
  priority?: number | undefined;
  parentId?: string | undefined;
  createdById?: string | undefined;
  admission?: Record<string, unknown> | undefined;
  payload?: JsonValue | undefined;
  budget?: BudgetLimitsInput | undefined;
  maxAttempts?: number | undefined;
  idempotencyKey?: string | undefined;
  /** Admin only: the agent the task is enqueued for. */
  agentId?: string | undefined;
  /** `todo` (claimable, the default) or `backlog`. */
  state?: 'todo' | 'backlog' | undefined;
}

/** A claimed task and its lease. */
export interface Lease {
  id: string;
  until: string;
}

/** What a claim asks for. */
export interface ClaimOptions {
  /** Only tasks of these types; any when absent or empty. */
  types?: string[] | undefined;
  leaseSeconds?: number | undefined;
  /** How long to wait for a task when none is waiting (capped by the service). */
  waitSeconds?: number | undefined;
  signal?: AbortSignal | undefined;
}

/** The claim asked for along with a transition (`next`): up to `max` tasks, never waiting. */
export type NextClaim = Omit<ClaimOptions, 'waitSeconds' | 'signal'> & { max: number };

/** Tasks claimed under one lease. */
export interface Claimed {
  tasks: TaskRow[];
  lease: Lease;
}

/** A move asked of {@link CoordinationService.transition}. */
export interface TransitionRequest {
  to: TaskState;
  /** The lease the caller holds; refused once another claim has taken the task. */
  leaseId?: string | undefined;
  comment?: string | undefined;
}

/** What became of one item of {@link CoordinationService.transitionMany}. */
export type TransitionOutcome =
  | { id: string; ok: true; task: TaskRow; from: TaskState; reason: string }
  | { id: string; ok: false; error: unknown };

/** What deciding a move reads of a task (`leaseUntil` null: not known, left to the write). */
type MoveSubject = Pick<
  TaskRow,
  'id' | 'state' | 'agentId' | 'leaseId' | 'leaseOwner' | 'leaseUntil'
>;

interface PreparedMove {
  to: TaskState;
  reason: string;
  escalates: boolean;
  update: TaskUpdate;
}

/** The counters the service keeps for /metrics. */
export interface ServiceCounters {
  enqueued: number;
  claims: number;
  claimMisses: number;
  transitions: Record<string, number>;
  violations: Record<string, number>;
  leasesExpired: number;
  escalations: number;
}

const MAX_LINEAGE_HOPS = 10_000;

/** sha256 of a token, as stored. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** A new random bearer token. */
export function newToken(prefix: string): string {
  return `${prefix}_${randomBytes(24).toString('base64url')}`;
}

function tooManyTokens(taskId: string): InvalidInputError {
  return new InvalidInputError({
    field: 'tokens',
    problem: `would take the token count of task ${taskId} past ${Number.MAX_SAFE_INTEGER}`,
  });
}

/** The changes that move a leased task to `state`, ending its lease. */
function endLease(state: TaskState, now: number): TaskChanges {
  return { state, leaseOwner: null, leaseId: null, leaseUntil: null, updatedAt: now };
}

/** What a holder's write expects of its lease: that it still runs (the admin's need not). */
function live(caller: Caller, now: number): { leaseLiveAt?: number } {
  return caller.kind === 'agent' ? { leaseLiveAt: now } : {};
}

function agentOf(caller: Caller): string {
  return caller.kind === 'admin' ? 'admin' : caller.agentId;
}

function requireAdmin(caller: Caller, action: string): void {
  if (caller.kind !== 'admin')
    throw new ServiceError(403, 'FORBIDDEN', `Only the admin may ${action}`);
}

/**
 * The coordination rules over a storage engine: admission, loop, idle, lifecycle and budget
 * checks on every call, leases that expire, escalation of every violation and every `blocked`
 * task, and the event log. The HTTP layer only authenticates and validates shapes; everything
 * else happens here, so every engine gets the same behaviour.
 */
export class CoordinationService {
  readonly storage: Storage;
  readonly counters: ServiceCounters = {
    enqueued: 0,
    claims: 0,
    claimMisses: 0,
    transitions: {},
    violations: {},
    leasesExpired: 0,
    escalations: 0,
  };
  readonly #clock: Clock;
  readonly #callers = new Map<string, { caller: Caller; until: number }>();
  readonly #adminTokenHash: string;
  readonly #maxDepth: number;
  readonly #admissionRequired: readonly string[];
  readonly #budgetDefaults: BudgetLimits;
  readonly #warnAt: number;
  readonly #idleTimeoutSeconds: number;
  readonly #defaultLeaseSeconds: number;
  readonly #maxLeaseSeconds: number;
  readonly #maxAttempts: number;
  readonly #maxWaitSeconds: number;
  readonly #reapIntervalMs: number;
  readonly #eventGapMs: number;
  #reaper: NodeJS.Timeout | undefined;
  #reaping = false;
  readonly #stopping = new AbortController();

  constructor(
    options: { storage: Storage; adminToken: string; clock?: Clock | undefined } & ServiceSettings,
  ) {
    this.storage = options.storage;
    this.#clock = options.clock ?? systemClock;
    this.#adminTokenHash = hashToken(options.adminToken);
    this.#maxDepth = options.maxDepth ?? 10;
    this.#admissionRequired = options.admissionRequired ?? ADMISSION_FIELDS;
    this.#budgetDefaults = resolveLimits(options.budgetDefaults, DEFAULT_LIMITS);
    this.#warnAt = options.warnAt ?? 0.8;
    this.#idleTimeoutSeconds = options.idleTimeoutSeconds ?? 300;
    this.#defaultLeaseSeconds = options.defaultLeaseSeconds ?? 60;
    this.#maxLeaseSeconds = options.maxLeaseSeconds ?? 3600;
    this.#maxAttempts = options.maxAttempts ?? 3;
    this.#maxWaitSeconds = options.maxWaitSeconds ?? 60;
    this.#reapIntervalMs = options.reapIntervalMs ?? 1000;
    this.#eventGapMs = options.eventGapMs ?? 2000;
  }

  /** The clock the service reads (`systemClock` unless one was given): views are built by it. */
  get clock(): Clock {
    return this.#clock;
  }

  /** Aborted when the service stops: long-polls and event streams end. */
  get stopping(): AbortSignal {
    return this.#stopping.signal;
  }

  /** Opens the storage and starts the lease reaper. */
  async start(): Promise<void> {
    await this.storage.open();
    this.#reaper = setInterval(
      () => void this.reapExpiredLeases().catch(() => undefined),
      this.#reapIntervalMs,
    );
    this.#reaper.unref();
  }

  /** Ends every long-poll claim and event stream now (they answer "nothing yet"). */
  abortWaits(): void {
    this.#stopping.abort();
  }

  /** Ends long-polls and streams, stops the reaper and closes the storage. Leases are kept. */
  async stop(): Promise<void> {
    this.abortWaits();
    if (this.#reaper !== undefined) clearInterval(this.#reaper);
    await this.storage.close();
  }

  // --- auth --------------------------------------------------------------------------------------

  /** The caller a bearer token stands for, or `undefined` for an unknown token. */
  async authenticate(token: string): Promise<Caller | undefined> {
    const now = this.#clock.now();
    const cached = this.#callers.get(token);
    if (cached !== undefined && cached.until > now) return cached.caller;
    const hash = hashToken(token);
    let caller: Caller | undefined;
    if (hash === this.#adminTokenHash) caller = { kind: 'admin' };
    else {
      const agent = await this.storage.findAgentByTokenHash(hash);
      if (agent !== undefined) caller = { kind: 'agent', agentId: agent.id };
    }
    if (caller === undefined) return undefined;
    // A token seen a moment ago is taken on trust for a second: an agent's every call would
    // otherwise hash it and read the database first. Rotation here drops it at once; another
    // instance's rotation reaches this one within the second.
    if (this.#callers.size >= 10_000) this.#callers.clear();
    this.#callers.set(token, { caller, until: now + 1_000 });
    return caller;
  }

  /** Registers an agent (or gives it a new token); the token is returned once and stored hashed. */
  async registerAgent(
    caller: Caller,
    agentId: string,
  ): Promise<{ agentId: string; token: string }> {
    requireAdmin(caller, 'register agents');
    checkId(agentId, 'agent id');
    for (const [known, entry] of this.#callers) {
      if (entry.caller.kind === 'agent' && entry.caller.agentId === agentId)
        this.#callers.delete(known);
    }
    const token = newToken('ekt');
    const existing = await this.storage.getAgent(agentId);
    const now = this.#clock.now();
    await this.storage.putAgent({
      id: agentId,
      tokenHash: hashToken(token),
      sleepUntil: existing?.sleepUntil ?? null,
      sleepReason: existing?.sleepReason ?? null,
      sleepSince: existing?.sleepSince ?? null,
      createdAt: existing?.createdAt ?? now,
    });
    await this.storage.appendEvent(
      this.#event('agent.registered', { agentId, data: { rotated: existing !== undefined } }),
    );
    return { agentId, token };
  }

  // --- tasks -------------------------------------------------------------------------------------

  /**
   * Enqueues a task after the idle, admission and loop checks (in that order), with an
   * idempotency key honoured per agent.
   *
   * @throws IdleEnforcementError, TaskAdmissionError or LoopDetectionError (each also escalated).
   */
  async enqueue(caller: Caller, input: EnqueueInput): Promise<{ task: TaskRow; created: boolean }> {
    checkEnqueueInput(input);
    if (
      caller.kind === 'agent' &&
      input.agentId !== undefined &&
      input.agentId !== caller.agentId
    ) {
      throw new ServiceError(
        403,
        'FORBIDDEN',
        `Agent ${caller.agentId} may not enqueue as ${input.agentId}`,
      );
    }
    const agentId = caller.kind === 'agent' ? caller.agentId : (input.agentId ?? 'admin');
    const id = input.id ?? `tsk_${randomUUID()}`;
    const now = this.#clock.now();
    return this.#escalating(agentId, id, async () => {
      const agent = await this.storage.getAgent(agentId);
      if (agent?.sleepUntil != null && now < agent.sleepUntil) {
        throw new IdleEnforcementError({
          agentId,
          until: toIsoTime(agent.sleepUntil),
          sleepReason: agent.sleepReason ?? undefined,
          taskId: id,
        });
      }
      validateAdmission(input.admission, { required: this.#admissionRequired, taskId: id });
      const depth = await this.#checkLoop(id, agentId, input);
      let limits: BudgetLimits;
      try {
        limits = resolveLimits(input.budget, this.#budgetDefaults);
      } catch (error) {
        throw new ServiceError(400, 'VALIDATION', (error as Error).message);
      }
      const admission =
        input.admission === undefined
          ? null
          : (Object.fromEntries(
              Object.entries(input.admission).filter(([, v]) => typeof v === 'string'),
            ) as Record<string, string>);
      const state = input.state ?? 'todo';
      const result = await this.storage.insertTask(
        {
          id,
          type: input.type,
          title: input.title ?? null,
          state,
          priority: input.priority ?? 0,
          agentId,
          parentId: input.parentId ?? null,
          createdById: input.createdById ?? null,
          depth,
          admission,
          payload: input.payload ?? null,
          idempotencyKey: input.idempotencyKey ?? null,
          attempts: 0,
          maxAttempts: input.maxAttempts ?? this.#maxAttempts,
          leaseOwner: null,
          leaseId: null,
          leaseUntil: null,
          limits,
          stepsTaken: 0,
          tokens: 0,
          costUsd: 0,
          warned: [],
          startedAt: null,
          createdAt: now,
          updatedAt: now,
        },
        this.#event('task.enqueued', {
          taskId: id,
          agentId,
          data: { type: input.type, state, depth },
        }),
      );
      if (result.created) this.counters.enqueued++;
      return result;
    });
  }

  async #checkLoop(id: string, agentId: string, input: EnqueueInput): Promise<number> {
    const links = [input.parentId, input.createdById].filter((x): x is string => x !== undefined);
    const rows = links.length === 0 ? [] : await this.storage.lineage(links);
    const nodes: StoredWorkNode[] = rows.map((row) => ({
      taskId: row.id,
      agentId: row.agentId,
      taskType: row.type,
      title: row.title ?? undefined,
      parentTaskId: row.parentId ?? undefined,
      createdByTaskId: row.createdById ?? undefined,
      depth: row.depth,
    }));
    const decision = evaluateNewTask(
      {
        taskId: id,
        agentId,
        taskType: input.type,
        title: input.title,
        parentTaskId: input.parentId,
        createdByTaskId: input.createdById,
      },
      nodes,
      { maxDepth: this.#maxDepth },
    );
    if (!decision.ok) throw decision.error;
    return decision.depth;
  }

  /**
   * Claims the next `todo` task (of the given types) for the calling agent, waiting up to
   * `waitSeconds` for one to arrive; or, with `taskId`, that task at once. A sleeping agent that
   * gets work is woken (`task_available`).
   *
   * @throws ConflictError when the named task is not `todo`; NotFoundError when it does not exist.
   */
  async claim(
    caller: Caller,
    options: ClaimOptions & { taskId?: string | undefined },
  ): Promise<{ task: TaskRow; lease: Lease } | undefined> {
    if (options.taskId === undefined) {
      const { tasks, lease } = await this.claimMany(caller, { ...options, max: 1 });
      const [task] = tasks;
      return task === undefined ? undefined : { task, lease };
    }
    const agentId = this.#claimant(caller);
    const now = this.#clock.now();
    const lease = this.#newLease(now, options.leaseSeconds);
    const task = await this.storage.claim(
      {
        agentId,
        types: null,
        taskId: options.taskId,
        leaseId: lease.id,
        leaseUntil: lease.untilMs,
        now,
        wake: this.#wokenByWorkEvent(agentId),
      },
      this.#claimedEvent(agentId, lease),
    );
    if (task === undefined) {
      const named = await this.storage.getTask(options.taskId);
      if (named === undefined) throw new NotFoundError({ resource: 'task', id: options.taskId });
      throw new ConflictError(
        { resource: `task ${options.taskId}`, holder: named.leaseOwner ?? undefined },
        {
          message: `Task ${options.taskId} is ${named.state}${named.leaseOwner === null ? '' : `, leased by ${named.leaseOwner}`}; only todo tasks can be claimed`,
        },
      );
    }
    this.counters.claims++;
    return { task, lease: { id: lease.id, until: toIsoTime(lease.untilMs) } };
  }

  /**
   * Claims up to `max` of the next `todo` tasks (highest priority, then oldest) of the asked
   * types, all under one lease, waiting up to `waitSeconds` for the first. An empty list when
   * none came.
   */
  async claimMany(
    caller: Caller,
    options: ClaimOptions & { max: number; exceptIds?: readonly string[] | undefined },
  ): Promise<{ tasks: TaskRow[]; lease: Lease }> {
    const agentId = this.#claimant(caller);
    const deadline =
      this.#clock.now() + Math.min(options.waitSeconds ?? 0, this.#maxWaitSeconds) * 1000;
    while (true) {
      const { claim, lease: view } = this.#newClaim(agentId, options);
      if (options.signal?.aborted) return { tasks: [], lease: view };
      const tasks = await this.storage.claimMany(claim.request, options.max, claim.event);
      if (tasks.length > 0 && options.signal?.aborted) {
        // The claimant went away (a worker stopping mid-poll) while the claim was written: nobody
        // will hear of these tasks, so they go back now instead of when the lease runs out.
        await this.#unclaim(agentId, tasks);
        return { tasks: [], lease: view };
      }
      if (tasks.length > 0) {
        this.counters.claims += tasks.length;
        return { tasks, lease: view };
      }
      const left = deadline - this.#clock.now();
      if (left <= 0 || options.signal?.aborted || this.#stopping.signal.aborted) {
        this.counters.claimMisses++;
        return { tasks, lease: view };
      }
      await this.#waitForTask(Math.min(left, 1000), options.signal);
    }
  }

  /**
   * Undoes a claim nobody received: each task back to `todo` as it was before (the attempt and,
   * on a first claim, the start of its duration budget not counted), with a `task.released` event.
   */
  async #unclaim(agentId: string, tasks: readonly TaskRow[]): Promise<void> {
    const now = this.#clock.now();
    await this.storage.updateTasks(
      tasks.map((task) => ({
        id: task.id,
        expect: { state: 'in_progress', leaseId: task.leaseId, leaseOwner: task.leaseOwner },
        changes: {
          ...endLease('todo', now),
          attempts: Math.max(0, task.attempts - 1),
          ...(task.attempts <= 1 ? { startedAt: null } : {}),
        },
        extras: {
          events: [
            this.#event('task.released', {
              taskId: task.id,
              agentId,
              data: { attempts: Math.max(0, task.attempts - 1), reason: 'claimant_gone' },
            }),
          ],
        },
      })),
    );
  }

  /**
   * The claim after a transition when the storage did not make it with the moves: up to `max` of
   * the next tasks, never waiting, none of `movedIds`. `undefined` when there were none, or when
   * the claim failed: the transition before it stands either way, and the worker's own claim,
   * which it makes next, reports the failure.
   */
  async #claimAfter(
    caller: Caller,
    next: NextClaim,
    movedIds: readonly string[],
  ): Promise<Claimed | undefined> {
    try {
      const claimed = await this.claimMany(caller, {
        ...next,
        waitSeconds: 0,
        exceptIds: movedIds,
      });
      return claimed.tasks.length === 0 ? undefined : claimed;
    } catch {
      return undefined;
    }
  }

  /**
   * A claim of up to `max` tasks under a new lease, as the storage takes it: on its own, or after
   * a transition, in that transaction.
   */
  #newClaim(
    agentId: string,
    next: NextClaim & { exceptIds?: readonly string[] | undefined },
  ): { claim: FollowingClaim; lease: Lease } {
    const now = this.#clock.now();
    const lease = this.#newLease(now, next.leaseSeconds);
    const types = next.types === undefined || next.types.length === 0 ? null : next.types;
    return {
      claim: {
        request: {
          agentId,
          types,
          leaseId: lease.id,
          leaseUntil: lease.untilMs,
          now,
          wake: this.#wokenByWorkEvent(agentId),
          exceptIds: next.exceptIds,
        },
        max: next.max,
        event: this.#claimedEvent(agentId, lease),
      },
      lease: { id: lease.id, until: toIsoTime(lease.untilMs) },
    };
  }

  /** What a following claim took, counted; `undefined` when it took nothing. */
  #tookNext(tasks: TaskRow[] | undefined, lease: Lease): Claimed | undefined {
    if (tasks === undefined || tasks.length === 0) return undefined;
    this.counters.claims += tasks.length;
    return { tasks, lease };
  }

  #claimant(caller: Caller): string {
    if (caller.kind !== 'agent')
      throw new ServiceError(403, 'FORBIDDEN', 'Only agents claim tasks, each as itself');
    return caller.agentId;
  }

  #newLease(now: number, leaseSeconds: number | undefined): { id: string; untilMs: number } {
    return { id: `lse_${randomUUID()}`, untilMs: now + this.#leaseMs(leaseSeconds) };
  }

  #claimedEvent(agentId: string, lease: { id: string; untilMs: number }): ClaimEvent {
    return {
      type: 'task.claimed',
      agentId,
      data: { leaseId: lease.id, leaseUntil: toIsoTime(lease.untilMs) },
      at: this.#clock.now(),
    };
  }

  /** The event of a sleeping claimant woken by the work it took. */
  #wokenByWorkEvent(agentId: string): NewEvent {
    return this.#event('agent.wake', { agentId, data: { reason: 'task_available' } });
  }

  /** Resolves when a task may have become claimable, after `ms` at the latest, or on abort. */
  #waitForTask(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        off();
        signal?.removeEventListener('abort', done);
        this.#stopping.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      const off = this.storage.onChange((s) => {
        if (s === 'task') done();
      });
      signal?.addEventListener('abort', done, { once: true });
      this.#stopping.signal.addEventListener('abort', done, { once: true });
    });
  }

  /**
   * Who may move a task: the lease holder while it is `in_progress`; while nobody holds it, the
   * agent that owns it (backlog to todo, say), except into `in_progress`, which takes a claim.
   */
  #mayMove(caller: Caller, task: MoveSubject, to: TaskState, leaseId: string | undefined): void {
    if (caller.kind === 'admin') return;
    if (task.state === 'in_progress') {
      this.#checkLease(caller, task, leaseId);
      return;
    }
    if (to === 'in_progress') {
      throw new ConflictError(
        { resource: `task ${task.id}` },
        {
          message: `Task ${task.id} starts with a claim (POST /v1/tasks/${task.id}/claim), not a transition`,
        },
      );
    }
    if (task.agentId !== caller.agentId) {
      throw new ServiceError(
        403,
        'FORBIDDEN',
        `Task ${task.id} belongs to ${task.agentId}, not ${caller.agentId}`,
        {
          owner: task.agentId,
        },
      );
    }
  }

  /** The lease a caller holds on a task, checked: the task exists, is leased, by this agent. */
  async #leased(caller: Caller, id: string, leaseId: string | undefined): Promise<TaskRow> {
    const task = await this.storage.getTask(id);
    if (task === undefined) throw new NotFoundError({ resource: 'task', id });
    return this.#checkLease(caller, task, leaseId);
  }

  /**
   * Checks the caller's lease on a task as read. A lease the caller names that no longer holds
   * the task (expired, taken by a later claim, ended by a move) is a `CONFLICT` saying so; a
   * task held by another agent, acted on without a lease or with that agent's own, is `FORBIDDEN`.
   */
  #checkLease<T extends MoveSubject>(caller: Caller, task: T, leaseId: string | undefined): T {
    const id = task.id;
    if (caller.kind === 'admin') return task;
    if (task.state !== 'in_progress' || task.leaseOwner === null)
      throw leaseGoneError(task, leaseId, leaseId === undefined ? 'not_leased' : 'moved');
    if (leaseId !== undefined && task.leaseId !== leaseId)
      throw leaseGoneError(task, leaseId, 'claimed_again');
    if (task.leaseOwner !== caller.agentId) {
      throw new ServiceError(
        403,
        'FORBIDDEN',
        `Task ${id} is leased by ${task.leaseOwner}, not ${caller.agentId}`,
        {
          holder: task.leaseOwner,
        },
      );
    }
    if (task.leaseUntil !== null && task.leaseUntil < this.#clock.now())
      throw leaseGoneError(task, leaseId, 'expired');
    return task;
  }

  /**
   * The refusal of a write on a lease whose compare-and-set did not apply: the task is read again
   * and the lease checked on what is stored now, so the caller hears why (expired, claimed again,
   * moved) or that the task is another agent's.
   */
  async #leaseGoneNow(caller: Caller, id: string, leaseId: string | undefined): Promise<Error> {
    const task = await this.storage.getTask(id);
    if (task === undefined) return new NotFoundError({ resource: 'task', id });
    try {
      this.#checkLease(caller, task, leaseId);
    } catch (error) {
      return error as Error;
    }
    return new ConflictError(
      { resource: `task ${id}` },
      { message: `The lease on task ${id} changed while the request ran` },
    );
  }

  /** {@link #leaseGoneNow} for a move from `from`; a task nobody held changed state meanwhile. */
  async #moveMissed(
    caller: Caller,
    id: string,
    from: TaskState,
    leaseId: string | undefined,
  ): Promise<Error> {
    if (from === 'in_progress') return this.#leaseGoneNow(caller, id, leaseId);
    const now = await this.storage.getTask(id);
    return new ConflictError(
      { resource: `task ${id}` },
      {
        message: `Task ${id} changed while the request ran: it is ${now?.state ?? 'gone'}, not ${from}`,
      },
    );
  }

  /** Extends the caller's lease. */
  async heartbeat(
    caller: Caller,
    id: string,
    options: { leaseId?: string | undefined; leaseSeconds?: number | undefined },
  ): Promise<{ task: TaskRow; lease: Lease }> {
    const task = await this.#leased(caller, id, options.leaseId);
    const now = this.#clock.now();
    const until = now + this.#leaseMs(options.leaseSeconds);
    const updated = await this.storage.updateTask(
      id,
      {
        state: 'in_progress',
        leaseId: task.leaseId,
        leaseOwner: task.leaseOwner,
        ...live(caller, now),
      },
      { leaseUntil: until, updatedAt: now },
      { events: [] },
    );
    if (updated === undefined) throw await this.#leaseGoneNow(caller, id, options.leaseId);
    return { task: updated, lease: { id: updated.leaseId as string, until: toIsoTime(until) } };
  }

  /**
   * Moves a task along the lifecycle table. Agents move only tasks they hold the lease on; the
   * admin moves any. Leaving `in_progress` ends the lease; entering `blocked` escalates.
   *
   * @throws InvalidTransitionError (escalated) for a move the table refuses.
   */
  async transition(
    caller: Caller,
    id: string,
    options: TransitionRequest,
  ): Promise<{ task: TaskRow; from: TaskState; reason: string }> {
    const held = this.#heldMove(caller, id, options);
    if (held !== undefined) {
      const updated = await this.storage.updateTask(
        id,
        held.update.expect,
        held.update.changes,
        held.update.extras,
      );
      if (updated !== undefined) {
        this.#countMove(held);
        return { task: updated, from: 'in_progress', reason: held.reason };
      }
    }
    return await this.#transitionAsRead(caller, id, options, held !== undefined);
  }

  /**
   * {@link transition}, then the caller's next task (`next`): on a lease the caller names, both in
   * one storage transaction, and the claim only if the move applied. `next` in the result is
   * `undefined` when no task was claimed. Only agents may ask.
   */
  async transitionThenClaim(
    caller: Caller,
    id: string,
    options: TransitionRequest,
    next: NextClaim,
  ): Promise<{ task: TaskRow; from: TaskState; reason: string; next: Claimed | undefined }> {
    const agentId = this.#claimant(caller);
    const held = this.#heldMove(caller, id, options);
    if (held !== undefined) {
      const { claim, lease } = this.#newClaim(agentId, next);
      const { tasks, claimed } = await this.storage.updateThenClaim([held.update], claim);
      const [updated] = tasks;
      if (updated !== undefined) {
        this.#countMove(held);
        const took = this.#tookNext(claimed, lease);
        return { task: updated, from: 'in_progress', reason: held.reason, next: took };
      }
    }
    const moved = await this.#transitionAsRead(caller, id, options, held !== undefined);
    return { ...moved, next: await this.#claimAfter(caller, next, [id]) };
  }

  /**
   * {@link transition} decided on the task as read. `named` says the caller named a lease that
   * did not hold.
   */
  async #transitionAsRead(
    caller: Caller,
    id: string,
    options: TransitionRequest,
    named: boolean,
  ): Promise<{ task: TaskRow; from: TaskState; reason: string }> {
    const task = await this.storage.getTask(id);
    if (task === undefined) throw new NotFoundError({ resource: 'task', id });
    // The lease it names was live when taken; a task no longer leased at all was reaped (or moved
    // by the admin) since: that is a lost lease, not a move the table refuses.
    if (named && task.state !== 'in_progress') throw leaseGoneError(task, options.leaseId, 'moved');
    const agentId = agentOf(caller);
    return this.#escalating(agentId, id, async () => {
      const move = this.#prepareMove(caller, task, options);
      const updated = await this.storage.updateTask(
        id,
        move.update.expect,
        move.update.changes,
        move.update.extras,
      );
      if (updated === undefined)
        throw await this.#moveMissed(caller, id, task.state, options.leaseId);
      this.#countMove(move);
      return { task: updated, from: task.state, reason: move.reason };
    });
  }

  /**
   * Several transitions (a worker finishing a batch): those on leases the caller names in one
   * storage transaction, the rest, read first, in another. Each is checked and applied on its
   * own, exactly as {@link transition} would: the result says, item by item, what happened, and a
   * refused one (escalated when it is a violation) does not stop the rest.
   */
  async transitionMany(
    caller: Caller,
    items: ReadonlyArray<TransitionRequest & { id: string }>,
  ): Promise<TransitionOutcome[]> {
    return (await this.#transitionMany(caller, items, undefined)).outcomes;
  }

  /**
   * {@link transitionMany}, then the caller's next tasks (`next`), claimed in the transaction of
   * the moves on named leases when there are any, after all of them otherwise. `next` in the
   * result is `undefined` when no task was claimed. Only agents may ask.
   */
  async transitionManyThenClaim(
    caller: Caller,
    items: ReadonlyArray<TransitionRequest & { id: string }>,
    next: NextClaim,
  ): Promise<{ outcomes: TransitionOutcome[]; next: Claimed | undefined }> {
    const agentId = this.#claimant(caller);
    // Every task the request names, not only those moved with the claim: the rest move after it.
    const moved = items.map((item) => item.id);
    const following = this.#newClaim(agentId, { ...next, exceptIds: moved });
    const done = await this.#transitionMany(caller, items, following);
    // A claim made with the moves that took nothing found the queue empty: no second try.
    if (done.tried) return { outcomes: done.outcomes, next: done.claimed };
    return { outcomes: done.outcomes, next: await this.#claimAfter(caller, next, moved) };
  }

  /**
   * The moves of {@link transitionMany}, with `following` claimed in the transaction of the moves
   * on named leases. `tried` says that claim was made (some of those moves applied); `claimed` is
   * what it took, `undefined` for nothing.
   */
  async #transitionMany(
    caller: Caller,
    items: ReadonlyArray<TransitionRequest & { id: string }>,
    following: { claim: FollowingClaim; lease: Lease } | undefined,
  ): Promise<{ outcomes: TransitionOutcome[]; claimed: Claimed | undefined; tried: boolean }> {
    const outcomes: Array<TransitionOutcome | undefined> = items.map(() => undefined);
    let claimed: Claimed | undefined;
    let tried = false;
    // Moves on held leases first, without a read; any that does not apply is decided again below.
    const held: Array<{ index: number; move: PreparedMove }> = [];
    const unread: number[] = [];
    for (const [index, item] of items.entries()) {
      const move = this.#heldMove(caller, item.id, item);
      if (move === undefined) unread.push(index);
      else held.push({ index, move });
    }
    if (held.length > 0) {
      const updates = held.map((h) => h.move.update);
      let updated: Array<TaskRow | undefined>;
      if (following === undefined) {
        updated = await this.storage.updateTasks(updates);
      } else {
        const result = await this.storage.updateThenClaim(updates, following.claim);
        updated = result.tasks;
        tried = result.claimed !== undefined;
        claimed = this.#tookNext(result.claimed, following.lease);
      }
      for (const [i, { index, move }] of held.entries()) {
        const task = updated[i];
        if (task === undefined) {
          unread.push(index);
          continue;
        }
        this.#countMove(move);
        outcomes[index] = { id: task.id, ok: true, task, from: 'in_progress', reason: move.reason };
      }
    }
    if (unread.length > 0) {
      const named = new Set(held.map((h) => h.index));
      await this.#transitionRead(
        caller,
        items,
        unread.sort((a, b) => a - b),
        named,
        outcomes,
      );
    }
    return { outcomes: outcomes as TransitionOutcome[], claimed, tried };
  }

  /**
   * {@link transitionMany}'s items at `indexes`, each decided on the task as read; `named` are
   * those whose named lease did not hold (see {@link transition}).
   */
  async #transitionRead(
    caller: Caller,
    items: ReadonlyArray<TransitionRequest & { id: string }>,
    indexes: readonly number[],
    named: ReadonlySet<number>,
    outcomes: Array<TransitionOutcome | undefined>,
  ): Promise<void> {
    const agentId = agentOf(caller);
    const found = await this.storage.getTasks(
      indexes.map((index) => (items[index] as { id: string }).id),
    );
    const byId = new Map(found.map((task) => [task.id, task]));
    const moves: Array<{ index: number; move: PreparedMove; from: TaskState }> = [];
    for (const index of indexes) {
      const item = items[index] as TransitionRequest & { id: string };
      const task = byId.get(item.id);
      try {
        if (task === undefined) throw new NotFoundError({ resource: 'task', id: item.id });
        if (named.has(index) && task.state !== 'in_progress')
          throw leaseGoneError(task, item.leaseId, 'moved');
        moves.push({ index, move: this.#prepareMove(caller, task, item), from: task.state });
      } catch (error) {
        if (isViolation(error)) await this.#recordViolation(error, agentId, item.id);
        outcomes[index] = { id: item.id, ok: false, error };
      }
    }
    const updated = await this.storage.updateTasks(moves.map((m) => m.move.update));
    for (const [i, { index, move, from }] of moves.entries()) {
      const task = updated[i];
      if (task === undefined) {
        const item = items[index] as TransitionRequest & { id: string };
        const error = await this.#moveMissed(caller, item.id, from, item.leaseId);
        outcomes[index] = { id: item.id, ok: false, error };
        continue;
      }
      this.#countMove(move);
      outcomes[index] = { id: task.id, ok: true, task, from, reason: move.reason };
    }
  }

  /**
   * The move of a worker finishing what it holds, built without reading the task: an agent that
   * names its lease is taken at its word (the task is `in_progress` under that lease, held by it).
   * The compare-and-set checks exactly what the move was decided on (state, lease id and holder),
   * so when it applies, the outcome is the one a read first would have given; when it does not,
   * or the move is not one the table allows from `in_progress`, the caller reads and decides
   * again, so refusals always come from the task as stored. `undefined` when there is no word.
   */
  #heldMove(caller: Caller, id: string, options: TransitionRequest): PreparedMove | undefined {
    if (caller.kind !== 'agent' || options.leaseId === undefined) return undefined;
    const claimed = {
      id,
      state: 'in_progress',
      agentId: caller.agentId,
      leaseId: options.leaseId,
      leaseOwner: caller.agentId,
      leaseUntil: null,
    } as const;
    try {
      return this.#prepareMove(caller, claimed, options);
    } catch {
      return undefined;
    }
  }

  /**
   * Checks a move (the table first: a move it forbids is refused as such, whoever asks; then who
   * may make it) and builds its compare-and-set.
   */
  #prepareMove(caller: Caller, task: MoveSubject, options: TransitionRequest): PreparedMove {
    const id = task.id;
    const agentId = agentOf(caller);
    const reason = validateTransition(task.state, options.to, id);
    this.#mayMove(caller, task, options.to, options.leaseId);
    const now = this.#clock.now();
    const changes: TaskChanges =
      task.state === 'in_progress'
        ? endLease(options.to, now)
        : { state: options.to, updatedAt: now };
    if (options.to === 'todo') changes.attempts = 0;
    const events: NewEvent[] = [
      this.#event('task.transitioned', {
        taskId: id,
        agentId,
        data: { from: task.state, to: options.to, reason, comment: options.comment ?? null },
      }),
    ];
    const escalation =
      options.to === 'blocked'
        ? this.#escalationRow('blocked', id, agentId, null, options.comment ?? null)
        : undefined;
    if (escalation !== undefined) events.push(this.#escalationEvent(escalation));
    return {
      to: options.to,
      reason,
      escalates: escalation !== undefined,
      update: {
        id,
        expect: {
          state: task.state,
          leaseId: task.leaseId,
          leaseOwner: task.leaseOwner,
          ...(task.state === 'in_progress' ? live(caller, now) : {}),
        },
        changes,
        extras: { events, escalation },
      },
    };
  }

  #countMove(move: PreparedMove): void {
    this.counters.transitions[move.to] = (this.counters.transitions[move.to] ?? 0) + 1;
    if (move.escalates) this.counters.escalations++;
  }

  /** Gives a leased task back to the queue (`todo`); the attempt stays counted. */
  async release(
    caller: Caller,
    id: string,
    options: { leaseId?: string | undefined },
  ): Promise<TaskRow> {
    const task = await this.#leased(caller, id, options.leaseId);
    if (task.state !== 'in_progress')
      throw leaseGoneError(
        task,
        options.leaseId,
        options.leaseId === undefined ? 'not_leased' : 'moved',
      );
    const now = this.#clock.now();
    const updated = await this.storage.updateTask(
      id,
      { state: 'in_progress', leaseId: task.leaseId, ...live(caller, now) },
      endLease('todo', now),
      {
        events: [
          this.#event('task.released', {
            taskId: id,
            agentId: agentOf(caller),
            data: { attempts: task.attempts },
          }),
        ],
      },
    );
    if (updated === undefined) throw await this.#leaseGoneNow(caller, id, options.leaseId);
    return updated;
  }

  /**
   * Records spending on a task and every budget ancestor (along `parentId`), then checks their
   * budgets, the task's first. Spending is counted even when it exceeds; the task is then
   * blocked, and the violation escalated.
   *
   * @throws BudgetExceededError naming the task whose budget was exceeded.
   */
  async spend(
    caller: Caller,
    id: string,
    delta: {
      steps?: number | undefined;
      tokens?: number | undefined;
      costUsd?: number | undefined;
      leaseId?: string | undefined;
    },
  ): Promise<{
    task: TaskRow;
    warnings: Array<{ taskId: string; budgetType: BudgetType; fraction: number }>;
  }> {
    const task = await this.#leased(caller, id, delta.leaseId);
    const agentId = agentOf(caller);
    const lineage = await this.storage.lineage([id]);
    const byId = new Map(lineage.map((t) => [t.id, t]));
    const chain: string[] = [];
    const tokens = delta.tokens ?? 0;
    for (let t: TaskRow | undefined = task; t !== undefined && chain.length < MAX_LINEAGE_HOPS; ) {
      // Past 2^53 a count is no longer exact (and PostgreSQL's bigint ends soon after).
      if (t.tokens + tokens > Number.MAX_SAFE_INTEGER) throw tooManyTokens(t.id);
      chain.push(t.id);
      t = t.parentId === null ? undefined : byId.get(t.parentId);
    }
    const now = this.#clock.now();
    const steps = delta.steps ?? 0;
    const costUsd = delta.costUsd ?? 0;
    const kind = steps > 0 ? 'task.step' : 'task.usage';
    const rows = await this.storage.addSpending(
      chain,
      { steps, tokens, costUsd },
      now,
      this.#event(kind, { taskId: id, agentId, data: { steps, tokens, costUsd } }),
    );
    const warnings: Array<{ taskId: string; budgetType: BudgetType; fraction: number }> = [];
    return this.#escalating(agentId, id, async () => {
      for (const row of rows) {
        if (isTerminalState(row.state)) continue;
        const usage = {
          stepsTaken: row.stepsTaken,
          elapsedSeconds: row.startedAt === null ? 0 : (now - row.startedAt) / 1000,
          tokens: row.tokens,
          costUsd: row.costUsd,
        };
        await this.#warn(row, usage, warnings);
        const error = evaluateBudget(row.id, usage, row.limits);
        if (error !== undefined) {
          await this.#blockOverrun(id, agentId, error.message);
          throw error;
        }
      }
      const updated = (await this.storage.getTask(id)) as TaskRow;
      return { task: updated, warnings };
    });
  }

  async #warn(
    row: TaskRow,
    usage: { stepsTaken: number; elapsedSeconds: number; tokens: number; costUsd: number },
    warnings: Array<{ taskId: string; budgetType: BudgetType; fraction: number }>,
  ): Promise<void> {
    const readings: Array<[BudgetType, number, number | null]> = [
      ['steps', usage.stepsTaken, row.limits.maxSteps],
      ['duration', usage.elapsedSeconds, row.limits.maxDurationSeconds],
      ['tokens', usage.tokens, row.limits.maxTokens],
      ['cost', usage.costUsd, row.limits.maxCostUsd],
    ];
    const fresh = readings.filter(
      ([type, observed, limit]) =>
        limit !== null && !row.warned.includes(type) && observed / limit >= this.#warnAt,
    );
    if (fresh.length === 0) return;
    const warned = [...row.warned, ...fresh.map(([type]) => type)];
    const events = fresh.map(([budgetType, observed, limit]) =>
      this.#event('budget.warning', {
        taskId: row.id,
        data: { budgetType, observed, limit, fraction: observed / (limit as number) },
      }),
    );
    // Only the first writer records the warning; a concurrent one finds `warned` changed.
    const updated = await this.storage.updateTask(
      row.id,
      { state: row.state },
      { warned },
      { events },
    );
    if (updated !== undefined) {
      for (const [budgetType, observed, limit] of fresh) {
        warnings.push({ taskId: row.id, budgetType, fraction: observed / (limit as number) });
      }
    }
  }

  /** Blocks the task whose spending ran over (if it is still leased), so work stops. */
  async #blockOverrun(id: string, agentId: string, message: string): Promise<void> {
    const task = await this.storage.getTask(id);
    if (task === undefined || task.state !== 'in_progress') return;
    await this.storage.updateTask(
      id,
      { state: 'in_progress', leaseId: task.leaseId },
      endLease('blocked', this.#clock.now()),
      {
        events: [
          this.#event('task.transitioned', {
            taskId: id,
            agentId,
            data: { from: 'in_progress', to: 'blocked', reason: 'Work blocked', comment: message },
          }),
        ],
      },
    );
  }

  async getTask(id: string): Promise<TaskRow> {
    const task = await this.storage.getTask(id);
    if (task === undefined) throw new NotFoundError({ resource: 'task', id });
    return task;
  }

  async listTasks(filter: Parameters<Storage['listTasks']>[0]): Promise<TaskRow[]> {
    return this.storage.listTasks(filter);
  }

  // --- leases --------------------------------------------------------------------------------

  /**
   * Returns tasks whose holder stopped heartbeating to the queue, or, once they used up their
   * attempts, blocks and escalates them instead of letting them loop forever.
   */
  async reapExpiredLeases(): Promise<number> {
    if (this.#reaping) return 0;
    this.#reaping = true;
    try {
      const now = this.#clock.now();
      const expired = await this.storage.listExpiredLeases(now, 500);
      let done = 0;
      for (const task of expired) {
        const requeued = task.attempts < task.maxAttempts;
        const events = [
          this.#event('task.lease_expired', {
            taskId: task.id,
            agentId: task.leaseOwner,
            data: {
              attempts: task.attempts,
              maxAttempts: task.maxAttempts,
              leaseId: task.leaseId,
              requeued,
            },
          }),
        ];
        const escalation = requeued
          ? undefined
          : this.#escalationRow(
              'attempts_exhausted',
              task.id,
              task.leaseOwner,
              null,
              `Task ${task.id} lost its lease ${task.attempts} times (max ${task.maxAttempts})`,
            );
        if (escalation !== undefined) events.push(this.#escalationEvent(escalation));
        const updated = await this.storage.updateTask(
          task.id,
          // Not a lease its holder renewed since the list was read.
          { state: 'in_progress', leaseId: task.leaseId, leaseEndedBefore: now },
          endLease(requeued ? 'todo' : 'blocked', now),
          { events, escalation },
        );
        if (updated === undefined) continue;
        done++;
        if (escalation !== undefined) this.counters.escalations++;
      }
      this.counters.leasesExpired += done;
      return done;
    } finally {
      this.#reaping = false;
    }
  }

  // --- agents ----------------------------------------------------------------------------------

  async getAgent(caller: Caller, agentId: string): Promise<AgentRow> {
    if (caller.kind === 'agent' && caller.agentId !== agentId) {
      throw new ServiceError(
        403,
        'FORBIDDEN',
        `Agent ${caller.agentId} may not read agent ${agentId}`,
      );
    }
    const agent = await this.storage.getAgent(agentId);
    if (agent === undefined) throw new NotFoundError({ resource: 'agent', id: agentId });
    return agent;
  }

  /** Puts an agent to sleep: until woken or timed out, it may not enqueue tasks. */
  async sleep(
    caller: Caller,
    agentId: string,
    options: { timeoutSeconds?: number | undefined; reason?: string | undefined },
  ): Promise<AgentRow> {
    await this.getAgent(caller, agentId);
    const now = this.#clock.now();
    const until = now + (options.timeoutSeconds ?? this.#idleTimeoutSeconds) * 1000;
    const reason = options.reason ?? 'no_tasks';
    const agent = await this.storage.updateAgent(
      agentId,
      { sleepUntil: until, sleepReason: reason, sleepSince: now },
      this.#event('agent.sleep', { agentId, data: { reason, until: toIsoTime(until) } }),
    );
    return agent as AgentRow;
  }

  /** Ends an agent's sleep; says whether it was asleep. */
  async wake(
    caller: Caller,
    agentId: string,
    reason: 'woken' | 'task_available' = 'woken',
  ): Promise<{ agent: AgentRow; wasAsleep: boolean }> {
    const before = await this.getAgent(caller, agentId);
    const wasAsleep = before.sleepUntil !== null && this.#clock.now() < before.sleepUntil;
    const agent = await this.storage.updateAgent(
      agentId,
      { sleepUntil: null, sleepReason: null, sleepSince: null },
      wasAsleep ? this.#event('agent.wake', { agentId, data: { reason } }) : undefined,
    );
    return { agent: agent as AgentRow, wasAsleep };
  }

  // --- escalations -----------------------------------------------------------------------------

  async listEscalations(filter: {
    status?: EscalationStatus | undefined;
    afterSeq?: number | undefined;
    limit: number;
  }): Promise<EscalationRow[]> {
    return this.storage.listEscalations(filter);
  }

  /** Raises an escalation from outside the service's own rules (a stuck agent, a Paperclip violation). */
  async escalate(
    caller: Caller,
    input: {
      kind: 'blocked' | 'violation';
      taskId?: string | undefined;
      comment?: string | undefined;
      violation?: Violation | undefined;
    },
  ): Promise<EscalationRow> {
    checkEscalationInput(input);
    // An agent speaks only for itself: the violation it reports is its own.
    const named = input.violation?.agentId;
    if (caller.kind === 'agent' && named !== undefined && named !== caller.agentId) {
      throw new ServiceError(
        403,
        'FORBIDDEN',
        `Agent ${caller.agentId} may not escalate a violation of agent ${named}`,
      );
    }
    const row = this.#escalationRow(
      input.kind,
      input.taskId ?? null,
      agentOf(caller),
      input.violation ?? null,
      input.comment ?? null,
    );
    const stored = await this.storage.insertEscalation(row, this.#escalationEvent(row));
    this.counters.escalations++;
    return stored;
  }

  async acknowledge(caller: Caller, id: string): Promise<EscalationRow> {
    requireAdmin(caller, 'acknowledge escalations');
    const now = this.#clock.now();
    const row = await this.storage.updateEscalation(
      id,
      ['open'],
      { status: 'acknowledged', acknowledgedAt: now, acknowledgedBy: 'admin' },
      this.#event('escalation.acknowledged', { data: { escalationId: id } }),
    );
    return row ?? this.#escalationConflict(id, 'open');
  }

  /**
   * Resolves an escalation; with `requeue`, its blocked task goes back to `todo` with its attempts
   * reset ("Task unblocked").
   */
  async resolve(
    caller: Caller,
    id: string,
    options: { resolution?: string | undefined; requeue?: boolean | undefined },
  ): Promise<EscalationRow> {
    requireAdmin(caller, 'resolve escalations');
    const now = this.#clock.now();
    const row = await this.storage.updateEscalation(
      id,
      ['open', 'acknowledged'],
      {
        status: 'resolved',
        resolvedAt: now,
        resolvedBy: 'admin',
        resolution: options.resolution ?? null,
      },
      this.#event('escalation.resolved', {
        data: { escalationId: id, resolution: options.resolution ?? null },
      }),
    );
    if (row === undefined) return this.#escalationConflict(id, 'open or acknowledged');
    if (options.requeue === true && row.taskId !== null) {
      const task = await this.storage.getTask(row.taskId);
      if (task?.state === 'blocked')
        await this.transition(caller, task.id, { to: 'todo', comment: options.resolution });
    }
    return row;
  }

  async #escalationConflict(id: string, expected: string): Promise<never> {
    const existing = await this.storage.getEscalation(id);
    if (existing === undefined) throw new NotFoundError({ resource: 'escalation', id });
    throw new ConflictError(
      { resource: `escalation ${id}` },
      { message: `Escalation ${id} is ${existing.status}, not ${expected}` },
    );
  }

  #escalationRow(
    kind: EscalationRow['kind'],
    taskId: string | null,
    agentId: string | null,
    violation: Violation | null,
    comment: string | null,
  ): Omit<EscalationRow, 'seq'> {
    return {
      id: `esc_${randomUUID()}`,
      kind,
      status: 'open',
      taskId,
      agentId,
      violation,
      comment,
      createdAt: this.#clock.now(),
      acknowledgedAt: null,
      acknowledgedBy: null,
      resolvedAt: null,
      resolvedBy: null,
      resolution: null,
    };
  }

  #escalationEvent(row: Omit<EscalationRow, 'seq'>): NewEvent {
    return this.#event('escalation.created', {
      taskId: row.taskId,
      agentId: row.agentId,
      data: {
        escalationId: row.id,
        kind: row.kind,
        violation: (row.violation as unknown as JsonValue) ?? null,
      },
    });
  }

  /**
   * Runs `work`; a rule violation it throws is recorded (event + escalation carrying the
   * Violation) before it is rethrown.
   */
  async #escalating<T>(agentId: string, taskId: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (isViolation(error)) await this.#recordViolation(error, agentId, taskId);
      throw error;
    }
  }

  async #recordViolation(error: KernelError, agentId: string, taskId: string): Promise<void> {
    const violation = toViolation(error, this.#clock.now());
    violation.agentId ??= agentId;
    violation.taskId ??= taskId;
    this.counters.violations[violation.kind] = (this.counters.violations[violation.kind] ?? 0) + 1;
    const row = this.#escalationRow(
      'violation',
      violation.taskId ?? null,
      agentId,
      violation,
      null,
    );
    await this.storage.insertEscalation(row, this.#escalationEvent(row));
    this.counters.escalations++;
    (error as KernelError & { violation?: Violation }).violation = violation;
  }

  // --- events ----------------------------------------------------------------------------------

  /**
   * Events after `afterSeq`, in order. A gap in the log (a write on another instance still
   * committing) is waited for up to `eventGapMs` before it is skipped, so a reader following the
   * cursor misses nothing that commits late.
   */
  async readEvents(afterSeq: number, limit: number): Promise<EventRow[]> {
    const rows = await this.storage.readEvents(afterSeq, limit);
    const out: EventRow[] = [];
    let last = afterSeq;
    for (const row of rows) {
      if (row.seq !== last + 1 && this.#clock.now() - row.at < this.#eventGapMs) break;
      out.push(row);
      last = row.seq;
    }
    return out;
  }

  /** Waits until events after `afterSeq` may exist, for `ms` at most. */
  waitForEvents(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        off();
        signal?.removeEventListener('abort', done);
        this.#stopping.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      const off = this.storage.onChange(() => done());
      signal?.addEventListener('abort', done, { once: true });
      this.#stopping.signal.addEventListener('abort', done, { once: true });
    });
  }

  // --- health ----------------------------------------------------------------------------------

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

  #leaseMs(seconds: number | undefined): number {
    const s = seconds ?? this.#defaultLeaseSeconds;
    if (!(s > 0 && s <= this.#maxLeaseSeconds)) {
      throw new ServiceError(
        400,
        'VALIDATION',
        `leaseSeconds must be in (0, ${this.#maxLeaseSeconds}], got ${s}`,
      );
    }
    return s * 1000;
  }

  #event(type: string, fields: Partial<Omit<NewEvent, 'type'>> = {}): NewEvent {
    return { type, taskId: null, agentId: null, data: {}, at: this.#clock.now(), ...fields };
  }
}
