import { LIMIT_MAXIMUMS } from '@exec-kernel/budget';
import {
  InvalidInputError,
  KernelError,
  TASK_STATES,
  type TaskState,
  type Violation,
} from '@exec-kernel/core';
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import { streamSSE } from 'hono/streaming';
import { ServiceError, statusOf } from '../errors.js';
import type { JsonValue } from '../model.js';
import type { Caller, CoordinationService } from '../service.js';
import { checkTextValue, idField, invalidInputOf, queryInteger, textField } from './fields.js';
import {
  allowedMethods,
  bearerToken,
  checkJsonBody,
  type InternalErrorReport,
  internalErrorReport,
  logToStderr,
  newErrorRef,
  singleQueryValues,
} from './guards.js';
import { HttpMetrics, renderMetrics } from './metrics.js';
import { agentView, escalationView, eventView, taskView } from './views.js';

// --- schemas (module-private: they shape requests, responses and the OpenAPI document) ---

const stateSchema = z.enum(TASK_STATES as [TaskState, ...TaskState[]]).openapi({ example: 'todo' });
const id = idField();
const anyJson: z.ZodType<unknown> = z.unknown();
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

/** A task as the API shows it: times as ISO-8601, `null` where unset. */
const TaskSchema = z
  .object({
    id: z.string(),
    seq: z.number().int(),
    type: z.string(),
    title: z.string().nullable(),
    state: stateSchema,
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
  .openapi('Task');

const LeaseSchema = z.object({ id: z.string(), until: z.string() }).openapi('Lease');

const AgentSchema = z
  .object({
    id: z.string(),
    asleep: z.boolean(),
    sleepUntil: z.string().nullable(),
    sleepReason: z.string().nullable(),
    createdAt: z.string(),
  })
  .openapi('Agent');

const ViolationSchema = z
  .object({
    kind: z.string(),
    code: z.string(),
    taskId: z.string().optional(),
    agentId: z.string().optional(),
    limit: z.number().optional(),
    observed: z.number().optional(),
    message: z.string(),
    at: z.string(),
    details: z.record(z.string(), z.unknown()),
  })
  .openapi('Violation');

const EscalationSchema = z
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
  .openapi('Escalation');

const EventSchema = z
  .object({
    seq: z.number().int(),
    type: z.string(),
    taskId: z.string().nullable(),
    agentId: z.string().nullable(),
    data: anyJson,
    at: z.string(),
  })
  .openapi('Event');

const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'LOOP_DETECTED' }),
      message: z.string(),
      details: z.record(z.string(), z.unknown()).optional(),
      violation: ViolationSchema.optional(),
    }),
  })
  .openapi('Error');

const EnqueueSchema = z
  .object({
    id: id.optional().openapi({ description: 'Default: a generated `tsk_…` id.' }),
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
    agentId: id.optional().openapi({ description: 'Admin only: enqueue for this agent.' }),
    state: z.enum(['todo', 'backlog']).optional(),
  })
  .strict()
  .openapi('EnqueueRequest');

const ClaimSchema = z
  .object({
    types: z.array(idField()).max(100).optional(),
    leaseSeconds: z.number().positive().optional(),
    waitSeconds: z.number().min(0).optional(),
  })
  .strict()
  .openapi('ClaimRequest');

const ClaimManySchema = ClaimSchema.extend({ max: z.number().int().min(1).max(100) })
  .strict()
  .openapi('ClaimManyRequest');

const LeaseRequestSchema = z
  .object({ leaseId: idField().optional(), leaseSeconds: z.number().positive().optional() })
  .strict();

const TransitionSchema = z
  .object({
    to: idField().openapi({ example: 'done' }),
    leaseId: idField().optional(),
    comment: textField(10_000).optional(),
  })
  .strict()
  .openapi('TransitionRequest');

const NextClaimSchema = z
  .object({
    types: z.array(idField()).max(100).optional(),
    leaseSeconds: z.number().positive().optional(),
  })
  .strict()
  .openapi('NextClaim', {
    description:
      'Claim the next task in the same request, once the transition has committed (agents only; never waits).',
  });

const TransitionOneSchema = TransitionSchema.extend({ next: NextClaimSchema.optional() })
  .strict()
  .openapi('TransitionOneRequest');

const TransitionManySchema = z
  .object({
    transitions: z.array(TransitionSchema.extend({ id }).strict()).min(1).max(100),
    next: NextClaimSchema.extend({ max: z.number().int().min(1).max(100) })
      .strict()
      .optional(),
  })
  .strict()
  .openapi('TransitionManyRequest');

