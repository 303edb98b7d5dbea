import { CoordinationClient } from '@exec-kernel/coordination-client';
import { InvalidInputError } from '@exec-kernel/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { InternalErrorReport } from '../src/http/guards.js';
import {
  ADMIN,
  ADMISSION,
  call,
  type Engine,
  registerAgent,
  sql,
  startServer,
  type TestServer,
} from './http-helpers.js';

// What an attacker would send, over real HTTP, to a real service on each engine: every refusal
// is a 400 naming the field, the same on SQLite and PostgreSQL, and nothing is stored.

const deep = (levels: number): unknown => {
  let value: unknown = 'leaf';
  for (let i = 0; i < levels; i++) value = [value];
  return value;
};
/** JSON text nested `levels` deep (too deep for JSON.stringify to write). */
const deepText = (levels: number): string => `${'['.repeat(levels)}"leaf"${']'.repeat(levels)}`;
const admissionText = JSON.stringify(ADMISSION);

describe.each<Engine>(['sqlite', 'postgres'])('on %s', (engine) => {
  let t: TestServer;
  let url: string;
  let agentToken: string;
  const reports: InternalErrorReport[] = [];

  beforeAll(async () => {
    t = await startServer(engine, { onInternalError: (r) => reports.push(r) });
    url = t.url;
    agentToken = await registerAgent(url, 'agent-a');
    await registerAgent(url, 'agent-b');
  });
  afterAll(() => t.stop());

  /** Every task the service holds, by id. */
  const taskIds = async (): Promise<string[]> =>
    (
      (await call(url, 'GET', '/v1/tasks?limit=1000')).body as { tasks: Array<{ id: string }> }
    ).tasks.map((task) => task.id);

  it('refuses a payload nested 10,000 deep, and deep JSON in every body, with 400', async () => {
    const before = await taskIds();
    const payload = await call(url, 'POST', '/v1/tasks', {
      body: `{"type":"x","admission":${admissionText},"payload":${deepText(10_000)}}`,
    });
    expect(payload).toMatchObject({
      status: 400,
      code: 'INVALID_INPUT',
      message: 'Invalid payload: must not nest deeper than 64 levels',
    });
    const admission = await call(url, 'POST', '/v1/tasks', {
      body: `{"type":"x","admission":{"consumer":${deepText(10_000)}}}`,
    });
    expect(admission).toMatchObject({
      status: 400,
      message: 'Invalid admission: must not nest deeper than 64 levels',
    });
    const violation = await call(url, 'POST', '/v1/escalations', {
      body: `{"kind":"violation","violation":{"kind":"k","code":"C","message":"m","at":"now","details":{"x":${deepText(10_000)}}}}`,
    });
    expect(violation).toMatchObject({
      status: 400,
      message: 'Invalid violation: must not nest deeper than 64 levels',
    });
    // An unknown field is no way round it either.
    const claim = await call(url, 'POST', '/v1/tasks/claim', {
      token: agentToken,
      body: `{"sneaky":${deepText(10_000)}}`,
    });
    expect(claim).toMatchObject({ status: 400, code: 'INVALID_INPUT' });
    // 64 levels are fine, and come back as sent.
    const fine = await call(url, 'POST', '/v1/tasks', {
      body: { id: 'deep-ok', type: 'x', admission: ADMISSION, payload: deep(63) },
    });
    expect(fine.status).toBe(201);
    expect((fine.body as { task: { payload: unknown } }).task.payload).toEqual(deep(63));
    expect(await taskIds()).toEqual([...before, 'deep-ok']);
    expect(reports).toEqual([]);
  });

  it('refuses NUL in every id, type, text and payload string of a body with 400', async () => {
    const before = await taskIds();
    const nul = 'a\u0000b';
    const refusals: Array<[string, string, Record<string, unknown>, string]> = [
      ['POST', '/v1/tasks', { id: nul, type: 'x', admission: ADMISSION }, 'id'],
      ['POST', '/v1/tasks', { type: nul, admission: ADMISSION }, 'type'],
      ['POST', '/v1/tasks', { type: 'x', title: nul, admission: ADMISSION }, 'title'],
      ['POST', '/v1/tasks', { type: 'x', parentId: nul, admission: ADMISSION }, 'parentId'],
      ['POST', '/v1/tasks', { type: 'x', createdById: nul, admission: ADMISSION }, 'createdById'],
      ['POST', '/v1/tasks', { type: 'x', agentId: nul, admission: ADMISSION }, 'agentId'],
      [
        'POST',
        '/v1/tasks',
        { type: 'x', idempotencyKey: nul, admission: ADMISSION },
        'idempotencyKey',
      ],
      [
        'POST',
        '/v1/tasks',
        { type: 'x', admission: { ...ADMISSION, consumer: nul } },
        'admission.consumer',
      ],
      [
        'POST',
        '/v1/tasks',
        { type: 'x', admission: ADMISSION, payload: { note: nul } },
        'payload.note',
      ],
      ['POST', '/v1/tasks', { type: 'x', admission: ADMISSION, payload: { [nul]: 1 } }, 'payload'],
      ['POST', '/v1/agents', { id: nul }, 'id'],
      ['POST', '/v1/escalations', { kind: 'blocked', comment: nul }, 'comment'],
      ['POST', '/v1/escalations', { kind: 'blocked', taskId: nul }, 'taskId'],
    ];
    for (const [method, path, body, field] of refusals) {
      const answer = await call(url, method, path, { body });
      expect({ field, status: answer.status, code: answer.code, message: answer.message }).toEqual({
        field,
        status: 400,
        code: 'INVALID_INPUT',
        message: expect.stringMatching(new RegExp(`^Invalid ${field.replace('.', '\\.')}: `)),
      });
    }
    expect(await taskIds()).toEqual(before);
    expect(reports).toEqual([]);
  });

  it('refuses NUL in a path or a query with 400', async () => {
    for (const path of [
      '/v1/tasks/a%00b',
      '/v1/agents/a%00b',
      '/v1/tasks?type=a%00b',
      '/v1/tasks?agentId=a%00b',
      '/v1/tasks?leaseOwner=a%00b',
    ]) {
      const answer = await call(url, 'GET', path);
      expect({ path, status: answer.status, code: answer.code }).toEqual({
        path,
        status: 400,
        code: 'INVALID_INPUT',
      });
    }
    expect((await call(url, 'GET', '/v1/tasks/a%00b')).message).toBe(
      'Invalid task id: must not contain control characters',
    );
    expect((await call(url, 'POST', '/v1/escalations/a%00b/ack', { body: {} })).message).toBe(
      'Invalid escalation id: must not contain control characters',
    );
    expect(reports).toEqual([]);
  });

  it('refuses lone surrogates (which SQLite would rewrite) and keeps surrogate pairs exact', async () => {
    const before = await taskIds();
    const lone = 'task-\ud800';
    for (const [body, field] of [
      [{ id: lone, type: 'x', admission: ADMISSION }, 'id'],
      [{ type: 'x', title: `title \udc00`, admission: ADMISSION }, 'title'],
      [{ type: 'x', admission: ADMISSION, payload: ['ok', lone] }, 'payload.1'],
    ] as const) {
      const answer = await call(url, 'POST', '/v1/tasks', { body });
      expect({ field, status: answer.status, message: answer.message }).toEqual({
        field,
        status: 400,
        message: `Invalid ${field}: must not contain unpaired surrogates`,
      });
    }
    expect((await call(url, 'GET', '/v1/tasks/task-%ED%A0%80')).status).toBe(404);
    expect(await taskIds()).toEqual(before);
    // A well-formed astral character is an ordinary one: the id that comes back is the id sent.
    const emoji = 'task-\u{1F680}';
    const created = await call(url, 'POST', '/v1/tasks', {
      body: { id: emoji, type: 'x', admission: ADMISSION, payload: { rocket: '\u{1F680}' } },
    });
    expect(created.status).toBe(201);
    const got = await call(url, 'GET', `/v1/tasks/${encodeURIComponent(emoji)}`);
    expect((got.body as { task: { id: string; payload: unknown } }).task).toMatchObject({
      id: emoji,
      payload: { rocket: '\u{1F680}' },
    });
  });

  it("applies core's id rule to every id and type, with one message shape in bodies, paths and queries", async () => {
    const before = await taskIds();
    const cases: Array<[string, string, unknown, string, string | null]> = [
      [
        'POST',
        '/v1/tasks',
        { id: ' ', type: 'x', admission: ADMISSION },
        'Invalid id: must not be blank',
        null,
      ],
      [
        'POST',
        '/v1/tasks',
        { type: ' ', admission: ADMISSION },
        'Invalid type: must not be blank',
        null,
      ],
      [
        'POST',
        '/v1/tasks',
        { type: '', admission: ADMISSION },
        'Invalid type: must not be empty',
        null,
      ],
      [
        'POST',
        '/v1/tasks',
        { type: ' x', admission: ADMISSION },
        'Invalid type: must not start or end with whitespace',
        null,
      ],
      [
        'POST',
        '/v1/tasks',
        { type: '..', admission: ADMISSION },
        "Invalid type: must not be '..'",
        null,
      ],
      [
        'POST',
        '/v1/tasks',
        { type: 'x\u001b[31m', admission: ADMISSION },
        'Invalid type: must not contain control characters',
        null,
      ],
      [
        'POST',
        '/v1/tasks',
        { type: 'x', parentId: '\t', admission: ADMISSION },
        'Invalid parentId: must not be blank',
        null,
      ],
      [
        'POST',
        '/v1/tasks',
        { type: 'x', createdById: ' ', admission: ADMISSION },
        'Invalid createdById: must not be blank',
        null,
      ],
      [
        'POST',
        '/v1/tasks',
        { type: 'x', agentId: ' ', admission: ADMISSION },
        'Invalid agentId: must not be blank',
        null,
      ],
      [
        'POST',
        '/v1/tasks',
        { id: 'x'.repeat(201), type: 'x', admission: ADMISSION },
        'Invalid id: must be at most 200 characters, got 201',
        null,
      ],
      ['POST', '/v1/agents', { id: ' ' }, 'Invalid id: must not be blank', null],
      [
        'POST',
        '/v1/escalations',
        { kind: 'blocked', taskId: ' ' },
        'Invalid taskId: must not be blank',
        null,
      ],
      [
        'POST',
        '/v1/tasks/claim',
        { types: ['build', ' '] },
        'Invalid types.1: must not be blank',
        agentToken,
      ],
      [
        'POST',
        '/v1/tasks/claim-many',
        { max: 2, types: [' '] },
        'Invalid types.0: must not be blank',
        agentToken,
      ],
      [
        'POST',
        '/v1/tasks/x/heartbeat',
        { leaseId: ' ' },
        'Invalid leaseId: must not be blank',
        agentToken,
      ],
      [
        'POST',
        '/v1/tasks/x/transition',
        { to: 'done', leaseId: ' ' },
        'Invalid leaseId: must not be blank',
        agentToken,
      ],
      ['POST', '/v1/tasks/x/transition', { to: ' ' }, 'Invalid to: must not be blank', agentToken],
      [
        'POST',
        '/v1/tasks/x/transition',
        { to: 'done', next: { types: [' '] } },
        'Invalid next.types.0: must not be blank',
        agentToken,
      ],
      [
        'POST',
        '/v1/tasks/transition-many',
        {
          transitions: [
            { id: 'ok', to: 'done' },
            { id: ' ', to: 'done' },
          ],
        },
        'Invalid transitions.1.id: must not be blank',
        agentToken,
      ],
      [
        'POST',
        '/v1/tasks/x/steps',
        { leaseId: ' ' },
        'Invalid leaseId: must not be blank',
        agentToken,
      ],
      [
        'POST',
        '/v1/tasks/x/usage',
        { leaseId: ' ' },
        'Invalid leaseId: must not be blank',
        agentToken,
      ],
      [
        'POST',
        '/v1/tasks/x/release',
        { leaseId: ' ' },
        'Invalid leaseId: must not be blank',
        agentToken,
      ],
      ['GET', '/v1/tasks/%20', undefined, 'Invalid task id: must not be blank', null],
      ['POST', '/v1/tasks/%20/claim', {}, 'Invalid task id: must not be blank', agentToken],
      ['GET', '/v1/agents/%20', undefined, 'Invalid agent id: must not be blank', null],
      ['POST', '/v1/agents/%20/sleep', {}, 'Invalid agent id: must not be blank', null],
      ['POST', '/v1/escalations/%20/resolve', {}, 'Invalid escalation id: must not be blank', null],
      ['GET', '/v1/tasks?agentId=%20', undefined, 'Invalid agentId: must not be blank', null],
      ['GET', '/v1/tasks?type=', undefined, 'Invalid type: must not be empty', null],
      [
        'GET',
        '/v1/tasks?leaseOwner=%20x',
        undefined,
        'Invalid leaseOwner: must not start or end with whitespace',
        null,
      ],
    ];
    for (const [method, path, body, message, token] of cases) {
      const answer = await call(url, method, path, {
        ...(body === undefined ? {} : { body }),
        ...(token === null ? {} : { token }),
      });
      expect({
        method,
        path,
        status: answer.status,
        code: answer.code,
        message: answer.message,
      }).toEqual({
        method,
        path,
        status: 400,
        code: 'INVALID_INPUT',
        message,
      });
    }
    expect(await taskIds()).toEqual(before);
    // The client gives it back as core's error.
    const client = new CoordinationClient({ url, token: ADMIN, retries: 0 });
    const error = await client.getTask(' ').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error).toMatchObject({ field: 'task id', problem: 'must not be blank' });
  });

  it('refuses amounts past the budget maximums, and token totals past 2^53, with 400', async () => {
    const worker = await registerAgent(url, 'spender');
    const enqueued = await call(url, 'POST', '/v1/tasks', {
      body: {
        id: 'spend-1',
        type: 'spend',
        admission: ADMISSION,
        budget: { maxTokens: null, maxCostUsd: null },
      },
    });
    expect(enqueued.status).toBe(201);
    const claimed = await call(url, 'POST', '/v1/tasks/claim', {
      token: worker,
      body: { types: ['spend'] },
    });
    const leaseId = (claimed.body as { lease: { id: string } }).lease.id;
    const usage = (body: object) =>
      call(url, 'POST', '/v1/tasks/spend-1/usage', { token: worker, body: { leaseId, ...body } });
    expect(await usage({ tokens: 1e16 })).toMatchObject({ status: 400, code: 'VALIDATION' });
    expect(await usage({ costUsd: 1e12 })).toMatchObject({ status: 400, code: 'VALIDATION' });
    expect(
      await call(url, 'POST', '/v1/tasks', {
        body: { type: 'x', admission: ADMISSION, budget: { maxTokens: 1e16 } },
      }),
    ).toMatchObject({ status: 400, code: 'VALIDATION' });
    for (let i = 0; i < 9; i++) expect((await usage({ tokens: 1e15 })).status).toBe(200);
    const past = await usage({ tokens: 1e15 });
    expect(past).toMatchObject({
      status: 400,
      code: 'INVALID_INPUT',
      message: 'Invalid tokens: would take the token count of task spend-1 past 9007199254740991',
    });
    const task = (await call(url, 'GET', '/v1/tasks/spend-1')).body as { task: { tokens: number } };
    expect(task.task.tokens).toBe(9e15);
    expect(reports).toEqual([]);
  });

  it('refuses over-long free text and control characters in it, and keeps newlines', async () => {
    const long = await call(url, 'POST', '/v1/tasks', {
      body: { type: 'x', admission: { ...ADMISSION, consumer: 'c'.repeat(10_001) } },
    });
    expect(long).toMatchObject({
      status: 400,
      code: 'VALIDATION',
      message: 'admission.consumer: must be at most 10000 characters',
    });
    const message = await call(url, 'POST', '/v1/escalations', {
      body: {
        kind: 'violation',
        violation: { kind: 'k', code: 'C', message: 'm'.repeat(10_001), at: 'now', details: {} },
      },
    });
    expect(message).toMatchObject({ status: 400, code: 'VALIDATION' });
    const ansi = await call(url, 'POST', '/v1/tasks', {
      body: { type: 'x', title: 'red \u001b[31m alert', admission: ADMISSION },
    });
    expect(ansi).toMatchObject({
      status: 400,
      message: 'Invalid title: must not contain control characters',
    });
    const lines = await call(url, 'POST', '/v1/escalations', {
      body: { kind: 'blocked', comment: 'line one\nline two\ttabbed' },
    });
    expect(lines.status).toBe(201);
    expect((lines.body as { escalation: { comment: string } }).escalation.comment).toBe(
      'line one\nline two\ttabbed',
    );
  });

  if (engine === 'postgres') {
    it('logs a 500 with a reference the answer carries, the route and the error, never the token', async () => {
      await call(url, 'POST', '/v1/tasks', {
        body: { id: 'doomed', type: 'x', admission: ADMISSION },
      });
      // A real fault, not the client's: the table is gone under the running service.
      await sql((db) => db.unsafe(`alter table "${t.schema}".tasks rename to tasks_gone`));
      try {
        const answer = await call(url, 'GET', '/v1/tasks/doomed');
        expect(answer.status).toBe(500);
        const ref = (answer.body as { error: { details: { ref: string } } }).error.details.ref;
        expect(answer.message).toBe(`Internal error (ref ${ref})`);
        expect(reports).toHaveLength(1);
        expect(reports[0]).toMatchObject({
          ref,
          method: 'GET',
          path: '/v1/tasks/doomed',
          route: '/v1/tasks/:id',
          error: { code: '42P01', message: expect.stringContaining('tasks') },
        });
        expect(JSON.stringify(reports)).not.toContain(ADMIN);
      } finally {
        await sql((db) => db.unsafe(`alter table "${t.schema}".tasks_gone rename to tasks`));
        reports.length = 0;
      }
    });
  }
});
