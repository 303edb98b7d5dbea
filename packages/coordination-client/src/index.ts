// The client of the coordination service. Nothing here loads zod, Hono or a database driver: the
// schemas are at `@exec-kernel/coordination-client/protocol`, for those who validate.

export type { ClientOptions, TransitionResult } from './client.js';
export { CoordinationClient } from './client.js';
export { isUnavailable } from './errors.js';
export type { ForwardedEscalation } from './escalation-sink.js';
export { coordinationSink } from './escalation-sink.js';
export type { LeaseEndReason } from './lease.js';
export { isLeaseGone } from './lease.js';
export type { NodeFetchOptions } from './node-fetch.js';
export { createNodeFetch } from './node-fetch.js';
export { RULE_VIOLATION_CODES, STATUS_OF_CODE, statusOfCode } from './protocol/status.js';
export type {
  ActionCallView,
  ActionCheckView,
  ActionHistoryView,
  ActionRequest,
  ActionResultRequest,
  ActionWarningView,
  AgentListItemView,
  AgentView,
  BudgetWarningView,
  Claimed,
  EnqueueInput,
  ErrorBody,
  ErrorPayload,
  EscalationKind,
  EscalationStatus,
  EscalationView,
  EventView,
  HealthView,
  Lease,
  LimitsInput,
  NoteView,
  TaskContextView,
  TaskView,
  UsageCheckView,
  ViolationInput,
  ViolationRecord,
} from './protocol/types.js';
export type { CarriesViolation } from './violation.js';
export { attachViolation, hasViolation, violationOf } from './violation.js';
export type { Job, JobHandler, WorkOptions } from './worker.js';
export { isLeaseLost, work } from './worker.js';
