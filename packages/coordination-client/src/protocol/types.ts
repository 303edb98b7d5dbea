// The wire contract as TypeScript types, without zod: the client imports these (type-only) and
// `schemas.ts` checks each of its schemas against them, so the two cannot drift apart.
import type { BudgetLimits } from '@exec-kernel/budget';
import type { ActionCallRef, ActionLoopType, TaskState, Violation } from '@exec-kernel/core';

/**
 * A task as the API shows it: times as ISO-8601, `null` where unset; the lease id (the holder's
 * fencing token) and the fired-warning bookkeeping are not shown.
 */
export interface TaskView {
  id: string;
  /** Insertion order: the claim tie-breaker and the list cursor. */
  seq: number;
  type: string;
  title: string | null;
  state: TaskState;
  priority: number;
  /** The agent that enqueued the task. */
  agentId: string;
  parentId: string | null;
  createdById: string | null;
  depth: number;
  admission: Record<string, string> | null;
  payload: unknown;
  idempotencyKey: string | null;
  attempts: number;
  maxAttempts: number;
  leaseOwner: string | null;
  leaseUntil: string | null;
  limits: BudgetLimits;
  stepsTaken: number;
  tokens: number;
  costUsd: number;
  startedAt: string | null;
  createdAt: string;
  updatedAt: string;
}

/**
 * Core's `Violation` as it travels: the same fields, an optional one possibly `undefined` (a
 * `Violation` is one; what the client rebuilds from JSON is typed as this).
 */
export type ViolationRecord = {
  [K in keyof Violation]: Partial<Pick<Violation, K>> extends Pick<Violation, K>
    ? Violation[K] | undefined
    : Violation[K];
};

/** A lease on claimed tasks: its id (pass it as `leaseId`) and when it ends (ISO-8601). */
export interface Lease {
  id: string;
  until: string;
}

/** A claimed task and its lease. */
export interface Claimed {
  task: TaskView;
  lease: Lease;
}

/** An agent as the API shows it (never its token). */
export interface AgentView {
  id: string;
  /** Whether it is asleep now, by the service's clock. */
  asleep: boolean;
  sleepUntil: string | null;
  sleepReason: string | null;
  createdAt: string;
}

/** An agent in `GET /v1/agents`: its view and the tasks it holds under a live lease. */
export interface AgentListItemView extends AgentView {
  /** The ids of the `in_progress` tasks it holds under a lease live now, ordered by id. */
  holding: string[];
}

/** Why an escalation was raised. */
export type EscalationKind = 'violation' | 'blocked' | 'attempts_exhausted';

/** Where an escalation stands. */
export type EscalationStatus = 'open' | 'acknowledged' | 'resolved';

/** An escalation as the API shows it. */
export interface EscalationView {
  id: string;
  seq: number;
  kind: EscalationKind;
  status: EscalationStatus;
  taskId: string | null;
  agentId: string | null;
  violation: ViolationRecord | null;
  comment: string | null;
  createdAt: string;
  acknowledgedAt: string | null;
  acknowledgedBy: string | null;
  resolvedAt: string | null;
  resolvedBy: string | null;
  resolution: string | null;
}

/** An event as the API shows it. */
export interface EventView {
  /** Position in the log: the cursor. */
  seq: number;
  type: string;
  taskId: string | null;
  agentId: string | null;
  data: unknown;
  at: string;
}

/** A budget warning the service reported with a step or usage. */
export interface BudgetWarningView {
  taskId: string;
  budgetType: string;
  fraction: number;
}

/** `/healthz`: `location` (where the database is) only for the admin. */
export interface HealthView {
  status: 'ok' | 'unhealthy';
  storage: string;
  location?: string | undefined;
}

/** The `error` object of every error body: `{ error: ErrorPayload }`. */
export interface ErrorPayload {
  code: string;
  message: string;
  details?: Record<string, unknown> | undefined;
  /** For a rule violation (422): the Violation record, also in the escalation queue. */
  violation?: ViolationRecord | undefined;
}

/** An error body. */
export interface ErrorBody {
  error: ErrorPayload;
}

// --- requests ----------------------------------------------------------------------------------

