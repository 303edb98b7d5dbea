import { readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CoordinationClient, coordinationSink } from '@exec-kernel/coordination-client';
import { serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/http/app.js';
import type { InternalErrorReport } from '../src/http/guards.js';
import { CoordinationService } from '../src/service.js';
import { MemoryStorage } from '../src/storage/memory.js';
import {
  ADMIN,
  ADMISSION,
  call,
  registerAgent,
  startServer,
  type TestServer,
} from './http-helpers.js';

// The HTTP surface itself, on the default engine (SQLite): what it answers to odd methods,
// headers, content types and query strings, who sees what, and whether its document and README
// tell the truth about it.

let t: TestServer;
let url: string;
let agentA: string;
let agentB: string;
const internalErrors: InternalErrorReport[] = [];

beforeAll(async () => {
  t = await startServer('sqlite', { onInternalError: (report) => internalErrors.push(report) });
  url = t.url;
  agentA = await registerAgent(url, 'agent-a');
  agentB = await registerAgent(url, 'agent-b');
});
afterAll(() => t.stop());

describe('query strings', () => {
  it('answers 400 to a state or status that does not exist, not an empty list', async () => {
    await call(url, 'POST', '/v1/tasks', { body: { id: 'q-1', type: 'x', admission: ADMISSION } });
    const bogus = await call(url, 'GET', '/v1/tasks?state=bogus');
    expect(bogus).toMatchObject({ status: 400, code: 'VALIDATION' });
    expect(bogus.message).toMatch(/^state: /);
    expect((await call(url, 'GET', '/v1/escalations?status=bogus')).status).toBe(400);
    const todo = await call(url, 'GET', '/v1/tasks?state=todo');
    expect(todo.status).toBe(200);
    expect((todo.body as { tasks: Array<{ id: string }> }).tasks.map((x) => x.id)).toContain('q-1');
  });

  it('refuses unknown, repeated and mis-written parameters instead of ignoring or misreading them', async () => {
    const refused: Array<[string, RegExp]> = [
      ['/v1/tasks?stat=todo', /Unrecognized key/],
      ['/v1/tasks?limit=1&limit=2', /^Query parameter 'limit' is given more than once$/],
      ['/v1/tasks?state=todo&state=done', /^Query parameter 'state' is given more than once$/],
      ['/v1/tasks?limit=0', /^limit: /],
      ['/v1/tasks?limit=1001', /^limit: /],
      ['/v1/tasks?limit=1e2', /^limit: must be a whole number in decimal digits$/],
      ['/v1/tasks?limit=', /^limit: /],
      ['/v1/tasks?limit=%201', /^limit: /],
      ['/v1/tasks?after=-1', /^after: /],
      ['/v1/tasks?after=0x10', /^after: /],
      ['/v1/tasks?after=1.5', /^after: /],
      ['/v1/tasks?after=99999999999999999999', /^after: /],
      ['/v1/events?after=abc', /^after: /],
      ['/v1/events?limit=-5', /^limit: /],
      ['/v1/escalations?after=1e3', /^after: /],
      ['/v1/events/stream?after=abc', /^after: /],
      ['/v1/events/stream?from=3', /Unrecognized key/],
    ];
    for (const [path, message] of refused) {
      const answer = await call(url, 'GET', path);
      expect({ path, status: answer.status, code: answer.code }).toEqual({
        path,
        status: 400,
        code: 'VALIDATION',
      });
      expect(answer.message).toMatch(message);
    }
    // The cursor still pages: `next` is the `after` of the next page.
    for (const id of ['page-1', 'page-2', 'page-3'])
      await call(url, 'POST', '/v1/tasks', { body: { id, type: 'page', admission: ADMISSION } });
    const first = (await call(url, 'GET', '/v1/tasks?type=page&limit=2')).body as {
      tasks: Array<{ id: string }>;
      next: number;
    };
    expect(first.tasks.map((x) => x.id)).toEqual(['page-1', 'page-2']);
    const second = (await call(url, 'GET', `/v1/tasks?type=page&limit=2&after=${first.next}`))
      .body as { tasks: Array<{ id: string }>; next: number | null };
    expect(second).toMatchObject({ tasks: [{ id: 'page-3' }], next: null });
  });

  it('refuses a Last-Event-ID that is not a cursor, instead of replaying the log from the start', async () => {
    for (const value of ['abc', '-1', '1e3', '']) {
      const answer = await call(url, 'GET', '/v1/events/stream', {
        headers: { 'last-event-id': value },
      });
      expect({ value, status: answer.status, code: answer.code }).toEqual({
        value,
        status: 400,
        code: 'VALIDATION',
      });
      expect(answer.message).toMatch(/^last-event-id: /);
    }
  });
});

describe('authentication and who may say what', () => {
  it('takes the bearer scheme in any case, as RFC 9110 says', async () => {
    for (const header of [
      `bearer ${ADMIN}`,
      `BEARER ${ADMIN}`,
      `Bearer   ${ADMIN}  `,
      `bEaReR\t${ADMIN}`,
    ]) {
      const answer = await call(url, 'GET', '/v1/tasks', {
        token: null,
        headers: { authorization: header },
      });
      expect({ header, status: answer.status }).toEqual({ header, status: 200 });
    }
    for (const [header, message] of [
      [`Basic ${ADMIN}`, 'A bearer token is required'],
      ['Bearer', 'A bearer token is required'],
      [`Bearerx ${ADMIN}`, 'A bearer token is required'],
      ['bearer not-a-token', 'The bearer token is not valid'],
    ] as const) {
      const answer = await call(url, 'GET', '/v1/tasks', {
        token: null,
        headers: { authorization: header },
      });
      expect({ header, status: answer.status, code: answer.code, message: answer.message }).toEqual(
        {
          header,
          status: 401,
          code: 'UNAUTHENTICATED',
          message,
        },
      );
      expect(answer.headers.get('www-authenticate')).toBe('Bearer');
    }
  });

  it('lets an agent escalate only for itself', async () => {
    const before = (await call(url, 'GET', '/v1/escalations?limit=1000')).body as {
      escalations: unknown[];
    };
    const violation = (agentId: string) => ({
      kind: 'violation',
      violation: {
        kind: 'budget',
        code: 'BUDGET_EXCEEDED',
        agentId,
        message: 'over',
        at: 'now',
        details: {},
      },
    });
    const forged = await call(url, 'POST', '/v1/escalations', {
      token: agentA,
      body: violation('agent-b'),
    });
    expect(forged).toMatchObject({
      status: 403,
      code: 'FORBIDDEN',
      message: 'Agent agent-a may not escalate a violation of agent agent-b',
    });
    const after = (await call(url, 'GET', '/v1/escalations?limit=1000')).body as {
      escalations: unknown[];
    };
    expect(after.escalations).toHaveLength(before.escalations.length);
    const own = await call(url, 'POST', '/v1/escalations', {
      token: agentB,
      body: violation('agent-b'),
    });
    expect(own.status).toBe(201);
    expect((own.body as { escalation: { agentId: string } }).escalation.agentId).toBe('agent-b');
    // The admin files for anyone.
    expect(
      (await call(url, 'POST', '/v1/escalations', { body: violation('agent-a') })).status,
    ).toBe(201);
  });

  it("forwards a Paperclip violation through coordinationSink with Paperclip's agent id in its details", async () => {
    const sink = coordinationSink(new CoordinationClient({ url, token: agentA, retries: 0 }));
    await sink.send({
      kind: 'violation',
      taskId: 'PAP-12',
      agentId: 'paperclip-agent-uuid',
      comment: undefined,
      at: 'now',
      violation: {
        kind: 'loop',
        code: 'LOOP_DETECTED',
        agentId: 'paperclip-agent-uuid',
        message: 'cycle',
        at: 'now',
        details: { loopType: 'cycle' },
      } as never,
    });
    const { escalations } = (await call(url, 'GET', '/v1/escalations?limit=1000')).body as {
      escalations: Array<{ taskId: string; agentId: string; violation: Record<string, unknown> }>;
    };
    const forwarded = escalations.find((e) => e.taskId === 'PAP-12');
    expect(forwarded).toMatchObject({
      agentId: 'agent-a',
      violation: { details: { loopType: 'cycle', paperclipAgentId: 'paperclip-agent-uuid' } },
    });
    expect(forwarded?.violation).not.toHaveProperty('agentId');
  });

  it('shows where the database is on /healthz to the admin only', async () => {
    const anyone = await call(url, 'GET', '/healthz', { token: null });
    expect(anyone).toMatchObject({ status: 200, body: { status: 'ok', storage: 'sqlite' } });
    expect(anyone.body).not.toHaveProperty('location');
    const agent = await call(url, 'GET', '/healthz', { token: agentA });
    expect(agent.body).not.toHaveProperty('location');
    const admin = await call(url, 'GET', '/healthz', {
      headers: { authorization: `bearer ${ADMIN}` },
    });
    expect(admin.body).toMatchObject({
      status: 'ok',
      location: expect.stringMatching(/^sqlite:.*queue\.db$/),
    });
  });
});

describe('methods and content types', () => {
  it('answers 405 with Allow for a method a known path does not take, 404 for an unknown path', async () => {
    for (const [method, path, allow] of [
      ['PUT', '/v1/tasks', 'GET, HEAD, POST'],
      ['DELETE', '/v1/tasks/some-task', 'GET, HEAD'],
      ['PATCH', '/v1/tasks/some-task/transition', 'POST'],
      ['DELETE', '/v1/agents', 'GET, HEAD, POST'],
      ['OPTIONS', '/v1/escalations', 'GET, HEAD, POST'],
      ['POST', '/healthz', 'GET, HEAD'],
    ] as const) {
      const answer = await call(url, method, path, {
        headers: { 'content-type': 'application/json' },
      });
      expect({
        method,
        path,
        status: answer.status,
        code: answer.code,
        allow: answer.headers.get('allow'),
      }).toEqual({ method, path, status: 405, code: 'METHOD_NOT_ALLOWED', allow });
    }
    const unknown = await call(url, 'GET', '/v1/nothing-here');
    expect(unknown).toMatchObject({
      status: 404,
      code: 'NOT_FOUND',
      message: 'No route GET /v1/nothing-here',
    });
    expect((await call(url, 'HEAD', '/healthz', { token: null })).status).toBe(200);
  });

  it('takes JSON in UTF-8 only, refusing other types and charsets with 415', async () => {
    const body = JSON.stringify({ type: 'ct', admission: ADMISSION });
    for (const contentType of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'application/json; charset=latin1',
      'application/json; charset=utf-16',
    ]) {
      const answer = await call(url, 'POST', '/v1/tasks', {
        body,
        headers: { 'content-type': contentType },
      });
      expect({ contentType, status: answer.status, code: answer.code }).toEqual({
        contentType,
        status: 415,
        code: 'UNSUPPORTED_MEDIA_TYPE',
      });
    }
    for (const contentType of [
      'application/json',
      'Application/JSON',
      'application/json; charset=UTF-8',
      'application/json;charset="utf-8"',
    ]) {
      const answer = await call(url, 'POST', '/v1/tasks', {
        body,
        headers: { 'content-type': contentType },
      });
      expect({ contentType, status: answer.status }).toEqual({ contentType, status: 201 });
    }
    const malformed = await call(url, 'POST', '/v1/tasks', { body: '{"type":' });
    expect(malformed).toMatchObject({ status: 400, code: 'BAD_JSON' });
  });
});

