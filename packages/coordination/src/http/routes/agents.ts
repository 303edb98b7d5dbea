import {
  AgentIdParam,
  AgentListItemSchema,
  AgentSchema,
  ListAgentsQuery,
  RegisterSchema,
  SleepSchema,
  WakeSchema,
} from '@exec-kernel/coordination-client/protocol';
import { createRoute } from '@hono/zod-openapi';
import { z } from 'zod';
import { type App, body, errors, json, type RouteContext } from '../route-kit.js';
import { agentListItemView, agentView } from '../views.js';

/** Registering agents, and their sleep. An agent's view is asleep or awake by the service's clock. */
export function agentRoutes(app: App, { service }: RouteContext): void {
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
      path: '/v1/agents',
      summary: 'Every agent by id (admin), with the tasks each holds under a live lease',
      security: [{ bearer: [] }],
      request: { query: ListAgentsQuery },
      responses: {
        200: json(
          z.object({ agents: z.array(AgentListItemSchema), next: z.string().nullable() }),
          'Agents',
        ),
        ...errors,
      },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const limit = q.limit ?? 100;
      const rows = await service.listAgents(c.get('caller'), { afterId: q.after, limit });
      const now = service.clock.now();
      const last = rows.at(-1);
      return c.json(
        {
          agents: rows.map((row) => agentListItemView(row, now)),
          next: rows.length === limit && last ? last.agent.id : null,
        },
        200,
      );
    },
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
      return c.json({ agent: agentView(agent, service.clock.now()) }, 200);
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
      return c.json({ agent: agentView(agent, service.clock.now()) }, 200);
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
      return c.json({ agent: agentView(agent, service.clock.now()), wasAsleep }, 200);
    },
  );
}
