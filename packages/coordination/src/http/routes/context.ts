import {
  ContextKeyParams,
  ContextSetSchema,
  NoteSchema,
  NoteViewSchema,
  TaskContextSchema,
  TaskIdParam,
} from '@exec-kernel/coordination-client/protocol';
import { createRoute } from '@hono/zod-openapi';
import { z } from 'zod';
import type { JsonValue } from '../../model.js';
import { type App, body, errors, json, type RouteContext } from '../route-kit.js';
import { noteView } from '../views.js';

const ContextResult = z.object({ context: z.record(z.string(), z.unknown()) });

/** A task's shared context and notes: read by any caller, changed by its agent or lease holder. */
export function contextRoutes(app: App, { service }: RouteContext): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/tasks/{id}/context',
      summary: "A task's key/value context and its notes, oldest first",
      security: [{ bearer: [] }],
      request: { params: TaskIdParam },
      responses: { 200: json(TaskContextSchema, 'The context'), ...errors },
    }),
    async (c) => {
      const { context, notes } = await service.getContext(c.req.valid('param').id);
      return c.json({ context, notes: notes.map(noteView) }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'put',
      path: '/v1/tasks/{id}/context/{key}',
      summary: "Set one key of a task's context (its agent, its lease holder or the admin)",
      security: [{ bearer: [] }],
      request: { params: ContextKeyParams, ...body(ContextSetSchema) },
      responses: { 200: json(ContextResult, 'The context after the write'), ...errors },
    }),
    async (c) => {
      const { id, key } = c.req.valid('param');
      const { value } = c.req.valid('json');
      const context = await service.setContext(c.get('caller'), id, key, value as JsonValue);
      return c.json({ context }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/v1/tasks/{id}/context/{key}',
      summary: "Remove one key of a task's context",
      security: [{ bearer: [] }],
      request: { params: ContextKeyParams },
      responses: { 200: json(ContextResult, 'The context after the removal'), ...errors },
    }),
    async (c) => {
      const { id, key } = c.req.valid('param');
      const context = await service.setContext(c.get('caller'), id, key, undefined);
      return c.json({ context }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/tasks/{id}/notes',
      summary: 'Add a note to a task, written by the caller',
      security: [{ bearer: [] }],
      request: { params: TaskIdParam, ...body(NoteSchema) },
      responses: { 201: json(z.object({ note: NoteViewSchema }), 'Added'), ...errors },
    }),
    async (c) => {
      const note = await service.addNote(
        c.get('caller'),
        c.req.valid('param').id,
        c.req.valid('json').text,
      );
      return c.json({ note: noteView(note) }, 201);
    },
  );
}
