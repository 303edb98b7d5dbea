export type {
  BudgetWarningView,
  Claimed,
  ClientOptions,
  Job,
  JobHandler,
  TransitionResult,
  WorkOptions,
} from './client.js';
export { CoordinationClient, isUnavailable } from './client.js';
export type { ServiceErrorCode } from './errors.js';
export { ESCALATED_CODES, ServiceError } from './errors.js';
export type { ForwardedEscalation } from './escalation-sink.js';
export { coordinationSink } from './escalation-sink.js';
export type { AppEnv, AppOptions } from './http/app.js';
export { createApp } from './http/app.js';
export type { InternalErrorReport } from './http/guards.js';
export type { AgentView, EscalationView, EventView, TaskView } from './http/views.js';
export type { LeaseEndReason } from './lease.js';
export { isLeaseGone } from './lease.js';
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
export type { NodeFetchOptions } from './node-fetch.js';
export { createNodeFetch } from './node-fetch.js';
export type { CoordinationServer, ServerOptions } from './server.js';
export { startCoordinationServer } from './server.js';
export type {
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
} from './service.js';
export { CoordinationService, hashToken } from './service.js';
export { MemoryStorage } from './storage/memory.js';
export type { StorageOptions } from './storage/open.js';
export { openStorage } from './storage/open.js';
export type {
  ChangeSignal,
  ClaimEvent,
  ClaimRequest,
  Expectation,
  FollowingClaim,
  SpendingDelta,
  Storage,
  TaskChanges,
  TaskFilter,
  TaskUpdate,
  UpdateExtras,
} from './storage/storage.js';
