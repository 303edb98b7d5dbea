export type { Clock } from './clock.js';
export { ManualClock, systemClock, toIsoTime } from './clock.js';
export type {
  ActionCallRef,
  ActionLoopType,
  BudgetExceededDetails,
  BudgetType,
  IdleEnforcementDetails,
  InvalidTransitionDetails,
  KernelErrorCode,
  KernelErrorJSON,
  KernelErrorOptions,
  LoopDetectionDetails,
  LoopType,
  TaskAdmissionDetails,
  TaskLoopType,
} from './errors.js';
export {
  actionLoopText,
  BudgetExceededError,
  formatAmount,
  IdleEnforcementError,
  InvalidTransitionError,
  KernelError,
  LoopDetectionError,
  TaskAdmissionError,
} from './errors.js';
export { checkId, idProblem, isValidId, MAX_ID_LENGTH } from './ids.js';
export type { Unsubscribe } from './listener-set.js';
export { ListenerSet } from './listener-set.js';
export type {
  ConfigErrorDetails,
  ConfigProblem,
  ConflictDetails,
  ForbiddenDetails,
  InvalidInputDetails,
  NotFoundDetails,
  StoreErrorDetails,
  StoreProblem,
  TransportDetails,
  ValidationDetails,
  ValidationIssue,
} from './request-errors.js';
export {
  ConfigError,
  ConflictError,
  ForbiddenError,
  InvalidInputError,
  NotFoundError,
  StoreError,
  TransportError,
  ValidationError,
} from './request-errors.js';
export { reviveKernelError } from './revive.js';
export {
  isTaskState,
  isTerminalState,
  TASK_STATES,
  TaskState,
  TERMINAL_STATES,
} from './task-state.js';
export { textProblem, UNPAIRED_SURROGATE, UNPRINTABLE } from './text.js';
export type { CarriesViolation, Violation, ViolationKind } from './violation.js';
export { attachViolation, hasViolation, toViolation, violationOf } from './violation.js';
