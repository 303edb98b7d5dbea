export { ACTIONS_DOCUMENT_KEY } from './actions.js';
export { PaperclipAdapter } from './adapter.js';
export type { Escalation, EscalationHookOptions, EscalationSink } from './escalation.js';
export { callbackSink, EscalationHook, issueCommentSink, refusalLine } from './escalation.js';
export { apiBase } from './http.js';
export type { TaskMarker } from './marker.js';
export { readMarker, withMarker } from './marker.js';
export type { PaperclipAdapterOptions } from './options.js';
export type { JsonValue, TaskContext, TaskNote } from './task-context.js';
export { CONTEXT_DOCUMENT_KEY } from './task-context.js';
export type {
  CreatedTask,
  CreateTaskOptions,
  StepOptions,
  TaskSteps,
  TaskTransitionEvent,
  TransitionedTask,
  TransitionTaskOptions,
  WaitForWorkOptions,
  WaitResult,
} from './task-types.js';
export type { InboxItem, IssuePriority, PaperclipIssue } from './types.js';
