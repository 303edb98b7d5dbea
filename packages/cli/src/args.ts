import { type CommandContext, UsageError } from './context.js';

type Values = CommandContext['values'];

/** A string flag's value, if given. */
export function stringFlag(values: Values, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

/** A string flag that must be given and non-blank. */
export function requiredFlag(values: Values, name: string): string {
  const value = stringFlag(values, name);
  if (value === undefined || value.trim() === '')
    throw new UsageError(`Missing required option --${name}`);
  return value;
}

/**
 * A numeric flag's value, if given.
 *
 * @throws UsageError naming the flag when the value is not a number in range.
 */
export function numberFlag(
  values: Values,
  name: string,
  {
    integer = false,
    min = 0,
    exclusiveMin = false,
  }: { integer?: boolean; min?: number; exclusiveMin?: boolean } = {},
): number | undefined {
  const raw = stringFlag(values, name);
  if (raw === undefined) return undefined;
  const value = raw.trim() === '' ? Number.NaN : Number(raw);
  const inRange = exclusiveMin ? value > min : value >= min;
  if (!Number.isFinite(value) || !inRange || (integer && !Number.isInteger(value))) {
    const kind = integer ? 'an integer' : 'a number';
    const bound = exclusiveMin ? `greater than ${min}` : `at least ${min}`;
    throw new UsageError(`--${name} must be ${kind} ${bound}, got '${raw}'`);
  }
  return value;
}