const StepsSchema = z
  .object({
    count: z.number().int().min(1).max(1_000_000).optional(),
    leaseId: idField().optional(),
  })
  .strict();

const UsageSchema = z
  .object({
    tokens: z.number().int().min(0).max(LIMIT_MAXIMUMS.maxTokens).optional(),
    costUsd: z.number().min(0).max(LIMIT_MAXIMUMS.maxCostUsd).optional(),
    leaseId: idField().optional(),
  })
  .strict();

const SleepSchema = z
  .object({
    timeoutSeconds: z.number().positive().max(31_536_000).optional(),
    reason: textField(200).optional(),
  })
  .strict();

const WakeSchema = z.object({ reason: z.enum(['woken', 'task_available']).optional() }).strict();

const ResolveSchema = z
  .object({ resolution: textField(10_000).optional(), requeue: z.boolean().optional() })
  .strict();

const RegisterSchema = z.object({ id }).strict();

/** A Violation record as an agent reports it (`agentId`, when given, must be the agent's own). */
const ViolationInputSchema = z
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
  .openapi('ViolationInput');

const EscalateSchema = z
  .object({
    kind: z.enum(['blocked', 'violation']),
    taskId: id.optional(),
    comment: textField(10_000).optional(),
    violation: ViolationInputSchema.optional(),
  })
  .strict()
  .openapi('EscalateRequest');

const idParam = (field: string) =>
  z.object({ id: idField(field).openapi({ param: { name: 'id', in: 'path' } }) });
const TaskIdParam = idParam('task id');
const AgentIdParam = idParam('agent id');
const EscalationIdParam = idParam('escalation id');

const ListQuery = z
  .object({
    after: queryInteger(0, Number.MAX_SAFE_INTEGER).optional(),
    limit: queryInteger(1, 1000).optional(),
  })
  .strict();

/** What the app keeps per request. */
export interface AppEnv {
  Variables: { caller: Caller };
}

/** Options of {@link createApp}. */
export interface AppOptions {
  /** Largest request body accepted. Default: `1 MiB`. */
  maxBodyBytes?: number | undefined;
  /** Version reported in the OpenAPI document. */
  version?: string | undefined;
  /** Kept up to date with the number of requests being handled (for a graceful shutdown). */
  activity?: { inFlight: number } | undefined;
  /**
   * Told of every request answered with 500 (an error the service did not expect): a reference
   * that is also in the response body, the method, path and route, and the error's name, code,
   * message and stack; never a header, a token or a body. Default: one JSON line on stderr.
   */
  onInternalError?: ((report: InternalErrorReport) => void) | undefined;
  /**
   * How often an event stream with nothing to send writes a keep-alive comment, which also keeps
   * its connection from reaching the server's idle timeout. Default: `15000` ms.
   */
  streamKeepAliveMs?: number | undefined;
  /**
   * Most event streams open at once, all callers together. Each open stream reads the event log
   * after every write, so streams without bound would let one token load the database; past the
   * limit a new stream is answered `429` `TOO_MANY_STREAMS`. Default: `1000`.
   */
  maxEventStreams?: number | undefined;
  /** Most event streams one agent (or the admin) may hold open at once. Default: `8`. */
  maxEventStreamsPerCaller?: number | undefined;
}

type ErrorBody = z.infer<typeof ErrorSchema>;

function errorBody(
  code: string,
  message: string,
  extra: Omit<ErrorBody['error'], 'code' | 'message'> = {},
): ErrorBody {
  return { error: { code, message, ...extra } };
}

const json = <T extends z.ZodType>(schema: T, description: string) => ({
  content: { 'application/json': { schema } },
  description,
});

/** The error answers every route may give besides its own. */
const common = {
  400: json(
    ErrorSchema,
    'Malformed JSON (`BAD_JSON`), a request the schema refuses (`VALIDATION`), or a value exec-kernel refuses, such as a blank id (`INVALID_INPUT`)',
  ),
  500: json(
    ErrorSchema,
    'An error the service did not expect (`INTERNAL`); `details.ref` is in its log',
  ),
  503: json(
    ErrorSchema,
    'The database does not answer (`UNAVAILABLE`); `Retry-After` says when to try again',
  ),
} as const;

const errors = {
  ...common,
  401: json(ErrorSchema, 'No token, or an unknown one'),
  403: json(ErrorSchema, 'Acting as someone else, or an admin-only action'),
  404: json(ErrorSchema, 'Unknown task, agent or escalation'),
  409: json(ErrorSchema, 'A lease or state conflict'),
  413: json(ErrorSchema, 'Body too large'),
  415: json(ErrorSchema, 'A body that is not JSON in UTF-8 (`UNSUPPORTED_MEDIA_TYPE`)'),
  422: json(ErrorSchema, 'A rule violation; `error.violation` is the Violation record'),
} as const;

