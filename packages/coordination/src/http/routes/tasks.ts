import {
  ClaimedSchema,
  ClaimManySchema,
  ClaimSchema,
  ClaimTaskSchema,
  EnqueueSchema,
  HeartbeatSchema,
  ListTasksQuery,
  TaskIdParam,
  TaskResultSchema,
  TaskSchema,
} from '@exec-kernel/coordination-client/protocol';
import { createRoute } from '@hono/zod-openapi';
import { z } from 'zod';
import type { JsonValue } from '../../model.js';
import { type App, body, errors, json, type RouteContext } from '../route-kit.js';
import { taskView } from '../views.js';

/** Enqueueing, listing, reading and claiming tasks, and heartbeats on a lease. */
export function taskRoutes(app: App, { service }: RouteContext): void {
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/tasks',
      summary: 'Enqueue a task (idle, admission and loop checks; idempotency key)',
      security: [{ bearer: [] }],
      request: body(EnqueueSchema),
      responses: {
        201: json(TaskResultSchema, 'Enqueued'),
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
        query: ListTasksQuery,
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
        200: json(ClaimedSchema, 'Claimed'),
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
          z.object({ claims: z.array(ClaimedSchema) }),
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
      responses: { 200: json(TaskResultSchema, 'The task'), ...errors },
    }),
    async (c) => c.json({ task: taskView(await service.getTask(c.req.valid('param').id)) }, 200),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/tasks/{id}/claim',
      summary: 'Claim this task (if it is todo)',
      security: [{ bearer: [] }],
      request: { params: TaskIdParam, ...body(ClaimTaskSchema) },
      responses: { 200: json(ClaimedSchema, 'Claimed'), ...errors },
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
      request: { params: TaskIdParam, ...body(HeartbeatSchema) },
      responses: { 200: json(ClaimedSchema, 'Extended'), ...errors },
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
}
