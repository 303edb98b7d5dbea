import { ConflictError, ForbiddenError, NotFoundError, type Violation } from '@exec-kernel/core';
import { checkEscalationInput } from '../input.js';
import type { EscalationRow, EscalationStatus } from '../model.js';
import { eventNow, type ServiceContext } from './context.js';
import { transition } from './moves.js';
import { escalationEvent, escalationRow } from './records.js';
import { agentOf, requireAdmin } from './rules.js';
import type { Caller } from './types.js';

/** What an escalation raised by hand says. */
export interface EscalationInput {
  kind: 'blocked' | 'violation';
  taskId?: string | undefined;
  comment?: string | undefined;
  violation?: Violation | undefined;
}

/** Escalations in queue order. */
export function listEscalations(
  ctx: ServiceContext,
  filter: { status?: EscalationStatus | undefined; afterSeq?: number | undefined; limit: number },
): Promise<EscalationRow[]> {
  return ctx.storage.listEscalations(filter);
}

/**
 * Raises an escalation from outside the service's own rules (a stuck agent, a Paperclip violation).
 *
 * @throws ForbiddenError for an agent reporting another agent's violation.
 */
export async function escalate(
  ctx: ServiceContext,
  caller: Caller,
  input: EscalationInput,
): Promise<EscalationRow> {
  checkEscalationInput(input);
  // An agent speaks only for itself: the violation it reports is its own.
  const named = input.violation?.agentId;
  if (caller.kind === 'agent' && named !== undefined && named !== caller.agentId) {
    throw new ForbiddenError(
      { agentId: caller.agentId, action: `escalate a violation of agent ${named}` },
      { message: `Agent ${caller.agentId} may not escalate a violation of agent ${named}` },
    );
  }
  const row = escalationRow(
    {
      kind: input.kind,
      taskId: input.taskId ?? null,
      agentId: agentOf(caller),
      violation: input.violation ?? null,
      comment: input.comment ?? null,
    },
    ctx.clock.now(),
  );
  const stored = await ctx.storage.insertEscalation(row, escalationEvent(row));
  ctx.counters.escalations++;
  return stored;
}

/** Marks an open escalation seen (admin only). */
export async function acknowledge(
  ctx: ServiceContext,
  caller: Caller,
  id: string,
): Promise<EscalationRow> {
  requireAdmin(caller, 'acknowledge escalations');
  const now = ctx.clock.now();
  const row = await ctx.storage.updateEscalation(
    id,
    ['open'],
    { status: 'acknowledged', acknowledgedAt: now, acknowledgedBy: 'admin' },
    eventNow(ctx, 'escalation.acknowledged', { data: { escalationId: id } }),
  );
  return row ?? escalationConflict(ctx, id, 'open');
}

/**
 * Resolves an escalation (admin only); with `requeue`, its blocked task goes back to `todo` with
 * its attempts reset ("Task unblocked").
 */
export async function resolve(
  ctx: ServiceContext,
  caller: Caller,
  id: string,
  options: { resolution?: string | undefined; requeue?: boolean | undefined },
): Promise<EscalationRow> {
  requireAdmin(caller, 'resolve escalations');
  const now = ctx.clock.now();
  const resolution = options.resolution ?? null;
  const row = await ctx.storage.updateEscalation(
    id,
    ['open', 'acknowledged'],
    { status: 'resolved', resolvedAt: now, resolvedBy: 'admin', resolution },
    eventNow(ctx, 'escalation.resolved', { data: { escalationId: id, resolution } }),
  );
  if (row === undefined) return escalationConflict(ctx, id, 'open or acknowledged');
  if (options.requeue === true && row.taskId !== null) {
    const task = await ctx.storage.getTask(row.taskId);
    if (task?.state === 'blocked')
      await transition(ctx, caller, task.id, { to: 'todo', comment: options.resolution });
  }
  return row;
}

async function escalationConflict(
  ctx: ServiceContext,
  id: string,
  expected: string,
): Promise<never> {
  const existing = await ctx.storage.getEscalation(id);
  if (existing === undefined) throw new NotFoundError({ resource: 'escalation', id });
  throw new ConflictError(
    { resource: `escalation ${id}` },
    { message: `Escalation ${id} is ${existing.status}, not ${expected}` },
  );
}
