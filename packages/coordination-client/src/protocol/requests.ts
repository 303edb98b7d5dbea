// The zod schemas of what the service takes: bodies, path parameters and queries. Each is checked
// against its type in `types.ts`; `.meta()` carries what the OpenAPI document shows.
import { LIMIT_MAXIMUMS } from '@exec-kernel/budget';
import { z } from 'zod';
import { checkTextValue, idField, type QueryInteger, queryInteger, textField } from './fields.js';
import type {
  ActionRequest,
  ActionResultRequest,
  ClaimManyRequest,
  ClaimRequest,
  ContextSetRequest,
  EnqueueInput,
  EscalateRequest,
  LeaseRequest,
  NoteRequest,
  RegisterAgentRequest,
  ResolveRequest,
  SleepRequest,
  StepsRequest,
  TransitionManyRequest,
  TransitionOneRequest,
  UsageCheckRequest,
  UsageRequest,
  ViolationInput,
  WakeRequest,
} from './types.js';
import { TaskStateSchema } from './views.js';

const id = idField();
const anyJson: z.ZodType<unknown> = z.unknown();

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

/** `POST /v1/tasks/{id}/usage/check`. */
export const UsageCheckSchema: z.ZodType<UsageCheckRequest> = z
  .object({ leaseId: idField().optional() })
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

/** `PUT /v1/tasks/{id}/context/{key}` (the service checks the value's size and nesting). */
export const ContextSetSchema: z.ZodType<ContextSetRequest> = z
  .object({ value: anyJson.refine((v) => v !== undefined, 'Required') })
  .strict();

/** `POST /v1/tasks/{id}/notes`. */
export const NoteSchema: z.ZodType<NoteRequest> = z.object({ text: textField(10_000) }).strict();

const digest = idField('result digest');

/**
 * `POST /v1/tasks/{id}/actions`. `args` and `result` are checked by the service on what it parsed,
 * as task-context values are: at most 64 KiB as JSON, nested at most 64 levels.
 */
export const ActionSchema: z.ZodType<ActionRequest> = z
  .object({
    tool: idField('tool').meta({ example: 'read_file' }),
    args: anyJson.optional().meta({ description: 'Any JSON value. Default: `{}`.' }),
    result: anyJson.optional().meta({ description: 'Any JSON value; digested, never kept.' }),
    resultDigest: digest.optional().meta({ description: 'Wins over `result`.' }),
    leaseId: idField().optional(),
  })
  .strict()
  .meta({ id: 'ActionRequest' });

/** `POST /v1/tasks/{id}/actions/result`: exactly one of `result` and `resultDigest`. */
export const ActionResultSchema: z.ZodType<ActionResultRequest> = z
  .object({
    result: anyJson.optional(),
    resultDigest: digest.optional(),
    leaseId: idField().optional(),
  })
  .strict()
  .refine((v) => (v.result === undefined) !== (v.resultDigest === undefined), {
    message: 'give exactly one of result and resultDigest',
  })
  .meta({ id: 'ActionResultRequest' });

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
/** `/v1/tasks/{id}/context/{key}`. */
export const ContextKeyParams: z.ZodObject<{ id: z.ZodString; key: z.ZodString }, z.core.$strip> =
  z.object({
    id: idField('task id').meta({ param: { name: 'id', in: 'path' } }),
    key: idField('context key').meta({ param: { name: 'key', in: 'path' } }),
  });
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

/** `GET /v1/events`: the cursor, and `taskId` for one task's events only. */
export const ListEventsQuery: z.ZodObject<
  ListShape & { taskId: Optional<z.ZodString> },
  z.core.$strict
> = z.object({ ...listShape, taskId: idField('task id').optional() }).strict();

/** `GET /v1/agents`: `after` an agent id (the cursor), at most `limit` agents. */
export const ListAgentsQuery: z.ZodObject<
  { after: Optional<z.ZodString>; limit: Optional<QueryInteger> },
  z.core.$strict
> = z.object({ after: idField('agent id').optional(), limit: listShape.limit }).strict();

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
