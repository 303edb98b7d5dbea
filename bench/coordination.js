// The coordination service under load, side by side with pg-boss on the same PostgreSQL, in one
// run. The service runs in a child process of its own (coordination-server.js), as users run it;
// the workers are async loops in this process, each with its own CoordinationClient and agent
// token, so every claim and every completion is an HTTP request.
//
// 1. Throughput: a backlog (BENCH_COORD_TASKS, default 20,000 as in the research runs behind
//    goal 7, coordination-research.md §3.1, after a warm-up of
//    BENCH_COORD_WARMUP tasks drained the same way) is drained by W workers (1 and 4), each loop
//    `claim()` then `transition(id, 'done', { leaseId, next: {} })`, which also claims the next
//    task, as the worker helper does (BENCH_COORD_NEXT=0: a `claim()` for each task instead);
//    with B > 1, `claimMany({ max: B })` then `transitionMany(...)`. Throughput = tasks done / wall time of the drain; latency is per
//    claim request (empty claims at the end excluded); every claimed id is checked for duplicates.
//    Each (engine, W, B) gets a fresh service process and a fresh database (SQLite file or
//    PostgreSQL schema). pg-boss 10.4.2 drains the same backlog with `fetch` + `complete` (batched:
//    `fetch({ batchSize: B })` + `complete(ids)`), a fresh queue per (W, B), in its own schema.
// 2. Claim latency vs backlog (PostgreSQL): the backlog is held at each level (filled fast, then
//    one task re-enqueued after each completion), both schemas' tables are VACUUM ANALYZEd, then
//    BENCH_COORD_BACKLOG_CLAIMS claims are taken, ours and pg-boss's alternating so that machine
//    noise hits both alike. The time of each claim+complete pair (refills not counted) also
//    gives one worker's claim+complete rate at that backlog, for both.
//
// Environment: BENCH_COORD_TASKS, BENCH_COORD_WARMUP, BENCH_COORD_WORKERS ("1,4"),
// BENCH_COORD_BATCH (16; 1 measures B=1 only), BENCH_COORD_NEXT (0: B=1 claims with a request of
// its own), BENCH_COORD_FETCH (global: workers use Node's built-in fetch, not the client's
// node:http default), BENCH_COORD_BACKLOGS ("1000,5000,20000,50000"),
// BENCH_COORD_BACKLOG_CLAIMS (500), BENCH_COORD_PG (postgres://postgres@127.0.0.1:5432/test),
// BENCH_COORD_ONLY (comma list of sqlite, postgres, pg-boss, backlog, and postgres-normal: the
// service with durability normal, synchronous_commit off; not run by default), BENCH_COORD_CPU_PROF (a
// directory: service processes run with --cpu-prof and write their profiles there).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CoordinationClient } from '@exec-kernel/coordination/client';
import PgBoss from 'pg-boss';
import postgres from 'postgres';

const SERVER = fileURLToPath(new URL('./coordination-server.js', import.meta.url));
const list = (value, fallback) =>
  (value ?? fallback)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

export function coordinationSettings(env = process.env) {
  const batch = Number(env.BENCH_COORD_BATCH ?? 16);
  return {
    tasks: Number(env.BENCH_COORD_TASKS ?? 20_000),
    warmup: Number(env.BENCH_COORD_WARMUP ?? 500),
    workers: list(env.BENCH_COORD_WORKERS, '1,4').map(Number),
    batches: batch > 1 ? [1, batch] : [1],
    backlogs: list(env.BENCH_COORD_BACKLOGS, '1000,5000,20000,50000').map(Number),
    backlogClaims: Number(env.BENCH_COORD_BACKLOG_CLAIMS ?? 500),
    pgUrl: env.BENCH_COORD_PG ?? 'postgres://postgres@127.0.0.1:5432/test',
    only: list(env.BENCH_COORD_ONLY, 'sqlite,postgres,pg-boss,backlog'),
    profileDir: env.BENCH_COORD_CPU_PROF,
    enqueueConcurrency: 16,
    next: env.BENCH_COORD_NEXT !== '0',
    // BENCH_COORD_FETCH=global: the workers' clients send through Node's built-in fetch.
    transport: env.BENCH_COORD_FETCH === 'global' ? { fetch: globalThis.fetch } : {},
  };
}

