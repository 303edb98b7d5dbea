import type { BudgetTracker, UsageHeadroom } from '@exec-kernel/budget';
import type { CoordinationClient } from '@exec-kernel/coordination-client';
import {
  attachViolation,
  type BudgetType,
  type Clock,
  hasViolation,
  KernelError,
  systemClock,
  toViolation,
} from '@exec-kernel/core';
import type { ActionGuard } from '@exec-kernel/loop';

/** A budget warning: a task's spending newly past `warnAt` of one of its limits. */
export interface SpendWarning {
  taskId: string;
  budgetType: BudgetType;
  /** observed / limit when it fired. */
  fraction: number;
}

/** A tool call the model asked for, before it runs. */
export interface ModelToolCall {
  tool: string;
  /** The call's input as the model wrote it: parsed JSON, or the raw text when it is not JSON. */
  args: unknown;
}

/**
 * Where a task's budget is kept and its rules applied: a local `BudgetTracker`
 * ({@link trackerSource}), the coordination service ({@link coordinationSource}), or your own.
 * A refusal is a `KernelError` (`BudgetExceededError`, `LoopDetectionError`) carrying the
 * `Violation` recorded for it as `error.violation`.
 */
export interface BudgetSource {
  /**
   * Before a model call: answers what the task may still spend (least over it and its
   * ancestors), or throws `BudgetExceededError` when a token or cost budget is used up.
   */
  checkUsageLeft(taskId: string): UsageHeadroom | PromiseLike<UsageHeadroom>;
  /**
   * After a model call: counts its tokens and cost for the task and its ancestors, answering the
   * warnings it raised; throws `BudgetExceededError` (the usage stays counted) past a limit.
   */
  recordUsage(
    taskId: string,
    usage: { tokens: number; costUsd: number },
  ): readonly SpendWarning[] | PromiseLike<readonly SpendWarning[]>;
  /** When set, each tool call the model makes is checked here before the tool runs. */
  recordToolCall?: ((taskId: string, call: ModelToolCall) => void | PromiseLike<void>) | undefined;
  /** Records the result of the task's newest tool call, as the next prompt brings it back. */
  recordToolResult?: ((taskId: string, result: unknown) => void | PromiseLike<void>) | undefined;
}

/** Options of {@link trackerSource}. */
export interface TrackerSourceOptions {
  /** Checks the model's tool calls against the action-loop rules. */
  actions?: ActionGuard | undefined;
  /** Stamps the Violation records of refusals. Default: the system clock. */
  clock?: Clock | undefined;
}

/**
 * A task budget kept in this process by a `BudgetTracker` (the task must be started on it), and
 * optionally an `ActionGuard` for the model's tool calls. A refusal gets its `Violation` built
 * here, once, and attached to the error.
 */
export function trackerSource(
  tracker: BudgetTracker,
  options: TrackerSourceOptions = {},
): BudgetSource {
  const clock = options.clock ?? systemClock;
  const guard = options.actions;
  const refused = <T>(work: () => T): T => {
    try {
      return work();
    } catch (error) {
      if (KernelError.is(error) && isRuleViolation(error) && !hasViolation(error)) {
        attachViolation(error, toViolation(error, clock.now()));
      }
      throw error;
    }
  };
  const source: BudgetSource = {
    checkUsageLeft: (taskId) => refused(() => tracker.checkUsageLeft(taskId)),
    recordUsage(taskId, usage) {
      const warnings: SpendWarning[] = [];
      const stop = tracker.onWarning(({ taskId: warned, budgetType, fraction }) => {
        warnings.push({ taskId: warned, budgetType, fraction });
      });
      try {
        refused(() => tracker.recordUsage(taskId, usage));
      } finally {
        stop();
      }
      return warnings;
    },
  };
  if (guard !== undefined) {
    source.recordToolCall = (taskId, call) => {
      refused(() => guard.observe({ taskId, tool: call.tool, args: call.args }));
    };
    source.recordToolResult = (taskId, result) => {
      refused(() => guard.recordResult(taskId, result));
    };
  }
  return source;
}

/** Options of {@link coordinationSource}. */
export interface CoordinationSourceOptions {
  /** The lease the agent holds on the task (`job.lease.id` in a worker). */
  leaseId?: string | undefined;
  /** Sends the model's tool calls to the service's action-loop rules. Default: `true`. */
  actions?: boolean | undefined;
}

/**
 * A task budget kept by the coordination service, on the task the agent holds a lease on: every
 * agent's spending is enforced there, a parent's budget shared by all its children. The service
 * records each refusal's Violation (an escalation) and the client attaches it to the error.
 */
export function coordinationSource(
  client: CoordinationClient,
  options: CoordinationSourceOptions = {},
): BudgetSource {
  const { leaseId } = options;
  const lease = leaseId === undefined ? {} : { leaseId };
  const source: BudgetSource = {
    async checkUsageLeft(taskId) {
      return (await client.checkUsage(taskId, lease)).remaining;
    },
    async recordUsage(taskId, usage) {
      const { warnings } = await client.usage(taskId, { ...usage, ...lease });
      // The service sends budget types as strings; they are core's BudgetType values.
      return warnings.map(({ taskId: warned, budgetType, fraction }) => ({
        taskId: warned,
        budgetType: budgetType as BudgetType,
        fraction,
      }));
    },
  };
  if (options.actions ?? true) {
    source.recordToolCall = async (taskId, call) => {
      await client.recordAction(taskId, { tool: call.tool, args: call.args, ...lease });
    };
    source.recordToolResult = async (taskId, result) => {
      await client.recordActionResult(taskId, { result, ...lease });
    };
  }
  return source;
}

function isRuleViolation(error: KernelError): boolean {
  return error.code === 'BUDGET_EXCEEDED' || error.code === 'LOOP_DETECTED';
}
