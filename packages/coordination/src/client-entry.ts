// The client alone, kept for agents that import it from here: it now lives in
// `@exec-kernel/coordination-client` (no Hono, no database driver, no native build), which new code
// should depend on instead.

export type {
  AgentView,
  BudgetWarningView,
  Claimed,
  ClientOptions,
  EnqueueInput,
  EscalationView,
  EventView,
  ForwardedEscalation,
  Job,
  JobHandler,
  Lease,
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
