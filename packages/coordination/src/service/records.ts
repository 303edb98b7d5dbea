import { randomUUID } from 'node:crypto';
import type { Violation } from '@exec-kernel/core';
import type { EscalationRow, JsonValue, NewEscalationRow, NewEvent } from '../model.js';

/** An event of `type` at `at`; fields not given are `null` (data: `{}`). */
export function newEvent(
  type: string,
  fields: Partial<Omit<NewEvent, 'type' | 'at'>>,
  at: number,
): NewEvent {
  return {
    type,
    taskId: fields.taskId ?? null,
    agentId: fields.agentId ?? null,
    data: fields.data === undefined ? {} : fields.data,
    at,
  };
}

/** What an escalation is raised with. */
export interface EscalationFields {
  kind: EscalationRow['kind'];
  taskId: string | null;
  agentId: string | null;
  violation: Violation | null;
  comment: string | null;
}

/** A new open escalation, with a fresh id, raised at `now`. */
export function escalationRow(fields: EscalationFields, now: number): NewEscalationRow {
  return {
    id: `esc_${randomUUID()}`,
    kind: fields.kind,
    status: 'open',
    taskId: fields.taskId,
    agentId: fields.agentId,
    violation: fields.violation,
    comment: fields.comment,
    createdAt: now,
    acknowledgedAt: null,
    acknowledgedBy: null,
    resolvedAt: null,
    resolvedBy: null,
    resolution: null,
  };
}

/** The `escalation.created` event of a new escalation. */
export function escalationEvent(row: NewEscalationRow): NewEvent {
  return newEvent(
    'escalation.created',
    {
      taskId: row.taskId,
      agentId: row.agentId,
      data: {
        escalationId: row.id,
        kind: row.kind,
        violation: (row.violation as unknown as JsonValue) ?? null,
      },
    },
    row.createdAt,
  );
}
