import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CoordinationClient } from '@exec-kernel/coordination-client';
import {
  ConflictError,
  ForbiddenError,
  InvalidInputError,
  type KernelError,
  LoopDetectionError,
  ManualClock,
  NotFoundError,
  StoreError,
  TASK_STATES,
  ValidationError,
} from '@exec-kernel/core';
import { beforeEach, describe, expect, it } from 'vitest';
import { isViolation } from '../src/errors.js';
import { createApp } from '../src/http/app.js';
import { describeError } from '../src/http/errors.js';
import { CoordinationService } from '../src/service.js';
import { MemoryStorage } from '../src/storage/memory.js';

// The HTTP layer over the shared wire contract, in process: the service's clock in its views,
// query validation, the OpenAPI document and the client's typed refusals.

const ADMIN = 'admin-token-for-wire-tests';
const ADMISSION = { consumer: 'c', painPoint: 'p', expectedValue: 'v', validationPath: 't' };
const START = Date.parse('2030-01-01T00:00:00.000Z');

let clock: ManualClock;
let service: CoordinationService;
let app: ReturnType<typeof createApp>;

const clientFor = (token: string) =>
  new CoordinationClient({
    url: 'http://in-process',
    token,
    fetch: (input, init) => Promise.resolve(app.request(new Request(input, init))),
  });

beforeEach(async () => {
  clock = new ManualClock(START);
  service = new CoordinationService({ storage: new MemoryStorage(), adminToken: ADMIN, clock });
  await service.start();
  app = createApp(service, { version: '1.0.0' });
  return () => service.stop();
});

describe("agent views by the service's clock", () => {
  it('shows an agent asleep until its sleep ends on the service clock, from every route', async () => {
    const admin = clientFor(ADMIN);
    const { token } = await admin.registerAgent('sleeper');
    const agent = clientFor(token);
    // The service's clock is years ahead of the machine's: by Date.now() this sleep would never end.
    const slept = await agent.sleep('sleeper', { timeoutSeconds: 60, reason: 'idle' });
    expect(slept).toMatchObject({ asleep: true, sleepReason: 'idle' });
    expect(await agent.getAgent('sleeper')).toMatchObject({
      asleep: true,
      sleepUntil: new Date(START + 60_000).toISOString(),
    });
    clock.advance(61_000);
    expect(await agent.getAgent('sleeper')).toMatchObject({ asleep: false, sleepUntil: null });
    await agent.sleep('sleeper', { timeoutSeconds: 60 });
    const woken = await agent.wake('sleeper');
    expect(woken.wasAsleep).toBe(true);
    expect(woken.agent.asleep).toBe(false);
  });
});

describe('GET /v1/tasks?state=', () => {
  it('refuses a state that does not exist with 400 VALIDATION naming the states there are', async () => {
    const response = await app.request('/v1/tasks?state=bogus', {
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(response.status).toBe(400);
    const { error } = (await response.json()) as { error: { code: string; message: string } };
    expect(error).toMatchObject({
      code: 'VALIDATION',
      message: `state: must be one of ${TASK_STATES.join(', ')}`,
    });
  });

  it('reaches the client as a ValidationError with its issues', async () => {
    const refused = await clientFor(ADMIN)
      .listTasks({ state: 'bogus' as 'todo' })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ValidationError);
    expect((refused as ValidationError).issues).toEqual([
      { path: 'state', message: `must be one of ${TASK_STATES.join(', ')}` },
    ]);
  });
});

describe('refusals through the client', () => {
  it('gives a FORBIDDEN refusal its ForbiddenError', async () => {
    const admin = clientFor(ADMIN);
    const a = clientFor((await admin.registerAgent('a')).token);
    const b = clientFor((await admin.registerAgent('b')).token);
    await a.enqueue({ id: 'mine', type: 'x', admission: ADMISSION });
    const claimed = await a.claim();
    expect(claimed?.task.id).toBe('mine');
    const refused = await b.transition('mine', 'done').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ForbiddenError);
    expect((refused as ForbiddenError).message).toBe('Task mine is leased by a, not b');
    const admins = await admin.registerAgent('x').then(() => b.registerAgent('y').catch((e) => e));
    expect(ForbiddenError.is(admins)).toBe(true);
  });
});

