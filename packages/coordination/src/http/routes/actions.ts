import {
  ActionCheckSchema,
  ActionHistorySchema,
  ActionResultResultSchema,
  ActionResultSchema,
  ActionSchema,
  TaskIdParam,
} from '@exec-kernel/coordination-client/protocol';
import { createRoute } from '@hono/zod-openapi';
import { type App, body, errors, json, type RouteContext } from '../route-kit.js';

/** A task's action loop: tool calls recorded by the lease holder, checked by the loop kernel. */
export function actionRoutes(app: App, { service }: RouteContext): void {
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/tasks/{id}/actions',
      summary:
        'Record a tool call of the lease holder (action-loop rules checked; a refusal is 422)',
      security: [{ bearer: [] }],
      request: { params: TaskIdParam, ...body(ActionSchema) },
      responses: { 200: json(ActionCheckSchema, 'Recorded, with any warnings'), ...errors },
    }),
    async (c) => {
      const check = await service.recordAction(
        c.get('caller'),
        c.req.valid('param').id,
        c.req.valid('json'),
      );
      return c.json(check, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/tasks/{id}/actions/result',
      summary: "Record the result of the task's newest call (the no-progress rule checked)",
      security: [{ bearer: [] }],
      request: { params: TaskIdParam, ...body(ActionResultSchema) },
      responses: { 200: json(ActionResultResultSchema, 'Recorded, with any warnings'), ...errors },
    }),
    async (c) => {
      const recorded = await service.recordActionResult(
        c.get('caller'),
        c.req.valid('param').id,
        c.req.valid('json'),
      );
      return c.json(recorded, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/tasks/{id}/actions',
      summary: "A task's action history (its lease holder, its agent or the admin)",
      security: [{ bearer: [] }],
      request: { params: TaskIdParam },
      responses: { 200: json(ActionHistorySchema, 'The recent calls, oldest first'), ...errors },
    }),
    async (c) => {
      const history = await service.getActions(c.get('caller'), c.req.valid('param').id);
      return c.json(history, 200);
    },
  );
}
