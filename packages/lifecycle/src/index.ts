// Re-exported so `import { TaskState, InvalidTransitionError } from '@exec-kernel/lifecycle'` works like the seed's module.
export {
  IdleEnforcementError,
  InvalidTransitionError,
  TaskAdmissionError,
  TaskState,
} from '@exec-kernel/core';
export type { AdmissionOptions, AdmissionProblems, TaskAdmission } from './admission.js';
export { ADMISSION_FIELDS, findAdmissionProblems, validateAdmission } from './admission.js';
export type {
  AdmissionRefusal,
  AdmissionRules,
  AdmitDecision,
  LoopRules,
  TaskCandidate,
} from './admit-task.js';
export { admitTask } from './admit-task.js';
export type {
  IdleEvent,
  IdleGuardJSON,
  IdleGuardOptions,
  SleepOptions,
  SleepRecord,
  SleepState,
  WakeReason,
  WakeRecord,
} from './idle-guard.js';
export { IdleGuard, idleRefusal } from './idle-guard.js';
export type {
  TaskLifecycleJSON,
  TaskLifecycleOptions,
  TransitionEvent,
  TransitionOptions,
  TransitionRecord,
} from './task-lifecycle.js';
export { TaskLifecycle } from './task-lifecycle.js';
export type { TransitionTable } from './transitions.js';
export {
  allowedTargets,
  canTransition,
  TRANSITIONS,
  transitionRefusal,
  validateTransition,
} from './transitions.js';
