import type { ViolationRecord } from './protocol/types.js';

/** An error that carries the service's Violation record of a refused action. */
export interface CarriesViolation {
  readonly violation: ViolationRecord;
}

/**
 * Puts the Violation record on `error` as its `violation` property (read-only, enumerable, so a
 * log of the error shows it). After the call, TypeScript knows `error.violation` is there.
 */
export function attachViolation<E extends object>(
  error: E,
  violation: ViolationRecord,
): asserts error is E & CarriesViolation {
  Object.defineProperty(error, 'violation', { value: violation, enumerable: true });
}

/** Whether `error` carries a Violation record (a rule violation refused by the service). */
export function hasViolation<E>(error: E): error is E & CarriesViolation {
  return (
    typeof error === 'object' &&
    error !== null &&
    'violation' in error &&
    typeof error.violation === 'object' &&
    error.violation !== null
  );
}

/** The Violation record `error` carries, if any. */
export function violationOf(error: unknown): ViolationRecord | undefined {
  return hasViolation(error) ? error.violation : undefined;
}
