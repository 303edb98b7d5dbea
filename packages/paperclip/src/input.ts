import { checkId, InvalidInputError, TASK_STATES, textProblem } from '@exec-kernel/core';

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