describe('the OpenAPI document', () => {
  it('has the paths and components it had before the schemas moved to the wire protocol', async () => {
    const before = JSON.parse(
      readFileSync(join(import.meta.dirname, 'fixtures', 'openapi-before.json'), 'utf8'),
    ) as { paths: unknown; components: unknown };
    const doc = (await (await app.request('/openapi.json')).json()) as {
      paths: Record<string, unknown>;
      components: { schemas: Record<string, unknown> };
    };
    // Every path and schema of before is unchanged; what was added since is named here.
    const added = {
      paths: [
        '/v1/tasks/{id}/context',
        '/v1/tasks/{id}/context/{key}',
        '/v1/tasks/{id}/notes',
        '/v1/tasks/{id}/actions',
        '/v1/tasks/{id}/actions/result',
        '/v1/tasks/{id}/usage/check',
      ],
      schemas: [
        'Note',
        'TaskContext',
        'ActionRequest',
        'ActionResultRequest',
        'ActionWarning',
        'ActionCheck',
        'ActionHistory',
        'AgentListItem',
      ],
    };
    const without = <T>(record: Record<string, T>, keys: string[]) =>
      Object.fromEntries(Object.entries(record).filter(([k]) => !keys.includes(k)));
    // Paths that gained a method (GET /v1/agents) or a query parameter (taskId on GET /v1/events):
    // the rest of them is unchanged.
    type Operation = { summary?: string; parameters?: Array<{ name: string }> };
    const paths = doc.paths as Record<string, Record<string, Operation>>;
    const old = before.paths as Record<string, Record<string, Operation>>;
    const { get: agentList, ...agents } = paths['/v1/agents'] ?? {};
    expect(agentList?.summary).toMatch(/^Every agent/);
    expect(agents).toEqual(old['/v1/agents']);
    const { summary: _, ...eventList } = paths['/v1/events']?.get ?? {};
    const { summary: __, ...oldEventList } = old['/v1/events']?.get ?? {};
    expect({
      ...eventList,
      parameters: eventList.parameters?.filter((p) => p.name !== 'taskId'),
    }).toEqual(oldEventList);
    expect(eventList.parameters?.map((p) => p.name)).toContain('taskId');
    const changed = ['/v1/agents', '/v1/events'];
    expect(without(doc.paths, [...added.paths, ...changed])).toEqual(
      without(before.paths as Record<string, unknown>, changed),
    );
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(added.paths));
    expect({ ...doc.components, schemas: without(doc.components.schemas, added.schemas) }).toEqual(
      before.components,
    );
    expect(Object.keys(doc.components.schemas)).toEqual(expect.arrayContaining(added.schemas));
  });
});

describe('statuses of domain errors', () => {
  it("answers core's code-only errors by the protocol's table, and escalates only rule violations", () => {
    const cases: Array<[KernelError, number]> = [
      [new ForbiddenError({ action: 'acknowledge escalations' }), 403],
      [new ValidationError({ issues: [{ path: 'body.to', message: 'Required' }] }), 400],
      [new InvalidInputError({ field: 'task id', problem: 'must not be blank' }), 400],
      [new NotFoundError({ resource: 'task', id: 't' }), 404],
      [new ConflictError({ resource: 'task t' }), 409],
      [new StoreError({ path: 'db', problem: 'io', access: 'write', reason: 'ENOSPC' }), 503],
      [new LoopDetectionError({ loopType: 'cycle', taskId: 'a', chain: ['a', 'b', 'a'] }), 422],
    ];
    const answered = cases.map(([error]) => {
      const { status, body } = describeError(
        error,
        () => 'ref',
        () => undefined,
      );
      return { code: body.error.code, status, escalated: isViolation(error) };
    });
    expect(answered).toEqual(
      cases.map(([error, status]) => ({
        code: error.code,
        status,
        escalated: status === 422,
      })),
    );
  });

  it('answers a storage that is unavailable UNAVAILABLE, as a driver fault, without its location', () => {
    const error = new StoreError({
      path: 'postgres://app@db.internal/q',
      problem: 'unavailable',
      engine: 'postgres',
      reason: '57P01',
    });
    const { status, body } = describeError(
      error,
      () => 'ref',
      () => undefined,
    );
    expect({ status, body }).toEqual({
      status: 503,
      body: {
        error: {
          code: 'UNAVAILABLE',
          message: 'The database is not answering; try again shortly',
        },
      },
    });
  });
});