const body = <T extends z.ZodType>(schema: T) => ({
  body: { content: { 'application/json': { schema } }, required: true },
});

const HealthSchema = z
  .object({
    status: z.enum(['ok', 'unhealthy']),
    storage: z.string().openapi({ example: 'sqlite' }),
    location: z
      .string()
      .optional()
      .openapi({ description: 'Where the database is; shown to the admin only.' }),
  })
  .openapi('Health');

const TaskResult = z.object({ task: TaskSchema });
const LeaseResult = z.object({ task: TaskSchema, lease: LeaseSchema });
const Warning = z.object({ taskId: z.string(), budgetType: z.string(), fraction: z.number() });

/**
 * Refuses bodies over `maxBytes` with 413. A declared length is checked from the header alone;
 * only a body without one (chunked) is counted as it is read. Hono's `bodyLimit` alone would first
 * build a full fetch `Request` for every request, which cost more than the claim itself.
 */
function limitBody(
  maxBytes: number,
  tooLarge: (c: Context<AppEnv>) => Response,
): MiddlewareHandler<AppEnv> {
  const counting = bodyLimit({ maxSize: maxBytes, onError: tooLarge });
  return async (c, next) => {
    const method = c.req.method;
    if (method === 'GET' || method === 'HEAD') return next();
    const length = c.req.header('content-length');
    if (length !== undefined && c.req.header('transfer-encoding') === undefined) {
      return Number(length) > maxBytes ? tooLarge(c) : next();
    }
    return counting(c, next);
  };
}

/**
 * The coordination service's HTTP interface: a Hono app with a zod schema on every route and the
 * OpenAPI document at `/openapi.json`. Every error is `{ error: { code, message, … } }`.
 */
