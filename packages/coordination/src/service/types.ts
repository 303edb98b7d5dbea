import type { BudgetLimitsInput, UsageHeadroom } from '@exec-kernel/budget';
import type { BudgetType, TaskState } from '@exec-kernel/core';
import type { ActionRulesOptions } from '@exec-kernel/loop';
import type { JsonValue, TaskRow } from '../model.js';

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
  /**
   * The action-loop rules over the tool calls agents record (`POST /v1/tasks/{id}/actions`),
   * resolved once with the loop kernel's `resolveActionRules`. Default: `DEFAULT_ACTION_RULES`.
   */
  actionRules?: ActionRulesOptions | undefined;
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

/** A move asked of `CoordinationService.transition`. */
export interface TransitionRequest {
  to: TaskState;
  /** The lease the caller holds; refused once another claim has taken the task. */
  leaseId?: string | undefined;
  comment?: string | undefined;
}

/** What became of one item of `CoordinationService.transitionMany`. */
export type TransitionOutcome =
  | { id: string; ok: true; task: TaskRow; from: TaskState; reason: string }
  | { id: string; ok: false; error: unknown };

/** What a move did: the task as written, the state it left and the lifecycle's reason. */
export interface Moved {
  task: TaskRow;
  from: TaskState;
  reason: string;
}

/** A budget warning that fired on a spend: the task, the budget and how much of it is used. */
export interface SpendWarning {
  taskId: string;
  budgetType: BudgetType;
  fraction: number;
}

/** What a task may still spend: the least left over it and its ancestors (`null`: unlimited). */
export interface UsageLeft {
  taskId: string;
  remaining: UsageHeadroom;
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
  /** Actions recorded (refused ones are violations, counted there). */
  actions: number;
  /** Action-loop warnings reported, by loop type. */
  actionWarnings: Record<string, number>;
}
