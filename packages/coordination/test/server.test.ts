import { request as httpRequest } from 'node:http';
import { CoordinationClient } from '@exec-kernel/coordination-client';
import { NotFoundError, TaskAdmissionError, TransportError } from '@exec-kernel/core';
import { afterEach, beforeEach, expect, it } from 'vitest';
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

it('sends bodies and rebuilds refusals over real HTTP on the default transport', async () => {
  const { token } = await admin.registerAgent('planner');
  const planner = new CoordinationClient({ url: server.url, token, retries: 0 });
  const { task } = await planner.enqueue({ id: 'real-1', type: 'build', admission: ADMISSION });
  expect(task).toMatchObject({ id: 'real-1', state: 'todo', agentId: 'planner' });
  const missing = await planner.getTask('no-such-task').catch((e: unknown) => e);
  expect(missing).toBeInstanceOf(NotFoundError);
  const refused = await planner.enqueue({ type: 'build' } as never).catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(TaskAdmissionError);
  expect(refused).toMatchObject({ code: 'TASK_ADMISSION' });
  const stranger = new CoordinationClient({ url: server.url, token: 'wrong', retries: 0 });
  expect(await stranger.getTask('real-1').catch((e: unknown) => e)).toMatchObject({ status: 401 });
});

it('refuses an oversized body over real HTTP, declared or chunked, and nothing is created', async () => {
  const huge = JSON.stringify({
    type: 'x',
    admission: ADMISSION,
    payload: 'x'.repeat(2 * 1024 * 1024),
  });
  const declared = await post(`${server.url}/v1/tasks`, huge, {
    'content-length': String(Buffer.byteLength(huge)),
  });
  expect(declared).toMatchObject({ status: 413, code: 'PAYLOAD_TOO_LARGE' });
  const chunked = await post(`${server.url}/v1/tasks`, huge, { 'transfer-encoding': 'chunked' });
  expect(chunked).toMatchObject({ status: 413, code: 'PAYLOAD_TOO_LARGE' });
  expect((await admin.listTasks()).tasks).toEqual([]);
});

/** A POST through node:http, so the test controls content-length and chunking. */
function post(
  url: string,
  body: string,
  headers: Record<string, string>,
): Promise<{ status: number; code: string }> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      url,
      {
        method: 'POST',
        headers: {
          authorization: `Bearer ${ADMIN}`,
          'content-type': 'application/json',
          ...headers,
        },
      },
      (response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => {
          text += chunk.toString();
        });
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            code: (JSON.parse(text) as { error: { code: string } }).error.code,
          }),
        );
      },
    );
    request.on('error', reject);
    // Chunked: the body goes in pieces, with no length announced.
    for (let i = 0; i < body.length; i += 64 * 1024) request.write(body.slice(i, i + 64 * 1024));
    request.end();
  });
}

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
