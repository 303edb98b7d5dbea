import { checkId, ForbiddenError, isTerminalState, NotFoundError } from '@exec-kernel/core';
import {
  type ActionCall,
  type ActionCheck,
  ActionHistory,
  type ActionHistoryJSON,
  type ActionLoopWarning,
  type ActionResultRecord,
  type ActionRules,
} from '@exec-kernel/loop';
import type { JsonValue } from '../model.js';
import type { Expectation } from '../storage/storage.js';
import { countOne, eventNow, type ServiceContext } from './context.js';
import { leased, leaseGoneNow } from './leases.js';
import { checkJsonValue } from './task-context.js';
import type { Caller } from './types.js';
import { escalating } from './violations.js';

/** An action as an agent records it: one tool call, on the lease it holds. */
export interface ActionInput extends ActionCall {
  leaseId?: string | undefined;
}

/** The result of a task's newest call: the value or its digest (exactly one), on the lease. */
export interface ActionResultInput {
  result?: unknown;
  resultDigest?: string | undefined;
  leaseId?: string | undefined;
}

/** A task's action history as `GET /v1/tasks/{id}/actions` shows it. */
export interface ActionHistorySummary {
  taskId: string;
  calls: number;
  recent: Array<{ tool: string; fingerprint: string; resultDigest: string | null }>;
}

// Actions are an agent's own tool calls: the admin holds no lease and makes none.
function holderOf(caller: Caller, taskId: string): string {
  if (caller.kind === 'agent') return caller.agentId;
  throw new ForbiddenError(
    { agentId: 'admin', action: `record actions on task ${taskId}`, taskId },
    { message: `Only the agent holding the lease on task ${taskId} records its actions` },
  );
}

/**
 * Runs one step of the loop kernel on a task's saved history, under the task's lock and on the
 * caller's lease as read: the history is loaded, `run` applied and the history saved, with a
 * `task.action_warning` event when the step warned. A refusal (`LoopDetectionError`) saves
 * nothing and is escalated as every violation is.
 */
async function stepHistory<T>(
  ctx: ServiceContext,
  caller: Caller,
  taskId: string,
  leaseId: string | undefined,
  run: (history: ActionHistory) => { value: T; warnings: ActionLoopWarning[] },
): Promise<T> {
  checkId(taskId, 'task id');
  const agentId = holderOf(caller, taskId);
  const task = await leased(ctx, caller, taskId, leaseId);
  const now = ctx.clock.now();
  const expect: Expectation = {
    state: 'in_progress',
    leaseId: task.leaseId,
    leaseOwner: task.leaseOwner,
    leaseLiveAt: now,
  };
  const rules = ctx.settings.actionRules;
  let warned: ActionLoopWarning[] = [];
  const done = await escalating(ctx, agentId, taskId, () =>
    ctx.storage.recordAction(taskId, expect, (saved) => {
      const history =
        saved === undefined ? new ActionHistory(taskId, rules) : restored(taskId, saved, rules);
      const { value, warnings } = run(history);
      warned = warnings;
      const events =
        warnings.length === 0
          ? []
          : [
              eventNow(ctx, 'task.action_warning', {
                taskId,
                agentId,
                data: { warnings: warnings as unknown as JsonValue },
              }),
            ];
      return { history: history.toJSON() as unknown as JsonValue, events, value };
    }),
  );
  if (done === undefined) throw await leaseGoneNow(ctx, caller, taskId, leaseId);
  for (const warning of warned) countOne(ctx.counters.actionWarnings, warning.loopType);
  return done.value;
}

/**
 * Records one tool call of the agent holding the task's lease and checks it against the
 * action-loop rules (the loop kernel's `ActionHistory`, over the task's saved history).
 *
 * @throws LoopDetectionError (escalated) when the call reaches a rule's `blockAt`; nothing is recorded.
 * @throws InvalidInputError for arguments or a result too large or nested too deep.
 * @throws ForbiddenError for the admin or an agent not holding the lease; ConflictError for a lease
 *   that expired or changed hands; NotFoundError for an unknown task.
 */
export async function recordAction(
  ctx: ServiceContext,
  caller: Caller,
  taskId: string,
  input: ActionInput,
): Promise<ActionCheck> {
  if (input.args !== undefined) checkJsonValue('args', input.args as JsonValue);
  if (input.result !== undefined) checkJsonValue('result', input.result as JsonValue);
  const call: ActionCall = { tool: input.tool };
  if (input.args !== undefined) call.args = input.args;
  if (input.result !== undefined) call.result = input.result;
  if (input.resultDigest !== undefined) call.resultDigest = input.resultDigest;
  const check = await stepHistory(ctx, caller, taskId, input.leaseId, (history) => {
    const observed = history.observe(call);
    return { value: observed, warnings: observed.warnings };
  });
  ctx.counters.actions++;
  return check;
}

/**
 * Records the result of the task's newest call (checked after the tool ran); answers the call it
 * was attached to, with any warnings.
 *
 * @throws LoopDetectionError `no_progress` (escalated) when the result reaches the rule's `blockAt`.
 * @throws InvalidInputError when the task has no call yet, its newest call already has a result,
 *   or the result is too large; the lease refusals of {@link recordAction}.
 */
export async function recordActionResult(
  ctx: ServiceContext,
  caller: Caller,
  taskId: string,
  input: ActionResultInput,
): Promise<ActionResultRecord> {
  if (input.result !== undefined) checkJsonValue('result', input.result as JsonValue);
  return stepHistory(ctx, caller, taskId, input.leaseId, (history) => {
    const record = history.recordResult(input.result, input.resultDigest);
    return { value: record, warnings: record.warnings };
  });
}

/**
 * A task's action history: its lease holder, its agent and the admin may read it. A task with no
 * actions, or one that finished (its history is dropped), has none: `calls` is 0.
 *
 * @throws ForbiddenError for another agent; NotFoundError for an unknown task.
 */
export async function getActions(
  ctx: ServiceContext,
  caller: Caller,
  taskId: string,
): Promise<ActionHistorySummary> {
  checkId(taskId, 'task id');
  const task = await ctx.storage.getTask(taskId);
  if (task === undefined) throw new NotFoundError({ resource: 'task', id: taskId });
  if (
    caller.kind === 'agent' &&
    task.agentId !== caller.agentId &&
    task.leaseOwner !== caller.agentId
  ) {
    throw new ForbiddenError({
      agentId: caller.agentId,
      action: `read the actions of task ${taskId}: it is neither its agent nor its lease holder`,
      taskId,
    });
  }
  const saved = isTerminalState(task.state) ? undefined : await ctx.storage.getActions(taskId);
  if (saved === undefined) return { taskId, calls: 0, recent: [] };
  const json: ActionHistoryJSON = restored(taskId, saved, ctx.settings.actionRules).toJSON();
  return {
    taskId,
    calls: json.total,
    recent: json.recent.map(([fingerprint, tool, resultDigest]) => ({
      tool,
      fingerprint,
      resultDigest,
    })),
  };
}

// A saved history the kernel cannot read is the service's fault, not the caller's: an internal
// error (500, logged), never the INVALID_INPUT the kernel throws for it.
function restored(taskId: string, saved: unknown, rules: ActionRules): ActionHistory {
  try {
    return ActionHistory.fromJSON(saved, rules);
  } catch (error) {
    throw new Error(`The saved action history of task ${taskId} is corrupt`, { cause: error });
  }
}
