import { type BudgetLimits, evaluateBudget } from '@exec-kernel/budget';
import { isTerminalState, NotFoundError, toIsoTime } from '@exec-kernel/core';
import type { IssueDocuments } from './documents.js';
import type { TaskSteps } from './task-types.js';
import type { PaperclipIssue } from './types.js';

/** The issue document that holds a task's step count and when its first step was. */
export const BUDGET_DOCUMENT_KEY = 'exec-kernel-budget';

/**
 * Adds `count` steps to `issue`'s budget document and checks the budget with `evaluateBudget`:
 * the steps are written first, so a refused step is still counted.
 *
 * @throws BudgetExceededError for the first limit exceeded (steps, then duration).
 * @throws NotFoundError when the issue is done or cancelled (its budget is closed).
 */
export async function countSteps(
  documents: IssueDocuments,
  issue: PaperclipIssue,
  count: number,
  now: number,
  limits: Readonly<BudgetLimits>,
): Promise<TaskSteps> {
  const name = issue.identifier ?? issue.id;
  if (isTerminalState(issue.status)) {
    throw new NotFoundError(
      { resource: 'open budget', id: name },
      { message: `Task ${name} is ${issue.status}; its budget is closed` },
    );
  }
  const { result } = await documents.update(
    issue,
    BUDGET_DOCUMENT_KEY,
    'exec-kernel budget',
    (b) => {
      const taken = typeof b.stepsTaken === 'number' ? b.stepsTaken : 0;
      const read = typeof b.startedAt === 'string' ? Date.parse(b.startedAt) : Number.NaN;
      // The clock starts at the first step (an unreadable start restarts it).
      const started = Number.isFinite(read) ? read : now;
      b.stepsTaken = taken + count;
      b.startedAt = toIsoTime(started);
      return { stepsTaken: taken + count, elapsedSeconds: Math.max(0, now - started) / 1000 };
    },
  );
  const exceeded = evaluateBudget(name, result, limits);
  if (exceeded !== undefined) throw exceeded;
  return {
    taskId: issue.id,
    identifier: issue.identifier,
    stepsTaken: result.stepsTaken,
    maxSteps: limits.maxSteps,
    remaining: Math.max(0, limits.maxSteps - result.stepsTaken),
    elapsedSeconds: result.elapsedSeconds,
  };
}
