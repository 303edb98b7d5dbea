import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNodeFetch, HANDOVER, Handover } from '../src/node-fetch.js';

let server: http.Server;
let base: string;
let connections = 0;
const seen: Array<{
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}> = [];
let streamClosed: Promise<unknown> = Promise.resolve();

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      });
      if (req.url === '/empty') {
        res.writeHead(204, { 'x-note': 'nothing' }).end();
      } else if (req.url === '/slow') {
        // Never answers: the client's abort must end it.
      } else if (req.url === '/events') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write('data: {"seq":1}\n\n');
        streamClosed = once(res, 'close');
      } else if (req.url === '/cut') {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
        res.write('{"partial":');
        setTimeout(() => res.destroy(), 20);
      } else {
        res.writeHead(201, [
          ['content-type', 'application/json'],
          ['set-cookie', 'a=1'],
          ['set-cookie', 'b=2'],
        ]);
        res.end(JSON.stringify({ echo: Buffer.concat(chunks).toString() }));
      }
    });
  });
  server.on('connection', () => connections++);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  server.close();
});

describe('createNodeFetch', () => {
  it('sends the method, headers and body, and returns status, headers and body', async () => {
    const fetch = createNodeFetch();
    const response = await fetch(`${base}/echo?x=1`, {
      method: 'POST',
      headers: { authorization: 'Bearer t', 'content-type': 'application/json' },
      body: JSON.stringify({ hello: 'wörld' }),
    });
    expect(response.status).toBe(201);
    expect(response.ok).toBe(true);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(response.headers.get('set-cookie')).toBe('a=1, b=2');
    expect(await response.json()).toEqual({ echo: '{"hello":"wörld"}' });
    const request = seen.at(-1);
    expect(request).toMatchObject({ method: 'POST', url: '/echo?x=1', body: '{"hello":"wörld"}' });
    expect(request?.headers).toMatchObject({
      authorization: 'Bearer t',
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength('{"hello":"wörld"}')),
    });
  });

  it('takes a Request as fetch does, and gives a 204 no body', async () => {
    const fetch = createNodeFetch();
    const response = await fetch(new Request(`${base}/empty`, { method: 'DELETE' }));
    expect(response.status).toBe(204);
    expect(response.body).toBeNull();
    expect(response.headers.get('x-note')).toBe('nothing');
    expect(seen.at(-1)).toMatchObject({ method: 'DELETE', url: '/empty', body: '' });
    // As ky calls it: a Request with its body, and an empty init.
    const posted = await fetch(new Request(`${base}/echo`, { method: 'POST', body: 'as ky' }), {});
    expect(await posted.json()).toEqual({ echo: 'as ky' });
  });

  it('carries a handed-over body both ways without putting it in the Request or Response', async () => {
    const fetch = createNodeFetch();
    const handover = new Handover('{"hello":"wörld"}');
    const request = new Request(`${base}/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
    });
    const response = await fetch(request, { [HANDOVER]: handover } as RequestInit);
    expect(seen.at(-1)).toMatchObject({ method: 'POST', body: '{"hello":"wörld"}' });
    expect(seen.at(-1)?.headers['content-length']).toBe(
      String(Buffer.byteLength('{"hello":"wörld"}')),
    );
    expect([response.status, response.body]).toEqual([201, null]);
    expect(JSON.parse(handover.text as string)).toEqual({ echo: '{"hello":"wörld"}' });
    // Anything else in init is a fetch's own: the Request is built from it, with its body.
    const plain = await fetch(`${base}/echo`, { method: 'POST', body: 'mine' });
    expect(await plain.json()).toEqual({ echo: 'mine' });
  });

  it('keeps the connection alive between requests', async () => {
    const fetch = createNodeFetch();
    const before = connections;
    for (let i = 0; i < 5; i++) await (await fetch(`${base}/echo`)).text();
    expect(connections - before).toBe(1);
  });

  it('rejects like fetch when nothing listens, with the socket error as cause', async () => {
    const closed = http.createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as AddressInfo).port;
    closed.close();
    await once(closed, 'close');
    const error = await createNodeFetch()(`http://127.0.0.1:${port}/`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect((error as TypeError).message).toBe('fetch failed');
    expect(((error as TypeError).cause as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
  });

  it('rejects with the signal reason on abort, before or while waiting for the answer', async () => {
    const fetch = createNodeFetch();
    const early = new AbortController();
    early.abort();
    await expect(fetch(`${base}/echo`, { signal: early.signal })).rejects.toMatchObject({
      name: 'AbortError',
    });
    const late = new AbortController();
    const pending = fetch(`${base}/slow`, { signal: late.signal });
    setTimeout(() => late.abort(), 30);
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    const timedOut = fetch(`${base}/slow`, { signal: AbortSignal.timeout(30) });
    await expect(timedOut).rejects.toMatchObject({ name: 'TimeoutError' });
  });

  it('fails a response cut off before its end', async () => {
    const response = createNodeFetch()(`${base}/cut`);
    await expect(response).rejects.toBeInstanceOf(TypeError);
  });

  it('streams an event stream as it arrives, and aborting it closes the connection', async () => {
    const stop = new AbortController();
    const response = await createNodeFetch()(`${base}/events`, { signal: stop.signal });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe('data: {"seq":1}\n\n');
    stop.abort();
    await streamClosed;
    await expect(reader.read()).rejects.toBeDefined();
  });

  it('refuses a URL that is not http or https', async () => {
    await expect(createNodeFetch()('file:///etc/passwd')).rejects.toThrow(
      'file: URLs are not supported',
    );
  });
});
