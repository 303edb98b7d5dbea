import {
  checkId,
  InvalidInputError,
  TASK_STATES,
  type TaskState,
  textProblem,
} from '@exec-kernel/core';

/** Our task states, as a set. */
export const STATES: ReadonlySet<string> = new Set<string>(TASK_STATES);

/** Throws `InvalidInputError` when core's text rule refuses `value` (ESC, NUL, a lone surrogate). */
export function checkText(value: string, field: string): void {
  const problem = textProblem(value);
  if (problem !== undefined) throw new InvalidInputError({ field, problem });
}

/** `id` checked by core's id rule and encoded as one path segment. */
export function segment(id: unknown, field: string): string {
  return encodeURIComponent(checkId(id, field));
}

/**
 * Paperclip's query for a list of issues: statuses (ours only) and an assignee (`null`: any).
 *
 * @throws InvalidInputError for an assignee core's id rule refuses, or a status not one of ours.
 */
export function listFilter(
  status: TaskState | TaskState[] | undefined,
  assignee: string | null,
): Record<string, string> {
  const searchParams: Record<string, string> = {};
  if (assignee !== null) searchParams.assigneeAgentId = checkId(assignee, 'assignee');
  if (status !== undefined) {
    const statuses: unknown[] = Array.isArray(status) ? status : [status];
    for (const s of statuses) {
      if (typeof s !== 'string' || !STATES.has(s)) {
        throw new InvalidInputError({
          field: 'status',
          problem: `must be one of ${[...STATES].join(', ')}`,
        });
      }
    }
    searchParams.status = statuses.join(',');
  }
  return searchParams;
}
