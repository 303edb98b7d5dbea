export type { Clock } from './clock.js';
export { ManualClock, systemClock, toIsoTime } from './clock.js';
export type {
  BudgetExceededDetails,
  BudgetType,
  ConfigErrorDetails,
  ConfigProblem,
  ConflictDetails,
  IdleEnforcementDetails,
  InvalidInputDetails,
  InvalidTransitionDetails,
  KernelErrorCode,
  KernelErrorJSON,
  KernelErrorOptions,
  LoopDetectionDetails,
  LoopType,
  NotFoundDetails,
  StoreErrorDetails,
  StoreProblem,
  TaskAdmissionDetails,
  TransportDetails,
} from './errors.js';
export {
  BudgetExceededError,
  ConfigError,
  ConflictError,
  formatAmount,
  IdleEnforcementError,
  InvalidInputError,
  InvalidTransitionError,
  KernelError,
  LoopDetectionError,
  NotFoundError,
  reviveKernelError,
  StoreError,
  TaskAdmissionError,
  TransportError,
} from './errors.js';
export { checkId, idProblem, isValidId, MAX_ID_LENGTH } from './ids.js';
export type { Unsubscribe } from './listener-set.js';
export { ListenerSet } from './listener-set.js';
export {
  isTaskState,
  isTerminalState,
  TASK_STATES,
  TaskState,
  TERMINAL_STATES,
} from './task-state.js';
export { textProblem, UNPAIRED_SURROGATE, UNPRINTABLE } from './text.js';
export type { Violation, ViolationKind } from './violation.js';
export { toViolation } from './violation.js';
