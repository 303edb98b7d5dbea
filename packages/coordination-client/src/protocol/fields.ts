import { idProblem, MAX_ID_LENGTH, textProblem } from '@exec-kernel/core';
import { z } from 'zod';

/**
 * What a zod issue carries when it stands for core's `InvalidInputError` (an id or a text that
 * breaks exec-kernel's rules): the app answers it as `INVALID_INPUT`, `Invalid <field>: <problem>`.
 * `field` is the name to show; without one, the issue's path is.
 */
export interface InvalidInputIssue {
  invalidInput: { problem: string; field?: string | undefined };
}

/** The `InvalidInputIssue` of a zod issue, if it is one. */
export function invalidInputOf(issue: {
  code: string;
  params?: unknown;
}): InvalidInputIssue['invalidInput'] | undefined {
  if (issue.code !== 'custom' || typeof issue.params !== 'object' || issue.params === null)
    return undefined;
  return (issue.params as Partial<InvalidInputIssue>).invalidInput;
}

/**
 * An id or a type under core's one id rule (`idProblem`: not blank, at most 200 characters, no
 * control characters, lone surrogates or edge whitespace, not `.` or `..`). `field` names it in
 * the message (`task id`); by default the request's own name for it is used (`parentId`).
 */
export function idField(field?: string): z.ZodString {
  return z
    .string()
    .min(1)
    .max(MAX_ID_LENGTH)
    .superRefine((value, ctx) => {
      const problem = idProblem(value);
      if (problem !== undefined)
        ctx.addIssue({
          code: 'custom',
          message: problem,
          params: { invalidInput: { problem, field } },
        });
    });
}

/** Free text of at most `max` characters: no control characters but tab and newlines, no lone surrogates. */
export function textField(max: number): z.ZodString {
  return z
    .string()
    .max(max)
    .superRefine((value, ctx) => {
      const problem = textProblem(value);
      if (problem !== undefined)
        ctx.addIssue({ code: 'custom', message: problem, params: { invalidInput: { problem } } });
    });
}

/**
 * A refinement for a value of any type that, when it is a string, must be free text of at most
 * `max` characters (see {@link textField}); other types pass, for a later rule to judge.
 */
export function checkTextValue(max: number): (value: unknown, ctx: z.RefinementCtx) => void {
  return (value, ctx) => {
    if (typeof value !== 'string') return;
    if (value.length > max) {
      ctx.addIssue({ code: 'custom', message: `must be at most ${max} characters` });
      return;
    }
    const problem = textProblem(value);
    if (problem !== undefined)
      ctx.addIssue({ code: 'custom', message: problem, params: { invalidInput: { problem } } });
  };
}

/** The schema {@link queryInteger} returns: decimal digits in, a number out. */
export type QueryInteger = z.ZodPipe<
  z.ZodPipe<z.ZodString, z.ZodTransform<number, string>>,
  z.ZodNumber
>;

/**
 * A whole number from a query string, from `min` to `max`: decimal digits only, so `1e3`, `0x10`,
 * ` 1`, `1.5` and the empty string are refused rather than read as something else.
 */
export function queryInteger(min: number, max: number): QueryInteger {
  return z
    .string()
    .regex(/^(0|[1-9][0-9]*)$/, { message: 'must be a whole number in decimal digits' })
    .transform(Number)
    .pipe(z.number().int().min(min).max(max))
    .meta({ type: 'integer', minimum: min, maximum: max });
}
