import {
  ErrorSchema,
  EventSchema,
  ListEventsQuery,
  StreamHeaders,
  StreamQuery,
} from '@exec-kernel/coordination-client/protocol';
import { createRoute } from '@hono/zod-openapi';
import { streamSSE } from 'hono/streaming';
import { z } from 'zod';
import { ServiceError } from '../../errors.js';
import { type App, errors, json, type RouteContext } from '../route-kit.js';
import { eventView } from '../views.js';

/** How many event streams may be open, and how often an idle one says it is alive. */
export interface StreamLimits {
  keepAliveMs: number;
  maxStreams: number;
  maxStreamsPerCaller: number;
}

/** The event log: read after a cursor, or followed live as Server-Sent Events. */
export function eventRoutes(
  app: App,
  { service, metrics }: RouteContext,
  limits: StreamLimits,
): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/events',
      summary: "The event log after a cursor; with `taskId`, only that task's events",
      security: [{ bearer: [] }],
      request: { query: ListEventsQuery },
      responses: {
        200: json(z.object({ events: z.array(EventSchema), next: z.number().int() }), 'Events'),
        ...errors,
      },
    }),
    async (c) => {
      const q = c.req.valid('query');
      const after = q.after ?? 0;
      const events = await service.readEvents(after, q.limit ?? 100, q.taskId);
      return c.json({ events: events.map(eventView), next: events.at(-1)?.seq ?? after }, 200);
    },
  );

  const keepAliveMs = limits.keepAliveMs;
  const maxStreams = limits.maxStreams;
  const maxStreamsPerCaller = limits.maxStreamsPerCaller;
  const streamsOf = new Map<string, number>();
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/events/stream',
      summary: 'The event log as Server-Sent Events, from a cursor on (`Last-Event-ID` resumes)',
      security: [{ bearer: [] }],
      request: {
        query: StreamQuery,
        headers: StreamHeaders,
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
}
