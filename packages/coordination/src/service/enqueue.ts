import { randomUUID } from 'node:crypto';
import { ForbiddenError } from '@exec-kernel/core';
import { admitTask } from '@exec-kernel/lifecycle';
import { loopOver, type StoredWorkNode } from '@exec-kernel/loop';
import { checkEnqueueInput } from '../input.js';
import type { TaskRow } from '../model.js';
import { eventNow, type ServiceContext } from './context.js';
import type { Caller, EnqueueInput } from './types.js';
import { escalating } from './violations.js';

const NO_ROWS: readonly TaskRow[] = [];

/**
 * Enqueues a task once `admitTask` lets it in (idle, admission, loop, budget, in that order),
 * with an idempotency key honoured per agent. What the rules need (the agent's sleep and the
 * new task's ancestry) is read in parallel first.
 *
 * @throws ForbiddenError for an agent enqueuing as another; the refusal of `admitTask`
 * (IdleEnforcementError, TaskAdmissionError, LoopDetectionError, BudgetExceededError, each also
 * escalated, or InvalidInputError for invalid budget limits).
 */
export async function enqueue(
  ctx: ServiceContext,
  caller: Caller,
  input: EnqueueInput,
): Promise<{ task: TaskRow; created: boolean }> {
  checkEnqueueInput(input);
  if (caller.kind === 'agent' && input.agentId !== undefined && input.agentId !== caller.agentId) {
    throw new ForbiddenError(
      { agentId: caller.agentId, action: `enqueue as ${input.agentId}` },
      { message: `Agent ${caller.agentId} may not enqueue as ${input.agentId}` },
    );
  }
  const agentId = caller.kind === 'agent' ? caller.agentId : (input.agentId ?? 'admin');
  const id = input.id ?? `tsk_${randomUUID()}`;
  const now = ctx.clock.now();
  return escalating(ctx, agentId, id, async () => {
    const links: string[] = [];
    if (input.parentId !== undefined) links.push(input.parentId);
    if (input.createdById !== undefined) links.push(input.createdById);
    const [agent, rows] = await Promise.all([
      ctx.storage.getAgent(agentId),
      links.length === 0 ? NO_ROWS : ctx.storage.lineage(links),
    ]);
    const decision = admitTask(
      {
        taskId: id,
        agentId,
        taskType: input.type,
        title: input.title,
        parentTaskId: input.parentId,
        createdByTaskId: input.createdById,
        admission: input.admission,
        budget: input.budget,
      },
      {
        now,
        sleep:
          agent?.sleepUntil == null
            ? undefined
            : { untilMs: agent.sleepUntil, reason: agent.sleepReason ?? undefined },
        required: ctx.settings.admissionRequired,
        loop: loopOver(rows.map(workNodeOf), { maxDepth: ctx.settings.maxDepth }),
        budgetDefaults: ctx.settings.budgetDefaults,
      },
    );
    if (!decision.ok) throw decision.error;
    const { depth } = decision;
    const state = input.state ?? 'todo';
    const result = await ctx.storage.insertTask(
      {
        id,
        type: input.type,
        title: input.title ?? null,
        state,
        priority: input.priority ?? 0,
        agentId,
        parentId: input.parentId ?? null,
        createdById: input.createdById ?? null,
        depth,
        admission: decision.admission === undefined ? null : { ...decision.admission },
        payload: input.payload ?? null,
        idempotencyKey: input.idempotencyKey ?? null,
        attempts: 0,
        maxAttempts: input.maxAttempts ?? ctx.settings.maxAttempts,
        leaseOwner: null,
        leaseId: null,
        leaseUntil: null,
        limits: decision.limits,
        stepsTaken: 0,
        tokens: 0,
        costUsd: 0,
        warned: [],
        startedAt: null,
        createdAt: now,
        updatedAt: now,
      },
      eventNow(ctx, 'task.enqueued', {
        taskId: id,
        agentId,
        data: { type: input.type, state, depth },
      }),
    );
    if (result.created) ctx.counters.enqueued++;
    return result;
  });
}

function workNodeOf(row: TaskRow): StoredWorkNode {
  return {
    taskId: row.id,
    agentId: row.agentId,
    taskType: row.type,
    title: row.title ?? undefined,
    parentTaskId: row.parentId ?? undefined,
    createdByTaskId: row.createdById ?? undefined,
    depth: row.depth,
  };
}
