import { randomBytes } from 'node:crypto';
import { InvalidInputError } from '@exec-kernel/core';
import type { Context, MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import { ServiceError } from '../errors.js';
import { bodyProblem, MAX_JSON_DEPTH } from '../input.js';

/**
 * The token of an `Authorization: Bearer <token>` header. The scheme is case-insensitive (RFC 9110
 * §11.1), so `bearer` and `BEARER` work too. `undefined` when there is no header or another scheme;
 * `''` when the scheme comes without a token.
 */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^bearer(?:[ \t]+(.*))?$/i.exec(header.trim());
  return match === null ? undefined : (match[1] ?? '').trim();
}

const JSON_MEDIA_TYPE = /^application\/([\w.-]+\+)?json$/i;

/**
 * Checks a JSON request body before any route reads it: the charset, when one is named, is
 * UTF-8 (the only one JSON has; any other would be decoded wrongly, silently); the body parses;
 * none of its fields nests more than {@link MAX_JSON_DEPTH} levels; and no string or
 * key in it holds a NUL or a lone surrogate, which one engine would refuse and another rewrite.
 * The parsed body is what the route's validator then reads (Hono keeps it).
 */
export function checkJsonBody(): MiddlewareHandler {
  return async (c, next) => {
    const method = c.req.method;
    if (method === 'GET' || method === 'HEAD') return next();
    const contentType = c.req.header('content-type');
    if (contentType === undefined) return next();
    // A request no route takes is answered 404 or 405 without its body being read.
    if (!matchedRoutes(c).some((route) => route.method !== 'ALL')) return next();
    const [mediaType = '', ...params] = contentType.split(';');
    if (!JSON_MEDIA_TYPE.test(mediaType.trim())) return next();
    for (const param of params) {
      const [name, value = ''] = param.split('=');
      const charset = value
        .trim()
        .replace(/^"(.*)"$/, '$1')
        .toLowerCase();
      if (name?.trim().toLowerCase() === 'charset' && charset !== 'utf-8' && charset !== 'utf8') {
        throw new ServiceError(
          415,
          'UNSUPPORTED_MEDIA_TYPE',
          `JSON bodies are UTF-8; charset '${charset.slice(0, 40)}' is not supported`,
        );
      }
    }
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      throw new ServiceError(400, 'BAD_JSON', 'The request body is not valid JSON');
    }
    const found = bodyProblem(body);
    if (found !== undefined) throw new InvalidInputError(found);
    return next();
  };
}

/**
 * Refuses a query string that names a parameter more than once (`?limit=1&limit=2`): which one
 * would win is a guess, so the request says what it means instead.
 */
export function singleQueryValues(): MiddlewareHandler {
  return async (c, next) => {
    const url = c.req.url;
    if (url.includes('?')) {
      const seen = new Set<string>();
      for (const key of new URL(url).searchParams.keys()) {
        if (seen.has(key)) {
          throw new ServiceError(
            400,
            'VALIDATION',
            `Query parameter '${key.slice(0, 100)}' is given more than once`,
          );
        }
        seen.add(key);
      }
    }
    return next();
  };
}

/**
 * The methods a path is served with, from the app's routes (`:id` matching one segment), for a
 * `405 Method Not Allowed` and its `Allow` header. Empty for a path no route serves.
 */
export function allowedMethods(
  routes: ReadonlyArray<{ method: string; path: string }>,
): (path: string) => string[] {
  let table: Array<{ pattern: RegExp; methods: Set<string> }> | undefined;
  return (path) => {
    table ??= buildTable(routes);
    const out = new Set<string>();
    for (const { pattern, methods } of table) {
      if (pattern.test(path)) for (const m of methods) out.add(m);
    }
    if (out.has('GET')) out.add('HEAD');
    return [...out].sort();
  };
}

function buildTable(
  routes: ReadonlyArray<{ method: string; path: string }>,
): Array<{ pattern: RegExp; methods: Set<string> }> {
  const byPath = new Map<string, Set<string>>();
  for (const { method, path } of routes) {
    if (method === 'ALL') continue;
    const methods = byPath.get(path) ?? new Set<string>();
    methods.add(method.toUpperCase());
    byPath.set(path, methods);
  }
  return [...byPath].map(([path, methods]) => {
    const source = path
      .split('/')
      .map((part) => (part.startsWith(':') ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      .join('/');
    return { pattern: new RegExp(`^${source}$`), methods };
  });
}

/** What the service logs of a request it answered with 500: enough to find it, never a secret. */
export interface InternalErrorReport {
  /** Also in the response body (`error.details.ref`), so a user's report can be matched to it. */
  ref: string;
  method: string;
  /** The request path, without the query string. */
  path: string;
  /** The route pattern that matched (`/v1/tasks/:id`). */
  route: string;
  error: { name: string; message: string; code?: string | undefined; stack?: string | undefined };
}

/** A new reference for a 500, e.g. `err_3f9a1c0d2b7e`. */
export function newErrorRef(): string {
  return `err_${randomBytes(6).toString('hex')}`;
}

/** The report of an unexpected error in the handling of `c`'s request. */
export function internalErrorReport(ref: string, error: unknown, c: Context): InternalErrorReport {
  const e = error instanceof Error ? error : new Error(String(error));
  const code = (error as { code?: unknown } | null)?.code;
  return {
    ref,
    method: c.req.method,
    path: c.req.path,
    route: c.req.routePath,
    error: {
      name: e.name,
      message: e.message,
      ...(typeof code === 'string' || typeof code === 'number' ? { code: String(code) } : {}),
      ...(e.stack === undefined ? {} : { stack: e.stack }),
    },
  };
}

/** The default log of a 500: one JSON line on stderr. */
export function logToStderr(report: InternalErrorReport): void {
  process.stderr.write(
    `${JSON.stringify({ level: 'error', msg: 'internal error', at: new Date().toISOString(), ...report })}\n`,
  );
}
