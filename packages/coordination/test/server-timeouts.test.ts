import { connect, type Socket } from 'node:net';
import { ConfigError } from '@exec-kernel/core';
import { afterEach, expect, it, vi } from 'vitest';
import { startCoordinationServer } from '../src/server.js';
import {
  ADMIN,
  ADMISSION,
  call,
  registerAgent,
  startServer,
  type TestServer,
} from './http-helpers.js';

// Slow and stalled clients over raw sockets against a real server: each is cut off by a timeout
// instead of holding its connection (Node's own defaults would let a trickled body run five
// minutes, and a stalled reader forever).

let t: TestServer | undefined;
afterEach(async () => {
  await t?.stop();
  t = undefined;
});

/** A raw connection to the server, collecting what it is sent; `closed` resolves when it ends. */
async function open(
  url: string,
): Promise<{ socket: Socket; received: () => string; closed: Promise<void> }> {
  const { hostname, port } = new URL(url);
  const socket = connect({ host: hostname, port: Number(port) });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  let text = '';
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString('latin1');
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.on('error', () => undefined);
  return { socket, received: () => text, closed };
}

it('answers 408 and closes the connection of a client that never finishes its headers', async () => {
  t = await startServer('sqlite', { headersTimeoutMs: 300, requestTimeoutMs: 600 });
  const client = await open(t.url);
  client.socket.write(`POST /v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN}\r\n`);
  await client.closed;
  expect(client.received()).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
});

it('answers 408 to a body trickled in byte by byte, and stores nothing', async () => {
  t = await startServer('sqlite', { headersTimeoutMs: 300, requestTimeoutMs: 800 });
  const client = await open(t.url);
  const body = JSON.stringify({ id: 'slow', type: 'x', admission: ADMISSION });
  client.socket.write(
    `POST /v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
  );
  // A byte every 50 ms: never idle, never done (the body is 90-odd bytes).
  let sent = 0;
  const drip = setInterval(() => {
    if (sent < body.length - 1) client.socket.write(body[sent++] as string);
  }, 50);
  await client.closed;
  clearInterval(drip);
  expect(client.received()).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
  expect(sent).toBeLessThan(body.length - 1);
  expect((await call(t.url, 'GET', '/v1/tasks/slow')).status).toBe(404);
});

it('closes an event stream whose client stopped reading, and keeps long-polls within the idle timeout', async () => {
  t = await startServer('sqlite', { idleTimeoutMs: 1500, maxWaitSeconds: 1 });
  const url = t.url;
  const openStreams = async () => {
    const text = (await (await fetch(`${url}/metrics`)).text()) as string;
    return Number(/^exec_kernel_event_streams (\d+)$/m.exec(text)?.[1] ?? Number.NaN);
  };
  // A long-poll that waits its full maxWaitSeconds sends nothing meanwhile, and still gets its answer.
  const worker = await registerAgent(url, 'idle-worker');
  expect(
    (await call(url, 'POST', '/v1/tasks/claim', { token: worker, body: { waitSeconds: 1 } }))
      .status,
  ).toBe(204);

  await call(url, 'POST', '/v1/tasks', { body: { id: 'noisy', type: 'x', admission: ADMISSION } });
  const reader = await open(url);
  reader.socket.write(
    `GET /v1/events/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN}\r\n\r\n`,
  );
  reader.socket.pause();
  while ((await openStreams()) !== 1) await new Promise((r) => setTimeout(r, 20));
  // Events of 10 kB each until the socket's buffers are full and the stream's writes stall; the
  // idle timeout then closes the connection, which ends the stream.
  const comment = 'x'.repeat(10_000);
  let moves = 0;
  while ((await openStreams()) === 1) {
    expect(moves).toBeLessThan(20_000);
    for (let i = 0; i < 20; i++, moves++) {
      const to = moves % 2 === 0 ? 'blocked' : 'todo';
      await call(url, 'POST', '/v1/tasks/noisy/transition', { body: { to, comment } });
    }
  }
  expect(await openStreams()).toBe(0);
  reader.socket.resume();
  await reader.closed;
  expect(reader.received()).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
}, 120_000);

it('bounds the event streams open at once, per agent and in all, and frees a place when one closes', async () => {
  t = await startServer('sqlite', { maxEventStreamsPerCaller: 2, maxEventStreams: 3 });
  const url = t.url;
  const [a, b] = [await registerAgent(url, 'reader-a'), await registerAgent(url, 'reader-b')];
  const opened: AbortController[] = [];
  const stream = async (token: string) => {
    const stop = new AbortController();
    const response = await fetch(`${url}/v1/events/stream`, {
      headers: { authorization: `Bearer ${token}` },
      signal: stop.signal,
    });
    const body = response.status === 200 ? undefined : await response.json();
    if (response.status === 200) opened.push(stop);
    else stop.abort();
    return { status: response.status, retryAfter: response.headers.get('retry-after'), body, stop };
  };
  const streamsOpen = async () =>
    Number(
      /^exec_kernel_event_streams (\d+)$/m.exec(await (await fetch(`${url}/metrics`)).text())?.[1],
    );
  try {
    expect((await stream(a)).status).toBe(200);
    const second = await stream(a);
    expect(second.status).toBe(200);
    expect(await stream(a)).toMatchObject({
      status: 429,
      retryAfter: '5',
      body: {
        error: {
          code: 'TOO_MANY_STREAMS',
          message:
            'This caller already has 2 event streams open, the most allowed; close one first',
          details: { limit: 2 },
        },
      },
    });
    expect((await stream(b)).status).toBe(200);
    expect(await stream(b)).toMatchObject({
      status: 429,
      body: {
        error: {
          code: 'TOO_MANY_STREAMS',
          message:
            'The service already has 3 event streams open, the most allowed; try again later',
        },
      },
    });
    expect(await streamsOpen()).toBe(3);
    // Closing one frees its place.
    second.stop.abort();
    await vi.waitFor(async () => expect(await streamsOpen()).toBe(2), { timeout: 5_000 });
    expect((await stream(a)).status).toBe(200);
  } finally {
    for (const stop of opened) stop.abort();
  }
});

it('refuses timeouts that cannot work, before it opens the database', async () => {
  const start = (options: object) =>
    startCoordinationServer({ db: 'memory', adminToken: ADMIN, port: 0, ...options });
  await expect(start({ idleTimeoutMs: 30_000 })).rejects.toThrow(
    'idleTimeoutMs (30000) must be longer than the longest long-poll (maxWaitSeconds, 60000 ms)',
  );
  await expect(start({ headersTimeoutMs: 5_000, requestTimeoutMs: 1_000 })).rejects.toThrow(
    'requestTimeoutMs (1000) must be at least headersTimeoutMs (5000)',
  );
  const error = await start({ headersTimeoutMs: 0 }).catch((e: unknown) => e);
  expect(error).toBeInstanceOf(ConfigError);
  expect(error).toMatchObject({ code: 'CONFIG_INVALID' });
});
