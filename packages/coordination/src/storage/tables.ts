import type { AgentRow, NewEscalationRow, NewTaskRow } from '../model.js';

/**
 * A table of the SQL engines: its fields (camelCase) and columns (snake_case), which fields hold
 * JSON, and which an update may not change. Shared by the PostgreSQL and SQLite engines, whose
 * schemas name the same columns.
 */
export interface Table {
  name: string;
  columns: Readonly<Record<string, string>>;
  json: ReadonlySet<string>;
  /** Fields an update may not change. */
  fixed: ReadonlySet<string>;
}

export const TASKS: Table = {
  name: 'tasks',
  columns: {
    id: 'id',
    type: 'type',
    title: 'title',
    state: 'state',
    priority: 'priority',
    agentId: 'agent_id',
    parentId: 'parent_id',
    createdById: 'created_by_id',
    depth: 'depth',
    admission: 'admission',
    payload: 'payload',
    idempotencyKey: 'idempotency_key',
    attempts: 'attempts',
    maxAttempts: 'max_attempts',
    leaseOwner: 'lease_owner',
    leaseId: 'lease_id',
    leaseUntil: 'lease_until',
    limits: 'limits',
    stepsTaken: 'steps_taken',
    tokens: 'tokens',
    costUsd: 'cost_usd',
    warned: 'warned',
    startedAt: 'started_at',
    createdAt: 'created_at',
    updatedAt: 'updated_at',
  } satisfies Record<keyof NewTaskRow, string>,
  json: new Set(['admission', 'payload', 'limits', 'warned']),
  // The owner and its idempotency key are who asked for the task: a retried enqueue finds it by them.
  fixed: new Set(['id', 'seq', 'createdAt', 'agentId', 'idempotencyKey']),
};

export const AGENTS: Table = {
  name: 'agents',
  columns: {
    id: 'id',
    tokenHash: 'token_hash',
    sleepUntil: 'sleep_until',
    sleepReason: 'sleep_reason',
    sleepSince: 'sleep_since',
    createdAt: 'created_at',
  } satisfies Record<keyof AgentRow, string>,
  json: new Set(),
  fixed: new Set(['id', 'createdAt']),
};

export const ESCALATIONS: Table = {
  name: 'escalations',
  columns: {
    id: 'id',
    kind: 'kind',
    status: 'status',
    taskId: 'task_id',
    agentId: 'agent_id',
    violation: 'violation',
    comment: 'comment',
    createdAt: 'created_at',
    acknowledgedAt: 'acknowledged_at',
    acknowledgedBy: 'acknowledged_by',
    resolvedAt: 'resolved_at',
    resolvedBy: 'resolved_by',
    resolution: 'resolution',
  } satisfies Record<keyof NewEscalationRow, string>,
  json: new Set(['violation']),
  fixed: new Set(['id', 'seq', 'createdAt']),
};
