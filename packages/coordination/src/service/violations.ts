import { type KernelError, toViolation, type Violation } from '@exec-kernel/core';
import { isViolation } from '../errors.js';
import { countOne, type ServiceContext } from './context.js';
import { escalationEvent, escalationRow } from './records.js';

/**
 * Records a rule violation: its Violation (the agent and task filled in when the error names
 * none) in an escalation and its event, and in the counters. The error itself is left as it is;
 * {@link violationOf} gives the record back.
 */
export async function recordViolation(
  ctx: ServiceContext,
  error: KernelError,
  agentId: string,
  taskId: string,
): Promise<void> {
  const now = ctx.clock.now();
  const violation = toViolation(error, now);
  violation.agentId ??= agentId;
  violation.taskId ??= taskId;
  countOne(ctx.counters.violations, violation.kind);
  const row = escalationRow(
    { kind: 'violation', taskId: violation.taskId, agentId, violation, comment: null },
    now,
  );
  await ctx.storage.insertEscalation(row, escalationEvent(row));
  ctx.counters.escalations++;
  ctx.violations.set(error, violation);
}

/**
 * Runs `work`; a rule violation it throws (see `ESCALATED_CODES`) is recorded before it is
 * rethrown.
 */
export async function escalating<T>(
  ctx: ServiceContext,
  agentId: string,
  taskId: string,
  work: () => Promise<T>,
): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (isViolation(error)) await recordViolation(ctx, error, agentId, taskId);
    throw error;
  }
}

/** The Violation the service recorded for `error`, or `undefined` when it escalated none. */
export function violationOf(ctx: ServiceContext, error: unknown): Violation | undefined {
  return typeof error === 'object' && error !== null ? ctx.violations.get(error) : undefined;
}
