// The zod schemas of what the service answers. `.meta()` carries the OpenAPI names and
// descriptions: the service's OpenAPI generator reads zod's own metadata, so these plain schemas
// need no extension of zod.
import {
  type KernelErrorCode,
  TASK_STATES,
  type TaskState,
  type ViolationKind,
} from '@exec-kernel/core';
import { z } from 'zod';
import type {
  ActionCheckView,
  ActionHistoryView,
  ActionResultResponse,
  ActionWarningView,
  AgentListItemView,
  AgentView,
  BudgetWarningView,
  Claimed,
  ErrorBody,
  ErrorPayload,
  EscalationView,
  EventView,
  HealthView,
  Lease,
  NoteView,
  TaskContextView,
  TaskView,
  TransitionManyResponse,
  TransitionResponse,
  UsageCheckView,
  ViolationRecord,
} from './types.js';

const STATES = TASK_STATES as [TaskState, ...TaskState[]];

/** A task state; refused with the list of the states there are. */
export const TaskStateSchema: z.ZodEnum<{ [S in TaskState]: S }> = z
  .enum(STATES, { error: () => `must be one of ${STATES.join(', ')}` })
  .meta({ example: 'todo' });

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

const agentFields = {
  id: z.string(),
  asleep: z.boolean(),
  sleepUntil: z.string().nullable(),
  sleepReason: z.string().nullable(),
  createdAt: z.string(),
};

/** An agent as the API shows it (never its token). */
export const AgentSchema: z.ZodType<AgentView> = z.object(agentFields).meta({ id: 'Agent' });

/** An agent in `GET /v1/agents`: its view and the tasks it holds under a live lease, by id. */
export const AgentListItemSchema: z.ZodType<AgentListItemView> = z
  .object({ ...agentFields, holding: z.array(z.string()) })
  .meta({ id: 'AgentListItem' });

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

/** A note on a task. */
export const NoteViewSchema: z.ZodType<NoteView> = z
  .object({ at: z.string(), agentId: z.string(), text: z.string() })
  .meta({ id: 'Note' });

/** A task's context and notes. */
export const TaskContextSchema: z.ZodType<TaskContextView> = z
  .object({ context: z.record(z.string(), anyJson), notes: z.array(NoteViewSchema) })
  .meta({ id: 'TaskContext' });

const callRef = z.object({ tool: z.string(), fingerprint: z.string() });

/** A warning of the action-loop rules: a pattern at its `warnAt`, short of its `blockAt`. */
export const ActionWarningSchema: z.ZodType<ActionWarningView> = z
  .object({
    loopType: z.enum(['repeat', 'ping_pong', 'window', 'no_progress']),
    taskId: z.string(),
    tool: z.string(),
    count: z.number().int(),
    warnAt: z.number().int(),
    blockAt: z.number().int(),
    calls: z.array(callRef),
    period: z.number().int().optional(),
    windowSize: z.number().int().optional(),
    resultDigest: z.string().optional(),
    message: z.string(),
  })
  .meta({ id: 'ActionWarning' });

/** What a recorded action reports. */
export const ActionCheckSchema: z.ZodType<ActionCheckView> = z
  .object({
    taskId: z.string(),
    tool: z.string(),
    fingerprint: z.string(),
    resultDigest: z.string().optional(),
    calls: z.number().int(),
    repeats: z.number().int(),
    inWindow: z.number().int(),
    warnings: z.array(ActionWarningSchema),
    exempt: z.boolean(),
  })
  .meta({ id: 'ActionCheck' });

/** `POST /v1/tasks/{id}/actions/result`'s answer. */
export const ActionResultResultSchema: z.ZodType<ActionResultResponse> = z.object({
  taskId: z.string(),
  tool: z.string(),
  fingerprint: z.string(),
  calls: z.number().int(),
  resultDigest: z.string(),
  warnings: z.array(ActionWarningSchema),
});

/** A task's action history. */
export const ActionHistorySchema: z.ZodType<ActionHistoryView> = z
  .object({
    taskId: z.string(),
    calls: z.number().int(),
    recent: z.array(
      z.object({ tool: z.string(), fingerprint: z.string(), resultDigest: z.string().nullable() }),
    ),
  })
  .meta({ id: 'ActionHistory' });

// --- response bodies ---------------------------------------------------------------------------

/** `{ task }`. */
export const TaskResultSchema: z.ZodType<{ task: TaskView }> = z.object({ task: TaskSchema });

/** `{ task, lease }`: a claim. */
export const ClaimedSchema: z.ZodType<Claimed> = z.object({ task: TaskSchema, lease: LeaseSchema });

const headroom = (unit: string) =>
  z
    .number()
    .nullable()
    .meta({ description: `${unit} left, never negative; \`null\` when unlimited.` });

/** `POST /v1/tasks/{id}/usage/check`'s answer: the least left over the task and its ancestors. */
export const UsageCheckResultSchema: z.ZodType<UsageCheckView> = z.object({
  taskId: z.string(),
  remaining: z.object({ tokens: headroom('Tokens'), costUsd: headroom('US dollars') }),
});

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
