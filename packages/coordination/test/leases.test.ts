import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EventView } from '@exec-kernel/coordination-client';
import {
  type Claimed,
  CoordinationClient,
  createNodeFetch,
  isLeaseGone,
  type Job,
} from '@exec-kernel/coordination-client';
import { ConflictError, ManualClock } from '@exec-kernel/core';
import { serve } from '@hono/node-server';
import postgres from 'postgres';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createApp } from '../src/http/app.js';
import { type Caller, CoordinationService } from '../src/service.js';
import { openStorage } from '../src/storage/open.js';

// Leases and the worker against what the best queues promise (pg-boss's fencing, BullMQ's lost
// locks, graceful shutdown in graphile-worker, BullMQ and pg-boss): over real HTTP, on every
// engine. The service's clock is a ManualClock, so a lease ends only when a test moves time.

const ADMIN = 'lease-tests-admin-token';
const ADMISSION = { consumer: 'c', painPoint: 'p', expectedValue: 'v', validationPath: 't' };
const PG_URL = process.env.EXEC_KERNEL_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';
const FIXTURES = join(import.meta.dirname, 'fixtures');

const pg = postgres(PG_URL, { max: 1, onnotice: () => {} });
const scratch: string[] = [];
const schemas: string[] = [];
afterAll(async () => {
  for (const schema of schemas) await pg.unsafe(`drop schema if exists "${schema}" cascade`);
  await pg.end({ timeout: 5 });
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

const ENGINES: Record<string, () => string> = {
  memory: () => 'memory',
  sqlite: () => {
    const dir = mkdtempSync(join(tmpdir(), 'ek-leases-'));
    scratch.push(dir);
    return `sqlite:${join(dir, 'queue.db')}`;
  },
  postgres: () => {
    const schema = `ek_lease_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
    schemas.push(schema);
    return `${PG_URL}?schema=${schema}`;
  },
};

interface Running {
  url: string;
  service: CoordinationService;
  clock: ManualClock;
  /** Stops answering HTTP (the port refuses connections); the service and its data stay. */
  goAway(): Promise<void>;
  /** Answers HTTP again, on the same port. */
  comeBack(): Promise<void>;
  close(): Promise<void>;
}

function listen(app: ReturnType<typeof createApp>, port: number): Promise<Server> {
  return new Promise<Server>((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port }, () =>
      resolve(s as Server),
    ) as Server;
  });
}

function shut(server: Server): Promise<void> {
  const closed = new Promise<void>((r) => server.close(() => r()));
  server.closeAllConnections();
  return closed;
}

/** The service over real HTTP on 127.0.0.1, its clock in the test's hands, no reaper of its own. */
async function startService(db: string): Promise<Running> {
  const clock = new ManualClock(Date.now());
  const service = new CoordinationService({
    storage: await openStorage(db),
    adminToken: ADMIN,
    clock,
    reapIntervalMs: 3_600_000,
    budgetDefaults: { maxSteps: 1000 },
  });
  await service.start();
  const app = createApp(service);
  let server: Server | undefined = await listen(app, 0);
  const { port } = server.address() as AddressInfo;
  const goAway = async () => {
    if (server !== undefined) await shut(server);
    server = undefined;
  };
  return {
    url: `http://127.0.0.1:${port}`,
    service,
    clock,
    goAway,
    async comeBack() {
      server ??= await listen(app, port);
    },
    async close() {
      service.abortWaits();
      await goAway();
      await service.stop();
    },
  };
}

const children = new Set<ChildProcess>();
afterEach(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  children.clear();
});

/** The stopping-worker fixture in a process of its own, its stdout lines collected. */
function spawnWorker(args: string[]): { child: ChildProcess; lines: string[] } {
  const child = spawn(process.execPath, [join(FIXTURES, 'stopping-worker.mjs'), ...args], {
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.add(child);
  const lines: string[] = [];
  let partial = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    const text = partial + chunk.toString();
    const complete = text.split('\n');
    partial = complete.pop() ?? '';
    lines.push(...complete);
  });
  return { child, lines };
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((done) => {
    if (child.exitCode !== null) done(child.exitCode);
    else child.once('exit', (code) => done(code));
  });
}

/** Resolves once `check` holds (the state a test waits for, never a duration it asserts). */
async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function refusal(promise: Promise<unknown>): Promise<Error & Record<string, unknown>> {
  try {
    await promise;
  } catch (error) {
    return error as Error & Record<string, unknown>;
  }
  throw new Error('expected a refusal');
}

/** A promise and its resolver. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve: (value: T) => void = () => {};
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

const aborted = (signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });

describe.each(Object.keys(ENGINES))('leases and the worker on %s', (engine) => {
  let running: Running;
  let admin: CoordinationClient;
  const tokens: Record<string, string> = {};
  const as = (agent: string) =>
    new CoordinationClient({ url: running.url, token: tokens[agent] as string, retries: 0 });

  beforeEach(async () => {
    running = await startService((ENGINES[engine] as () => string)());
    admin = new CoordinationClient({ url: running.url, token: ADMIN, retries: 0 });
    for (const agent of ['planner', 'a', 'b', 'c'])
      tokens[agent] = (await admin.registerAgent(agent)).token;
  });
  afterEach(() => running.close());

  const enqueue = (id: string, priority = 0) =>
    as('planner').enqueue({ id, type: 'build', admission: ADMISSION, priority });

  /** Moves the service's time past every lease taken so far and runs its reaper once. */
  async function expireAndReap(): Promise<void> {
    running.clock.advance(3_600_000);
    await running.service.reapExpiredLeases();
  }

  async function events(taskId: string): Promise<EventView[]> {
    // Past the event reader's wait for gaps (its clock is the manual one).
    running.clock.advance(5_000);
    const { events } = await admin.events({ limit: 1000 });
    return events.filter((e) => e.taskId === taskId);
  }

  const doneMoves = async (taskId: string) =>
    (await events(taskId)).filter(
      (e) => e.type === 'task.transitioned' && (e.data as { to: string }).to === 'done',
    );

  const leased = async () => (await admin.listTasks({ state: 'in_progress' })).tasks;

  /** The raw answer to a POST by `agent`, status and error body. */
  async function post(agent: string, path: string, body: unknown) {
    const response = await fetch(`${running.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens[agent]}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return {
      status: response.status,
      body: (await response.json()) as {
        error?: { code: string; message: string; details: Record<string, unknown> };
        results?: Array<{
          ok: boolean;
          error?: { code: string; details: Record<string, unknown> };
        }>;
      },
    };
  }

  describe('a write on a lease that is gone is a CONFLICT saying why', () => {
    it('answers the old holder of a lease taken over 409, on every operation, single and batch', async () => {
      await enqueue('t1');
      const old = (await as('a').claim()) as Claimed;
      await expireAndReap();
      const taken = (await as('b').claim()) as Claimed;
      expect(taken.task).toMatchObject({ id: 't1', leaseOwner: 'b' });
      const escalationsBefore = (await admin.listEscalations()).escalations.length;

      const leaseId = old.lease.id;
      const attempts: Array<[string, string, unknown]> = [
        ['transition', '/v1/tasks/t1/transition', { to: 'done', leaseId }],
        ['transition with next', '/v1/tasks/t1/transition', { to: 'done', leaseId, next: {} }],
        ['transition to blocked', '/v1/tasks/t1/transition', { to: 'blocked', leaseId }],
        ['heartbeat', '/v1/tasks/t1/heartbeat', { leaseId, leaseSeconds: 60 }],
        ['steps', '/v1/tasks/t1/steps', { count: 1, leaseId }],
        ['usage', '/v1/tasks/t1/usage', { tokens: 5, leaseId }],
        ['release', '/v1/tasks/t1/release', { leaseId }],
      ];
      for (const [what, path, body] of attempts) {
        const answer = await post('a', path, body);
        expect({ what, status: answer.status, error: answer.body.error }).toEqual({
          what,
          status: 409,
          error: {
            code: 'CONFLICT',
            message: `Lease ${leaseId} on task t1 has ended: the task was claimed again, by b`,
            details: {
              resource: 'task t1',
              holder: 'b',
              taskId: 't1',
              leaseId,
              state: 'in_progress',
              reason: 'claimed_again',
            },
          },
        });
      }
      for (const next of [undefined, { max: 1 }]) {
        const batch = await post('a', '/v1/tasks/transition-many', {
          transitions: [{ id: 't1', to: 'done', leaseId }],
          ...(next === undefined ? {} : { next }),
        });
        expect(batch.status).toBe(200);
        expect(batch.body.results?.[0]).toMatchObject({
          ok: false,
          error: { code: 'CONFLICT', details: { reason: 'claimed_again', holder: 'b' } },
        });
      }
      // Through the client: the core ConflictError, recognised as a lost lease.
      const error = await refusal(as('a').transition('t1', 'done', { leaseId }));
      expect(error).toBeInstanceOf(ConflictError);
      expect(isLeaseGone(error)).toBe(true);

      // Nothing the old holder sent changed the task, spent its budget or escalated.
      expect(await admin.getTask('t1')).toMatchObject({
        state: 'in_progress',
        leaseOwner: 'b',
        stepsTaken: 0,
        tokens: 0,
      });
      expect((await admin.listEscalations()).escalations).toHaveLength(escalationsBefore);
      await as('b').transition('t1', 'done', { leaseId: taken.lease.id });
      expect(await doneMoves('t1')).toHaveLength(1);
    });

    it('refuses a lease past its end before the reaper has run: no extension, no finish', async () => {
      await enqueue('late');
      const { lease } = (await as('a').claim({ leaseSeconds: 30 })) as Claimed;
      running.clock.advance(30_001);
      for (const attempt of [
        () => as('a').heartbeat('late', { leaseId: lease.id, leaseSeconds: 60 }),
        () => as('a').step('late', { leaseId: lease.id }),
        () => as('a').transition('late', 'done', { leaseId: lease.id }),
        () => as('a').transition('late', 'done'),
        () => as('a').release('late', { leaseId: lease.id }),
      ]) {
        const error = await refusal(attempt());
        expect(error).toBeInstanceOf(ConflictError);
        expect(error.message).toMatch(/^(Lease lse_\S+|The lease) on task late expired at \d{4}-/);
        expect(error.details).toMatchObject({ reason: 'expired', state: 'in_progress' });
      }
      const [outcome] = await as('a').transitionMany([
        { id: 'late', to: 'done', leaseId: lease.id },
      ]);
      expect(outcome?.ok === false && isLeaseGone(outcome.error)).toBe(true);
      // The lease was not extended: the reaper takes the task back and another agent gets it.
      expect(await running.service.reapExpiredLeases()).toBe(1);
      expect((await as('b').claim())?.task).toMatchObject({ id: 'late', attempts: 2 });
      expect(await admin.getTask('late')).toMatchObject({ leaseOwner: 'b', stepsTaken: 0 });
    });

    it('says the task moved on when the lease ended with a move (requeued, finished)', async () => {
      await enqueue('gone');
      const { lease } = (await as('a').claim()) as Claimed;
      await expireAndReap();
      const requeued = await post('a', '/v1/tasks/gone/heartbeat', { leaseId: lease.id });
      expect(requeued).toMatchObject({
        status: 409,
        body: {
          error: {
            message: `Lease ${lease.id} on task gone has ended: the task is todo now`,
            details: { reason: 'moved', state: 'todo' },
          },
        },
      });
      const again = (await as('a').claim()) as Claimed;
      await as('a').transition('gone', 'done', { leaseId: again.lease.id });
      const finished = await post('a', '/v1/tasks/gone/release', { leaseId: again.lease.id });
      expect(finished).toMatchObject({
        status: 409,
        body: { error: { details: { reason: 'moved', state: 'done' } } },
      });
    });

    it('fences one of two workers sharing an agent id out of the other one’s claim', async () => {
      await enqueue('shared');
      const first = (await as('a').claim()) as Claimed;
      await expireAndReap();
      // A second process of agent `a`, with the same token.
      const second = (await as('a').claim()) as Claimed;
      expect(second.lease.id).not.toBe(first.lease.id);
      for (const attempt of [
        () => as('a').transition('shared', 'done', { leaseId: first.lease.id }),
        () => as('a').heartbeat('shared', { leaseId: first.lease.id }),
        () => as('a').release('shared', { leaseId: first.lease.id }),
      ]) {
        const error = await refusal(attempt());
        expect(error.details).toMatchObject({ reason: 'claimed_again', holder: 'a' });
      }
      expect(await admin.getTask('shared')).toMatchObject({ state: 'in_progress', attempts: 2 });
      await as('a').transition('shared', 'done', { leaseId: second.lease.id });
      expect(await doneMoves('shared')).toHaveLength(1);
    });

    it("keeps 403 for another agent's live lease: the task is theirs", async () => {
      await enqueue('theirs');
      const { lease } = (await as('b').claim()) as Claimed;
      for (const [path, body] of [
        ['/v1/tasks/theirs/release', {}],
        ['/v1/tasks/theirs/release', { leaseId: lease.id }],
        ['/v1/tasks/theirs/heartbeat', { leaseId: lease.id }],
        ['/v1/tasks/theirs/steps', {}],
        ['/v1/tasks/theirs/transition', { to: 'done' }],
        ['/v1/tasks/theirs/transition', { to: 'done', leaseId: lease.id }],
      ] as const) {
        const answer = await post('c', path, body);
        expect({ path, body, status: answer.status, error: answer.body.error }).toMatchObject({
          path,
          body,
          status: 403,
          error: { code: 'FORBIDDEN', message: 'Task theirs is leased by b, not c' },
        });
      }
      expect(await admin.getTask('theirs')).toMatchObject({
        state: 'in_progress',
        leaseOwner: 'b',
      });
    });
  });

  describe('the worker stopped through its signal', () => {
    it('finishes the task in hand in a worker process stopped by SIGTERM, once, and leaves nothing leased', async () => {
      await enqueue('first', 1);
      await enqueue('second');
      const worker = spawnWorker([running.url, tokens.a as string, 'finish', '1']);
      await until('the worker starts the first task', () => worker.lines.includes('started first'));
      worker.child.kill('SIGTERM');
      expect(await exitOf(worker.child)).toBe(0);
      expect(worker.lines).toEqual(['started first', 'handled 1']);
      expect(await admin.getTask('first')).toMatchObject({
        state: 'done',
        stepsTaken: 1,
        leaseOwner: null,
      });
      expect(await doneMoves('first')).toHaveLength(1);
      // Stopping, it asked for no next task.
      expect(await admin.getTask('second')).toMatchObject({ state: 'todo', attempts: 0 });
      expect(await leased()).toEqual([]);
    });

    it('finishes every task in hand of a concurrent worker process stopped by SIGTERM', async () => {
      for (const id of ['p1', 'p2', 'p3']) await enqueue(id);
      const worker = spawnWorker([running.url, tokens.a as string, 'finish', '3']);
      await until('the worker starts all three', () =>
        ['p1', 'p2', 'p3'].every((id) => worker.lines.includes(`started ${id}`)),
      );
      worker.child.kill('SIGTERM');
      expect(await exitOf(worker.child)).toBe(0);
      expect(worker.lines.at(-1)).toBe('handled 3');
      for (const id of ['p1', 'p2', 'p3']) {
        expect(await admin.getTask(id)).toMatchObject({ state: 'done', leaseOwner: null });
        expect(await doneMoves(id)).toHaveLength(1);
      }
      expect(await leased()).toEqual([]);
    });

    it('gives the task back, not blocked, when the handler of a stopped process gives up on the signal', async () => {
      await enqueue('interrupted');
      const worker = spawnWorker([running.url, tokens.a as string, 'throw', '1']);
      await until('the worker starts', () => worker.lines.includes('started interrupted'));
      worker.child.kill('SIGTERM');
      expect(await exitOf(worker.child)).toBe(0);
      expect(worker.lines).toEqual([
        'started interrupted',
        'error interrupted AbortError',
        'handled 1',
      ]);
      expect(await admin.getTask('interrupted')).toMatchObject({
        state: 'todo',
        attempts: 1,
        leaseOwner: null,
      });
      expect((await admin.listEscalations()).escalations).toEqual([]);
      expect((await events('interrupted')).map((e) => e.type)).toEqual([
        'task.enqueued',
        'task.claimed',
        'task.released',
      ]);
    });

    it('gives back, past its grace, the task of a handler that ignores the signal', async () => {
      await enqueue('stuck');
      const worker = spawnWorker([running.url, tokens.a as string, 'ignore', '1', '0.2']);
      await until('the worker starts', () => worker.lines.includes('started stuck'));
      worker.child.kill('SIGTERM');
      expect(await exitOf(worker.child)).toBe(0);
      expect(worker.lines).toEqual(['started stuck', 'handled 1']);
      expect(await admin.getTask('stuck')).toMatchObject({ state: 'todo', leaseOwner: null });
      expect(await leased()).toEqual([]);
    });

    it('finishes the task in hand when stopped in-process, keeping its lease while the handler winds down', async () => {
      await enqueue('inproc', 1);
      await enqueue('after');
      const stop = new AbortController();
      const started = deferred();
      const proceed = deferred();
      let returned = false;
      let reason: unknown;
      const work = as('a')
        .work(
          async (job) => {
            started.resolve();
            await aborted(job.signal);
            reason = job.signal.reason;
            await proceed.promise;
            await job.step();
            return 'done';
          },
          { signal: stop.signal, waitSeconds: 1, leaseSeconds: 3 },
        )
        .finally(() => {
          returned = true;
        });
      await started.promise;
      stop.abort();
      // The handler is still running: the task is still leased to the worker, work() waits.
      expect(await admin.getTask('inproc')).toMatchObject({
        state: 'in_progress',
        leaseOwner: 'a',
      });
      expect(returned).toBe(false);
      proceed.resolve();
      expect(await work).toBe(1);
      expect(reason).toBe(stop.signal.reason);
      expect(await admin.getTask('inproc')).toMatchObject({ state: 'done', stepsTaken: 1 });
      expect(await doneMoves('inproc')).toHaveLength(1);
      expect(await admin.getTask('after')).toMatchObject({ state: 'todo', attempts: 0 });
      expect(await leased()).toEqual([]);
    });

    it('waits, with no grace set, for a handler that ignores the signal, then reports it', async () => {
      await enqueue('slow');
      const stop = new AbortController();
      const started = deferred();
      const proceed = deferred();
      let returned = false;
      const work = as('a')
        .work(
          async () => {
            started.resolve();
            await proceed.promise;
            return 'in_review';
          },
          { signal: stop.signal, waitSeconds: 1, leaseSeconds: 0.3 },
        )
        .finally(() => {
          returned = true;
        });
      await started.promise;
      stop.abort();
      // Heartbeats go on (every 0.1 s) while it waits.
      const before = (await admin.getTask('slow')).leaseUntil;
      await until('a heartbeat extends the lease', async () => {
        running.clock.advance(1);
        return (await admin.getTask('slow')).leaseUntil !== before;
      });
      expect(returned).toBe(false);
      proceed.resolve();
      expect(await work).toBe(1);
      expect(await admin.getTask('slow')).toMatchObject({ state: 'in_review', leaseOwner: null });
    });

    it('gives back a task claimed with the finish of the last when the stop comes during it', async () => {
      await enqueue('one', 1);
      await enqueue('two');
      const stop = new AbortController();
      const base = createNodeFetch();
      const client = new CoordinationClient({
        url: running.url,
        token: tokens.a as string,
        // The stop arrives while the finish (which claims the next task) is on its way.
        fetch: (input, init) => {
          const url = input instanceof Request ? input.url : String(input);
          if (url.endsWith('/v1/tasks/one/transition')) stop.abort();
          return base(input, init);
        },
      });
      const seen: string[] = [];
      const handled = await client.work(
        async (job) => {
          seen.push(job.task.id);
          return 'done';
        },
        { signal: stop.signal, waitSeconds: 1 },
      );
      expect(handled).toBe(1);
      expect(seen).toEqual(['one']);
      expect(await admin.getTask('one')).toMatchObject({ state: 'done' });
      expect(await admin.getTask('two')).toMatchObject({
        state: 'todo',
        attempts: 1,
        leaseOwner: null,
      });
      expect((await events('two')).map((e) => e.type)).toEqual([
        'task.enqueued',
        'task.claimed',
        'task.released',
      ]);
    });

    it('starts nothing that a batch claim brought back after the stop, and gives it back', async () => {
      for (const id of ['k1', 'k2']) await enqueue(id);
      const stop = new AbortController();
      const base = createNodeFetch();
      const client = new CoordinationClient({
        url: running.url,
        token: tokens.a as string,
        // The stop arrives with the claim's answer.
        fetch: async (input, init) => {
          const response = await base(input, init);
          const url = input instanceof Request ? input.url : String(input);
          if (url.endsWith('/v1/tasks/claim-many')) stop.abort();
          return response;
        },
      });
      const seen: string[] = [];
      const handled = await client.work(
        async (job) => {
          seen.push(job.task.id);
          return 'done';
        },
        { signal: stop.signal, waitSeconds: 1, concurrency: 2 },
      );
      expect(handled).toBe(0);
      expect(seen).toEqual([]);
      for (const id of ['k1', 'k2'])
        expect(await admin.getTask(id)).toMatchObject({ state: 'todo', leaseOwner: null });
      expect(await leased()).toEqual([]);
    });

    it('returns from a claim long-poll at once, and the poll takes nothing afterwards', async () => {
      const stop = new AbortController();
      const sent = deferred();
      const base = createNodeFetch();
      const client = new CoordinationClient({
        url: running.url,
        token: tokens.a as string,
        fetch: (input, init) => {
          const url = input instanceof Request ? input.url : String(input);
          if (url.endsWith('/v1/tasks/claim')) sent.resolve();
          return base(input, init);
        },
      });
      const work = client.work(async () => 'done', { signal: stop.signal, waitSeconds: 60 });
      // The claim is on its way, then waiting on the service (a long-poll of up to 60 s).
      await sent.promise;
      await admin.health();
      stop.abort();
      expect(await work).toBe(0);
      await enqueue('arrives-later');
      await until('the task is settled', async () => {
        const task = await admin.getTask('arrives-later');
        return task.state === 'todo' && task.leaseOwner === null;
      });
      expect(await leased()).toEqual([]);
    });
  });

  describe('a lease lost while the handler runs', () => {
    /** Agent a works one task whose handler waits for its signal; resolves once it has started. */
    const workUntilAborted = async () => {
      const started = deferred();
      const seen: { reason?: unknown } = {};
      const work = as('a').work(
        async (job: Job) => {
          started.resolve();
          await aborted(job.signal);
          seen.reason = job.signal.reason;
          return 'done';
        },
        { untilIdle: true, waitSeconds: 0, leaseSeconds: 0.3 },
      );
      await started.promise;
      return { work, seen };
    };

    it('aborts the job when a heartbeat hears the lease was claimed again, and reports nothing', async () => {
      await enqueue('lost');
      const { work, seen } = await workUntilAborted();
      await expireAndReap();
      const taken = (await as('b').claim()) as Claimed;
      expect(await work).toBe(1);
      expect(isLeaseGone(seen.reason)).toBe(true);
      expect((seen.reason as ConflictError).details).toMatchObject({
        reason: 'claimed_again',
        holder: 'b',
      });
      expect(await admin.getTask('lost')).toMatchObject({ state: 'in_progress', leaseOwner: 'b' });
      await as('b').transition('lost', 'done', { leaseId: taken.lease.id });
      const moves = await doneMoves('lost');
      expect(moves.map((e) => e.agentId)).toEqual(['b']);
      expect((await admin.listEscalations()).escalations).toEqual([]);
    });

    it('aborts the job when a heartbeat finds the lease expired, before anyone reaps it', async () => {
      await enqueue('expired');
      const { work, seen } = await workUntilAborted();
      running.clock.advance(60_000);
      expect(await work).toBe(1);
      expect((seen.reason as ConflictError).details).toMatchObject({ reason: 'expired' });
      // Not done by the worker that lost it: the reaper puts it back.
      expect(await admin.getTask('expired')).toMatchObject({ state: 'in_progress' });
      expect(await running.service.reapExpiredLeases()).toBe(1);
      expect(await admin.getTask('expired')).toMatchObject({ state: 'todo', leaseOwner: null });
    });
  });

  describe('a report sent through an outage', () => {
    it('is retried until the lease as heartbeats renewed it ends, not the lease first claimed', {
      timeout: 30_000,
    }, async () => {
      await enqueue('long');
      const started = deferred<string>();
      const proceed = deferred();
      let unavailable = 0;
      running.clock.set(Date.now());
      const work = as('a').work(
        async (job) => {
          started.resolve(job.lease.until);
          await proceed.promise;
          return 'done';
        },
        {
          untilIdle: true,
          waitSeconds: 0,
          leaseSeconds: 3,
          onUnavailable: () => {
            unavailable++;
          },
        },
      );
      const first = Date.parse(await started.promise);
      // The handler runs past its first lease, kept by heartbeats (every second; the service's
      // time follows the real one meanwhile).
      await until('the first lease is over and a heartbeat has renewed it', async () => {
        running.clock.set(Date.now());
        const { leaseUntil } = await admin.getTask('long');
        return Date.now() > first + 200 && Date.parse(leaseUntil ?? '0') > Date.now() + 1_000;
      });
      await running.goAway();
      proceed.resolve();
      await until('the worker meets the outage', () => unavailable > 0);
      await running.comeBack();
      expect(await work).toBe(1);
      expect(await admin.getTask('long')).toMatchObject({ state: 'done', leaseOwner: null });
      expect(await doneMoves('long')).toHaveLength(1);
    });
  });

  describe('the service side of a claimant that went away', () => {
    it('gives back, uncounted, what a claim took for a claimant gone while it was written', async () => {
      await enqueue('orphan');
      const gone = new AbortController();
      // The claimant's connection closes just as the claim is written (the claim's own change
      // signal), as when a worker stops mid-poll: the service's request signal aborts then.
      const off = running.service.storage.onChange(() => gone.abort());
      const caller = (await running.service.authenticate(tokens.a as string)) as Caller;
      try {
        const { tasks } = await running.service.claimMany(caller, { max: 1, signal: gone.signal });
        expect(tasks).toEqual([]);
      } finally {
        off();
      }
      expect(gone.signal.aborted).toBe(true);
      expect(await admin.getTask('orphan')).toMatchObject({
        state: 'todo',
        attempts: 0,
        leaseOwner: null,
        startedAt: null,
      });
      expect((await events('orphan')).map((e) => [e.type, e.data])).toEqual([
        ['task.enqueued', expect.anything()],
        ['task.claimed', expect.objectContaining({ attempts: 1 })],
        ['task.released', { attempts: 0, reason: 'claimant_gone' }],
      ]);
      // A claimant already gone is not served at all.
      const { tasks } = await running.service.claimMany(caller, { max: 1, signal: gone.signal });
      expect(tasks).toEqual([]);
      expect((await events('orphan')).length).toBe(3);
    });
  });
});