export function createApp(
  service: CoordinationService,
  options: AppOptions = {},
): OpenAPIHono<AppEnv> {
  const onInternalError = options.onInternalError ?? logToStderr;
  /** Reports an unexpected error of `c`'s request; returns the reference its answer carries. */
  const internal = (c: Context<AppEnv>) => (error: unknown) => {
    const ref = newErrorRef();
    onInternalError(internalErrorReport(ref, error, c));
    return ref;
  };
  const fail = (error: unknown, c: Context<AppEnv>): Response => {
    const { status, body } = describeError(error, internal(c), service);
    if (status === 503) c.header('retry-after', '1');
    if (status === 429) c.header('retry-after', '5');
    if (status === 401) c.header('www-authenticate', 'Bearer');
    return c.json(body, status as 500);
  };
  const app = new OpenAPIHono<AppEnv>({
    defaultHook: (result, c) => {
      if (result.success) return undefined;
      const where = { json: 'body', query: 'query', param: 'path' }[result.target as string];
      const named = (path: PropertyKey[]) => (path.length === 0 ? where : path.join('.'));
      // A value exec-kernel's own rules refuse (core's id rule, the text rule) is INVALID_INPUT,
      // with core's message, wherever it came: body, path or query.
      for (const issue of result.error.issues) {
        const input = invalidInputOf(issue);
        if (input === undefined) continue;
        const field = input.field ?? named(issue.path) ?? 'request';
        return fail(new InvalidInputError({ field, problem: input.problem }), c);
      }
      const issues = result.error.issues.map((i) => ({
        path: i.path.join('.'),
        message: i.message,
      }));
      const first = result.error.issues[0];
      const message =
        first === undefined
          ? 'Invalid request'
          : `${named(first.path) ?? 'request'}: ${first.message}`;
      return c.json(errorBody('VALIDATION', message, { details: { issues } }), 400);
    },
  });

  const metrics = new HttpMetrics();
  const maxBytes = options.maxBodyBytes ?? 1024 * 1024;
  app.use(
    '*',
    limitBody(maxBytes, (c) =>
      c.json(errorBody('PAYLOAD_TOO_LARGE', `Request body is larger than ${maxBytes} bytes`), 413),
    ),
  );

  const activity = options.activity ?? { inFlight: 0 };
  app.use('*', async (c, next) => {
    const started = performance.now();
    activity.inFlight++;
    try {
      await next();
    } finally {
      activity.inFlight--;
    }
    metrics.observeRequest(
      c.req.method,
      c.req.routePath,
      c.res.status,
      performance.now() - started,
    );
  });

  /** The caller a request's bearer token stands for; `undefined` without a valid one. */
  const callerOf = async (c: Context<AppEnv>): Promise<Caller | undefined> => {
    const token = bearerToken(c.req.header('authorization'));
    return token === undefined || token === '' ? undefined : await service.authenticate(token);
  };

  app.use('/v1/*', async (c, next) => {
    const caller = await callerOf(c);
    if (caller === undefined) {
      const token = bearerToken(c.req.header('authorization'));
      const message =
        token === undefined || token === ''
          ? 'A bearer token is required'
          : 'The bearer token is not valid';
      return c.json(errorBody('UNAUTHENTICATED', message), 401, { 'www-authenticate': 'Bearer' });
    }
    c.set('caller', caller);
    return next();
  });
  app.use('/v1/*', checkJsonBody());
  app.use('*', singleQueryValues());

  app.onError((error, c) => fail(error, c));
  const allowed = allowedMethods(app.routes);
  app.notFound((c) => {
    const methods = allowed(c.req.path);
    // As sent (percent-encoded), so no control character of the path reaches the message.
    const raw = new URL(c.req.url).pathname;
    const shown = raw.length > 200 ? `${raw.slice(0, 200)}…` : raw;
    if (methods.length === 0)
      return c.json(errorBody('NOT_FOUND', `No route ${c.req.method} ${shown}`), 404);
    return c.json(
      errorBody(
        'METHOD_NOT_ALLOWED',
        `${shown} does not take ${c.req.method}; it takes ${methods.join(', ')}`,
        {
          details: { allow: methods },
        },
      ),
      405,
      { allow: methods.join(', ') },
    );
  });

  // --- operations ------------------------------------------------------------------------------

  app.openapi(
    createRoute({
      method: 'get',
      path: '/healthz',
      summary:
        'Whether the service and its database answer; the admin also sees where the database is',
      security: [{}, { bearer: [] }],
      responses: {
        ...common,
        200: json(HealthSchema, 'Healthy'),
        503: json(HealthSchema, 'The database does not answer'),
      },
    }),
    async (c) => {
      const ok = await service.healthy();
      // Where the database is (a path, a host) is for the operator, not for whoever can connect.
      const admin = (await callerOf(c))?.kind === 'admin';
      const health = {
        status: ok ? ('ok' as const) : ('unhealthy' as const),
        storage: service.storage.engine,
        ...(admin ? { location: service.storage.location } : {}),
      };
      return ok ? c.json(health, 200) : c.json(health, 503);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/metrics',
      summary: 'Prometheus metrics (text exposition format 0.0.4)',
      responses: {
        200: {
          content: { 'text/plain': { schema: z.string() } },
          description: 'Counters, gauges and request histograms',
        },
        ...common,
      },
    }),
    async (c) => {
      const text = await renderMetrics(service, metrics);
      return c.text(text, 200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
    },
  );

  app.openAPIRegistry.registerPath({
    method: 'get',
    path: '/openapi.json',
    summary: 'This document',
    responses: { 200: { description: 'The OpenAPI 3.0 document of the service' } },
  });
  app.doc('/openapi.json', {
    openapi: '3.0.3',
    info: {
      title: 'exec-kernel coordination',
      version: options.version ?? '0.0.0',
      description: 'A shared, enforcing task queue for many agents.',
    },
  });
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
  });

  // --- agents ----------------------------------------------------------------------------------

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/agents',
      summary: 'Register an agent (admin); returns its token once',
      security: [{ bearer: [] }],
      request: body(RegisterSchema),
      responses: {
        201: json(z.object({ agentId: z.string(), token: z.string() }), 'Registered'),
        ...errors,
      },
    }),
    async (c) => c.json(await service.registerAgent(c.get('caller'), c.req.valid('json').id), 201),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/agents/{id}',
      summary: 'An agent and its sleep state',
      security: [{ bearer: [] }],
      request: { params: AgentIdParam },
      responses: { 200: json(z.object({ agent: AgentSchema }), 'The agent'), ...errors },
    }),
    async (c) => {
      const agent = await service.getAgent(c.get('caller'), c.req.valid('param').id);
      return c.json({ agent: agentView(agent, Date.now()) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/agents/{id}/sleep',
      summary: 'Put an agent to sleep: it may not enqueue until woken or timed out',
      security: [{ bearer: [] }],
      request: { params: AgentIdParam, ...body(SleepSchema) },
      responses: { 200: json(z.object({ agent: AgentSchema }), 'Asleep'), ...errors },
    }),
    async (c) => {
      const agent = await service.sleep(
        c.get('caller'),
        c.req.valid('param').id,
        c.req.valid('json'),
      );
      return c.json({ agent: agentView(agent, Date.now()) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/agents/{id}/wake',
      summary: "End an agent's sleep",
      security: [{ bearer: [] }],
      request: { params: AgentIdParam, ...body(WakeSchema) },
      responses: {
        200: json(z.object({ agent: AgentSchema, wasAsleep: z.boolean() }), 'Awake'),
        ...errors,
      },
    }),
    async (c) => {
      const { agent, wasAsleep } = await service.wake(
        c.get('caller'),
        c.req.valid('param').id,
        c.req.valid('json').reason,
      );
      return c.json({ agent: agentView(agent, Date.now()), wasAsleep }, 200);
    },
  );

  // --- tasks -----------------------------------------------------------------------------------

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/tasks',
      summary: 'Enqueue a task (idle, admission and loop checks; idempotency key)',
      security: [{ bearer: [] }],
      request: body(EnqueueSchema),
      responses: {
        201: json(TaskResult, 'Enqueued'),
        200: json(
          z.object({ task: TaskSchema, deduplicated: z.literal(true) }),
          'An existing task with the same idempotency key',
        ),
        ...errors,
      },
    }),
    async (c) => {
      const input = c.req.valid('json');
      const { task, created } = await service.enqueue(c.get('caller'), {
        ...input,
        payload: input.payload as JsonValue | undefined,
      });
      return created
        ? c.json({ task: taskView(task) }, 201)
        : c.json({ task: taskView(task), deduplicated: true as const }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/tasks',
      summary: 'List tasks, oldest first, by cursor',
      security: [{ bearer: [] }],
      request: {
        query: ListQuery.extend({
          state: stateSchema.optional(),
          type: idField().optional(),
          agentId: idField().optional(),
          leaseOwner: idField().optional(),
        }).strict(),
      },
      responses: {
        200: json(
          z.object({ tasks: z.array(TaskSchema), next: z.number().int().nullable() }),
          'Tasks',
        ),
        ...errors,
      },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const limit = q.limit ?? 100;
      const tasks = await service.listTasks({
        state: q.state,
        type: q.type,
        agentId: q.agentId,
        leaseOwner: q.leaseOwner,
        afterSeq: q.after,
        limit,
      });
      const last = tasks.at(-1);
      return c.json(
        { tasks: tasks.map(taskView), next: tasks.length === limit && last ? last.seq : null },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/tasks/claim',
      summary: 'Claim the next todo task with a lease; waits up to waitSeconds (204 when none)',
      security: [{ bearer: [] }],
      request: body(ClaimSchema),
      responses: {
        200: json(LeaseResult, 'Claimed'),
        204: { description: 'Nothing to claim' },
        ...errors,
      },
    }),
    async (c) => {
      const claimed = await service.claim(c.get('caller'), {
        ...c.req.valid('json'),
        signal: c.req.raw.signal,
      });
      if (claimed === undefined) return c.body(null, 204);
      return c.json({ task: taskView(claimed.task), lease: claimed.lease }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/tasks/claim-many',
      summary: 'Claim up to max todo tasks under one lease; waits up to waitSeconds for the first',
      security: [{ bearer: [] }],
      request: body(ClaimManySchema),
      responses: {
        200: json(
          z.object({ claims: z.array(LeaseResult) }),
          'Claimed (an empty list when none came)',
        ),
        ...errors,
      },
    }),
    async (c) => {
      const { tasks, lease } = await service.claimMany(c.get('caller'), {
        ...c.req.valid('json'),
        signal: c.req.raw.signal,
      });
      return c.json({ claims: tasks.map((task) => ({ task: taskView(task), lease })) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/tasks/{id}',
      summary: 'A task',
      security: [{ bearer: [] }],
      request: { params: TaskIdParam },
      responses: { 200: json(TaskResult, 'The task'), ...errors },
    }),
    async (c) => c.json({ task: taskView(await service.getTask(c.req.valid('param').id)) }, 200),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/tasks/{id}/claim',
      summary: 'Claim this task (if it is todo)',
      security: [{ bearer: [] }],
      request: { params: TaskIdParam, ...body(LeaseRequestSchema.pick({ leaseSeconds: true })) },
      responses: { 200: json(LeaseResult, 'Claimed'), ...errors },
    }),
    async (c) => {
      const claimed = await service.claim(c.get('caller'), {
        taskId: c.req.valid('param').id,
        leaseSeconds: c.req.valid('json').leaseSeconds,
      });
      // A named claim either succeeds or throws (not found, not todo).
      const { task, lease } = claimed as NonNullable<typeof claimed>;
      return c.json({ task: taskView(task), lease }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/tasks/{id}/heartbeat',
      summary: "Extend the caller's lease",
      security: [{ bearer: [] }],
      request: { params: TaskIdParam, ...body(LeaseRequestSchema) },
      responses: { 200: json(LeaseResult, 'Extended'), ...errors },
    }),
    async (c) => {
      const { task, lease } = await service.heartbeat(
        c.get('caller'),
        c.req.valid('param').id,
        c.req.valid('json'),
      );
      return c.json({ task: taskView(task), lease }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/tasks/transition-many',
      summary: 'Several transitions at once, each checked and applied on its own',
      security: [{ bearer: [] }],
      request: body(TransitionManySchema),
      responses: {
        200: json(
          z.object({
            results: z.array(
              z.object({
                id: z.string(),
                ok: z.boolean(),
                task: TaskSchema.optional(),
                from: z.string().optional(),
                to: z.string().optional(),
                reason: z.string().optional(),
                error: ErrorSchema.shape.error.optional(),
              }),
            ),
            claims: z
              .array(LeaseResult)
              .optional()
              .openapi({ description: 'With `next`: the tasks claimed after the transitions.' }),
          }),
          'What became of each, in order',
        ),
        ...errors,
      },
    }),
    async (c) => {
      const { transitions, next } = c.req.valid('json');
      const caller = c.get('caller');
      const items = transitions.map((t) => ({ ...t, to: t.to as TaskState }));
      const { outcomes, next: claimed } =
        next === undefined
          ? { outcomes: await service.transitionMany(caller, items), next: undefined }
          : await service.transitionManyThenClaim(caller, items, next);
      const results = outcomes.map((o, i) =>
        o.ok
          ? {
              id: o.id,
              ok: true,
              task: taskView(o.task),
              from: o.from,
              to: transitions[i]?.to,
              reason: o.reason,
            }
          : { id: o.id, ok: false, error: describeError(o.error, internal(c), service).body.error },
      );
      if (next === undefined) return c.json({ results }, 200);
      const claims = claimed?.tasks.map((task) => ({ task: taskView(task), lease: claimed.lease }));
      return c.json({ results, claims: claims ?? [] }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/tasks/{id}/transition',
      summary: 'Move a task along the lifecycle table (lease holder or admin)',
      security: [{ bearer: [] }],
      request: { params: TaskIdParam, ...body(TransitionOneSchema) },
      responses: {
        200: json(
          z.object({
            task: TaskSchema,
            from: z.string(),
            to: z.string(),
            reason: z.string(),
            next: LeaseResult.nullable()
              .optional()
              .openapi({ description: 'With `next`: the task claimed after it, or null.' }),
          }),
          'Moved',
        ),
        ...errors,
      },
    }),
    async (c) => {
      const { next, ...input } = c.req.valid('json');
      const caller = c.get('caller');
      const id = c.req.valid('param').id;
      const move = { ...input, to: input.to as TaskState };
      const result =
        next === undefined
          ? { ...(await service.transition(caller, id, move)), next: undefined }
          : await service.transitionThenClaim(caller, id, move, { ...next, max: 1 });
      const moved = {
        task: taskView(result.task),
        from: result.from,
        to: input.to,
        reason: result.reason,
      };
      if (next === undefined) return c.json(moved, 200);
      const claimed = result.next;
      const task = claimed?.tasks[0];
      const view =
        claimed === undefined || task === undefined
          ? null
          : { task: taskView(task), lease: claimed.lease };
      return c.json({ ...moved, next: view }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/tasks/{id}/steps',
      summary: 'Record steps (budget checked for the task and its ancestors)',
      security: [{ bearer: [] }],
      request: { params: TaskIdParam, ...body(StepsSchema) },
      responses: {
        200: json(z.object({ task: TaskSchema, warnings: z.array(Warning) }), 'Recorded'),
        ...errors,
      },
    }),
    async (c) => {
      const input = c.req.valid('json');
      const { task, warnings } = await service.spend(c.get('caller'), c.req.valid('param').id, {
        steps: input.count ?? 1,
        leaseId: input.leaseId,
      });
      return c.json({ task: taskView(task), warnings }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/tasks/{id}/usage',
      summary: 'Record tokens and cost (budget checked for the task and its ancestors)',
      security: [{ bearer: [] }],
      request: { params: TaskIdParam, ...body(UsageSchema) },
      responses: {
        200: json(z.object({ task: TaskSchema, warnings: z.array(Warning) }), 'Recorded'),
        ...errors,
      },
    }),
    async (c) => {
      const { task, warnings } = await service.spend(
        c.get('caller'),
        c.req.valid('param').id,
        c.req.valid('json'),
      );
      return c.json({ task: taskView(task), warnings }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/tasks/{id}/release',
      summary: 'Give a leased task back to the queue',
      security: [{ bearer: [] }],
      request: { params: TaskIdParam, ...body(LeaseRequestSchema.pick({ leaseId: true })) },
      responses: { 200: json(TaskResult, 'Released'), ...errors },
    }),
    async (c) => {
      const task = await service.release(
        c.get('caller'),
        c.req.valid('param').id,
        c.req.valid('json'),
      );
      return c.json({ task: taskView(task) }, 200);
    },
  );

  // --- escalations -----------------------------------------------------------------------------

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/escalations',
      summary: 'The escalation queue, oldest first, by cursor',
      security: [{ bearer: [] }],
      request: {
        query: ListQuery.extend({
          status: z.enum(['open', 'acknowledged', 'resolved']).optional(),
        }).strict(),
      },
      responses: {
        200: json(
          z.object({ escalations: z.array(EscalationSchema), next: z.number().int().nullable() }),
          'Escalations',
        ),
        ...errors,
      },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const limit = q.limit ?? 100;
      const rows = await service.listEscalations({ status: q.status, afterSeq: q.after, limit });
      const last = rows.at(-1);
      return c.json(
        {
          escalations: rows.map(escalationView),
          next: rows.length === limit && last ? last.seq : null,
        },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/escalations',
      summary: 'Raise an escalation by hand (a stuck agent, a violation seen elsewhere)',
      security: [{ bearer: [] }],
      request: body(EscalateSchema),
      responses: { 201: json(z.object({ escalation: EscalationSchema }), 'Raised'), ...errors },
    }),
    async (c) => {
      const input = c.req.valid('json');
      const row = await service.escalate(c.get('caller'), {
        ...input,
        violation: input.violation as Violation | undefined,
      });
      return c.json({ escalation: escalationView(row) }, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/escalations/{id}/ack',
      summary: 'Acknowledge an escalation (admin)',
      security: [{ bearer: [] }],
      request: { params: EscalationIdParam },
      responses: {
        200: json(z.object({ escalation: EscalationSchema }), 'Acknowledged'),
        ...errors,
      },
    }),
    async (c) =>
      c.json(
        {
          escalation: escalationView(
            await service.acknowledge(c.get('caller'), c.req.valid('param').id),
          ),
        },
        200,
      ),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/escalations/{id}/resolve',
      summary: 'Resolve an escalation (admin); requeue puts its blocked task back to todo',
      security: [{ bearer: [] }],
      request: { params: EscalationIdParam, ...body(ResolveSchema) },
      responses: { 200: json(z.object({ escalation: EscalationSchema }), 'Resolved'), ...errors },
    }),
    async (c) => {
      const row = await service.resolve(
        c.get('caller'),
        c.req.valid('param').id,
        c.req.valid('json'),
      );
      return c.json({ escalation: escalationView(row) }, 200);
    },
  );

  // --- events ----------------------------------------------------------------------------------

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/events',
      summary: 'The event log after a cursor',
      security: [{ bearer: [] }],
      request: { query: ListQuery },
      responses: {
        200: json(z.object({ events: z.array(EventSchema), next: z.number().int() }), 'Events'),
        ...errors,
      },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const after = q.after ?? 0;
      const events = await service.readEvents(after, q.limit ?? 100);
      return c.json({ events: events.map(eventView), next: events.at(-1)?.seq ?? after }, 200);
    },
  );

  const keepAliveMs = options.streamKeepAliveMs ?? 15_000;
  const maxStreams = options.maxEventStreams ?? 1000;
  const maxStreamsPerCaller = options.maxEventStreamsPerCaller ?? 8;
  const streamsOf = new Map<string, number>();
  const cursor = queryInteger(0, Number.MAX_SAFE_INTEGER);
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/events/stream',
      summary: 'The event log as Server-Sent Events, from a cursor on (`Last-Event-ID` resumes)',
      security: [{ bearer: [] }],
      request: {
        query: z.object({ after: cursor.optional() }).strict(),
        headers: z.object({
          'last-event-id': cursor
            .optional()
            .openapi({ description: 'The last event seen; wins over `after`.' }),
        }),
      },
      responses: {
        200: {
          content: { 'text/event-stream': { schema: z.string() } },
          description:
            'One SSE event per log entry (`id` the seq, `event` the type, `data` the Event as JSON); a `: keep-alive` comment while idle',
        },
        ...errors,
        429: json(
          ErrorSchema,
          'Too many event streams open, by this caller or in all (`TOO_MANY_STREAMS`, with `Retry-After`)',
        ),
      },
    }),
    (c) => {
      let after = c.req.valid('header')['last-event-id'] ?? c.req.valid('query').after ?? 0;
      const caller = c.get('caller');
      const who = caller.kind === 'admin' ? 'admin' : `agent:${caller.agentId}`;
      const mine = streamsOf.get(who) ?? 0;
      if (mine >= maxStreamsPerCaller || metrics.streams >= maxStreams) {
        const limit = mine >= maxStreamsPerCaller ? maxStreamsPerCaller : maxStreams;
        throw new ServiceError(
          429,
          'TOO_MANY_STREAMS',
          mine >= maxStreamsPerCaller
            ? `This caller already has ${mine} event streams open, the most allowed; close one first`
            : `The service already has ${limit} event streams open, the most allowed; try again later`,
          { limit },
        );
      }
      // Counted before the stream starts, so that many requests at once cannot all pass the check.
      streamsOf.set(who, mine + 1);
      metrics.streams++;
      const closed = () => {
        metrics.streams--;
        const left = (streamsOf.get(who) ?? 1) - 1;
        if (left > 0) streamsOf.set(who, left);
        else streamsOf.delete(who);
      };
      const response = streamSSE(c, async (stream) => {
        // Ends when the client goes away or the service stops (a graceful shutdown waits for it).
        // A client that stops reading stalls the writes below; the server's idle timeout then
        // closes its connection, which ends the stream too.
        const gone = new AbortController();
        stream.onAbort(() => gone.abort());
        c.req.raw.signal.addEventListener('abort', () => gone.abort(), { once: true });
        const open = () => !gone.signal.aborted && !service.stopping.aborted;
        try {
          while (open()) {
            const events = await service.readEvents(after, 500);
            for (const event of events) {
              if (!open()) break;
              await stream.writeSSE({
                id: String(event.seq),
                event: event.type,
                data: JSON.stringify(eventView(event)),
              });
              after = event.seq;
            }
            if (events.length === 0) {
              await service.waitForEvents(keepAliveMs, gone.signal);
              // A comment line keeps proxies from closing an idle stream.
              if (open()) await stream.write(': keep-alive\n\n');
            }
          }
        } finally {
          closed();
        }
      });
      return response as never;
    },
  );

  return app;
}

