import { checkId, InvalidInputError, isValidId, TASK_STATES, textProblem } from '@exec-kernel/core';

/** Our task states, as a set. */
export const STATES: ReadonlySet<string> = new Set<string>(TASK_STATES);

/** What makes `value` unlike an issue Paperclip sends, in our words; `undefined` when it is one. */
export function issueProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'no issue';
  const issue = value as Record<string, unknown>;
  if (!isValidId(issue.id)) return 'an issue without a valid id';
  if (issue.identifier !== undefined && issue.identifier !== null && !isValidId(issue.identifier)) {
    return 'an issue without a valid identifier';
  }
  if (typeof issue.status !== 'string' || !STATES.has(issue.status)) {
    return 'an issue whose status is not one of ours';
  }
  return undefined;
}

/** Throws `InvalidInputError` when core's text rule refuses `value` (ESC, NUL, a lone surrogate). */
export function checkText(value: string, field: string): void {
  const problem = textProblem(value);
  if (problem !== undefined) throw new InvalidInputError({ field, problem });
}

/** `id` checked by core's id rule and encoded as one path segment. */
export function segment(id: unknown, field: string): string {
  return encodeURIComponent(checkId(id, field));
}

/** The admission case as a markdown list for the issue description. */
export function admissionBlock(admission: Record<string, unknown>): string {
  const labels: Record<string, string> = {
    consumer: 'Consumer',
    painPoint: 'Pain point',
    expectedValue: 'Expected value',
    validationPath: 'Validation',
  };
  return Object.entries(admission)
    .filter(([, v]) => typeof v === 'string' && v.trim() !== '')
    .map(([k, v]) => `- **${labels[k] ?? k}:** ${v as string}`)
    .join('\n');
}