const ADMISSION = {
  consumer: 'bench',
  painPoint: 'a backlog to drain',
  expectedValue: 'figures',
  validationPath: 'bench/RESULTS.md',
};

/** About 200 bytes of JSON, distinct per task (the payload of coordination-research.md §3). */
function payload(i) {
  return {
    taskId: `t-${String(i).padStart(6, '0')}`,
    agent: `agent-${i % 7}`,
    kind: 'code.review',
    title: 'Review the change to the lease-renewal path and report blockers',
    refs: [`repo/main#${1000 + (i % 97)}`],
    meta: { attempt: 0, tags: ['ts', 'queue'] },
  };
}

export function percentile(values, p) {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** User + system CPU seconds of a process so far (Linux /proc; undefined elsewhere). */
function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ)
  } catch {
    return undefined;
  }
}

/** The local ports of a process's TCP connections to `port` (Linux /proc; empty elsewhere). */
function portsConnectedTo(pid, port) {
  const inodes = new Set();
  let fds = [];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {}
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {} // closed meanwhile (the directory's own descriptor is)
  }
  const ports = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {}
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || !inodes.has(f[9])) continue;
      if (Number.parseInt(f[2].split(':')[1], 16) === port) {
        ports.push(Number.parseInt(f[1].split(':')[1], 16));
      }
    }
  }
  return ports;
}

/**
 * CPU seconds so far of this process, of the service process (when there is one) and of the
 * PostgreSQL backends serving either (found by client port in pg_stat_activity; the server must
 * be local). `monitor` is a direct connection, or undefined to skip the backends.
 */
async function cpuSnapshot(servicePid, monitor, pgPort) {
  const own = process.cpuUsage();
  const snapshot = {
    bench: (own.user + own.system) / 1e6,
    service: servicePid === undefined ? undefined : cpuSeconds(servicePid),
    backends: new Map(),
  };
  if (monitor !== undefined) {
    const ports = portsConnectedTo(servicePid ?? process.pid, pgPort);
    const rows = await monitor`
      select pid from pg_stat_activity
      where client_port = any(${ports}) and pid <> pg_backend_pid()`;
    for (const { pid } of rows) snapshot.backends.set(pid, cpuSeconds(pid));
  }
  return snapshot;
}

/** CPU microseconds per task between two snapshots (backends present in both). */
function cpuPerTask(before, after, tasks) {
  const us = (a, b) => (a === undefined || b === undefined ? undefined : ((b - a) * 1e6) / tasks);
  let backends;
  for (const [pid, start] of before.backends) {
    const used = us(start, after.backends.get(pid));
    if (used !== undefined) backends = (backends ?? 0) + used;
  }
  return {
    serviceCpuUsPerTask: us(before.service, after.service),
    clientCpuUsPerTask: us(before.bench, after.bench),
    pgCpuUsPerTask: backends,
  };
}

const log = (line) => process.stderr.write(`coordination: ${line}\n`);

/** Runs `count` jobs through `concurrency` loops; resolves with the milliseconds it took. */
async function pool(count, concurrency, job) {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      for (let i = next++; i < count; i = next++) await job(i);
    }),
  );
  return performance.now() - started;
}

// --- our service ---------------------------------------------------------------------------------

