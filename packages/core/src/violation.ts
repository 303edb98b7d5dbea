import { toIsoTime } from './clock.js';
import type { KernelError, KernelErrorCode } from './errors.js';

/**
 * What rule a violation broke. Loop and budget violations name their rule
 * (`loop_cycle`, `budget_tokens`, …) so a consumer can act on the kind alone.
 */
export type ViolationKind =
  | 'invalid_transition'
  | 'loop_cycle'
  | 'loop_identity'
  | 'loop_depth'
  | 'loop_repeat'
  | 'loop_ping_pong'
  | 'loop_window'
  | 'loop_no_progress'
  | 'budget_steps'
  | 'budget_depth'
  | 'budget_duration'
  | 'budget_tokens'
  | 'budget_cost'
  | 'idle'
  | 'admission'
  | 'config'
  | 'conflict'
  | 'transport'
  | 'not_found'
  | 'store'
  | 'invalid_input'
  | 'forbidden'
  | 'validation'
  | 'other';

/**
 * A refused action as plain data: the same record in library results, `--json` CLI output, HTTP
 * error bodies and the escalation queue.
 */
export interface Violation {
  kind: ViolationKind;
  /** The error code behind it. */
  code: KernelErrorCode;
  taskId?: string;
  agentId?: string;
  /** The amount allowed, for budget, depth and action-loop violations. */
  limit?: number;
  /** The amount observed, for budget, depth and action-loop violations. */
  observed?: number;
  message: string;
  /** When it was refused (ISO-8601). */
  at: string;
  /** The error's remaining fields (chain, missing fields, from/to, …). */
  details: Record<string, unknown>;
}

function kindOf(error: KernelError): ViolationKind {
  const d = error.details;
  switch (error.code) {
    case 'INVALID_TRANSITION':
      return 'invalid_transition';
    case 'LOOP_DETECTED':
      return `loop_${d.loopType}` as ViolationKind;
    case 'BUDGET_EXCEEDED':
      return `budget_${d.budgetType}` as ViolationKind;
    case 'IDLE_ENFORCED':
      return 'idle';
    case 'TASK_ADMISSION':
      return 'admission';
    case 'CONFIG_INVALID':
      return 'config';
    case 'CONFLICT':
      return 'conflict';
    case 'TRANSPORT':
      return 'transport';
    case 'NOT_FOUND':
      return 'not_found';
    case 'STORE':
      return 'store';
    case 'INVALID_INPUT':
      return 'invalid_input';
    case 'FORBIDDEN':
      return 'forbidden';
    case 'VALIDATION':
      return 'validation';
    default:
      return 'other';
  }
}

/**
 * Turns a kernel error into its {@link Violation} record.
 *
 * @param at - when it happened, in ms since the epoch. Default: now.
 *
 * @example
 * ```ts
 * try { detector.checkNewTask('t2', 'agent-1', 'research', { createdByTaskId: 't1' }); }
 * catch (e) { if (KernelError.is(e)) queue.push(toViolation(e)); else throw e; }
 * ```
 */
export function toViolation(error: KernelError, at: number = Date.now()): Violation {
  const d = error.details;
  const violation: Violation = {
    kind: kindOf(error),
    code: error.code,
    message: error.message,
    at: toIsoTime(at),
    details: { ...d },
  };
  if (typeof d.taskId === 'string') violation.taskId = d.taskId;
  if (typeof d.agentId === 'string') violation.agentId = d.agentId;
  if (error.code === 'BUDGET_EXCEEDED') {
    violation.limit = d.limit as number;
    violation.observed = d.observed as number;
  } else if (error.code === 'LOOP_DETECTED' && d.loopType === 'depth') {
    violation.limit = d.maxDepth as number;
    violation.observed = d.depth as number;
  } else if (error.code === 'LOOP_DETECTED' && typeof d.blockAt === 'number') {
    // An action loop allows blockAt - 1 of the pattern; the refused call is the one that reached it.
    violation.limit = d.blockAt - 1;
    violation.observed = d.count as number;
  }
  return violation;
}

/** An error that carries the Violation record of the refusal it reports (`error.violation`). */
export interface CarriesViolation<V extends object = Violation> {
  readonly violation: V;
}

/**
 * Puts the Violation record on `error` as its `violation` property (read-only, enumerable, so a
 * log of the error shows it). After the call, TypeScript knows `error.violation` is there.
 */
export function attachViolation<E extends object, V extends object = Violation>(
  error: E,
  violation: V,
): asserts error is E & CarriesViolation<V> {
  Object.defineProperty(error, 'violation', { value: violation, enumerable: true });
}

/** Whether `error` carries a Violation record (see {@link attachViolation}). */
export function hasViolation<E, V extends object = Violation>(
  error: E,
): error is E & CarriesViolation<V> {
  return (
    typeof error === 'object' &&
    error !== null &&
    'violation' in error &&
    typeof error.violation === 'object' &&
    error.violation !== null
  );
}

/** The Violation record `error` carries, if any. */
export function violationOf<V extends object = Violation>(error: unknown): V | undefined {
  return hasViolation<unknown, V>(error) ? error.violation : undefined;
}
