import { toIsoTime, type Violation } from '@exec-kernel/core';
import type { AgentRow, EscalationRow, EventRow, TaskRow } from '../model.js';

const iso = (ms: number | null): string | null => (ms === null ? null : toIsoTime(ms));

/**
 * A task as the API shows it: times as ISO-8601, `null` where unset; the lease id (the holder's
 * fencing token) and the fired-warning bookkeeping are not shown.
 */
export interface TaskView
  extends Omit<
    TaskRow,
    'leaseId' | 'warned' | 'payload' | 'leaseUntil' | 'startedAt' | 'createdAt' | 'updatedAt'
  > {
  payload: unknown;
  leaseUntil: string | null;
  startedAt: string | null;
  createdAt: string;
  updatedAt: string;
}

export function taskView(row: TaskRow): TaskView {
  return {
    id: row.id,
    seq: row.seq,
    type: row.type,
    title: row.title,
    state: row.state,
    priority: row.priority,
    agentId: row.agentId,
    parentId: row.parentId,
    createdById: row.createdById,
    depth: row.depth,
    admission: row.admission,
    payload: row.payload,
    idempotencyKey: row.idempotencyKey,
    attempts: row.attempts,
    maxAttempts: row.maxAttempts,
    leaseOwner: row.leaseOwner,
    leaseUntil: iso(row.leaseUntil),
    limits: row.limits,
    stepsTaken: row.stepsTaken,
    tokens: row.tokens,
    costUsd: row.costUsd,
    startedAt: iso(row.startedAt),
    createdAt: iso(row.createdAt) as string,
    updatedAt: iso(row.updatedAt) as string,
  };
}

/** An agent as the API shows it (never its token). */
export interface AgentView {
  id: string;
  asleep: boolean;
  sleepUntil: string | null;
  sleepReason: string | null;
  createdAt: string;
}

export function agentView(row: AgentRow, now: number): AgentView {
  const asleep = row.sleepUntil !== null && now < row.sleepUntil;
  return {
    id: row.id,
    asleep,
    sleepUntil: asleep ? iso(row.sleepUntil) : null,
    sleepReason: asleep ? row.sleepReason : null,
    createdAt: iso(row.createdAt) as string,
  };
}

/** An escalation as the API shows it. */
export interface EscalationView {
  id: string;
  seq: number;
  kind: EscalationRow['kind'];
  status: EscalationRow['status'];
  taskId: string | null;
  agentId: string | null;
  violation: Violation | null;
  comment: string | null;
  createdAt: string;
  acknowledgedAt: string | null;
  acknowledgedBy: string | null;
  resolvedAt: string | null;
  resolvedBy: string | null;
  resolution: string | null;
}

export function escalationView(row: EscalationRow): EscalationView {
  return {
    ...row,
    createdAt: iso(row.createdAt) as string,
    acknowledgedAt: iso(row.acknowledgedAt),
    resolvedAt: iso(row.resolvedAt),
  };
}

/** An event as the API shows it. */
export interface EventView {
  seq: number;
  type: string;
  taskId: string | null;
  agentId: string | null;
  data: unknown;
  at: string;
}

export function eventView(row: EventRow): EventView {
  return { ...row, at: iso(row.at) as string };
}