/** Budget limits a task asks for; unset ones come from the service's defaults. */
export interface LimitsInput {
  maxSteps?: number | undefined;
  maxDepth?: number | undefined;
  maxDurationSeconds?: number | undefined;
  maxTokens?: number | null | undefined;
  maxCostUsd?: number | null | undefined;
}

/** `POST /v1/tasks`: a task to enqueue. */
export interface EnqueueInput {
  /** Default: a generated `tsk_…` id. */
  id?: string | undefined;
  type: string;
  title?: string | undefined;
  priority?: number | undefined;
  parentId?: string | undefined;
  createdById?: string | undefined;
  admission?: Record<string, unknown> | undefined;
  payload?: unknown;
  budget?: LimitsInput | undefined;
  maxAttempts?: number | undefined;
  idempotencyKey?: string | undefined;
  /** Admin only: the agent the task is enqueued for. */
  agentId?: string | undefined;
  /** `todo` (claimable, the default) or `backlog`. */
  state?: 'todo' | 'backlog' | undefined;
}

/** `POST /v1/tasks/claim`. */
export interface ClaimRequest {
  types?: string[] | undefined;
  leaseSeconds?: number | undefined;
  waitSeconds?: number | undefined;
}

/** `POST /v1/tasks/claim-many`. */
export interface ClaimManyRequest extends ClaimRequest {
  max: number;
}

/** `POST /v1/tasks/{id}/heartbeat` (and, in part, `claim` and `release`). */
export interface LeaseRequest {
  leaseId?: string | undefined;
  leaseSeconds?: number | undefined;
}

/** One move: to a state, on a lease, with a comment. */
export interface TransitionRequest {
  to: string;
  leaseId?: string | undefined;
  comment?: string | undefined;
}

/** The claim asked for with a transition (never waits). */
export interface NextClaimRequest {
  types?: string[] | undefined;
  leaseSeconds?: number | undefined;
}

/** `POST /v1/tasks/{id}/transition`. */
export interface TransitionOneRequest extends TransitionRequest {
  next?: NextClaimRequest | undefined;
}

/** `POST /v1/tasks/transition-many`. */
export interface TransitionManyRequest {
  transitions: Array<TransitionRequest & { id: string }>;
  next?: (NextClaimRequest & { max: number }) | undefined;
}

/** `POST /v1/tasks/{id}/steps`. */
export interface StepsRequest {
  count?: number | undefined;
  leaseId?: string | undefined;
}

/** `POST /v1/tasks/{id}/usage`. */
export interface UsageRequest {
  tokens?: number | undefined;
  costUsd?: number | undefined;
  leaseId?: string | undefined;
}

/** `POST /v1/tasks/{id}/usage/check`. */
export interface UsageCheckRequest {
  leaseId?: string | undefined;
}

/** `POST /v1/agents`. */
export interface RegisterAgentRequest {
  id: string;
}

/** `POST /v1/agents/{id}/sleep`. */
export interface SleepRequest {
  timeoutSeconds?: number | undefined;
  reason?: string | undefined;
}

/** `POST /v1/agents/{id}/wake`. */
export interface WakeRequest {
  reason?: 'woken' | 'task_available' | undefined;
}

/** `POST /v1/escalations/{id}/resolve`. */
export interface ResolveRequest {
  resolution?: string | undefined;
  requeue?: boolean | undefined;
}

/** A Violation record as an agent reports it (`agentId`, when given, must be the agent's own). */
export interface ViolationInput {
  kind: string;
  code: string;
  taskId?: string | undefined;
  agentId?: string | undefined;
  limit?: number | undefined;
  observed?: number | undefined;
  message: string;
  at: string;
  details: Record<string, unknown>;
}

/** `POST /v1/escalations`. */
export interface EscalateRequest {
  kind: 'blocked' | 'violation';
  taskId?: string | undefined;
  comment?: string | undefined;
  violation?: ViolationInput | undefined;
}

// --- responses ---------------------------------------------------------------------------------

/** One item of `POST /v1/tasks/transition-many`'s answer. */
export interface TransitionItemResult {
  id: string;
  ok: boolean;
  task?: TaskView | undefined;
  from?: string | undefined;
  to?: string | undefined;
  reason?: string | undefined;
  error?: ErrorPayload | undefined;
}

