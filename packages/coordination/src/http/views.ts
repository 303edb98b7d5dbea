import type {
  AgentListItemView,
  AgentView,
  EscalationView,
  EventView,
  NoteView,
  TaskView,
} from '@exec-kernel/coordination-client';
import { toIsoTime } from '@exec-kernel/core';
import type { AgentRow, EscalationRow, EventRow, TaskRow } from '../model.js';
import type { AgentHolding, TaskNote } from '../storage/storage.js';

const iso = (ms: number | null): string | null => (ms === null ? null : toIsoTime(ms));

/** A task row as the API shows it ({@link TaskView}). */
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

/** An agent row as the API shows it, asleep or not at `now` (the service's clock). */
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

/** An agent with the tasks it holds under a live lease, as `GET /v1/agents` shows it. */
export function agentListItemView(item: AgentHolding, now: number): AgentListItemView {
  return { ...agentView(item.agent, now), holding: item.holding };
}

/** An escalation row as the API shows it. */
export function escalationView(row: EscalationRow): EscalationView {
  return {
    ...row,
    createdAt: iso(row.createdAt) as string,
    acknowledgedAt: iso(row.acknowledgedAt),
    resolvedAt: iso(row.resolvedAt),
  };
}

/** An event row as the API shows it. */
export function eventView(row: EventRow): EventView {
  return { ...row, at: iso(row.at) as string };
}

/** A task note as the API shows it ({@link NoteView}). */
export function noteView(note: TaskNote): NoteView {
  return { at: toIsoTime(note.at), agentId: note.agentId, text: note.text };
}
