import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ActionCheckView,
  CoordinationClient,
  type EventView,
  violationOf,
} from '@exec-kernel/coordination-client';
import {
  ConflictError,
  ForbiddenError,
  InvalidInputError,
  LoopDetectionError,
  ManualClock,
  NotFoundError,
} from '@exec-kernel/core';
import type { ActionRulesOptions } from '@exec-kernel/loop';
import { serve } from '@hono/node-server';
import Database from 'better-sqlite3';
import postgres from 'postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/http/app.js';
import { CoordinationService } from '../src/service.js';
import { openStorage } from '../src/storage/open.js';
import { ADMISSION, call, PG_URL } from './http-helpers.js';

// Action loops on the service, over real HTTP on every engine: tool calls recorded against a
// leased task by its holder, checked by the loop kernel on the history the database keeps, a
// refusal escalated like every violation. The service's clock is a ManualClock, so a lease ends
// only when a test moves time.

const ADMIN = 'actions-tests-admin-token';
const pg = postgres(PG_URL, { max: 1, onnotice: () => {} });
const scratch: string[] = [];
const schemas: string[] = [];
afterAll(async () => {
  for (const schema of schemas) await pg.unsafe(`drop schema if exists "${schema}" cascade`);
  await pg.end({ timeout: 5 });
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

type Engine = 'memory' | 'sqlite' | 'postgres';

/** A fresh database of `engine`, as a `db` string. */
function freshDb(engine: Engine): string {
  if (engine === 'memory') return 'memory';
  if (engine === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'ek-actions-'));
    scratch.push(dir);
    return `sqlite:${join(dir, 'queue.db')}`;
  }
  const schema = `ek_act_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
  schemas.push(schema);
  return `${PG_URL}?schema=${schema}`;
}

interface Running {
  url: string;
  service: CoordinationService;
  clock: ManualClock;
  admin: CoordinationClient;
  close(): Promise<void>;
}

/** The service on `db` over real HTTP on 127.0.0.1, its clock in the test's hands. */
async function startService(
  db: string,
  actionRules?: ActionRulesOptions,
  clock = new ManualClock(Date.now()),
): Promise<Running> {
  const service = new CoordinationService({
    storage: await openStorage(db),
    adminToken: ADMIN,
    clock,
    reapIntervalMs: 3_600_000,
    actionRules,
  });
  await service.start();
  const app = createApp(service);
  const server = await new Promise<Server>((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () =>
      resolve(s as Server),
    ) as Server;
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    service,
    clock,
    admin: new CoordinationClient({ url, token: ADMIN, retries: 0 }),
    async close() {
      service.abortWaits();
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
      await closed;
      await service.stop();
    },
  };
}

/** Registers `id` and returns its client and token. */
async function agent(
  running: Running,
  id: string,
): Promise<{ client: CoordinationClient; token: string }> {
  const { token } = await running.admin.registerAgent(id);
  return { client: new CoordinationClient({ url: running.url, token, retries: 0 }), token };
}

/** Enqueues a task as `client` and claims it; returns its lease id. */
async function claimed(client: CoordinationClient, id: string): Promise<string> {
  await client.enqueue({ id, type: 'build', admission: ADMISSION });
  return (await client.claimTask(id)).lease.id;
}

const refusal = (promise: Promise<unknown>): Promise<unknown> =>
  promise.then(
    () => {
      throw new Error('expected a refusal');
    },
    (error: unknown) => error,
  );

/** The events of the log for `taskId`, read from the SSE stream until `until` says stop. */
async function streamed(
  client: CoordinationClient,
  taskId: string,
  until: (events: EventView[]) => boolean,
): Promise<EventView[]> {
  const stop = new AbortController();
  const seen: EventView[] = [];
  for await (const event of client.stream({ after: 0, signal: stop.signal })) {
    if (event.taskId === taskId) seen.push(event);
    if (until(seen)) stop.abort();
  }
  return seen;
}

describe.each<Engine>(['memory', 'sqlite', 'postgres'])('action loops on %s', (engine) => {
  it('allows, warns from warnAt, refuses at blockAt with a Violation body, escalates it and counts it', async () => {
    const running = await startService(freshDb(engine));
    try {
      const { client, token } = await agent(running, 'looper');
      const leaseId = await claimed(client, 'loop-1');
      const read = { tool: 'read_file', args: { path: 'src/a.ts' }, leaseId };
      const checks: ActionCheckView[] = [];
      for (let i = 0; i < 4; i++) checks.push(await client.recordAction('loop-1', read));
      expect(checks.map((c) => [c.calls, c.repeats, c.warnings.length])).toEqual([
        [1, 1, 0],
        [2, 2, 0],
        [3, 3, 1],
        [4, 4, 1],
      ]);
      expect(checks[2]?.warnings[0]).toMatchObject({
        loopType: 'repeat',
        taskId: 'loop-1',
        tool: 'read_file',
        count: 3,
        warnAt: 3,
        blockAt: 5,
      });
      expect(checks[0]?.fingerprint).toBe(checks[3]?.fingerprint);

      // The fifth is refused, over the wire as the Violation body every rule violation has.
      const raw = await call(running.url, 'POST', '/v1/tasks/loop-1/actions', {
        token,
        body: read,
      });
      expect(raw.status).toBe(422);
      expect(raw.code).toBe('LOOP_DETECTED');
      expect(raw.message).toBe(
        'Task loop-1 called read_file with the same arguments 5 times in a row (blocked at 5)',
      );
      const violation = (raw.body as { error: { violation: Record<string, unknown> } }).error
        .violation;
      expect(violation).toMatchObject({
        kind: 'loop_repeat',
        code: 'LOOP_DETECTED',
        taskId: 'loop-1',
        agentId: 'looper',
        limit: 4,
        observed: 5,
      });

      // The client rebuilds it as core's LoopDetectionError, the record attached.
      const error = await refusal(client.recordAction('loop-1', read));
      expect(error).toBeInstanceOf(LoopDetectionError);
      expect((error as LoopDetectionError).loopType).toBe('repeat');
      expect((error as LoopDetectionError).count).toBe(5);
      expect(violationOf(error)).toMatchObject({ kind: 'loop_repeat', observed: 5 });

      // A refused call records nothing; a different call goes on.
      expect((await client.getActions('loop-1')).calls).toBe(4);
      const other = await client.recordAction('loop-1', { tool: 'edit_file', leaseId });
      expect([other.calls, other.repeats, other.warnings]).toEqual([5, 1, []]);

      const escalations = (await running.admin.listEscalations()).escalations.filter(
        (e) => e.taskId === 'loop-1',
      );
      expect(escalations).toHaveLength(2);
      expect(escalations[0]).toMatchObject({
        kind: 'violation',
        status: 'open',
        agentId: 'looper',
        violation: { kind: 'loop_repeat', limit: 4, observed: 5 },
      });

      const events = await streamed(
        running.admin,
        'loop-1',
        (seen) => seen.filter((e) => e.type === 'escalation.created').length === 2,
      );
      const types = events.map((e) => e.type);
      expect(types.filter((t) => t === 'task.action_warning')).toHaveLength(2);
      const warned = events.find((e) => e.type === 'task.action_warning');
      expect(warned?.data).toMatchObject({ warnings: [{ loopType: 'repeat', count: 3 }] });
      const created = events.find((e) => e.type === 'escalation.created');
      expect(created?.data).toMatchObject({
        kind: 'violation',
        violation: { kind: 'loop_repeat', observed: 5 },
      });

      const metrics = await (await fetch(`${running.url}/metrics`)).text();
      expect(metrics).toContain('exec_kernel_violations_total{kind="loop_repeat"} 2');
      expect(metrics).toContain('exec_kernel_action_warnings_total{loop_type="repeat"} 2');
      expect(metrics).toContain('exec_kernel_actions_total 5');
    } finally {
      await running.close();
    }
  });

  it('lets only the agent holding the lease record; the admin and others are refused, nothing recorded', async () => {
    const running = await startService(freshDb(engine));
    try {
      const { client: owner } = await agent(running, 'owner');
      const { client: holder } = await agent(running, 'holder');
      const { client: stranger } = await agent(running, 'stranger');
      await owner.enqueue({ id: 'held-1', type: 'build', admission: ADMISSION });
      // Not claimed yet: nobody holds it, so nobody records.
      expect(await refusal(owner.recordAction('held-1', { tool: 'ls' }))).toBeInstanceOf(
        ConflictError,
      );
      const { lease } = await holder.claimTask('held-1');
      await holder.recordAction('held-1', { tool: 'ls', leaseId: lease.id });

      const byStranger = await refusal(stranger.recordAction('held-1', { tool: 'ls' }));
      expect(byStranger).toBeInstanceOf(ForbiddenError);
      expect((byStranger as Error).message).toBe('Task held-1 is leased by holder, not stranger');
      // Its owner does not hold it either.
      expect(await refusal(owner.recordAction('held-1', { tool: 'ls' }))).toBeInstanceOf(
        ForbiddenError,
      );
      const byAdmin = await refusal(running.admin.recordAction('held-1', { tool: 'ls' }));
      expect(byAdmin).toBeInstanceOf(ForbiddenError);
      expect((byAdmin as Error).message).toBe(
        'Only the agent holding the lease on task held-1 records its actions',
      );
      expect(await refusal(stranger.recordActionResult('held-1', { result: 'x' }))).toBeInstanceOf(
        ForbiddenError,
      );

      // The history: its holder, its agent and the admin read it; another agent does not.
      expect((await holder.getActions('held-1')).calls).toBe(1);
      expect((await owner.getActions('held-1')).recent).toEqual([
        { tool: 'ls', fingerprint: expect.any(String), resultDigest: null },
      ]);
      expect((await running.admin.getActions('held-1')).calls).toBe(1);
      expect(await refusal(stranger.getActions('held-1'))).toBeInstanceOf(ForbiddenError);
    } finally {
      await running.close();
    }
  });

  it('refuses the old holder once its lease expired or the task changed hands', async () => {
    const running = await startService(freshDb(engine));
    try {
      const { client: first } = await agent(running, 'first');
      const { client: second } = await agent(running, 'second');
      await first.enqueue({ id: 'hands-1', type: 'build', admission: ADMISSION });
      const old = (await first.claimTask('hands-1', { leaseSeconds: 30 })).lease;
      await first.recordAction('hands-1', { tool: 'ls', leaseId: old.id });

      running.clock.advance(31_000);
      const expired = await refusal(first.recordAction('hands-1', { tool: 'ls', leaseId: old.id }));
      expect(expired).toBeInstanceOf(ConflictError);
      expect((expired as ConflictError).details).toMatchObject({ reason: 'expired' });

      // The reaper (run by hand here) gives the task back; the second agent takes it.
      expect(await running.service.reapExpiredLeases()).toBe(1);
      const fresh = (await second.claimTask('hands-1')).lease;
      const stale = await refusal(first.recordAction('hands-1', { tool: 'ls', leaseId: old.id }));
      expect(stale).toBeInstanceOf(ConflictError);
      expect((stale as ConflictError).details).toMatchObject({ reason: 'claimed_again' });
      expect(await refusal(first.recordAction('hands-1', { tool: 'ls' }))).toBeInstanceOf(
        ForbiddenError,
      );
      // The task's history goes on under its new holder.
      const check = await second.recordAction('hands-1', { tool: 'ls', leaseId: fresh.id });
      expect([check.calls, check.repeats]).toEqual([2, 2]);
    } finally {
      await running.close();
    }
  });

  it('applies N concurrent identical actions one after the other: repeats 1..blockAt-1 once each, the rest refused', async () => {
    const running = await startService(freshDb(engine), {
      repeat: { warnAt: 14, blockAt: 16 },
      window: false,
    });
    try {
      const { client } = await agent(running, 'racer');
      const leaseId = await claimed(client, 'race-1');
      const call = { tool: 'poll', args: { job: 7 }, leaseId };
      const outcomes = await Promise.allSettled(
        Array.from({ length: 20 }, () => client.recordAction('race-1', call)),
      );
      const allowed = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
      const refused = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason] : []));
      const seen = (values: number[]) => [...values].sort((a, b) => a - b);
      const upTo15 = Array.from({ length: 15 }, (_, i) => i + 1);
      expect(seen(allowed.map((c) => c.repeats))).toEqual(upTo15);
      expect(seen(allowed.map((c) => c.calls))).toEqual(upTo15);
      expect(refused).toHaveLength(5);
      for (const error of refused) {
        expect(error).toBeInstanceOf(LoopDetectionError);
        expect((error as LoopDetectionError).count).toBe(16);
      }
      expect((await client.getActions('race-1')).calls).toBe(15);
    } finally {
      await running.close();
    }
  });

  it('refuses a result that keeps coming back (no_progress) on the result route', async () => {
    const running = await startService(freshDb(engine));
    try {
      const { client } = await agent(running, 'poller');
      const leaseId = await claimed(client, 'poll-1');
      const warnings: number[] = [];
      for (let n = 1; n <= 9; n++) {
        await client.recordAction('poll-1', { tool: 'status', args: { n }, leaseId });
        warnings.push(
          (await client.recordActionResult('poll-1', { result: { state: 'pending' }, leaseId }))
            .warnings.length,
        );
      }
      // Warned from the 6th same result on.
      expect(warnings).toEqual([0, 0, 0, 0, 0, 1, 1, 1, 1]);
      await client.recordAction('poll-1', { tool: 'status', args: { n: 10 }, leaseId });
      const error = await refusal(
        client.recordActionResult('poll-1', { result: { state: 'pending' }, leaseId }),
      );
      expect(error).toBeInstanceOf(LoopDetectionError);
      expect((error as LoopDetectionError).loopType).toBe('no_progress');
      expect(violationOf(error)).toMatchObject({ kind: 'loop_no_progress', observed: 10 });
      // Nothing was recorded: the newest call still has no result, and a new one is welcome.
      const history = await client.getActions('poll-1');
      expect(history.recent.at(-1)?.resultDigest).toBeNull();
      // The answer names the call the result was attached to.
      const status10 = history.recent.at(-1)?.fingerprint;
      expect(await client.recordActionResult('poll-1', { resultDigest: 'done', leaseId })).toEqual({
        taskId: 'poll-1',
        tool: 'status',
        fingerprint: status10,
        calls: 10,
        resultDigest: 'done',
        warnings: [],
      });
      // A second result for the same call is one clear error.
      const twice = await refusal(client.recordActionResult('poll-1', { result: 1, leaseId }));
      expect(twice).toBeInstanceOf(InvalidInputError);
      expect((twice as Error).message).toBe('Invalid result: the newest call already has one');
    } finally {
      await running.close();
    }
  });

  it("lets a worker's job record actions on its lease; a refusal thrown on blocks the task", async () => {
    const running = await startService(freshDb(engine));
    try {
      const { client } = await agent(running, 'worker');
      await client.enqueue({ id: 'job-1', type: 'poll', admission: ADMISSION });
      const repeats: number[] = [];
      const errors: unknown[] = [];
      await client.work(
        async (job) => {
          for (;;) repeats.push((await job.action({ tool: 'status', args: { id: 7 } })).repeats);
        },
        { types: ['poll'], untilIdle: true, waitSeconds: 0, onError: (e) => errors.push(e) },
      );
      expect(repeats).toEqual([1, 2, 3, 4]);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toBeInstanceOf(LoopDetectionError);
      expect((await client.getTask('job-1')).state).toBe('blocked');
      const escalated = (await running.admin.listEscalations()).escalations.filter(
        (e) => e.taskId === 'job-1',
      );
      expect(escalated.map((e) => [e.kind, e.violation?.kind ?? null])).toEqual([
        ['violation', 'loop_repeat'],
        ['blocked', null],
      ]);
    } finally {
      await running.close();
    }
  });

  it('answers bad input with one clear error and records nothing', async () => {
    const running = await startService(freshDb(engine));
    try {
      const { client, token } = await agent(running, 'careless');
      const leaseId = await claimed(client, 'bad-1');
      const post = (path: string, body: unknown) =>
        call(running.url, 'POST', path, { token, body });

      const big = await post('/v1/tasks/bad-1/actions', {
        tool: 'write_file',
        args: { text: 'x'.repeat(70_000) },
      });
      expect([big.status, big.code, big.message]).toEqual([
        400,
        'INVALID_INPUT',
        'Invalid args: must be at most 65536 characters as JSON',
      ]);
      const badJson = await post('/v1/tasks/bad-1/actions', '{"tool": "ls",');
      expect([badJson.status, badJson.code]).toEqual([400, 'BAD_JSON']);
      const noTool = await post('/v1/tasks/bad-1/actions', { args: {} });
      expect([noTool.status, noTool.code]).toEqual([400, 'VALIDATION']);
      const blankTool = await post('/v1/tasks/bad-1/actions', { tool: ' ' });
      expect([blankTool.status, blankTool.code]).toEqual([400, 'INVALID_INPUT']);
      const both = await post('/v1/tasks/bad-1/actions/result', { result: 1, resultDigest: 'd' });
      expect([both.status, both.code, both.message]).toEqual([
        400,
        'VALIDATION',
        'body: give exactly one of result and resultDigest',
      ]);
      const noCall = await refusal(client.recordActionResult('bad-1', { result: 1, leaseId }));
      expect((noCall as Error).message).toBe('Invalid result: there is no call to attach it to');
      const unknown = await refusal(client.recordAction('nope-1', { tool: 'ls' }));
      expect(unknown).toBeInstanceOf(NotFoundError);
      expect((await client.getActions('bad-1')).calls).toBe(0);
    } finally {
      await running.close();
    }
  });
});

describe.each<Exclude<Engine, 'memory'>>(['sqlite', 'postgres'])(
  'action history kept by %s',
  (engine) => {
    /** How many saved histories the database holds for each of `ids` (read after close on SQLite). */
    async function savedRows(db: string, ids: string[]): Promise<number[]> {
      if (engine === 'sqlite') {
        const file = new Database(db.slice('sqlite:'.length), { readonly: true });
        try {
          const count = file.prepare('SELECT count(*) AS n FROM task_actions WHERE task_id = ?');
          return ids.map((id) => (count.get(id) as { n: number }).n);
        } finally {
          file.close();
        }
      }
      const schema = new URL(db).searchParams.get('schema') as string;
      return Promise.all(
        ids.map(
          async (id) =>
            (
              await pg.unsafe(
                `select count(*)::int as n from "${schema}".task_actions where task_id = $1`,
                [id],
              )
            )[0]?.n as number,
        ),
      );
    }

    it('answers a saved history it cannot read as its own fault (500), and keeps the record', async () => {
      const db = freshDb(engine);
      const clock = new ManualClock(Date.now());
      let running = await startService(db, undefined, clock);
      const { token } = await agent(running, 'broken');
      const client = new CoordinationClient({ url: running.url, token, retries: 0 });
      const leaseId = await claimed(client, 'bad-1');
      await client.recordAction('bad-1', { tool: 'ls', leaseId });
      await running.close();
      // Damaged while the service is down (SQLite allows one writer at a time).
      const corrupt = JSON.stringify({ taskId: 'bad-1', total: 'many' });
      if (engine === 'sqlite') {
        const file = new Database(db.slice('sqlite:'.length));
        file.prepare('UPDATE task_actions SET history = ? WHERE task_id = ?').run(corrupt, 'bad-1');
        file.close();
      } else {
        const schema = new URL(db).searchParams.get('schema') as string;
        await pg.unsafe(
          `update "${schema}".task_actions set history = $1::jsonb where task_id = $2`,
          [corrupt, 'bad-1'],
        );
      }
      running = await startService(db, undefined, clock);
      try {
        const answer = await fetch(`${running.url}/v1/tasks/bad-1/actions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ tool: 'ls', leaseId }),
        });
        expect(answer.status).toBe(500);
      } finally {
        await running.close();
      }
      expect(await savedRows(db, ['bad-1'])).toEqual([1]);
    });

    it('survives a restart on the same database, and is dropped when the task finishes', async () => {
      const db = freshDb(engine);
      const clock = new ManualClock(Date.now());
      let running = await startService(db, undefined, clock);
      const { token } = await agent(running, 'steady');
      let client = new CoordinationClient({ url: running.url, token, retries: 0 });
      const leaseId = await claimed(client, 'keep-1');
      const other = await claimed(client, 'keep-2');
      const read = { tool: 'read_file', args: { path: 'a.ts' }, leaseId };
      for (let i = 0; i < 3; i++) await client.recordAction('keep-1', read);
      await client.recordAction('keep-2', { tool: 'ls', leaseId: other });
      await running.close();

      running = await startService(db, undefined, clock);
      try {
        client = new CoordinationClient({ url: running.url, token, retries: 0 });
        const fourth = await client.recordAction('keep-1', read);
        expect([fourth.calls, fourth.repeats]).toEqual([4, 4]);
        const fifth = await refusal(client.recordAction('keep-1', read));
        expect(fifth).toBeInstanceOf(LoopDetectionError);

        await client.transition('keep-1', 'done', { leaseId });
        expect(await client.getActions('keep-1')).toEqual({
          taskId: 'keep-1',
          calls: 0,
          recent: [],
        });
        expect((await client.getActions('keep-2')).calls).toBe(1);
      } finally {
        await running.close();
      }
      // Gone from the database with the move to done; the unfinished task's stays.
      expect(await savedRows(db, ['keep-1', 'keep-2'])).toEqual([0, 1]);
    });
  },
);
