import { TransportError } from '@exec-kernel/core';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { CoordinationClient } from '../src/client.js';
import { type CoordinationServer, startCoordinationServer } from '../src/server.js';

const ADMIN = 'admin-token-for-server-tests';
const ADMISSION = { consumer: 'c', painPoint: 'p', expectedValue: 'v', validationPath: 't' };

let server: CoordinationServer;
let admin: CoordinationClient;

beforeEach(async () => {
  server = await startCoordinationServer({ db: 'memory', adminToken: ADMIN, port: 0 });
  admin = new CoordinationClient({ url: server.url, token: ADMIN });
});
afterEach(() => server.close());

it('binds 127.0.0.1 by default and answers over real HTTP', async () => {
  expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  expect(await admin.health()).toMatchObject({ status: 'ok', storage: 'memory' });
});

it('streams the event log as Server-Sent Events, resuming after a cursor', async () => {
  const { token } = await admin.registerAgent('planner');
  const planner = new CoordinationClient({ url: server.url, token });
  await planner.enqueue({ id: 'before', type: 'x', admission: ADMISSION });
  const stop = new AbortController();
  const seen: string[] = [];
  const reading = (async () => {
    for await (const event of admin.stream({ signal: stop.signal })) {
      seen.push(`${event.type}:${event.taskId ?? '-'}`);
      if (seen.length === 4) stop.abort();
    }
  })();
  await new Promise((r) => setTimeout(r, 100));
  await planner.enqueue({ id: 'after-1', type: 'x', admission: ADMISSION });
  await planner.enqueue({ id: 'after-2', type: 'x', admission: ADMISSION });
  await reading;
  expect(seen).toEqual([
    'agent.registered:-',
    'task.enqueued:before',
    'task.enqueued:after-1',
    'task.enqueued:after-2',
  ]);

  const resumed: string[] = [];
  const again = new AbortController();
  for await (const event of admin.stream({ after: 2, signal: again.signal })) {
    resumed.push(event.taskId as string);
    if (resumed.length === 2) again.abort();
  }
  expect(resumed).toEqual(['after-1', 'after-2']);
});

it('shuts down gracefully: a waiting claim gets its answer, then new connections are refused', async () => {
  const { token } = await admin.registerAgent('worker');
  const worker = new CoordinationClient({ url: server.url, token, retries: 0 });
  const waiting = worker.claim({ waitSeconds: 30 });
  await new Promise((r) => setTimeout(r, 200));
  const started = Date.now();
  await server.close();
  expect(await waiting).toBeUndefined();
  expect(Date.now() - started).toBeLessThan(5_000);
  const refused = await worker.getTask('x').then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(refused).toBeInstanceOf(TransportError);
  expect((refused as TransportError).message).toMatch(/failed: no response$/);
});

it('refuses to start on a port that is taken, with the reason', async () => {
  const port = Number(new URL(server.url).port);
  await expect(startCoordinationServer({ db: 'memory', adminToken: ADMIN, port })).rejects.toThrow(
    /EADDRINUSE/,
  );
});
