import { invalidInputOf } from '@exec-kernel/coordination-client/protocol';
import { InvalidInputError } from '@exec-kernel/core';
import { OpenAPIHono } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { Caller, CoordinationService } from '../service.js';
import { describeError, errorBody } from './errors.js';
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
import { HttpMetrics } from './metrics.js';
import type { AppEnv, RouteContext } from './route-kit.js';
import { actionRoutes } from './routes/actions.js';
import { agentRoutes } from './routes/agents.js';
import { contextRoutes } from './routes/context.js';
import { escalationRoutes } from './routes/escalations.js';
import { eventRoutes } from './routes/events.js';
import { healthRoutes } from './routes/health.js';
import { taskRoutes } from './routes/tasks.js';
import { transitionRoutes } from './routes/transitions.js';

export type { AppEnv } from './route-kit.js';

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
    const { status, body } = describeError(error, internal(c), (e) => service.violationOf(e));
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

  const context: RouteContext = { service, metrics, internal, callerOf };
  healthRoutes(app, context, options.version ?? '0.0.0');
  agentRoutes(app, context);
  taskRoutes(app, context);
  contextRoutes(app, context);
  actionRoutes(app, context);
  transitionRoutes(app, context);
  escalationRoutes(app, context);
  eventRoutes(app, context, {
    keepAliveMs: options.streamKeepAliveMs ?? 15_000,
    maxStreams: options.maxEventStreams ?? 1000,
    maxStreamsPerCaller: options.maxEventStreamsPerCaller ?? 8,
  });
  return app;
}
