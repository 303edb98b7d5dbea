import type { BudgetLimits } from '@exec-kernel/budget';
import type { EscalationKind, EscalationStatus } from '@exec-kernel/coordination-client';
import type { BudgetType, TaskState, Violation } from '@exec-kernel/core';

/** A JSON value, as task payloads and event data hold them. */
export type JsonValue =
  | string
  | number
  | boolean
  | null
  | JsonValue[]
  | { [key: string]: JsonValue };

/** A task as the service stores it. Times are milliseconds since the epoch. */
export interface TaskRow {
  id: string;
  /** Insertion order: the claim tie-breaker and the list cursor. */
  seq: number;
  type: string;
  title: string | null;
  state: TaskState;
  /** Higher is claimed first. */
  priority: number;
  /** The agent that enqueued the task. */
  agentId: string;
  /** The task this one decomposes (sets depth). */
  parentId: string | null;
  /** The task whose work produced this one. */
  createdById: string | null;
  depth: number;
  admission: Record<string, string> | null;
  payload: JsonValue | null;
  idempotencyKey: string | null;
  /** Claims so far. */
  attempts: number;
  /** Claims allowed before a task whose leases keep expiring goes to the escalation queue. */
  maxAttempts: number;
  leaseOwner: string | null;
  leaseId: string | null;
  leaseUntil: number | null;
  limits: BudgetLimits;
  /** Spending of the task and its descendants. */
  stepsTaken: number;
  tokens: number;
  costUsd: number;
  /** Budget types whose warning already fired. */
  warned: BudgetType[];
  /** First claim: when the duration budget starts. */
  startedAt: number | null;
  createdAt: number;
  updatedAt: number;
}

/** What an insert supplies; the engine assigns `seq`. */
export type NewTaskRow = Omit<TaskRow, 'seq'>;

/** A registered agent. The token is stored hashed. */
export interface AgentRow {
  id: string;
  tokenHash: string;
  sleepUntil: number | null;
  sleepReason: string | null;
  sleepSince: number | null;
  createdAt: number;
}

// The escalation's kind and status are the wire protocol's, stored as they are sent.
export type { EscalationKind, EscalationStatus } from '@exec-kernel/coordination-client';

/** Something a human or a manager agent must look at. */
export interface EscalationRow {
  id: string;
  seq: number;
  kind: EscalationKind;
  status: EscalationStatus;
  taskId: string | null;
  agentId: string | null;
  /** The refusal, for `violation` (and the record of why, for the others). */
  violation: Violation | null;
  comment: string | null;
  createdAt: number;
  acknowledgedAt: number | null;
  acknowledgedBy: string | null;
  resolvedAt: number | null;
  resolvedBy: string | null;
  resolution: string | null;
}

/** What an insert supplies; the engine assigns `seq`. */
export type NewEscalationRow = Omit<EscalationRow, 'seq'>;

/** One entry of the ordered event log. */
export interface EventRow {
  /** Position in the log: the cursor. Gaps are possible (a rolled-back write). */
  seq: number;
  type: string;
  taskId: string | null;
  agentId: string | null;
  data: JsonValue;
  at: number;
}

/** What a write appends to the log; the engine assigns `seq`. */
export type NewEvent = Omit<EventRow, 'seq'>;