/** `POST /v1/tasks/transition-many`'s answer. */
export interface TransitionManyResponse {
  results: TransitionItemResult[];
  /** With `next`: the tasks claimed after the transitions. */
  claims?: Claimed[] | undefined;
}

/** `POST /v1/tasks/{id}/transition`'s answer. */
export interface TransitionResponse {
  task: TaskView;
  from: string;
  to: string;
  reason: string;
  /** With `next`: the task claimed after it, or `null`. */
  next?: Claimed | null | undefined;
}

/**
 * `POST /v1/tasks/{id}/usage/check`'s answer: what the task may still spend, the least left over
 * it and its ancestors. `null` is unlimited; a number is never negative.
 */
export interface UsageCheckView {
  taskId: string;
  remaining: { tokens: number | null; costUsd: number | null };
}

/** One note on a task, as the API shows it. */
export interface NoteView {
  /** When it was written (ISO-8601). */
  at: string;
  /** Who wrote it: an agent id, or `admin`. */
  agentId: string;
  text: string;
}

/** A task's context: its key/value context (keys sorted) and its notes, oldest first. */
export interface TaskContextView {
  context: Record<string, unknown>;
  notes: NoteView[];
}

/** `PUT /v1/tasks/{id}/context/{key}`. */
export interface ContextSetRequest {
  /** Any JSON value. */
  value: unknown;
}

/** `POST /v1/tasks/{id}/notes`. */
export interface NoteRequest {
  text: string;
}

// --- action loops ------------------------------------------------------------------------------

/** `POST /v1/tasks/{id}/actions`: one tool call of the agent holding the task's lease. */
export interface ActionRequest {
  /** The tool's name (an id: not blank, at most 200 characters). */
  tool: string;
  /** The call's arguments, any JSON value (key order does not matter). Default: `{}`. */
  args?: unknown;
  /** The call's result, when known: any JSON value, digested by the service and never kept. */
  result?: unknown;
  /** The result's digest, when the agent computed it; wins over `result`. */
  resultDigest?: string | undefined;
  /** The lease the caller holds; refused once another claim has taken the task. */
  leaseId?: string | undefined;
}

/** `POST /v1/tasks/{id}/actions/result`: the result of the task's newest call (exactly one of the two). */
export interface ActionResultRequest {
  result?: unknown;
  resultDigest?: string | undefined;
  leaseId?: string | undefined;
}

/** A pattern close to being refused: it reached its `warnAt` but not its `blockAt`. */
export interface ActionWarningView {
  loopType: ActionLoopType;
  taskId: string;
  tool: string;
  /** How many times the pattern has been seen, this call included. */
  count: number;
  warnAt: number;
  blockAt: number;
  calls: ActionCallRef[];
  period?: number | undefined;
  windowSize?: number | undefined;
  resultDigest?: string | undefined;
  message: string;
}

/** What a recorded action reports (the loop kernel's `ActionCheck` as plain data). */
export interface ActionCheckView {
  taskId: string;
  tool: string;
  fingerprint: string;
  resultDigest?: string | undefined;
  /** Calls the task has recorded, this one included (exempt tools are not counted). */
  calls: number;
  /** Times in a row this call has been made, this one included. */
  repeats: number;
  /** Times this call appears in the window, this one included (0 when the rule is off). */
  inWindow: number;
  warnings: ActionWarningView[];
  /** The tool is exempt: nothing was counted. */
  exempt: boolean;
}

/** `POST /v1/tasks/{id}/actions/result`'s answer. */
export interface ActionResultResponse {
  taskId: string;
  /** The tool and fingerprint of the call the result was attached to (the task's newest). */
  tool: string;
  fingerprint: string;
  /** The task's calls so far. */
  calls: number;
  resultDigest: string;
  warnings: ActionWarningView[];
}

/** One recent call of a task, as `GET /v1/tasks/{id}/actions` shows it. */
export interface ActionCallView {
  tool: string;
  fingerprint: string;
  /** The digest of its result, `null` while unknown. */
  resultDigest: string | null;
}

/** `GET /v1/tasks/{id}/actions`: a task's action history, newest call last. */
export interface ActionHistoryView {
  taskId: string;
  /** Calls recorded so far (0 for a task with none, or one that finished). */
  calls: number;
  /** The recent calls the rules look at, oldest first. */
  recent: ActionCallView[];
}