describe('the OpenAPI document', () => {
  let app: ReturnType<typeof createApp>;
  let service: CoordinationService;
  let server: Server;
  let appUrl: string;

  beforeAll(async () => {
    service = new CoordinationService({ storage: new MemoryStorage(), adminToken: ADMIN });
    await service.start();
    app = createApp(service);
    server = await new Promise<Server>((resolve) => {
      const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () =>
        resolve(s as Server),
      ) as Server;
    });
    appUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    await service.stop();
  });

  it('names every route the app serves, and the app serves every route it names', async () => {
    const doc = (await call(appUrl, 'GET', '/openapi.json', { token: null })).body as {
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
    };
    const documented = Object.entries(doc.paths)
      .flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`))
      .sort();
    const served = [
      ...new Set(
        app.routes
          .filter((route) => route.method !== 'ALL')
          .map((route) => `${route.method} ${route.path.replace(/:(\w+)/g, '{$1}')}`),
      ),
    ].sort();
    expect(documented).toEqual(served);
    for (const route of documented) {
      const [method, path] = route.split(' ') as [string, string];
      if (path === '/v1/events/stream') {
        const stop = new AbortController();
        const stream = await fetch(`${appUrl}${path}`, {
          headers: { authorization: `Bearer ${ADMIN}` },
          signal: stop.signal,
        });
        expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/);
        stop.abort();
        continue;
      }
      const answer = await call(appUrl, method, path.replace('{id}', 'probe'), {
        ...(method === 'POST' ? { body: {} } : {}),
      });
      expect({ route, status: answer.status }).not.toMatchObject({ status: 404, code: undefined });
      expect({ route, status: answer.status }).not.toEqual({ route, status: 405 });
      expect(answer.message ?? '').not.toMatch(/^No route /);
    }
    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(methods)) {
        expect({ route: `${method} ${path}`, has: Object.keys(operation.responses) }).toEqual({
          route: `${method} ${path}`,
          has: expect.arrayContaining(path === '/openapi.json' ? ['200'] : ['400', '500', '503']),
        });
        if (method === 'post')
          expect({ path, has: Object.keys(operation.responses) }).toEqual({
            path,
            has: expect.arrayContaining(['415']),
          });
      }
    }
  });
});

describe('the README', () => {
  it('lists every error code the service answers, with its status, and no other', async () => {
    const seen = new Map<string, number>();
    const note = async (answer: Promise<{ status: number; code: string | undefined }>) => {
      const { status, code } = await answer;
      expect(code).toBeDefined();
      seen.set(code as string, status);
    };
    const admission = { type: 'r', admission: ADMISSION };
    await note(call(url, 'POST', '/v1/tasks', { body: { type: 42 } }));
    await note(call(url, 'GET', '/v1/tasks/%20'));
    await note(call(url, 'POST', '/v1/tasks', { body: '{' }));
    await note(call(url, 'GET', '/v1/tasks', { token: null }));
    await note(call(url, 'POST', '/v1/agents', { token: agentA, body: { id: 'x' } }));
    await note(call(url, 'GET', '/v1/tasks/nope'));
    await note(call(url, 'PUT', '/v1/tasks'));
    await call(url, 'POST', '/v1/tasks', {
      body: { ...admission, id: 'r-backlog', state: 'backlog' },
    });
    await note(call(url, 'POST', '/v1/tasks/r-backlog/claim', { token: agentA, body: {} }));
    await note(
      call(url, 'POST', '/v1/tasks', {
        body: { ...admission, payload: 'x'.repeat(2 * 1024 * 1024) },
      }),
    );
    await note(
      call(url, 'POST', '/v1/tasks', { body: '{}', headers: { 'content-type': 'text/plain' } }),
    );
    await note(call(url, 'POST', '/v1/tasks', { body: { type: 'r' } }));
    await note(
      call(url, 'POST', '/v1/tasks', { body: { ...admission, id: 'r-self', parentId: 'r-self' } }),
    );
    await note(call(url, 'POST', '/v1/tasks/r-backlog/transition', { body: { to: 'done' } }));
    await call(url, 'POST', '/v1/tasks', {
      body: { ...admission, id: 'r-budget', type: 'rb', budget: { maxSteps: 1 } },
    });
    const claimed = await call(url, 'POST', '/v1/tasks/claim', {
      token: agentB,
      body: { types: ['rb'] },
    });
    const leaseId = (claimed.body as { lease: { id: string } }).lease.id;
    await note(
      call(url, 'POST', '/v1/tasks/r-budget/steps', { token: agentB, body: { count: 2, leaseId } }),
    );
    await call(url, 'POST', '/v1/agents/agent-a/sleep', {
      token: agentA,
      body: { timeoutSeconds: 60 },
    });
    await note(call(url, 'POST', '/v1/tasks', { token: agentA, body: admission }));
    // One event stream more than an agent may hold open.
    const streams = await Promise.all(
      Array.from({ length: 9 }, async () => {
        const stop = new AbortController();
        const response = await fetch(`${url}/v1/events/stream`, {
          headers: { authorization: `Bearer ${agentA}` },
          signal: stop.signal,
        });
        return { response, stop };
      }),
    );
    const refusedStream = streams.find((s) => s.response.status === 429);
    if (refusedStream === undefined) throw new Error('no stream was refused');
    const refusedBody = (await refusedStream.response.json()) as { error: { code: string } };
    seen.set(refusedBody.error.code, 429);
    for (const s of streams) s.stop.abort();
    // The database closed under the running service: the storage's StoreError `unavailable`.
    await t.server.service.storage.close();
    await note(call(url, 'GET', '/v1/tasks/r-budget'));
    await t.server.service.storage.open();
    // An error nobody expected: a bug in a storage call.
    const storage = t.server.service.storage;
    const getTask = storage.getTask.bind(storage);
    storage.getTask = async () => {
      throw new TypeError('undefined is not a function');
    };
    await note(call(url, 'GET', '/v1/tasks/r-budget'));
    storage.getTask = getTask;
    expect(internalErrors).toMatchObject([{ method: 'GET', path: '/v1/tasks/r-budget' }]);

    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('## Errors'), readme.indexOf('## License'));
    const table = new Map<string, number>();
    for (const [, code, status] of section.matchAll(/^\| `([A-Z_]+)` +\| (\d{3}) +\|/gm))
      table.set(code as string, Number(status));
    expect(Object.fromEntries([...seen].sort())).toEqual(Object.fromEntries([...table].sort()));
    expect(table.get('UNAVAILABLE')).toBe(503);
  });
});
