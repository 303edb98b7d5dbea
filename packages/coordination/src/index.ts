export type {
  AgentView,
  BudgetWarningView,
  Claimed,
  ClientOptions,
  EscalationView,
  EventView,
  ForwardedEscalation,
  Job,
  JobHandler,
  LeaseEndReason,
  NodeFetchOptions,
  TaskView,
  TransitionResult,
  WorkOptions,
} from '@exec-kernel/coordination-client';
export {
  CoordinationClient,
  coordinationSink,
  createNodeFetch,
  isLeaseGone,
  isUnavailable,
} from '@exec-kernel/coordination-client';
export type { ServiceErrorCode } from './errors.js';
export { ESCALATED_CODES, ServiceError } from './errors.js';
export type { AppEnv, AppOptions } from './http/app.js';
export { createApp } from './http/app.js';
export type { InternalErrorReport } from './http/guards.js';
export type {
  AgentRow,
  EscalationKind,
  EscalationRow,
  EscalationStatus,
  EventRow,
  JsonValue,
  NewEscalationRow,
  NewEvent,
  NewTaskRow,
  TaskRow,
} from './model.js';
export type { CoordinationServer, ServerOptions } from './server.js';
export { startCoordinationServer } from './server.js';
export type {
  ActionHistorySummary,
  ActionInput,
  ActionResultInput,
  Caller,
  ClaimOptions,
  EnqueueInput,
  EscalationInput,
  Lease,
  Moved,
  NextClaim,
  ServiceCounters,
  ServiceSettings,
  SpendDelta,
  SpendWarning,
  TransitionOutcome,
  TransitionRequest,
  UsageLeft,
} from './service.js';
export { CoordinationService, hashToken } from './service.js';
export { MemoryStorage } from './storage/memory.js';
export type { StorageOptions } from './storage/open.js';
export { openStorage } from './storage/open.js';
export type {
  ActionStep,
  AgentHolding,
  AgentListFilter,
  ChangeSignal,
  ClaimEvent,
  ClaimRequest,
  Expectation,
  FollowingClaim,
  SpendingDelta,
  Storage,
  TaskChanges,
  TaskContext,
  TaskFilter,
  TaskNote,
  TaskUpdate,
  UpdateExtras,
} from './storage/storage.js';
