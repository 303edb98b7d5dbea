import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { createApp } from './http/app.js';
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
  });
  let server: Server;
  try {
    server = await new Promise<Server>((resolve, reject) => {
      const s = serve(
        { fetch: app.fetch, hostname: options.host ?? '127.0.0.1', port: options.port ?? 7420 },
        () => resolve(s as Server),
      ) as Server;
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
