// The wire contract of the coordination service, with its zod schemas: what the service's `http/`
// validates and documents, and what the client's types are checked against.

export type { InvalidInputIssue, QueryInteger } from './fields.js';
export { checkTextValue, idField, invalidInputOf, queryInteger, textField } from './fields.js';
export type { IdParamSchema, ListShape } from './requests.js';
export {
  ActionResultSchema,
  ActionSchema,
  AgentIdParam,
  ClaimManySchema,
  ClaimSchema,
  ClaimTaskSchema,
  ContextKeyParams,
  ContextSetSchema,
  EnqueueSchema,
  EscalateSchema,
  EscalationIdParam,
  HeartbeatSchema,
  ListEscalationsQuery,
  ListQuery,
  ListTasksQuery,
  NoteSchema,
  RegisterSchema,
  ReleaseSchema,
  ResolveSchema,
  SleepSchema,
  StepsSchema,
  StreamHeaders,
  StreamQuery,
  TaskIdParam,
  TransitionManySchema,
  TransitionOneSchema,
  UsageCheckSchema,
  UsageSchema,
  ViolationInputSchema,
  WakeSchema,
} from './requests.js';
export { RULE_VIOLATION_CODES, STATUS_OF_CODE, statusOfCode } from './status.js';
export type * from './types.js';
export {
  ActionCheckSchema,
  ActionHistorySchema,
  ActionResultResultSchema,
  ActionWarningSchema,
  AgentSchema,
  ClaimedSchema,
  ErrorPayloadSchema,
  ErrorSchema,
  EscalationSchema,
  EventSchema,
  HealthSchema,
  LeaseSchema,
  NoteViewSchema,
  TaskContextSchema,
  TaskResultSchema,
  TaskSchema,
  TaskStateSchema,
  TransitionManyResultSchema,
  TransitionResultSchema,
  UsageCheckResultSchema,
  ViolationSchema,
  WarningSchema,
} from './views.js';
