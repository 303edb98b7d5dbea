import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EventView } from '@exec-kernel/coordination-client';
import { CoordinationClient } from '@exec-kernel/coordination-client';
import postgres from 'postgres';
import { afterEach, describe, expect, it } from 'vitest';
import { findPostgresBin, startThrowawayPostgres } from './postgres-instance.js';

// Many agent processes against one backlog, through real service processes running the built
// package: every task must be done exactly once and never held by two agents at a time, also
// when the service is killed mid-run or its database restarts.

const TASKS = 2_000;
const AGENTS = 8;
const ADMIN = 'concurrency-admin-token';
const PG_URL = process.env.EXEC_KERNEL_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';
const FIXTURES = join(import.meta.dirname, 'fixtures');

const children = new Set<ChildProcess>();
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  children.clear();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function node(script: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, [join(FIXTURES, script), ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  return child;
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((done) => {
    if (child.exitCode !== null || child.signalCode !== null) done();
    else child.once('exit', () => done());
  });
}

/** A service process on `db`; resolves once it listens. */
async function startService(db: string, port = 0): Promise<{ url: string; child: ChildProcess }> {
  const child = node('serve.mjs', [db, String(port)], { ADMIN_TOKEN: ADMIN });
  let err = '';
  const url = await new Promise<string>((done, fail) => {
    let out = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('\n')) done(out.trim());
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      err += chunk.toString();
    });
    child.once('exit', (code) => fail(new Error(`service exited ${code}: ${err}`)));
  });
  // A service that dies mid-run shows up as refused connections; say why it died.
  child.once('exit', (code, signal) => {
    if (signal !== 'SIGKILL' && signal !== 'SIGTERM' && code !== 0) {
      console.error(`service at ${url} exited (${code ?? signal}) mid-run: ${err}`);
    }
  });
  return { url, child };
}

interface Agent {
  child: ChildProcess;
  lines: string[];
}

function startAgent(url: string, token: string, leaseSeconds: number): Agent {
  const child = node('agent.mjs', [url, token, String(leaseSeconds)]);
  const agent: Agent = { child, lines: [] };
  let partial = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    const text = partial + chunk.toString();
    const complete = text.split('\n');
    partial = complete.pop() ?? '';
    agent.lines.push(...complete);
  });
  return agent;
}

async function until(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 120_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Tasks done, from the service's Prometheus gauge. */
async function doneCount(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^exec_kernel_tasks\{state="done"\} (\d+)$/m.exec(text)?.[1] ?? 0);
}

async function allEvents(admin: CoordinationClient): Promise<EventView[]> {
  const events: EventView[] = [];
  let after = 0;
  while (true) {
    const page = await admin.events({ after, limit: 1000 });
    events.push(...page.events);
    if (page.events.length === 0) return events;
    after = page.next ?? after;
  }
}

interface Outcome {
  claims: number;
  redeliveries: number;
  /** Times an agent found the service not answering (and waited to try again). */
  unavailable: number;
  /** Handlers whose own call failed while the service was down. */
  handlerErrors: number;
}

/**
 * Enqueues the backlog, lets the agents (spread over the service instances) work it while
 * `fault` runs, and checks the log: each task claimed only while nobody held it, done exactly once.
 */
