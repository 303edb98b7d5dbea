import {
  ReleaseSchema,
  StepsSchema,
  TaskIdParam,
  TaskResultSchema,
  TaskSchema,
  TransitionManyResultSchema,
  TransitionManySchema,
  TransitionOneSchema,
  TransitionResultSchema,
  UsageCheckResultSchema,
  UsageCheckSchema,
  UsageSchema,
  WarningSchema,
} from '@exec-kernel/coordination-client/protocol';
import type { TaskState } from '@exec-kernel/core';
import { createRoute } from '@hono/zod-openapi';
import { z } from 'zod';
import { describeError } from '../errors.js';
import { type App, body, errors, json, type RouteContext } from '../route-kit.js';
import { taskView } from '../views.js';

/**
 * Moving tasks (one or many, each optionally claiming the next), spending on a lease (and checking
 * what is left before spending), and giving a task back.
 */
export function transitionRoutes(app: App, { service, internal }: RouteContext): void {
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/tasks/transition-many',
      summary: 'Several transitions at once, each checked and applied on its own',
      security: [{ bearer: [] }],
      request: body(TransitionManySchema),
      responses: {
        200: json(TransitionManyResultSchema, 'What became of each, in order'),
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
          : {
              id: o.id,
              ok: false,
              error: describeError(o.error, internal(c), (e) => service.violationOf(e)).body.error,
            },
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
        200: json(TransitionResultSchema, 'Moved'),
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
        200: json(z.object({ task: TaskSchema, warnings: z.array(WarningSchema) }), 'Recorded'),
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
        200: json(z.object({ task: TaskSchema, warnings: z.array(WarningSchema) }), 'Recorded'),
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
      path: '/v1/tasks/{id}/usage/check',
      summary:
        'Check that the task and its ancestors have tokens and cost left, before spending (records nothing)',
      security: [{ bearer: [] }],
      request: { params: TaskIdParam, ...body(UsageCheckSchema) },
      responses: {
        200: json(UsageCheckResultSchema, 'The least left over the task and its ancestors'),
        ...errors,
      },
    }),
    async (c) => {
      const left = await service.checkUsageLeft(
        c.get('caller'),
        c.req.valid('param').id,
        c.req.valid('json'),
      );
      return c.json(left, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/tasks/{id}/release',
      summary: 'Give a leased task back to the queue',
      security: [{ bearer: [] }],
      request: { params: TaskIdParam, ...body(ReleaseSchema) },
      responses: { 200: json(TaskResultSchema, 'Released'), ...errors },
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
}
