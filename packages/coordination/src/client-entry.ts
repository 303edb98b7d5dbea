// The client alone, for agents that talk to a service and never run one: importing
// `@exec-kernel/coordination/client` loads neither Hono nor a database driver.

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
export type { ForwardedEscalation } from './escalation-sink.js';
export { coordinationSink } from './escalation-sink.js';
export type { AgentView, EscalationView, EventView, TaskView } from './http/views.js';
export type { LeaseEndReason } from './lease.js';
export { isLeaseGone } from './lease.js';
export type { NodeFetchOptions } from './node-fetch.js';
export { createNodeFetch } from './node-fetch.js';
export type { EnqueueInput, Lease } from './service.js';
