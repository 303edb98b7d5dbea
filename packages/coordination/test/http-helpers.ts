import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import {
  type CoordinationServer,
  type ServerOptions,
  startCoordinationServer,
} from '../src/server.js';

/** The machine's PostgreSQL (trust auth); each server gets a schema of its own. */
export const PG_URL: string =
  process.env.EXEC_KERNEL_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';

export const ADMIN = 'admin-token-for-http-tests';
export const ADMISSION: Record<string, string> = {
  consumer: 'c',
  painPoint: 'p',
  expectedValue: 'v',
  validationPath: 't',
};

export type Engine = 'sqlite' | 'postgres';

/** A real service on 127.0.0.1 on `engine`, and how to take it down with its data. */
export interface TestServer {
  url: string;
  server: CoordinationServer;
  /** The PostgreSQL schema, for tests that reach into the database. */
  schema: string | undefined;
  stop(): Promise<void>;
}

/** Starts a service on a free port, on a fresh SQLite file or a fresh PostgreSQL schema. */
export async function startServer(
  engine: Engine,
  options: Partial<ServerOptions> = {},
): Promise<TestServer> {
  if (engine === 'sqlite') {
    const dir = await mkdtemp(join(tmpdir(), 'ek-http-'));
    const server = await startCoordinationServer({
      db: `sqlite:${join(dir, 'queue.db')}`,
      adminToken: ADMIN,
      port: 0,
      ...options,
    });
    return {
      url: server.url,
      server,
      schema: undefined,
      async stop() {
        await server.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
  const schema = `ek_http_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
  const server = await startCoordinationServer({
    db: `${PG_URL}?schema=${schema}`,
    adminToken: ADMIN,
    port: 0,
    ...options,
  });
  return {
    url: server.url,
    server,
    schema,
    async stop() {
      await server.close();
      await sql((db) => db.unsafe(`drop schema if exists "${schema}" cascade`));
    },
  };
}

/** Runs `work` on a connection of its own to the test database. */
export async function sql<T>(work: (db: postgres.Sql) => Promise<T>): Promise<T> {
  const db = postgres(PG_URL, { max: 1, onnotice: () => {} });
  try {
    return await work(db);
  } finally {
    await db.end({ timeout: 5 });
  }
}

/** What {@link call} got back. */
export interface Answer {
  status: number;
  headers: Headers;
  /** The parsed body (`undefined` when empty or not JSON). */
  body: unknown;
  /** `error.code` of an error body. */
  code: string | undefined;
  /** `error.message` of an error body. */
  message: string | undefined;
}

/**
 * One request over real HTTP. `body` is sent as JSON (or as is when a string); `token` defaults
 * to the admin's, `null` sends none.
 */
export async function call(
  url: string,
  method: string,
  path: string,
  init: {
    body?: unknown;
    token?: string | null;
    headers?: Record<string, string>;
  } = {},
): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (init.token !== null) headers.authorization = `Bearer ${init.token ?? ADMIN}`;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  Object.assign(headers, init.headers);
  const response = await fetch(`${url}${path}`, {
    method,
    headers,
    ...(init.body === undefined
      ? {}
      : { body: typeof init.body === 'string' ? init.body : JSON.stringify(init.body) }),
  });
  const text = await response.text();
  let body: unknown;
  try {
    body = text === '' ? undefined : JSON.parse(text);
  } catch {
    body = undefined;
  }
  const error = (body as { error?: { code?: string; message?: string } } | undefined)?.error;
  return {
    status: response.status,
    headers: response.headers,
    body,
    code: error?.code,
    message: error?.message,
  };
}

/** Registers an agent through the admin and returns its token. */
export async function registerAgent(url: string, id: string): Promise<string> {
  const answer = await call(url, 'POST', '/v1/agents', { body: { id } });
  if (answer.status !== 201) throw new Error(`register ${id}: ${answer.status} ${answer.message}`);
  return (answer.body as { token: string }).token;
}
