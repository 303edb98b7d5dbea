import {
  EscalateSchema,
  EscalationIdParam,
  EscalationSchema,
  ListEscalationsQuery,
  ResolveSchema,
} from '@exec-kernel/coordination-client/protocol';
import type { Violation } from '@exec-kernel/core';
import { createRoute } from '@hono/zod-openapi';
import { z } from 'zod';
import { type App, body, errors, json, type RouteContext } from '../route-kit.js';
import { escalationView } from '../views.js';

/** The escalation queue: listing, raising by hand, acknowledging and resolving. */
export function escalationRoutes(app: App, { service }: RouteContext): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/escalations',
      summary: 'The escalation queue, oldest first, by cursor',
      security: [{ bearer: [] }],
      request: {
        query: ListEscalationsQuery,
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
}
