import {
  attachViolation as attachRecord,
  type CarriesViolation as CarriesRecord,
  hasViolation as hasRecord,
} from '@exec-kernel/core';
import type { ViolationRecord } from './protocol/types.js';

// Core's helpers, typed with the record as it travels (optional fields possibly `undefined`).

/** An error that carries the service's Violation record of a refused action. */
export type CarriesViolation = CarriesRecord<ViolationRecord>;

/**
 * Puts the Violation record on `error` as its `violation` property (read-only, enumerable, so a
 * log of the error shows it). After the call, TypeScript knows `error.violation` is there.
 */
export function attachViolation<E extends object>(
  error: E,
  violation: ViolationRecord,
): asserts error is E & CarriesViolation {
  attachRecord(error, violation);
}

/** Whether `error` carries a Violation record (a rule violation refused by the service). */
export function hasViolation<E>(error: E): error is E & CarriesViolation {
  return hasRecord<E, ViolationRecord>(error);
}

/** The Violation record `error` carries, if any. */
export function violationOf(error: unknown): ViolationRecord | undefined {
  return hasViolation(error) ? error.violation : undefined;
}
