// The wire contract of the coordination service, with its zod schemas: what the service's `http/`
// validates and documents, and what the client's types are checked against.

export type { InvalidInputIssue, QueryInteger } from './fields.js';
export { checkTextValue, idField, invalidInputOf, queryInteger, textField } from './fields.js';
export type { IdParamSchema, ListShape } from './schemas.js';
export {
  AgentIdParam,
  AgentSchema,
  ClaimedSchema,
  ClaimManySchema,
  ClaimSchema,
  ClaimTaskSchema,
  EnqueueSchema,
  ErrorPayloadSchema,
  ErrorSchema,
  EscalateSchema,
  EscalationIdParam,
  EscalationSchema,
  EventSchema,
  HealthSchema,
  HeartbeatSchema,
  LeaseSchema,
  ListEscalationsQuery,
  ListQuery,
  ListTasksQuery,
  RegisterSchema,
  ReleaseSchema,
  ResolveSchema,
  SleepSchema,
  StepsSchema,
  StreamHeaders,
  StreamQuery,
  TaskIdParam,
  TaskResultSchema,
  TaskSchema,
  TaskStateSchema,
  TransitionManyResultSchema,
  TransitionManySchema,
  TransitionOneSchema,
  TransitionResultSchema,
  UsageSchema,
  ViolationInputSchema,
  ViolationSchema,
  WakeSchema,
  WarningSchema,
} from './schemas.js';
export { RULE_VIOLATION_CODES, STATUS_OF_CODE, statusOfCode } from './status.js';
export type * from './types.js';