async function workBacklog(
  urls: string[],
  options: {
    leaseSeconds?: number;
    fault?: (progress: () => Promise<number>) => Promise<void>;
  } = {},
): Promise<Outcome> {
  const admin = new CoordinationClient({ url: urls[0] as string, token: ADMIN, timeoutMs: 30_000 });
  const planner = new CoordinationClient({
    url: urls[0] as string,
    token: (await admin.registerAgent('planner')).token,
  });
  const admission = {
    consumer: 'ops',
    painPoint: 'backlog',
    expectedValue: 'drained',
    validationPath: 'this test',
  };
  const ids = Array.from({ length: TASKS }, (_, i) => `job-${String(i).padStart(4, '0')}`);
  for (let i = 0; i < ids.length; i += 50) {
    await Promise.all(
      ids.slice(i, i + 50).map((id) => planner.enqueue({ id, type: 'job', admission })),
    );
  }

  const agents: Agent[] = [];
  for (let i = 0; i < AGENTS; i++) {
    const { token } = await admin.registerAgent(`agent-${i}`);
    agents.push(startAgent(urls[i % urls.length] as string, token, options.leaseSeconds ?? 10));
  }
  await options.fault?.(() => doneCount(urls[0] as string));
  await until(
    `all ${TASKS} tasks are done`,
    async () => (await doneCount(urls[0] as string).catch(() => 0)) === TASKS,
  ).catch(async (error: unknown) => {
    // Say where the rest are: a task blocked by its worker reads differently from one still held.
    const text = await (await fetch(`${urls[0]}/metrics`)).text();
    const states = text.match(/^exec_kernel_tasks\{state="\w+"\} [1-9]\d*$/gm) ?? [];
    throw new Error(`${(error as Error).message} (${states.join(', ')})`);
  });
  for (const agent of agents) agent.child.kill('SIGTERM');
  await Promise.all(agents.map((a) => exited(a.child)));

  // The log, task by task: a claim only while nobody holds the task; done exactly once.
  const events = await allEvents(admin);
  const seqs = events.map((e) => e.seq);
  expect(new Set(seqs).size).toBe(seqs.length);
  const held = new Map<string, string>();
  const doneTimes = new Map<string, number>();
  const leasesInLog = new Set<string>();
  let claims = 0;
  for (const e of events) {
    if (e.taskId === null || !e.taskId.startsWith('job-')) continue;
    const data = e.data as { leaseId?: string; to?: string; from?: string };
    if (e.type === 'task.claimed') {
      expect(held.get(e.taskId), `${e.taskId} claimed while held`).toBeUndefined();
      held.set(e.taskId, data.leaseId as string);
      leasesInLog.add(data.leaseId as string);
      claims++;
    } else if (e.type === 'task.lease_expired' || e.type === 'task.released') {
      held.delete(e.taskId);
    } else if (e.type === 'task.transitioned' && data.from === 'in_progress') {
      held.delete(e.taskId);
      if (data.to === 'done') doneTimes.set(e.taskId, (doneTimes.get(e.taskId) ?? 0) + 1);
    }
  }
  expect(doneTimes.size).toBe(TASKS);
  expect([...doneTimes.values()].every((n) => n === 1)).toBe(true);

  // What the agents say they got matches the log, lease for lease.
  const claimedByAgents = agents.flatMap((a) => a.lines.filter((l) => l.startsWith('claimed ')));
  const agentLeases = claimedByAgents.map((l) => l.split(' ')[2] as string);
  expect(new Set(agentLeases).size).toBe(agentLeases.length);
  for (const lease of agentLeases) expect(leasesInLog.has(lease)).toBe(true);
  // A handler's own call (its step) can fail while the service is down: only that, reported.
  const errors = agents.flatMap((a) => a.lines.filter((l) => l.startsWith('error ')));
  for (const error of errors)
    expect(error).toMatch(/^error job-\d+ POST \S+ failed(: no response| with status 503: .+)$/);
  const unavailable = agents.reduce(
    (n, a) => n + a.lines.filter((l) => l === 'unavailable').length,
    0,
  );
  return { claims, redeliveries: claims - TASKS, unavailable, handlerErrors: errors.length };
}

