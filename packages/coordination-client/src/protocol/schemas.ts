// The zod schemas of the wire contract. `.meta()` carries the OpenAPI names and descriptions: the
// service's OpenAPI generator reads zod's own metadata, so these plain schemas need no extension.
import { LIMIT_MAXIMUMS } from '@exec-kernel/budget';
import {
  type KernelErrorCode,
  TASK_STATES,
  type TaskState,
  type ViolationKind,
} from '@exec-kernel/core';
import { z } from 'zod';
import { checkTextValue, idField, type QueryInteger, queryInteger, textField } from './fields.js';
import type {
  AgentView,
  BudgetWarningView,
  Claimed,
  ClaimManyRequest,
  ClaimRequest,
  EnqueueInput,
  ErrorBody,
  ErrorPayload,
  EscalateRequest,
  EscalationView,
  EventView,
  HealthView,
  Lease,
  LeaseRequest,
  RegisterAgentRequest,
  ResolveRequest,
  SleepRequest,
  StepsRequest,
  TaskView,
  TransitionManyRequest,
  TransitionManyResponse,
  TransitionOneRequest,
  TransitionResponse,
  UsageRequest,
  ViolationInput,
  ViolationRecord,
  WakeRequest,
} from './types.js';

const STATES = TASK_STATES as [TaskState, ...TaskState[]];

/** A task state; refused with the list of the states there are. */
export const TaskStateSchema: z.ZodEnum<{ [S in TaskState]: S }> = z
  .enum(STATES, { error: () => `must be one of ${STATES.join(', ')}` })
  .meta({ example: 'todo' });

const id = idField();
const anyJson: z.ZodType<unknown> = z.unknown();
const isString = (value: unknown) => typeof value === 'string';

// --- views -------------------------------------------------------------------------------------

