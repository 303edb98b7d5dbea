import { InvalidInputError } from './request-errors.js';
import { UNPAIRED_SURROGATE, UNPRINTABLE } from './text.js';

/** The longest id exec-kernel accepts, in UTF-16 code units (what `string.length` counts). */
export const MAX_ID_LENGTH = 200;

const EDGE_SPACE = /^\s|\s$/;

/**
 * Why `value` is not a valid id, or `undefined` when it is. The one id rule of every exec-kernel
 * surface (CLI, state file, coordination service, Paperclip adapter): a string of 1 to
 * {@link MAX_ID_LENGTH} characters, not blank, without whitespace at either end, without control
 * characters or lone surrogates, and not `.` or `..` (which a URL would read as a path step).
 */
export function idProblem(value: unknown): string | undefined {
  if (typeof value !== 'string') return 'must be a string';
  if (value.length === 0) return 'must not be empty';
  if (value.trim() === '') return 'must not be blank';
  if (value.length > MAX_ID_LENGTH)
    return `must be at most ${MAX_ID_LENGTH} characters, got ${value.length}`;
  if (UNPRINTABLE.test(value)) return 'must not contain control characters';
  if (UNPAIRED_SURROGATE.test(value)) return 'must not contain unpaired surrogates';
  if (EDGE_SPACE.test(value)) return 'must not start or end with whitespace';
  if (value === '.' || value === '..') return `must not be '${value}'`;
  return undefined;
}

/** Whether `value` is a valid id under {@link idProblem}'s rule. A type guard. */
export function isValidId(value: unknown): value is string {
  return idProblem(value) === undefined;
}

/**
 * Returns `value` when it is a valid id under {@link idProblem}'s rule.
 *
 * @param field - names the value in the message, e.g. `task id`. Default: `id`.
 * @throws InvalidInputError `Invalid <field>: <problem>` otherwise.
 *
 * @example
 * ```ts
 * checkId('task-1', 'task id'); //=> 'task-1'
 * checkId(' ', 'task id'); // throws: Invalid task id: must not be blank
 * ```
 */
export function checkId(value: unknown, field = 'id'): string {
  const problem = idProblem(value);
  if (problem !== undefined) throw new InvalidInputError({ field, problem });
  return value as string;
}
