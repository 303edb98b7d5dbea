import type { AgentRow, EscalationRow, EventRow, TaskRow } from '../../model.js';
import type { TaskNote } from '../storage.js';
import type { Row } from './connection.js';

// Rows as the driver returns them (snake_case columns, bigints already numbers) to the model.

export const toTask = (r: Row): TaskRow => ({
  id: r.id,
  seq: r.seq,
  type: r.type,
  title: r.title,
  state: r.state,
  priority: r.priority,
  agentId: r.agent_id,
  parentId: r.parent_id,
  createdById: r.created_by_id,
  depth: r.depth,
  admission: r.admission,
  payload: r.payload,
  idempotencyKey: r.idempotency_key,
  attempts: r.attempts,
  maxAttempts: r.max_attempts,
  leaseOwner: r.lease_owner,
  leaseId: r.lease_id,
  leaseUntil: r.lease_until,
  limits: r.limits,
  stepsTaken: r.steps_taken,
  tokens: r.tokens,
  costUsd: r.cost_usd,
  warned: r.warned,
  startedAt: r.started_at,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

export const toAgent = (r: Row): AgentRow => ({
  id: r.id,
  tokenHash: r.token_hash,
  sleepUntil: r.sleep_until,
  sleepReason: r.sleep_reason,
  sleepSince: r.sleep_since,
  createdAt: r.created_at,
});

export const toEscalation = (r: Row): EscalationRow => ({
  id: r.id,
  seq: r.seq,
  kind: r.kind,
  status: r.status,
  taskId: r.task_id,
  agentId: r.agent_id,
  violation: r.violation,
  comment: r.comment,
  createdAt: r.created_at,
  acknowledgedAt: r.acknowledged_at,
  acknowledgedBy: r.acknowledged_by,
  resolvedAt: r.resolved_at,
  resolvedBy: r.resolved_by,
  resolution: r.resolution,
});

export const toEvent = (r: Row): EventRow => ({
  seq: r.seq,
  type: r.type,
  taskId: r.task_id,
  agentId: r.agent_id,
  data: r.data,
  at: r.at,
});

export const toNote = (r: Row): TaskNote => ({ at: r.at, agentId: r.agent_id, text: r.text });
