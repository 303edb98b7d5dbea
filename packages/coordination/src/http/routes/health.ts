import { HealthSchema } from '@exec-kernel/coordination-client/protocol';
import { createRoute } from '@hono/zod-openapi';
import { z } from 'zod';
import { renderMetrics } from '../metrics.js';
import { type App, common, json, type RouteContext } from '../route-kit.js';

/** `/healthz`, `/metrics` and the OpenAPI document at `/openapi.json`. */
export function healthRoutes(
  app: App,
  { service, metrics, callerOf }: RouteContext,
  version: string,
): void {
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
      version,
      description: 'A shared, enforcing task queue for many agents.',
    },
  });
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', {
    type: 'http',
    scheme: 'bearer',
  });
}
