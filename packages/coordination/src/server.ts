import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError } from '@exec-kernel/core';
import { serve } from '@hono/node-server';
import { createApp } from './http/app.js';
import type { InternalErrorReport } from './http/guards.js';
import { CoordinationService, type ServiceSettings } from './service.js';
import { openStorage, type StorageOptions } from './storage/open.js';
import type { Storage } from './storage/storage.js';

/** Options of {@link startCoordinationServer}. */
export interface ServerOptions extends ServiceSettings {
  /**
   * Where tasks live: a `Storage`, or `memory`, `sqlite:<file>` (the embedded default) or a
   * `postgres://…` URL. Default: `memory`.
   */
  db?: string | Storage | undefined;
  /**
   * SQLite: `full` for `synchronous=FULL`, where power loss matters (default `normal`).
   * PostgreSQL: `normal` for `synchronous_commit = off`, `full` for `on` (default: the server's).
   */
  durability?: StorageOptions['durability'];
  /** The admin bearer token. Agents get theirs from `POST /v1/agents`. */
  adminToken: string;
  /** Default: `127.0.0.1`. */
  host?: string | undefined;
  /** Default: `7420`; `0` picks a free port. */
  port?: number | undefined;
  /** Largest request body. Default: 1 MiB. */
  maxBodyBytes?: number | undefined;
  /** Reported in the OpenAPI document. */
  version?: string | undefined;
  /**
   * Longest wait for a request's line and headers; a client that has not sent them by then gets
   * `408` and its connection closed. Default: `10000` ms.
   */
  headersTimeoutMs?: number | undefined;
  /**
   * Longest wait for a whole request, body included (a body trickled in byte by byte is cut off
   * here): `408` and the connection closed. At least `headersTimeoutMs`. Default: `30000` ms.
   */
  requestTimeoutMs?: number | undefined;
  /**
   * Longest a connection may go without a byte moving either way: a client that stops sending
   * in the middle of a request, or stops reading an answer or the event stream, loses its
   * connection (an event stream's reader resumes with `Last-Event-ID`). Longer than the longest
   * long-poll (`maxWaitSeconds`). Default: `maxWaitSeconds` plus 30 s (`90000` ms).
   */
  idleTimeoutMs?: number | undefined;
  /** How long a kept-alive connection waits for its next request. Default: `5000` ms. */
  keepAliveTimeoutMs?: number | undefined;
  /** Told of every request answered with 500. Default: one JSON line on stderr (see `createApp`). */
  onInternalError?: ((report: InternalErrorReport) => void) | undefined;
  /** Most event streams open at once, all callers together (`429` past it). Default: `1000`. */
  maxEventStreams?: number | undefined;
  /** Most event streams one agent (or the admin) may hold open at once. Default: `8`. */
  maxEventStreamsPerCaller?: number | undefined;
}

/** The server timeouts of `options`, with defaults, checked. */
function timeoutsOf(options: ServerOptions): {
  headers: number;
  request: number;
  idle: number;
  keepAlive: number;
} {
  const maxWaitMs = (options.maxWaitSeconds ?? 60) * 1000;
  const headers = options.headersTimeoutMs ?? 10_000;
  const request = options.requestTimeoutMs ?? Math.max(30_000, headers);
  const idle = options.idleTimeoutMs ?? maxWaitMs + 30_000;
  const keepAlive = options.keepAliveTimeoutMs ?? 5_000;
  for (const [key, value] of Object.entries({
    headersTimeoutMs: headers,
    requestTimeoutMs: request,
    idleTimeoutMs: idle,
    keepAliveTimeoutMs: keepAlive,
  })) {
    if (!Number.isSafeInteger(value) || value <= 0)
      throw new ConfigError(
        `${key} must be a positive whole number of milliseconds, got ${value}`,
        { key },
      );
  }
  if (request < headers)
    throw new ConfigError(
      `requestTimeoutMs (${request}) must be at least headersTimeoutMs (${headers})`,
      { key: 'requestTimeoutMs' },
    );
  if (idle <= maxWaitMs)
    throw new ConfigError(
      `idleTimeoutMs (${idle}) must be longer than the longest long-poll (maxWaitSeconds, ${maxWaitMs} ms)`,
      { key: 'idleTimeoutMs' },
    );
  return { headers, request, idle, keepAlive };
}

/** A running service. */
export interface CoordinationServer {
  /** Where it listens, e.g. `http://127.0.0.1:7420`. */
  url: string;
  service: CoordinationService;
  /**
   * Stops gracefully: refuses new connections, ends long-polls and event streams, waits for the
   * requests in flight, then closes the storage. Leases are kept: their holders carry on after a
   * restart, or the leases expire and their tasks are requeued.
   */
  close(): Promise<void>;
}

/**
 * Starts the coordination service over HTTP.
 *
 * @example
 * ```ts
 * const server = await startCoordinationServer({ db: 'sqlite:.exec-kernel/queue.db', adminToken });
 * console.log(`listening on ${server.url}`);
 * ```
 */
export async function startCoordinationServer(options: ServerOptions): Promise<CoordinationServer> {
  const timeouts = timeoutsOf(options);
  const storage =
    typeof options.db === 'object'
      ? options.db
      : await openStorage(options.db ?? 'memory', { durability: options.durability });
  const service = new CoordinationService({ ...options, storage });
  await service.start();
  const activity = { inFlight: 0 };
  const app = createApp(service, {
    maxBodyBytes: options.maxBodyBytes,
    version: options.version,
    activity,
    onInternalError: options.onInternalError,
    maxEventStreams: options.maxEventStreams,
    maxEventStreamsPerCaller: options.maxEventStreamsPerCaller,
    // An idle event stream writes often enough never to reach the idle timeout.
    streamKeepAliveMs: Math.min(15_000, Math.floor(timeouts.idle / 3)),
  });
  let server: Server;
  try {
    server = await new Promise<Server>((resolve, reject) => {
      const s = serve(
        {
          fetch: app.fetch,
          hostname: options.host ?? '127.0.0.1',
          port: options.port ?? 7420,
          serverOptions: {
            headersTimeout: timeouts.headers,
            requestTimeout: timeouts.request,
            keepAliveTimeout: timeouts.keepAlive,
            // Node looks for requests past their header or request timeout this often (30 s by
            // default, which would let a slow client hold on that much longer).
            connectionsCheckingInterval: Math.max(
              10,
              Math.min(1_000, Math.floor(timeouts.headers / 4)),
            ),
          },
        },
        () => resolve(s as Server),
      ) as Server;
      // Socket inactivity: with no 'timeout' listener, Node destroys the socket.
      s.setTimeout(timeouts.idle);
      s.once('error', reject);
    });
  } catch (error) {
    await service.stop();
    throw error;
  }
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closing: Promise<void> | undefined;
  return {
    url: `http://${host}:${address.port}`,
    service,
    close() {
      closing ??= (async () => {
        let done = false;
        const closed = new Promise<void>((resolve) =>
          server.close(() => {
            done = true;
            resolve();
          }),
        );
        service.abortWaits();
        // Connections go idle as their last request finishes; close each as it does. Once no
        // request is being handled, what is left are ended event streams whose clients keep the
        // socket: close those too. Stragglers get ten seconds.
        const started = Date.now();
        while (!done) {
          server.closeIdleConnections();
          if (activity.inFlight === 0 || Date.now() - started > 10_000)
            server.closeAllConnections();
          await Promise.race([closed, new Promise((r) => setTimeout(r, 25))]);
        }
        await service.stop();
      })();
      return closing;
    },
  };
}