/** The codes of the HTTP errors Hono's own middleware throws. */
const HTTP_EXCEPTION_CODES: Readonly<Record<number, { code: string; message: string }>> = {
  400: { code: 'BAD_JSON', message: 'The request body is not valid JSON' },
  413: { code: 'PAYLOAD_TOO_LARGE', message: 'The request body is too large' },
  415: {
    code: 'UNSUPPORTED_MEDIA_TYPE',
    message: 'The request body must be JSON (Content-Type: application/json)',
  },
};

/**
 * The status and body an error is answered with. `internal` is told of an error the service did
 * not expect (a 500) and returns the reference the body carries.
 */
function describeError(
  error: unknown,
  internal: (error: unknown) => string,
  service: Pick<CoordinationService, 'violationOf'>,
): { status: number; body: ErrorBody } {
  if (error instanceof ServiceError) {
    return {
      status: error.status,
      body: errorBody(error.code, error.message, { details: error.details }),
    };
  }
  if (KernelError.is(error)) {
    const violation = service.violationOf(error);
    const extra =
      violation === undefined
        ? { details: { ...error.details } }
        : { details: { ...error.details }, violation };
    return { status: statusOf(error), body: errorBody(error.code, error.message, extra) };
  }
  if (error instanceof HTTPException) {
    const known = HTTP_EXCEPTION_CODES[error.status];
    if (known !== undefined)
      return { status: error.status, body: errorBody(known.code, known.message) };
  }
  if (databaseUnavailable(error)) {
    return {
      status: 503,
      body: errorBody('UNAVAILABLE', 'The database is not answering; try again shortly'),
    };
  }
  const ref = internal(error);
  return {
    status: 500,
    body: errorBody('INTERNAL', `Internal error (ref ${ref})`, { details: { ref } }),
  };
}

/**
 * Driver errors that mean the database is (for now) out of reach rather than that the request was
 * wrong: network errors, the `postgres` driver's connection codes, SQLSTATE class 08 (connection
 * exception) and 57P0x (shutdown, crash, cannot connect now), and SQLite's busy and locked.
 */
const UNAVAILABLE_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
  '53300',
  '57P01',
  '57P02',
  '57P03',
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
]);

function databaseUnavailable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (UNAVAILABLE_CODES.has(code) || /^08[0-9A-Z]{3}$/.test(code));
}