describe('on the embedded SQLite engine, one service process', () => {
  it(`${AGENTS} agent processes work ${TASKS} tasks: each done exactly once, none claimed twice`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ek-concurrency-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const { url } = await startService(`sqlite:${join(dir, 'queue.db')}`);
    const outcome = await workBacklog([url]);
    expect(outcome).toEqual({ claims: TASKS, redeliveries: 0, unavailable: 0, handlerErrors: 0 });
  }, 180_000);

  it('survives a SIGKILL of the service mid-run: restarted on the same file, nothing lost', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ek-concurrency-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const db = `sqlite:${join(dir, 'queue.db')}`;
    let service = await startService(db);
    const port = Number(new URL(service.url).port);
    const outcome = await workBacklog([service.url], {
      leaseSeconds: 3,
      fault: async (progress) => {
        await until('half the backlog is done', async () => (await progress()) >= TASKS / 2);
        service.child.kill('SIGKILL');
        await exited(service.child);
        // Down long enough for every agent to notice, then back on the same port and file.
        await new Promise((r) => setTimeout(r, 1_000));
        service = await startService(db, port);
      },
    });
    expect(outcome.unavailable).toBeGreaterThan(0);
    // Only what was in flight at the kill comes round again, one per agent at most: a task whose
    // handler's own call failed in the outage, or a claim that committed as the reply was lost.
    expect(outcome.redeliveries).toBeLessThanOrEqual(AGENTS);
    // biome-ignore lint/suspicious/noConsole: the run reports its re-deliveries
    console.log(
      `SIGKILL mid-run: ${outcome.redeliveries} re-deliveries, ${outcome.unavailable} unavailable answers`,
    );
  }, 180_000);
});

describe.skipIf(findPostgresBin() === undefined)(
  'on PostgreSQL, two service instances on one database',
  () => {
    it(`${AGENTS} agent processes work ${TASKS} tasks through two instances: each done exactly once, none claimed twice`, async () => {
      const schema = `ek_conc_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
      const sql = postgres(PG_URL, { max: 1, onnotice: () => {} });
      cleanups.push(async () => {
        await sql.unsafe(`drop schema if exists "${schema}" cascade`);
        await sql.end({ timeout: 5 });
      });
      const db = `${PG_URL}?schema=${schema}`;
      const [a, b] = await Promise.all([startService(db), startService(db)]);
      const outcome = await workBacklog([a.url, b.url]);
      expect(outcome).toEqual({ claims: TASKS, redeliveries: 0, unavailable: 0, handlerErrors: 0 });
    }, 240_000);

    it('rides out a database restart: unhealthy while it is down, then recovers with nothing lost', async () => {
      const pg = await startThrowawayPostgres();
      cleanups.push(() => pg.destroy());
      const [a, b] = await Promise.all([startService(pg.url), startService(pg.url)]);
      let sawUnhealthy = false;
      let recovered = false;
      const outcome = await workBacklog([a.url, b.url], {
        leaseSeconds: 5,
        fault: async (progress) => {
          await until('half the backlog is done', async () => (await progress()) >= TASKS / 2);
          await pg.stop('fast');
          await until(
            'the service reports itself unhealthy',
            async () => {
              const response = await fetch(`${a.url}/healthz`);
              return response.status === 503;
            },
            30_000,
          );
          sawUnhealthy = true;
          await new Promise((r) => setTimeout(r, 500));
          await pg.start();
          await until(
            'both instances are healthy again',
            async () => {
              const statuses = await Promise.all(
                [a.url, b.url].map(async (u) => (await fetch(`${u}/healthz`)).status),
              );
              return statuses.every((s) => s === 200);
            },
            60_000,
          );
          recovered = true;
        },
      });
      expect({ sawUnhealthy, recovered }).toEqual({ sawUnhealthy: true, recovered: true });
      // Only work in flight when the database went comes round again, at most two per agent: the
      // task in its hands (its handler's call failed, or its finish outlasted the lease) and a
      // claim that committed as the reply was lost (the one a finish makes with `next`, too).
      expect(outcome.redeliveries).toBeLessThanOrEqual(2 * AGENTS);
      // biome-ignore lint/suspicious/noConsole: the run reports its re-deliveries
      console.log(
        `PostgreSQL restart: ${outcome.redeliveries} re-deliveries, ${outcome.unavailable} unavailable answers`,
      );
    }, 240_000);
  },
);
