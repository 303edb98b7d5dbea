import { TaskAdmissionError } from '@exec-kernel/core';

/**
 * The case for a new task: who it is for, what hurts them, what fixing it is worth, and how anyone
 * will know it worked. An agent with no such case is inventing work.
 */
export interface TaskAdmission {
  consumer: string;
  painPoint: string;
  expectedValue: string;
  validationPath: string;
}

/** The admission fields required by default, in the order problems are reported. */
export const ADMISSION_FIELDS: readonly (keyof TaskAdmission)[] = Object.freeze([
  'consumer',
  'painPoint',
  'expectedValue',
  'validationPath',
]);

/** Options of {@link validateAdmission}. */
export interface AdmissionOptions {
  /**
   * The fields that must be present and non-blank (config `admission.required`).
   * Default: {@link ADMISSION_FIELDS}.
   */
  required?: readonly string[] | undefined;
  /** Named in the error message when given. */
  taskId?: string | undefined;
}

/** What is wrong with an admission: absent or blank fields, and fields of the wrong kind. */
export interface AdmissionProblems {
  missing: string[];
  invalid: Array<{ field: string; problem: string }>;
}

/**
 * Lists every problem with `input` at once, without throwing. Pure.
 * A required field is missing when absent, `null` or blank (whitespace only); any field is invalid
 * when present (not `null`) but not a string.
 */
export function findAdmissionProblems(
  input: unknown,
  required: readonly string[] = ADMISSION_FIELDS,
): AdmissionProblems {
  const fields =
    typeof input === 'object' && input !== null ? (input as Record<string, unknown>) : {};
  const missing: string[] = [];
  const invalid: Array<{ field: string; problem: string }> = [];
  for (const field of required) {
    const value = Object.hasOwn(fields, field) ? fields[field] : undefined;
    if (value === undefined || value === null) missing.push(field);
    else if (typeof value !== 'string')
      invalid.push({ field, problem: `must be a string, got ${typeof value}` });
    else if (value.trim() === '') missing.push(field);
  }
  // Fields beyond the required ones are kept as given, so they must be text too (a number would
  // otherwise pass here and be dropped by the store).
  const requiredSet = new Set(required);
  for (const [field, value] of Object.entries(fields)) {
    if (requiredSet.has(field) || value === undefined || value === null) continue;
    if (typeof value !== 'string')
      invalid.push({ field, problem: `must be a string, got ${typeof value}` });
  }
  return { missing, invalid };
}

/**
 * Checks that a new task's admission case is complete.
 *
 * @throws TaskAdmissionError naming every missing, blank or mistyped required field at once.
 *
 * @example
 * ```ts
 * validateAdmission({ consumer: 'end-user', painPoint: 'login page is slow' });
 * // throws: Task refused: admission incomplete: missing expectedValue, validationPath
 * ```
 */
export function validateAdmission(input: unknown, options: AdmissionOptions = {}): void {
  const problems = findAdmissionProblems(input, options.required);
  if (problems.missing.length > 0 || problems.invalid.length > 0) {
    throw new TaskAdmissionError({ ...problems, taskId: options.taskId });
  }
}