/** A task as the API shows it: times as ISO-8601, `null` where unset. */
export const TaskSchema: z.ZodType<TaskView> = z
  .object({
    id: z.string(),
    seq: z.number().int(),
    type: z.string(),
    title: z.string().nullable(),
    state: TaskStateSchema,
    priority: z.number(),
    agentId: z.string(),
    parentId: z.string().nullable(),
    createdById: z.string().nullable(),
    depth: z.number().int(),
    admission: z.record(z.string(), z.string()).nullable(),
    payload: anyJson,
    idempotencyKey: z.string().nullable(),
    attempts: z.number().int(),
    maxAttempts: z.number().int(),
    leaseOwner: z.string().nullable(),
    leaseUntil: z.string().nullable(),
    limits: z.object({
      maxSteps: z.number(),
      maxDepth: z.number(),
      maxDurationSeconds: z.number(),
      maxTokens: z.number().nullable(),
      maxCostUsd: z.number().nullable(),
    }),
    stepsTaken: z.number(),
    tokens: z.number(),
    costUsd: z.number(),
    startedAt: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({ id: 'Task' });

/** A lease: its id and its end. */
export const LeaseSchema: z.ZodType<Lease> = z
  .object({ id: z.string(), until: z.string() })
  .meta({ id: 'Lease' });

/** An agent as the API shows it (never its token). */
export const AgentSchema: z.ZodType<AgentView> = z
  .object({
    id: z.string(),
    asleep: z.boolean(),
    sleepUntil: z.string().nullable(),
    sleepReason: z.string().nullable(),
    createdAt: z.string(),
  })
  .meta({ id: 'Agent' });

// The service writes these records itself: their kind and code are core's (typed as such).
const violationKind = z.custom<ViolationKind>(isString).meta({ type: 'string' });
const violationCode = z.custom<KernelErrorCode>(isString).meta({ type: 'string' });

/** A refused action as plain data (core's `Violation`). */
export const ViolationSchema: z.ZodType<ViolationRecord> = z
  .object({
    kind: violationKind,
    code: violationCode,
    taskId: z.string().optional(),
    agentId: z.string().optional(),
    limit: z.number().optional(),
    observed: z.number().optional(),
    message: z.string(),
    at: z.string(),
    details: z.record(z.string(), z.unknown()),
  })
  .meta({ id: 'Violation' });

/** An escalation as the API shows it. */
export const EscalationSchema: z.ZodType<EscalationView> = z
  .object({
    id: z.string(),
    seq: z.number().int(),
    kind: z.enum(['violation', 'blocked', 'attempts_exhausted']),
    status: z.enum(['open', 'acknowledged', 'resolved']),
    taskId: z.string().nullable(),
    agentId: z.string().nullable(),
    violation: ViolationSchema.nullable(),
    comment: z.string().nullable(),
    createdAt: z.string(),
    acknowledgedAt: z.string().nullable(),
    acknowledgedBy: z.string().nullable(),
    resolvedAt: z.string().nullable(),
    resolvedBy: z.string().nullable(),
    resolution: z.string().nullable(),
  })
  .meta({ id: 'Escalation' });

/** An event as the API shows it. */
export const EventSchema: z.ZodType<EventView> = z
  .object({
    seq: z.number().int(),
    type: z.string(),
    taskId: z.string().nullable(),
    agentId: z.string().nullable(),
    data: anyJson,
    at: z.string(),
  })
  .meta({ id: 'Event' });

/** The `error` object of an error body. */
export const ErrorPayloadSchema: z.ZodType<ErrorPayload> = z.object({
  code: z.string().meta({ example: 'LOOP_DETECTED' }),
  message: z.string(),
  details: z.record(z.string(), z.unknown()).optional(),
  violation: ViolationSchema.optional(),
});

/** Every error the service answers: `{ error: { code, message, details?, violation? } }`. */
export const ErrorSchema: z.ZodType<ErrorBody> = z
  .object({ error: ErrorPayloadSchema })
  .meta({ id: 'Error' });

/** `/healthz`. */
export const HealthSchema: z.ZodType<HealthView> = z
  .object({
    status: z.enum(['ok', 'unhealthy']),
    storage: z.string().meta({ example: 'sqlite' }),
    location: z
      .string()
      .optional()
      .meta({ description: 'Where the database is; shown to the admin only.' }),
  })
  .meta({ id: 'Health' });

/** A budget warning fired by a step or usage. */
export const WarningSchema: z.ZodType<BudgetWarningView> = z.object({
  taskId: z.string(),
  budgetType: z.string(),
  fraction: z.number(),
});

// --- requests ----------------------------------------------------------------------------------

const limitsInput = z
  .object({
    maxSteps: z.number().int().min(0).max(LIMIT_MAXIMUMS.maxSteps).optional(),
    maxDepth: z.number().int().min(0).max(LIMIT_MAXIMUMS.maxDepth).optional(),
    maxDurationSeconds: z.number().min(0).max(LIMIT_MAXIMUMS.maxDurationSeconds).optional(),
    maxTokens: z.number().int().min(0).max(LIMIT_MAXIMUMS.maxTokens).nullable().optional(),
    maxCostUsd: z.number().min(0).max(LIMIT_MAXIMUMS.maxCostUsd).nullable().optional(),
  })
  .strict();

/** Admission answers: strings up to 10,000 characters (the kernel names any that are not strings). */
const admissionInput = z.record(
  z.string().max(100),
  z.unknown().superRefine(checkTextValue(10_000)),
);

/** `POST /v1/tasks`. */
export const EnqueueSchema: z.ZodType<EnqueueInput> = z
  .object({
    id: id.optional().meta({ description: 'Default: a generated `tsk_…` id.' }),
    type: idField(),
    title: textField(1000).optional(),
    priority: z.number().int().min(-1_000_000).max(1_000_000).optional(),
    parentId: id.optional(),
    createdById: id.optional(),
    admission: admissionInput.optional(),
    payload: anyJson.optional(),
    budget: limitsInput.optional(),
    maxAttempts: z.number().int().min(1).max(1000).optional(),
    idempotencyKey: textField(255).min(1).optional(),
    agentId: id.optional().meta({ description: 'Admin only: enqueue for this agent.' }),
    state: z.enum(['todo', 'backlog']).optional(),
  })
  .strict()
  .meta({ id: 'EnqueueRequest' });

const claimShape = {
  types: z.array(idField()).max(100).optional(),
  leaseSeconds: z.number().positive().optional(),
  waitSeconds: z.number().min(0).optional(),
};

/** `POST /v1/tasks/claim`. */
export const ClaimSchema: z.ZodType<ClaimRequest> = z
  .object(claimShape)
  .strict()
  .meta({ id: 'ClaimRequest' });

/** `POST /v1/tasks/claim-many`. */
export const ClaimManySchema: z.ZodType<ClaimManyRequest> = z
  .object({ ...claimShape, max: z.number().int().min(1).max(100) })
  .strict()
  .meta({ id: 'ClaimManyRequest' });

const leaseRequest = z
  .object({ leaseId: idField().optional(), leaseSeconds: z.number().positive().optional() })
  .strict();

/** `POST /v1/tasks/{id}/heartbeat`. */
export const HeartbeatSchema: z.ZodType<LeaseRequest> = leaseRequest;

/** `POST /v1/tasks/{id}/claim`. */
export const ClaimTaskSchema: z.ZodType<Pick<LeaseRequest, 'leaseSeconds'>> = leaseRequest.pick({
  leaseSeconds: true,
});

/** `POST /v1/tasks/{id}/release`. */
export const ReleaseSchema: z.ZodType<Pick<LeaseRequest, 'leaseId'>> = leaseRequest.pick({
  leaseId: true,
});

const transitionShape = {
  to: idField().meta({ example: 'done' }),
  leaseId: idField().optional(),
  comment: textField(10_000).optional(),
};

const transitionRequest = z.object(transitionShape).strict().meta({ id: 'TransitionRequest' });

const nextClaimShape = {
  types: z.array(idField()).max(100).optional(),
  leaseSeconds: z.number().positive().optional(),
};

const nextClaim = z.object(nextClaimShape).strict().meta({
  id: 'NextClaim',
  description:
    'Claim the next task in the same request, once the transition has committed (agents only; never waits).',
});

/** `POST /v1/tasks/{id}/transition`. */
export const TransitionOneSchema: z.ZodType<TransitionOneRequest> = z
  .object({ ...transitionShape, next: nextClaim.optional() })
  .strict()
  .meta({ id: 'TransitionOneRequest' });

/** `POST /v1/tasks/transition-many`. */
export const TransitionManySchema: z.ZodType<TransitionManyRequest> = z
  .object({
    transitions: z
      .array(z.object({ ...transitionShape, id }).strict())
      .min(1)
      .max(100),
    next: z
      .object({ ...nextClaimShape, max: z.number().int().min(1).max(100) })
      .strict()
      .optional(),
  })
  .strict()
  .meta({ id: 'TransitionManyRequest' });

/** `POST /v1/tasks/{id}/steps`. */
export const StepsSchema: z.ZodType<StepsRequest> = z
  .object({
    count: z.number().int().min(1).max(1_000_000).optional(),
    leaseId: idField().optional(),
  })
  .strict();

/** `POST /v1/tasks/{id}/usage`. */
export const UsageSchema: z.ZodType<UsageRequest> = z
  .object({
    tokens: z.number().int().min(0).max(LIMIT_MAXIMUMS.maxTokens).optional(),
    costUsd: z.number().min(0).max(LIMIT_MAXIMUMS.maxCostUsd).optional(),
    leaseId: idField().optional(),
  })
  .strict();

/** `POST /v1/agents/{id}/sleep`. */
export const SleepSchema: z.ZodType<SleepRequest> = z
  .object({
    timeoutSeconds: z.number().positive().max(31_536_000).optional(),
    reason: textField(200).optional(),
  })
  .strict();

/** `POST /v1/agents/{id}/wake`. */
export const WakeSchema: z.ZodType<WakeRequest> = z
  .object({ reason: z.enum(['woken', 'task_available']).optional() })
  .strict();

/** `POST /v1/escalations/{id}/resolve`. */
export const ResolveSchema: z.ZodType<ResolveRequest> = z
  .object({ resolution: textField(10_000).optional(), requeue: z.boolean().optional() })
  .strict();

/** `POST /v1/agents`. */
export const RegisterSchema: z.ZodType<RegisterAgentRequest> = z.object({ id }).strict();

/** A Violation record as an agent reports it. */
export const ViolationInputSchema: z.ZodType<ViolationInput> = z
  .object({
    kind: idField(),
    code: idField(),
    taskId: id.optional(),
    agentId: id.optional(),
    limit: z.number().optional(),
    observed: z.number().optional(),
    message: textField(10_000),
    at: textField(100),
    details: z.record(z.string().max(100), z.unknown()),
  })
  .meta({ id: 'ViolationInput' });

/** `POST /v1/escalations`. */
export const EscalateSchema: z.ZodType<EscalateRequest> = z
  .object({
    kind: z.enum(['blocked', 'violation']),
    taskId: id.optional(),
    comment: textField(10_000).optional(),
    violation: ViolationInputSchema.optional(),
  })
  .strict()
  .meta({ id: 'EscalateRequest' });

// --- path parameters and queries ---------------------------------------------------------------

/** A path of `/…/{id}`; `field` names the id in messages (`task id`). */
export type IdParamSchema = z.ZodObject<{ id: z.ZodString }, z.core.$strip>;

const idParam = (field: string): IdParamSchema =>
  z.object({ id: idField(field).meta({ param: { name: 'id', in: 'path' } }) });

/** `/v1/tasks/{id}/…`. */
export const TaskIdParam: IdParamSchema = idParam('task id');
/** `/v1/agents/{id}/…`. */
export const AgentIdParam: IdParamSchema = idParam('agent id');
/** `/v1/escalations/{id}/…`. */
export const EscalationIdParam: IdParamSchema = idParam('escalation id');

type Optional<T extends z.ZodType> = z.ZodOptional<T>;

/** The cursor of a list: `after` a seq, at most `limit` items. */
export type ListShape = {
  after: Optional<QueryInteger>;
  limit: Optional<QueryInteger>;
};

const listShape: ListShape = {
  after: queryInteger(0, Number.MAX_SAFE_INTEGER).optional(),
  limit: queryInteger(1, 1000).optional(),
};

/** `GET /v1/events`. */
export const ListQuery: z.ZodObject<ListShape, z.core.$strict> = z.object(listShape).strict();

/** `GET /v1/tasks`. */
export const ListTasksQuery: z.ZodObject<
  ListShape & {
    state: Optional<typeof TaskStateSchema>;
    type: Optional<z.ZodString>;
    agentId: Optional<z.ZodString>;
    leaseOwner: Optional<z.ZodString>;
  },
  z.core.$strict
> = z
  .object({
    ...listShape,
    state: TaskStateSchema.optional(),
    type: idField().optional(),
    agentId: idField().optional(),
    leaseOwner: idField().optional(),
  })
  .strict();

/** `GET /v1/escalations`. */
export const ListEscalationsQuery: z.ZodObject<
  ListShape & {
    status: Optional<
      z.ZodEnum<{ open: 'open'; acknowledged: 'acknowledged'; resolved: 'resolved' }>
    >;
  },
  z.core.$strict
> = z
  .object({ ...listShape, status: z.enum(['open', 'acknowledged', 'resolved']).optional() })
  .strict();

const cursor = queryInteger(0, Number.MAX_SAFE_INTEGER);

/** `GET /v1/events/stream`. */
export const StreamQuery: z.ZodObject<{ after: Optional<QueryInteger> }, z.core.$strict> = z
  .object({ after: cursor.optional() })
  .strict();

/** `GET /v1/events/stream`'s headers: `Last-Event-ID` resumes (and wins over `after`). */
export const StreamHeaders: z.ZodObject<
  { 'last-event-id': Optional<QueryInteger> },
  z.core.$strip
> = z.object({
  'last-event-id': cursor
    .optional()
    .meta({ description: 'The last event seen; wins over `after`.' }),
});

// --- response bodies ---------------------------------------------------------------------------

/** `{ task }`. */
export const TaskResultSchema: z.ZodType<{ task: TaskView }> = z.object({ task: TaskSchema });

/** `{ task, lease }`: a claim. */
export const ClaimedSchema: z.ZodType<Claimed> = z.object({ task: TaskSchema, lease: LeaseSchema });

/** `POST /v1/tasks/transition-many`'s answer. */
export const TransitionManyResultSchema: z.ZodType<TransitionManyResponse> = z.object({
  results: z.array(
    z.object({
      id: z.string(),
      ok: z.boolean(),
      task: TaskSchema.optional(),
      from: z.string().optional(),
      to: z.string().optional(),
      reason: z.string().optional(),
      error: ErrorPayloadSchema.optional(),
    }),
  ),
  claims: z
    .array(ClaimedSchema)
    .optional()
    .meta({ description: 'With `next`: the tasks claimed after the transitions.' }),
});

/** `POST /v1/tasks/{id}/transition`'s answer. */
export const TransitionResultSchema: z.ZodType<TransitionResponse> = z.object({
  task: TaskSchema,
  from: z.string(),
  to: z.string(),
  reason: z.string(),
  next: ClaimedSchema.nullable()
    .optional()
    .meta({ description: 'With `next`: the task claimed after it, or null.' }),
});
