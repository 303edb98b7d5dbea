import { ErrorSchema } from '@exec-kernel/coordination-client/protocol';
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { z } from 'zod';
import type { Caller, CoordinationService } from '../service.js';
import type { HttpMetrics } from './metrics.js';

/** What the app keeps per request. */
export interface AppEnv {
  Variables: { caller: Caller };
}

/** The app route modules mount their routes on. */
export type App = OpenAPIHono<AppEnv>;

/** What every route module is given besides the app. */
export interface RouteContext {
  service: CoordinationService;
  metrics: HttpMetrics;
  /** Reports an unexpected error of `c`'s request; returns the reference its answer carries. */
  internal: (c: Context<AppEnv>) => (error: unknown) => string;
  /** The caller a request's bearer token stands for; `undefined` without a valid one. */
  callerOf: (c: Context<AppEnv>) => Promise<Caller | undefined>;
}

/** A JSON response of `schema`, for the OpenAPI document. */
export const json = <T extends z.ZodType>(
  schema: T,
  description: string,
): { content: { 'application/json': { schema: T } }; description: string } => ({
  content: { 'application/json': { schema } },
  description,
});

/** A required JSON request body of `schema`. */
export const body = <T extends z.ZodType>(
  schema: T,
): { body: { content: { 'application/json': { schema: T } }; required: true } } => ({
  body: { content: { 'application/json': { schema } }, required: true },
});

type ErrorResponse = ReturnType<typeof json<typeof ErrorSchema>>;

/** The error answers every route may give besides its own. */
export const common: { 400: ErrorResponse; 500: ErrorResponse; 503: ErrorResponse } = {
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
};

/** The error answers of a `/v1` route. */
export const errors: typeof common &
  Record<401 | 403 | 404 | 409 | 413 | 415 | 422, ErrorResponse> = {
  ...common,
  401: json(ErrorSchema, 'No token, or an unknown one'),
  403: json(ErrorSchema, 'Acting as someone else, or an admin-only action'),
  404: json(ErrorSchema, 'Unknown task, agent or escalation'),
  409: json(ErrorSchema, 'A lease or state conflict'),
  413: json(ErrorSchema, 'Body too large'),
  415: json(ErrorSchema, 'A body that is not JSON in UTF-8 (`UNSUPPORTED_MEDIA_TYPE`)'),
  422: json(ErrorSchema, 'A rule violation; `error.violation` is the Violation record'),
};