/** Starts coordination-server.js on `db`; resolves once it prints its URL. */
export async function startService(db, label, settings, durability = '') {
  const adminToken = randomBytes(16).toString('hex');
  const args = settings.profileDir
    ? [
        '--cpu-prof',
        `--cpu-prof-dir=${settings.profileDir}`,
        `--cpu-prof-name=coordination-${label}-${process.pid}-${Date.now()}.cpuprofile`,
      ]
    : [];
  const child = spawn(process.execPath, [...args, SERVER], {
    env: {
      ...process.env,
      BENCH_COORD_DB: db,
      BENCH_COORD_DURABILITY: durability,
      BENCH_COORD_ADMIN_TOKEN: adminToken,
    },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const lines = createInterface({ input: child.stdout });
  const first = await Promise.race([
    new Promise((resolve) => lines.once('line', resolve)),
    exited.then((code) => {
      throw new Error(`coordination-server.js exited (${code}) before listening on ${label}`);
    }),
  ]);
  const { url } = JSON.parse(first);
  return {
    url,
    pid: child.pid,
    admin: new CoordinationClient({ url, token: adminToken }),
    async stop() {
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Enqueues tasks `from`..`to`-1 through HTTP; resolves with the milliseconds it took. */
function enqueueOurs(producer, from, to, concurrency) {
  return pool(to - from, concurrency, (i) =>
    producer.enqueue({ type: 'bench', admission: ADMISSION, payload: payload(from + i) }),
  );
}

/**
 * W loops of claim + done until the queue is empty. With B = 1 and `next` (the worker helper's
 * way), each `done` also claims the next task, in one request; without, claim and done are two.
 */
async function drainOurs(clients, batch, next = true) {
  const latencies = [];
  const seen = new Set();
  let duplicates = 0;
  let done = 0;
  let refused = 0;
  const note = (id) => {
    if (seen.has(id)) duplicates++;
    else seen.add(id);
  };
  const started = performance.now();
  await Promise.all(
    clients.map(async (client) => {
      for (;;) {
        if (batch === 1 && next) {
          let t = performance.now();
          let claimed = await client.claim();
          while (claimed !== undefined) {
            latencies.push(performance.now() - t);
            note(claimed.task.id);
            t = performance.now();
            const moved = await client.transition(claimed.task.id, 'done', {
              leaseId: claimed.lease.id,
              next: {},
            });
            done++;
            claimed = moved.next ?? (await client.claim());
          }
          return;
        } else if (batch === 1) {
          const t = performance.now();
          const claimed = await client.claim();
          if (claimed === undefined) return;
          latencies.push(performance.now() - t);
          note(claimed.task.id);
          await client.transition(claimed.task.id, 'done', { leaseId: claimed.lease.id });
          done++;
        } else {
          const t = performance.now();
          const claimed = await client.claimMany({ max: batch });
          if (claimed.length === 0) return;
          latencies.push(performance.now() - t);
          for (const c of claimed) note(c.task.id);
          const results = await client.transitionMany(
            claimed.map((c) => ({ id: c.task.id, to: 'done', leaseId: c.lease.id })),
          );
          for (const r of results) {
            if (r.ok) done++;
            else refused++;
          }
        }
      }
    }),
  );
  return { ms: performance.now() - started, done, refused, duplicates, latencies };
}

async function ourThroughput(engine, workers, batch, settings) {
  const label = `${engine}-w${workers}-b${batch}`;
  const scratch = engine === 'sqlite' ? mkdtempSync(join(tmpdir(), 'bench-coord-')) : undefined;
  const schema = `bench_coord_${process.pid}_${workers}_${batch}`;
  const onPostgres = engine !== 'sqlite';
  const db = onPostgres
    ? `${settings.pgUrl}?schema=${schema}`
    : `sqlite:${join(scratch, 'queue.db')}`;
  // postgres-normal: the service's commits do not wait for the WAL flush (durability normal).
  const durability = engine === 'postgres-normal' ? 'normal' : '';
  const service = await startService(db, label, settings, durability);
  const pgPort = Number(new URL(settings.pgUrl).port || 5432);
  const monitor = onPostgres ? postgres(settings.pgUrl, { max: 1, onnotice: () => {} }) : undefined;
  try {
    const producer = new CoordinationClient({
      url: service.url,
      token: (await service.admin.registerAgent('producer')).token,
    });
    const clients = [];
    for (let w = 0; w < workers; w++) {
      const { token } = await service.admin.registerAgent(`worker-${w}`);
      clients.push(new CoordinationClient({ url: service.url, token, ...settings.transport }));
    }
    if (batch > 1 && typeof clients[0].claimMany !== 'function') {
      return { engine, workers, batch, unavailable: true };
    }
    await enqueueOurs(producer, 0, settings.warmup, settings.enqueueConcurrency);
    await drainOurs(clients, batch, settings.next);
    const enqueueMs = await enqueueOurs(producer, 0, settings.tasks, settings.enqueueConcurrency);
    const before = await cpuSnapshot(service.pid, monitor, pgPort);
    const drain = await drainOurs(clients, batch, settings.next);
    const after = await cpuSnapshot(service.pid, monitor, pgPort);
    const result = summarize({ engine, workers, batch, settings, drain, enqueueMs });
    Object.assign(result, cpuPerTask(before, after, drain.done));
    log(describe(result));
    return result;
  } finally {
    await monitor?.end({ timeout: 5 });
    await service.stop();
    if (scratch) rmSync(scratch, { recursive: true, force: true });
    if (onPostgres) await dropSchemas(settings.pgUrl, [schema]);
  }
}

function summarize({ engine, workers, batch, settings, drain, enqueueMs }) {
  return {
    engine,
    workers,
    batch,
    tasks: settings.tasks,
    done: drain.done,
    refused: drain.refused,
    duplicates: drain.duplicates,
    perSecond: drain.done / (drain.ms / 1000),
    p50: percentile(drain.latencies, 50),
    p99: percentile(drain.latencies, 99),
    claims: drain.latencies.length,
    enqueuePerSecond: settings.tasks / (enqueueMs / 1000),
  };
}

function describe(r) {
  return (
    `${r.engine} W=${r.workers} B=${r.batch}: ${r.perSecond.toFixed(0)}/s, claim p50 ` +
    `${r.p50.toFixed(2)} ms p99 ${r.p99.toFixed(2)} ms, done ${r.done}/${r.tasks}, ` +
    `${r.duplicates} duplicates, enqueue ${r.enqueuePerSecond.toFixed(0)}/s`
  );
}

async function dropSchemas(pgUrl, schemas) {
  const sql = postgres(pgUrl, { max: 1, onnotice: () => {} });
  try {
    for (const schema of schemas) await sql.unsafe(`drop schema if exists "${schema}" cascade`);
  } finally {
    await sql.end({ timeout: 5 });
  }
}

// --- pg-boss -------------------------------------------------------------------------------------

const BOSS_POOL = 8;

async function startBoss(settings) {
  const schema = `bench_pgboss_${process.pid}`;
  const boss = new PgBoss({ connectionString: settings.pgUrl, schema, max: BOSS_POOL });
  boss.on('error', (error) => log(`pg-boss error: ${error.message}`));
  await boss.start();
  return {
    boss,
    schema,
    async stop() {
      await boss.stop({ graceful: false, wait: true, timeout: 5000 });
      await dropSchemas(settings.pgUrl, [schema]);
    },
  };
}

/** `send`s jobs `from`..`to`-1 (one call per job, as an app would); resolves with the ms taken. */
function sendBoss(boss, queue, from, to, concurrency) {
  return pool(to - from, concurrency, (i) => boss.send(queue, payload(from + i)));
}

async function drainBoss(boss, queue, workers, batch) {
  const latencies = [];
  const seen = new Set();
  let duplicates = 0;
  let done = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      for (;;) {
        const t = performance.now();
        const jobs = await boss.fetch(queue, batch === 1 ? {} : { batchSize: batch });
        if (!jobs || jobs.length === 0) return;
        latencies.push(performance.now() - t);
        for (const job of jobs) {
          if (seen.has(job.id)) duplicates++;
          else seen.add(job.id);
        }
        if (batch === 1) await boss.complete(queue, jobs[0].id);
        else
          await boss.complete(
            queue,
            jobs.map((job) => job.id),
          );
        done += jobs.length;
      }
    }),
  );
  return { ms: performance.now() - started, done, refused: 0, duplicates, latencies };
}

async function bossThroughput(boss, workers, batch, settings, monitor) {
  const pgPort = Number(new URL(settings.pgUrl).port || 5432);
  const queue = `bench_w${workers}_b${batch}`;
  await boss.createQueue(queue);
  await sendBoss(boss, queue, 0, settings.warmup, BOSS_POOL);
  await drainBoss(boss, queue, workers, batch);
  const enqueueMs = await sendBoss(boss, queue, 0, settings.tasks, BOSS_POOL);
  const before = await cpuSnapshot(undefined, monitor, pgPort);
  const drain = await drainBoss(boss, queue, workers, batch);
  const after = await cpuSnapshot(undefined, monitor, pgPort);
  const result = summarize({ engine: 'pg-boss', workers, batch, settings, drain, enqueueMs });
  Object.assign(result, cpuPerTask(before, after, drain.done));
  log(describe(result));
  return result;
}

// --- claim latency vs backlog (PostgreSQL) -------------------------------------------------------

/**
 * VACUUM ANALYZE of every table of a schema: fresh statistics, and the vacuum that the fill's
 * inserts would otherwise trigger in the background, in the middle of one engine's measurement.
 */
async function analyzeSchema(sql, schema) {
  const tables = await sql`select tablename from pg_tables where schemaname = ${schema}`;
  for (const { tablename } of tables) {
    await sql.unsafe(`vacuum (analyze) "${schema}"."${tablename}"`);
  }
}

async function backlogLatency(settings) {
  const schema = `bench_coord_${process.pid}_backlog`;
  const service = await startService(`${settings.pgUrl}?schema=${schema}`, 'backlog', settings);
  const { boss, schema: bossSchema, stop: stopBoss } = await startBoss(settings);
  const sql = postgres(settings.pgUrl, { max: 1, onnotice: () => {} });
  const queue = 'bench_backlog';
  const rows = [];
  try {
    await boss.createQueue(queue);
    const producer = new CoordinationClient({
      url: service.url,
      token: (await service.admin.registerAgent('producer')).token,
    });
    const worker = new CoordinationClient({
      url: service.url,
      token: (await service.admin.registerAgent('worker')).token,
    });
    let level = 0;
    let serial = 0;
    for (const size of settings.backlogs) {
      const add = size - level;
      const oursMs = await enqueueOurs(producer, serial, serial + add, settings.enqueueConcurrency);
      const bossStarted = performance.now();
      for (let i = 0; i < add; i += 1000) {
        const jobs = [];
        for (let k = i; k < Math.min(add, i + 1000); k++) {
          jobs.push({ name: queue, data: payload(serial + k) });
        }
        await boss.insert(jobs);
      }
      const bossMs = performance.now() - bossStarted;
      serial += add;
      level = size;
      await analyzeSchema(sql, schema);
      await analyzeSchema(sql, bossSchema);
      const ours = [];
      const theirs = [];
      // Claim+complete of one worker at this backlog, refills not counted.
      let oursCycleMs = 0;
      let bossCycleMs = 0;
      let duplicates = 0;
      const seen = new Set();
      // Unmeasured rounds first; more at the first level, so that no level pays the JIT warm-up.
      const unmeasured = size === settings.backlogs[0] ? 200 : 20;
      for (let i = 0; i < settings.backlogClaims + unmeasured; i++) {
        const measured = i >= unmeasured;
        let t = performance.now();
        const claimed = await worker.claim();
        if (measured) ours.push(performance.now() - t);
        if (claimed === undefined) throw new Error(`our queue ran dry at backlog ${size}`);
        if (seen.has(claimed.task.id)) duplicates++;
        seen.add(claimed.task.id);
        await worker.transition(claimed.task.id, 'done', { leaseId: claimed.lease.id });
        if (measured) oursCycleMs += performance.now() - t;
        await producer.enqueue({ type: 'bench', admission: ADMISSION, payload: payload(serial) });
        t = performance.now();
        const [job] = await boss.fetch(queue);
        if (measured) theirs.push(performance.now() - t);
        if (job === undefined) throw new Error(`pg-boss queue ran dry at backlog ${size}`);
        await boss.complete(queue, job.id);
        if (measured) bossCycleMs += performance.now() - t;
        await boss.send(queue, payload(serial));
        serial++;
      }
      const row = {
        backlog: size,
        added: add,
        oursEnqueueMs: oursMs,
        bossInsertMs: bossMs,
        oursP50: percentile(ours, 50),
        oursP99: percentile(ours, 99),
        bossP50: percentile(theirs, 50),
        bossP99: percentile(theirs, 99),
        oursPerSecond: ours.length / (oursCycleMs / 1000),
        bossPerSecond: theirs.length / (bossCycleMs / 1000),
        duplicates,
      };
      log(
        `backlog ${size}: ours p50 ${row.oursP50.toFixed(2)} ms p99 ${row.oursP99.toFixed(2)} ms, ` +
          `pg-boss p50 ${row.bossP50.toFixed(2)} ms p99 ${row.bossP99.toFixed(2)} ms; claim+complete ` +
          `ours ${row.oursPerSecond.toFixed(0)}/s, pg-boss ${row.bossPerSecond.toFixed(0)}/s ` +
          `(filled +${add}: ours ${(oursMs / 1000).toFixed(1)} s, pg-boss ${(bossMs / 1000).toFixed(1)} s)`,
      );
      rows.push(row);
    }
    return rows;
  } finally {
    await sql.end({ timeout: 5 });
    await service.stop();
    await stopBoss();
    await dropSchemas(settings.pgUrl, [schema]);
  }
}

// --- the whole section ---------------------------------------------------------------------------

/** Whether PostgreSQL at `pgUrl` answers within a few seconds. */
async function reachable(pgUrl) {
  const sql = postgres(pgUrl, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`select 1`;
    return true;
  } catch (error) {
    log(`PostgreSQL at ${pgUrl} did not answer (${error.code ?? error.message})`);
    return false;
  } finally {
    await sql.end({ timeout: 1 });
  }
}

export async function runCoordination(settings = coordinationSettings()) {
  const started = performance.now();
  const needsPostgres = ['postgres', 'postgres-normal', 'pg-boss', 'backlog'].filter((s) =>
    settings.only.includes(s),
  );
  if (needsPostgres.length > 0 && !(await reachable(settings.pgUrl))) {
    log(`skipping ${needsPostgres.join(', ')}; set BENCH_COORD_PG to a reachable database`);
    settings = { ...settings, only: settings.only.filter((s) => !needsPostgres.includes(s)) };
  }
  const throughput = [];
  for (const engine of ['sqlite', 'postgres', 'postgres-normal']) {
    if (!settings.only.includes(engine)) continue;
    for (const batch of settings.batches) {
      for (const workers of settings.workers) {
        throughput.push(await ourThroughput(engine, workers, batch, settings));
      }
    }
  }
  if (settings.only.includes('pg-boss')) {
    const { boss, stop } = await startBoss(settings);
    const monitor = postgres(settings.pgUrl, { max: 1, onnotice: () => {} });
    try {
      for (const batch of settings.batches) {
        for (const workers of settings.workers) {
          throughput.push(await bossThroughput(boss, workers, batch, settings, monitor));
        }
      }
    } finally {
      await monitor.end({ timeout: 5 });
      await stop();
    }
  }
  const backlog = settings.only.includes('backlog') ? await backlogLatency(settings) : [];
  return { settings, throughput, backlog, seconds: (performance.now() - started) / 1000 };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(JSON.stringify(await runCoordination(), null, 2));
}
