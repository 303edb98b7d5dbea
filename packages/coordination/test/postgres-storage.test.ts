import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ConflictError, StoreError } from '@exec-kernel/core';
import postgres from 'postgres';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { POSTGRES_MIGRATIONS, PostgresStorage } from '../src/storage/postgres/index.js';
import type { ChangeSignal, ClaimEvent, ClaimRequest } from '../src/storage/storage.js';
import { event, storageConformance, taskRow } from './conformance.js';
import {
  findPostgresBin,
  startThrowawayPostgres,
  type ThrowawayPostgres,
} from './postgres-instance.js';

const URL = process.env.EXEC_KERNEL_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';

const admin = postgres(URL, { max: 2, onnotice: () => {} });
const schemas = new Set<string>();
const storages = new Set<PostgresStorage>();

/** A schema no other test (or test run) uses; dropped after the test. */
function freshSchema(): string {
  const schema = `ek_test_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
  schemas.add(schema);
  return schema;
}

/** A storage on `schema`, closed after the test (not yet opened). */
function storageOn(schema: string, url = URL): PostgresStorage {
  const storage = new PostgresStorage({ url, schema, max: 4 });
  storages.add(storage);
  return storage;
}

async function opened(schema: string): Promise<PostgresStorage> {
  const storage = storageOn(schema);
  await storage.open();
  return storage;
}

async function cleanUp(): Promise<void> {
  await Promise.all([...storages].map((s) => s.close()));
  storages.clear();
  for (const schema of schemas) await admin.unsafe(`drop schema if exists "${schema}" cascade`);
  schemas.clear();
}

afterEach(cleanUp);
afterAll(async () => {
  await cleanUp();
  await admin.end({ timeout: 5 });
});

const claimRequest = (agentId: string, fields: Partial<ClaimRequest> = {}): ClaimRequest => ({
  agentId,
  types: null,
  leaseId: `lease-${randomUUID()}`,
  leaseUntil: 60_000,
  now: 5_000,
  ...fields,
});

const claimedEvent: ClaimEvent = { type: 'task.claimed', agentId: 'w', data: {}, at: 1_000 };

/** Resolves once `check` holds, polling; fails the test after `ms`. */
async function eventually(check: () => boolean, ms = 3_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Fills 20k tasks, drains 19k, and checks the claim plan and its cost before and after. */
async function drainAndExplain(storage: PostgresStorage, db: postgres.Sql): Promise<void> {
  const total = 20_000;
  await db.unsafe(`
    insert into tasks (id, type, state, priority, agent_id, depth, admission, payload,
      attempts, max_attempts, limits, steps_taken, tokens, cost_usd, warned, created_at, updated_at)
    select 'bulk-' || g, case when g % 10 = 0 then 'review' else 'build' end, 'todo', g % 3, 'a', 0,
      '{}', jsonb_build_object('n', g, 'pad', repeat('x', 200)), 0, 3, '{}', 0, 0, 0, '[]', 1000, 1000
    from generate_series(1, ${total}) g`);
  await db.unsafe(`analyze tasks`);
  const early = await storage.explainClaim({ analyze: true });

  // Drain most of the queue: a first stretch through the storage (4 claimers), the rest as one
  // UPDATE that leaves the table exactly as that many claims and completions would.
  const through = 400;
  await Promise.all(
    Array.from({ length: 4 }, async (_, w) => {
      for (let i = 0; i < through / 4; i++) {
        const task = await storage.claim(claimRequest(`w${w}`), claimedEvent);
        if (task === undefined) throw new Error('queue ran dry');
        const done = await storage.updateTask(
          task.id,
          { state: 'in_progress', leaseId: task.leaseId },
          { state: 'done', leaseOwner: null, leaseId: null, leaseUntil: null },
          { events: [event('task.completed', { taskId: task.id })] },
        );
        expect(done?.state).toBe('done');
      }
    }),
  );
  const left = 1_000;
  await db.unsafe(`
    update tasks set state = 'done', attempts = 1, started_at = 2000, updated_at = 3000
    where id in (select id from tasks where state = 'todo'
                 order by priority desc, seq limit ${total - through - left})`);
  await db.unsafe(`analyze tasks`);
  expect((await storage.countTasks()).todo).toBe(left);

  // The first claim after the drain visits each finished task's stale index entry once and
  // marks it dead (kill_prior_tuple); later claims step over the marks without visiting rows.
  const first = await storage.explainClaim({ analyze: true });
  const late = await storage.explainClaim({ analyze: true });
  await db.unsafe(`vacuum tasks`);
  const vacuumed = await storage.explainClaim({ analyze: true });
  const typed = await storage.explainClaim({ types: ['review'] });
  const plain = await storage.explainClaim();
  process.stdout.write(
    `claim plan: ${late.nodes.join(' > ')} on ${late.indexes.join(', ')}; buffers per claim ` +
      `with ${total} todo: ${early.buffers}; with ${total - left} done and ${left} todo: first claim ` +
      `${first.buffers}, next ${late.buffers}, after VACUUM ${vacuumed.buffers}\n`,
  );
  for (const plan of [early, first, late, vacuumed, plain]) {
    expect(plan.indexes).toEqual(['tasks_claim']);
    expect(plan.nodes).not.toContain('Seq Scan');
    expect(plan.nodes).not.toContain('Sort');
  }
  expect(typed.indexes).toEqual(['tasks_claim_type']);
  // A walk in any other order would visit the 19k finished rows (~700 heap pages) on every claim.
  // The partial index only steps over entries not yet vacuumed, about one page per 300 finished
  // tasks, and over none once VACUUM (or autovacuum) has run.
  expect(late.buffers).toBeLessThan(150);
  expect(vacuumed.buffers).toBeLessThan(20);
}

storageConformance('postgres', async () => {
  const schema = freshSchema();
  let storage = await opened(schema);
  return {
    storage,
    reopen: async () => {
      await storage.close();
      storage = await opened(schema);
      return storage;
    },
    cleanup: cleanUp,
  };
});

/** Resolves once a backend of another session waits on a lock that backend `pid` holds. */
async function blockedBy(pid: number): Promise<number[]> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const rows = await admin`
      select pid from pg_stat_activity where ${pid}::int = any(pg_blocking_pids(pid))`;
    if (rows.length > 0) return rows.map((r) => r.pid as number);
    if (Date.now() > deadline) throw new Error(`nothing blocked by ${pid} within 5 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('PostgresStorage: migrations and faults', () => {
  it('opens a schema of before numbered steps as it is, and adds only the new steps', async () => {
    const schema = freshSchema();
    const fixture = readFileSync(
      new globalThis.URL('./fixtures/postgres-schema-before-steps.sql', import.meta.url),
      'utf8',
    );
    await admin.begin(async (tx) => {
      await tx.unsafe(`create schema "${schema}"`);
      await tx.unsafe(`set local search_path to "${schema}"`);
      await tx.unsafe(fixture);
      await tx.unsafe(`
        insert into tasks (id, type, state, priority, agent_id, depth, attempts, max_attempts,
          limits, steps_taken, tokens, cost_usd, warned, created_at, updated_at)
        values ('old', 'build', 'todo', 0, 'a', 0, 0, 3, '{}', 0, 0, 0, '[]', 1, 1)`);
    });
    const storage = await opened(schema);
    expect((await storage.getTask('old'))?.state).toBe('todo');
    expect(await storage.setContext('old', 'k', null, event('task.context'))).toEqual({ k: null });
    const steps = await admin.unsafe(
      `select version, name from "${schema}".schema_migrations order by version`,
    );
    expect([...steps]).toEqual([
      { version: 1, name: null },
      { version: 2, name: null },
      ...POSTGRES_MIGRATIONS.slice(2).map(({ version, name }) => ({ version, name })),
    ]);
    await storage.close();
    await storage.open();
    expect((await storage.getContext('old'))?.context).toEqual({ k: null });
  });

  it('answers StoreError unavailable when its connection is terminated mid-query, then recovers', async () => {
    const schema = freshSchema();
    const storage = await opened(schema);
    const { task } = await storage.insertTask(taskRow(), event('e'));
    const { update } = await admin.begin(async (tx) => {
      await tx.unsafe(`select 1 from "${schema}".tasks where id = $1 for update`, [task.id]);
      const [me] = await tx`select pg_backend_pid() as pid`;
      const update = storage
        .updateTask(task.id, { state: 'todo' }, { priority: 1 }, { events: [] })
        .catch((e: unknown) => e);
      for (const pid of await blockedBy(me?.pid)) await admin`select pg_terminate_backend(${pid})`;
      // Not awaited here: the transaction must end for nothing else to wait on it.
      return { update };
    });
    const error = await update;
    expect(error).toBeInstanceOf(StoreError);
    expect(error).toMatchObject({
      problem: 'unavailable',
      path: storage.location,
      details: { engine: 'postgres' },
    });
    expect(['57P01', 'CONNECTION_CLOSED']).toContain((error as StoreError).details.reason);
    // The pool reconnects by itself: the next call works, and the update never happened.
    expect((await storage.getTask(task.id))?.priority).toBe(task.priority);
    // The driver's end() then waits its whole timeout (5 s) for the terminated connection.
  }, 20_000);

  it('answers StoreError unavailable once its pool is ended', async () => {
    const storage = await opened(freshSchema());
    await storage.close();
    for (const call of [() => storage.getTask('x'), () => storage.ping()]) {
      await expect(call()).rejects.toMatchObject({
        problem: 'unavailable',
        details: { engine: 'postgres', reason: 'closed' },
      });
    }
  });

  it('spends nothing on a lease reaped while the spending waited for its row', async () => {
    const schema = freshSchema();
    const storage = await opened(schema);
    await storage.insertTask(taskRow(), event('e'));
    const task = await storage.claim(claimRequest('w'), claimedEvent);
    if (task === undefined) throw new Error('expected a claim');
    const { spending } = await admin.begin(async (tx) => {
      // The reaper's write, not yet committed when the spending reads the lease as live.
      await tx.unsafe(
        `update "${schema}".tasks set state = 'todo', lease_owner = null, lease_id = null,
           lease_until = null where id = $1`,
        [task.id],
      );
      const [me] = await tx`select pg_backend_pid() as pid`;
      const spending = storage.addSpending(
        [task.id],
        { steps: 1, tokens: 0, costUsd: 0 },
        6_000,
        event('task.step'),
        { state: 'in_progress', leaseId: task.leaseId, leaseOwner: 'w', leaseLiveAt: 6_000 },
      );
      await blockedBy(me?.pid);
      return { spending };
    });
    expect(await spending).toBeUndefined();
    expect(await storage.getTask(task.id)).toMatchObject({ state: 'todo', stepsTaken: 0 });
    expect((await storage.readEvents(0, 100)).map((e) => e.type)).not.toContain('task.step');
  });
});

describe('PostgresStorage', () => {
  it('shows where it is without the password or the query string', () => {
    const storage = new PostgresStorage({
      url: 'postgresql://app:s3cr%40t@db.internal:6543/queue?sslmode=require&password=x',
    });
    expect(storage.location).toBe('postgres://app@db.internal:6543/queue');
    expect(new PostgresStorage({ url: 'postgres://127.0.0.1/test' }).location).toBe(
      'postgres://127.0.0.1/test',
    );
  });

  it('refuses a schema name that is not a plain identifier', () => {
    expect(() => new PostgresStorage({ url: URL, schema: 'a"; drop table x; --' })).toThrow(
      TypeError,
    );
    expect(() => new PostgresStorage({ url: URL, schema: 'Upper' })).toThrow(TypeError);
  });

  it('migrates once when several instances open the same new schema at the same time', async () => {
    const schema = freshSchema();
    const instances = Array.from({ length: 4 }, () => storageOn(schema));
    await Promise.all(instances.map((s) => s.open()));
    const rows = await admin.unsafe(
      `select version from "${schema}".schema_migrations order by version`,
    );
    expect(rows.map((r) => r.version)).toEqual(POSTGRES_MIGRATIONS.map((m) => m.version));
    await instances[0]?.insertTask(taskRow(), event('e'));
    expect((await instances[3]?.countTasks())?.todo).toBe(1);
  });

  it('keeps the event guard an SQL function the planner inlines into the writes', async () => {
    const schema = freshSchema();
    await opened(schema);
    const [guard] = await admin.unsafe(
      `select l.lanname, p.proconfig from pg_proc p join pg_language l on l.oid = p.prolang
       where p.proname = 'event_guard' and p.pronamespace = '"${schema}"'::regnamespace`,
    );
    expect(guard).toEqual({ lanname: 'sql', proconfig: null });
    // Inlined, the plan shows the guard's body rather than a call to event_guard().
    const plan = await admin.begin(async (tx) => {
      await tx.unsafe(`set local search_path to "${schema}"`);
      return await tx.unsafe('explain verbose select 1 where event_guard()');
    });
    const text = plan.map((row) => row['QUERY PLAN']).join('\n');
    expect(text).toContain('pg_advisory_xact_lock_shared');
    expect(text).not.toContain('event_guard');
  });

  it('refuses a schema migrated by a newer build', async () => {
    const schema = freshSchema();
    await opened(schema);
    await admin.unsafe(`insert into "${schema}".schema_migrations (version) values (99)`);
    const error = await storageOn(schema)
      .open()
      .catch((e: unknown) => e);
    expect(StoreError.is(error) && error.problem).toBe('newer_version');
  });

  it('fails to open, and to ping, with StoreError unavailable when the server cannot be reached', async () => {
    const storage = storageOn(freshSchema(), 'postgres://postgres@127.0.0.1:1/test');
    const error = await storage.open().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreError);
    expect(error).toMatchObject({
      problem: 'unavailable',
      details: {
        engine: 'postgres',
        reason: 'ECONNREFUSED',
        path: 'postgres://postgres@127.0.0.1:1/test',
      },
    });
    await expect(storage.ping()).rejects.toMatchObject({
      problem: 'unavailable',
      details: { reason: 'closed' },
    });
  });

  it('round-trips JSON of every shape, exact floats and large integers', async () => {
    const storage = await opened(freshSchema());
    const shapes = [
      [true, false, null],
      'plain string',
      42,
      -1.5e-7,
      { 'é ✓': { deep: [[], {}] } },
      null,
    ];
    for (const payload of shapes) {
      const row = taskRow({ payload, priority: -3, tokens: 2 ** 40, createdAt: 1_764_000_000_123 });
      const { task } = await storage.insertTask(row, event('e', { data: payload ?? {} }));
      expect(await storage.getTask(row.id)).toEqual({ ...row, seq: task.seq });
    }
    const task = (await storage.insertTask(taskRow(), event('e'))).task;
    await storage.addSpending([task.id], { steps: 1, tokens: 1, costUsd: 0.1 }, 2_000, event('s'));
    const [after] =
      (await storage.addSpending(
        [task.id],
        { steps: 1, tokens: 1, costUsd: 0.2 },
        3_000,
        event('s'),
      )) ?? [];
    expect(after?.costUsd).toBe(0.1 + 0.2);
    const events = await storage.readEvents(0, 100);
    expect(events.slice(0, shapes.length).map((e) => e.data)).toEqual(shapes.map((p) => p ?? {}));
  });

  it('writes nothing when the claim event cannot be written', async () => {
    const storage = await opened(freshSchema());
    const { task } = await storage.insertTask(taskRow(), event('e'));
    await expect(storage.claim(claimRequest('w'), { ...claimedEvent, at: 1.5 })).rejects.toThrow();
    const badWake = event('agent.wake', { at: 2.5 });
    await storage.putAgent({
      id: 'w',
      tokenHash: 'h',
      sleepUntil: Number.MAX_SAFE_INTEGER,
      sleepReason: 'no_tasks',
      sleepSince: 1,
      createdAt: 1,
    });
    await expect(
      storage.claim({ ...claimRequest('w'), wake: badWake }, claimedEvent),
    ).rejects.toThrow();
    expect((await storage.getAgent('w'))?.sleepReason).toBe('no_tasks');
    expect(await storage.getTask(task.id)).toEqual(task);
    expect(await storage.readEvents(0, 10)).toHaveLength(1);
    expect((await storage.claim(claimRequest('w'), claimedEvent))?.id).toBe(task.id);
  });

  it('commits with synchronous_commit off for durability normal, on for full, else as the server does', async () => {
    const schema = freshSchema();
    const server = await opened(schema);
    const commit = async (durability: 'normal' | 'full') => {
      const storage = new PostgresStorage({ url: URL, schema, max: 1, durability });
      storages.add(storage);
      await storage.open();
      return (await storage.diagnostics()).synchronousCommit;
    };
    const [serverDefault] = await admin`show synchronous_commit`;
    expect((await server.diagnostics()).synchronousCommit).toBe(serverDefault?.synchronous_commit);
    expect(await commit('normal')).toBe('off');
    expect(await commit('full')).toBe('on');
    // Writes still work, and are visible to a storage on the default setting.
    const fast = new PostgresStorage({ url: URL, schema, max: 1, durability: 'normal' });
    storages.add(fast);
    await fast.open();
    const { task } = await fast.insertTask(taskRow(), event('e'));
    expect(await server.getTask(task.id)).toEqual(task);
  });

  it('refuses to change a field that is not a column or never changes', async () => {
    const storage = await opened(freshSchema());
    const { task } = await storage.insertTask(taskRow(), event('e'));
    for (const [field, value] of [
      ['seq', 1],
      ['agentId', 'someone-else'],
      ['idempotencyKey', 'another-key'],
    ] as const) {
      const changes = { [field]: value } as Parameters<PostgresStorage['updateTask']>[2];
      await expect(
        storage.updateTask(task.id, { state: 'todo' }, changes, { events: [] }),
      ).rejects.toThrow(`tasks.${field} cannot be changed`);
    }
    expect(await storage.getTask(task.id)).toEqual(task);
  });

  it('gives a duplicate escalation id a ConflictError and writes nothing', async () => {
    const storage = await opened(freshSchema());
    const { task } = await storage.insertTask(taskRow(), event('e'));
    const escalation = {
      id: 'esc-1',
      kind: 'blocked' as const,
      status: 'open' as const,
      taskId: task.id,
      agentId: null,
      violation: null,
      comment: null,
      createdAt: 1,
      acknowledgedAt: null,
      acknowledgedBy: null,
      resolvedAt: null,
      resolvedBy: null,
      resolution: null,
    };
    await storage.insertEscalation(escalation, event('escalation.created'));
    await expect(storage.insertEscalation(escalation, event('never'))).rejects.toBeInstanceOf(
      ConflictError,
    );
    await expect(
      storage.updateTask(
        task.id,
        { state: 'todo' },
        { state: 'blocked' },
        { events: [event('never')], escalation },
      ),
    ).rejects.toBeInstanceOf(ConflictError);
    expect((await storage.getTask(task.id))?.state).toBe('todo');
    expect((await storage.readEvents(0, 10)).map((e) => e.type)).toEqual([
      'e',
      'escalation.created',
    ]);
  });

  it('creates a task once when instances race on one idempotency key', async () => {
    const schema = freshSchema();
    const [a, b] = [await opened(schema), await opened(schema)];
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2 === 0 ? a : b).insertTask(
          taskRow({ idempotencyKey: 'same' }),
          event('task.enqueued'),
        ),
      ),
    );
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.task.id)).size).toBe(1);
    expect(await a.readEvents(0, 100)).toHaveLength(1);
  });

  it('never hands one task to two claimers across instances', async () => {
    const schema = freshSchema();
    const [a, b] = [await opened(schema), await opened(schema)];
    for (let i = 0; i < 200; i++) await a.insertTask(taskRow({ priority: i % 5 }), event('e'));
    const claimer = async (storage: PostgresStorage, name: string) => {
      const ids: string[] = [];
      for (;;) {
        const task = await storage.claim(claimRequest(name), claimedEvent);
        if (task === undefined) return ids;
        ids.push(task.id);
      }
    };
    const runs = await Promise.all(
      [a, b].flatMap((storage, i) =>
        Array.from({ length: 4 }, (_, j) => claimer(storage, `w${i}-${j}`)),
      ),
    );
    const ids = runs.flat();
    expect(ids).toHaveLength(200);
    expect(new Set(ids).size).toBe(200);
    expect(await b.countTasks()).toMatchObject({ todo: 0, in_progress: 200 });
    const claims = (await b.readEvents(0, 1_000)).filter((e) => e.type === 'task.claimed');
    expect(new Set(claims.map((e) => e.taskId)).size).toBe(200);
  });

  it('lets a reader tailing the log by seq see every event while instances write at once', async () => {
    const schema = freshSchema();
    const [a, b] = [await opened(schema), await opened(schema)];
    for (let i = 0; i < 300; i++) await a.insertTask(taskRow(), event('e'));
    const start = (await a.readEvents(0, 1_000)).at(-1)?.seq ?? 0;
    const seen = new Set<number>();
    let writing = true;
    const tail = async () => {
      let cursor = start;
      for (;;) {
        const batch = await b.readEvents(cursor, 50);
        for (const e of batch) seen.add(e.seq);
        cursor = batch.at(-1)?.seq ?? cursor;
        if (batch.length === 0 && !writing) return;
      }
    };
    const work = async (storage: PostgresStorage, name: string) => {
      for (;;) {
        const task = await storage.claim(claimRequest(name), claimedEvent);
        if (task === undefined) return;
        await storage.updateTask(
          task.id,
          { state: 'in_progress' },
          { state: 'done' },
          { events: [event('done')] },
        );
        await storage.appendEvent(event('tick'));
      }
    };
    const reader = tail();
    await Promise.all([a, b].flatMap((s, i) => [0, 1, 2].map((j) => work(s, `w${i}${j}`))));
    writing = false;
    await reader;
    const written = (await a.readEvents(start, 10_000)).map((e) => e.seq);
    expect(written).toHaveLength(900);
    expect(written.filter((seq) => !seen.has(seq))).toEqual([]);
  }, 60_000);

  it("signals another instance's writes, and its own once, only on the same schema", async () => {
    const schema = freshSchema();
    const [a, b, elsewhere] = [
      await opened(schema),
      await opened(schema),
      await opened(freshSchema()),
    ];
    const heard = {
      a: [] as ChangeSignal[],
      b: [] as ChangeSignal[],
      elsewhere: [] as ChangeSignal[],
    };
    a.onChange((s) => heard.a.push(s));
    const offB = b.onChange((s) => heard.b.push(s));
    elsewhere.onChange((s) => heard.elsewhere.push(s));
    const settle = () => new Promise((r) => setTimeout(r, 150));

    await a.insertTask(taskRow(), event('e'));
    await eventually(() => heard.b.includes('task'));
    heard.b.length = 0;
    const backlog = (await a.insertTask(taskRow({ state: 'backlog' }), event('e'))).task;
    await eventually(() => heard.b.includes('event'));
    await settle();
    expect(heard.b).not.toContain('task');
    heard.b.length = 0;
    await a.updateTask(
      backlog.id,
      { state: 'backlog' },
      { state: 'todo' },
      { events: [event('moved')] },
    );
    await eventually(() => heard.b.includes('task'));

    // Each instance hears its own write once (when it commits), not a second time from the channel.
    heard.a.length = 0;
    heard.b.length = 0;
    await b.appendEvent(event('from-b'));
    await eventually(() => heard.a.includes('event'));
    await settle();
    expect(heard.b).toEqual(['event']);
    expect(heard.elsewhere).toEqual([]);
    offB();
  });

  it('keeps the claim on its partial index as finished tasks pile up (no planner trap)', async () => {
    // A database of its own: a long transaction in another session of a shared database would
    // keep finished rows visible to it, so neither index hints nor VACUUM could clear them.
    const database = `ek_plan_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
    await admin.unsafe(`create database "${database}"`);
    const url = `${URL.replace(/\/[^/?]*(\?.*)?$/, '')}/${database}`;
    const db = postgres(url, {
      max: 1,
      onnotice: () => {},
      connection: { search_path: 'exec_kernel' },
    });
    const storage = storageOn('exec_kernel', url);
    try {
      await storage.open();
      await drainAndExplain(storage, db);
    } finally {
      await storage.close();
      await db.end({ timeout: 5 });
      await admin.unsafe(`drop database if exists "${database}" with (force)`);
    }
  }, 120_000);

  const bin = findPostgresBin();
  it.skipIf(bin === undefined)(
    'recovers by itself from a server restart: ping, data and notifications (throwaway server; skipped without initdb/pg_ctl)',
    async () => {
      let server: ThrowawayPostgres | undefined;
      try {
        server = await startThrowawayPostgres();
        const a = storageOn('exec_kernel', server.url);
        const b = storageOn('exec_kernel', server.url);
        await Promise.all([a.open(), b.open()]);
        const heard: ChangeSignal[] = [];
        b.onChange((s) => heard.push(s));
        const { task } = await a.insertTask(taskRow(), event('task.enqueued'));
        await eventually(() => heard.includes('task'));

        await server.stop('fast');
        heard.length = 0;
        const started = Date.now();
        await expect(a.ping()).rejects.toBeInstanceOf(StoreError);
        expect(Date.now() - started).toBeLessThan(3_000);
        await expect(a.getTask(task.id)).rejects.toThrow();

        await server.start();
        const recovered = Date.now();
        for (;;) {
          try {
            await a.ping();
            break;
          } catch (error) {
            if (Date.now() - recovered > 10_000) throw error;
            await new Promise((r) => setTimeout(r, 100));
          }
        }
        expect(await a.getTask(task.id)).toEqual(task);

        // The listen connection resubscribes by itself, and says so with a 'task' signal (nothing
        // was written since the stop): notifications may have been lost meanwhile. After that, B
        // hears A's writes again.
        await eventually(() => heard.includes('task'), 10_000);
        heard.length = 0;
        await a.appendEvent(event('after-restart'));
        await eventually(() => heard.includes('event'), 5_000);
      } finally {
        await cleanUp();
        await server?.destroy();
      }
    },
    120_000,
  );
});
