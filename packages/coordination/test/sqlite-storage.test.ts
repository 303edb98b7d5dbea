import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConflictError, StoreError, TASK_STATES } from '@exec-kernel/core';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStorage } from '../src/storage/memory.js';
import { SQLITE_MIGRATIONS, SqliteStorage } from '../src/storage/sqlite/index.js';
import { migrateSqlite } from '../src/storage/sqlite/migrations.js';
import { event, storageConformance, taskRow } from './conformance.js';

const require = createRequire(import.meta.url);
const scratch: string[] = [];

function tempFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ek-sqlite-'));
  scratch.push(dir);
  return join(dir, 'coordination.db');
}

afterAll(() => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

storageConformance('sqlite', async () => {
  const path = tempFile();
  let storage = new SqliteStorage({ path });
  await storage.open();
  return {
    storage,
    reopen: async () => {
      await storage.close();
      storage = new SqliteStorage({ path });
      await storage.open();
      return storage;
    },
    cleanup: () => storage.close(),
  };
});

// Child processes run the real module from TypeScript source: plain `node` with a loader hook
// that strips types with the workspace's TypeScript (Node 20 cannot run .ts by itself).
const HOOKS = `
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from ${JSON.stringify(pathToFileURL(require.resolve('typescript')).href)};
export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (error) {
    if (!specifier.endsWith('.js') || !context.parentURL?.endsWith('.ts')) throw error;
    return next(specifier.slice(0, -3) + '.ts', context);
  }
}
export async function load(url, context, next) {
  if (!url.endsWith('.ts')) return next(url, context);
  const source = readFileSync(fileURLToPath(url), 'utf8');
  const { outputText } = ts.transpileModule(source, {
    fileName: fileURLToPath(url),
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
  });
  return { format: 'module', source: outputText, shortCircuit: true };
}`;

// open: report whether the module opens the file; hold: open, commit the tasks given, wait for
// the kill; read: a plain better-sqlite3 reader, as a backup script or the sqlite3 shell would be.
const CHILD = `
const [mode, path, tasks] = process.argv.slice(2);
const report = (value) => console.log(JSON.stringify(value));
if (mode === 'read') {
  const { default: Database } = await import(${JSON.stringify(pathToFileURL(require.resolve('better-sqlite3')).href)});
  try {
    const db = new Database(path, { readonly: true, timeout: 0 });
    report({ count: db.prepare('SELECT count(*) AS n FROM tasks').get().n });
  } catch (error) {
    report({ code: error.code });
  }
  process.exit(0);
}
const { SqliteStorage } = await import(${JSON.stringify(new URL('../src/storage/sqlite/index.ts', import.meta.url).href)});
const storage = new SqliteStorage({ path });
const started = performance.now();
try {
  await storage.open();
} catch (error) {
  report({ refused: error.message, name: error.name, resource: error.resource, ms: performance.now() - started });
  process.exit(0);
}
if (mode === 'open') {
  await storage.close();
  report({ opened: true });
  process.exit(0);
}
for (const task of JSON.parse(tasks)) {
  await storage.insertTask(task, { type: 'task.enqueued', taskId: task.id, agentId: null, data: {}, at: 1 });
}
report({ ready: true });
setInterval(() => {}, 60_000);
`;

let childDir: string;
beforeAll(() => {
  childDir = mkdtempSync(join(tmpdir(), 'ek-sqlite-child-'));
  scratch.push(childDir);
  writeFileSync(join(childDir, 'hooks.mjs'), HOOKS);
  writeFileSync(
    join(childDir, 'register.mjs'),
    `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(childDir, 'hooks.mjs')).href)});\n`,
  );
  writeFileSync(join(childDir, 'child.mjs'), CHILD);
});

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

function startChild(...args: string[]): ChildProcess {
  const child = spawn(
    process.execPath,
    [
      '--conditions=@exec-kernel/source',
      '--import',
      pathToFileURL(join(childDir, 'register.mjs')).href,
      join(childDir, 'child.mjs'),
      ...args,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(child);
  return child;
}

/** The first line the child prints, parsed; rejects with its stderr if it exits first. */
function firstReport(child: ChildProcess): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      err += chunk;
    });
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk;
      const end = out.indexOf('\n');
      if (end >= 0) resolve(JSON.parse(out.slice(0, end)));
    });
    child.on('exit', (code) =>
      reject(new Error(`child exited (${code}) without a report: ${err}`)),
    );
  });
}

const exited = (child: ChildProcess): Promise<unknown> =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(undefined);
    else child.once('exit', resolve);
  });

describe('SqliteStorage: one service process per file', () => {
  it('refuses a second storage in this process, and opens once the first closed', async () => {
    const path = tempFile();
    const first = new SqliteStorage({ path });
    await first.open();
    const second = new SqliteStorage({ path });
    const refused = await second.open().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(ConflictError);
    expect(refused).toMatchObject({
      resource: `sqlite:${path}`,
      message: `sqlite:${path} is already open in this process (pid ${process.pid})`,
    });
    // The refused opener must not have cost the first its lock.
    await first.insertTask(taskRow(), event('task.enqueued'));
    await first.close();
    await second.open();
    expect(await second.countTasks()).toMatchObject({ todo: 1 });
    await second.close();
  });

  it('refuses another process while open, readers included, and lets it in after close', async () => {
    const path = tempFile();
    const storage = new SqliteStorage({ path });
    await storage.open();
    await storage.insertTask(taskRow(), event('task.enqueued'));

    const refused = await firstReport(startChild('open', path));
    expect(refused).toMatchObject({
      name: 'ConflictError',
      resource: `sqlite:${path}`,
      refused: `sqlite:${path} is already in use by another exec-kernel service (pid ${process.pid})`,
    });
    // Refused at once, not after waiting out a long busy timeout.
    expect(refused.ms).toBeLessThan(2_000);
    expect(await firstReport(startChild('read', path))).toEqual({ code: 'SQLITE_BUSY' });
    // Exclusive locking keeps the WAL index in memory: no -shm file for others to attach to.
    expect(existsSync(`${path}-shm`)).toBe(false);

    await storage.close();
    expect(await firstReport(startChild('open', path))).toEqual({ opened: true });
    expect(await firstReport(startChild('read', path))).toEqual({ count: 1 });
  }, 30_000);

  it('opens after the holding process was SIGKILLed, with everything it committed', async () => {
    const path = tempFile();
    const rows = [
      taskRow({ priority: 3 }),
      taskRow({ payload: { deep: [1, { x: null }] } }),
      taskRow(),
    ];
    const holder = startChild('hold', path, JSON.stringify(rows));
    expect(await firstReport(holder)).toEqual({ ready: true });

    const storage = new SqliteStorage({ path });
    await expect(storage.open()).rejects.toThrow(
      `sqlite:${path} is already in use by another exec-kernel service (pid ${holder.pid})`,
    );
    // The commits are in the WAL only, not yet checkpointed into the database file.
    expect(existsSync(`${path}-wal`)).toBe(true);

    holder.kill('SIGKILL');
    await exited(holder);
    await storage.open();
    for (const row of rows)
      expect(await storage.getTask(row.id)).toEqual({ ...row, seq: expect.any(Number) });
    expect((await storage.readEvents(0, 10)).map((e) => e.taskId)).toEqual(rows.map((r) => r.id));
    await storage.close();
  }, 30_000);
});

describe('SqliteStorage: durability and schema', () => {
  it('runs WAL with synchronous NORMAL by default and FULL on request', async () => {
    const normal = new SqliteStorage({ path: tempFile() });
    await normal.open();
    expect(await normal.diagnostics()).toMatchObject({
      journalMode: 'wal',
      lockingMode: 'exclusive',
      synchronous: 'NORMAL',
      schemaVersion: SQLITE_MIGRATIONS.length,
    });
    await normal.close();
    const full = new SqliteStorage({ path: tempFile(), durability: 'full' });
    await full.open();
    expect((await full.diagnostics()).synchronous).toBe('FULL');
    await full.close();
  });

  it('refuses a file whose schema is newer than this version', async () => {
    const path = tempFile();
    const db = new Database(path);
    db.pragma('user_version = 99');
    db.close();
    const refused = new SqliteStorage({ path }).open();
    await expect(refused).rejects.toThrow(/schema version 99, newer/);
    await expect(refused).rejects.toBeInstanceOf(StoreError);
    await expect(refused).rejects.toMatchObject({ problem: 'newer_version' });
  });

  it('never hands out an event seq twice, even when old events are pruned', async () => {
    const path = tempFile();
    let storage = new SqliteStorage({ path });
    await storage.open();
    for (let i = 0; i < 3; i++) await storage.appendEvent(event('tick'));
    await storage.close();
    const db = new Database(path);
    db.prepare('DELETE FROM events WHERE seq < 3').run();
    expect(() => db.prepare('DELETE FROM events').run()).toThrow(/newest event/);
    db.close();
    storage = new SqliteStorage({ path });
    await storage.open();
    expect((await storage.appendEvent(event('tock'))).seq).toBe(4);
    expect((await storage.readEvents(0, 10)).map((e) => e.seq)).toEqual([3, 4]);
    await storage.close();
  });

  it('round-trips every JSON shape and number exactly', async () => {
    const storage = new SqliteStorage({ path: tempFile() });
    await storage.open();
    const shapes = ['text', 42, -1.5, true, null, [], {}, [{ a: [null, 'é😀'] }]];
    for (const payload of shapes) {
      const row = taskRow({
        payload,
        admission: null,
        costUsd: 0.1 + 0.2,
        priority: -7,
        title: '0042',
      });
      const { task } = await storage.insertTask(row, event('task.enqueued', { data: payload }));
      expect(await storage.getTask(row.id)).toEqual(task);
      expect(task).toEqual({ ...row, seq: task.seq });
    }
    expect((await storage.readEvents(0, 100)).map((e) => e.data)).toEqual(shapes);
    await storage.close();
  });

  it('rejects changes to fields an update may not touch, writing nothing', async () => {
    const storage = new SqliteStorage({ path: tempFile() });
    await storage.open();
    const { task } = await storage.insertTask(taskRow(), event('task.enqueued'));
    for (const sneaky of [{ id: 'other' }, { agentId: 'other' }, { idempotencyKey: 'other' }]) {
      await expect(
        storage.updateTask(task.id, { state: 'todo' }, sneaky as unknown as { state: 'done' }, {
          events: [event('x')],
        }),
      ).rejects.toThrow(`tasks.${Object.keys(sneaky)[0]} cannot be updated`);
    }
    expect(await storage.getTask(task.id)).toEqual(task);
    expect(await storage.readEvents(0, 10)).toHaveLength(1);
    await storage.close();
  });
});

describe('SqliteStorage: migrations and faults', () => {
  const fixture = readFileSync(
    new URL('./fixtures/sqlite-schema-before-steps.sql', import.meta.url),
    'utf8',
  );

  it('opens a file of the schema before numbered steps as it is, and adds only the new steps', async () => {
    const path = tempFile();
    const db = new Database(path);
    db.exec(fixture);
    db.pragma('user_version = 1');
    db.prepare(
      `INSERT INTO tasks (id, type, state, priority, agent_id, depth, attempts, max_attempts,
        limits, steps_taken, tokens, cost_usd, warned, created_at, updated_at)
       VALUES ('old', 'build', 'todo', 0, 'a', 0, 0, 3, '{}', 0, 0, 0, '[]', 1, 1)`,
    ).run();
    db.close();
    const storage = new SqliteStorage({ path });
    await storage.open();
    expect((await storage.getTask('old'))?.state).toBe('todo');
    expect(await storage.setContext('old', 'k', 1, event('task.context'))).toEqual({ k: 1 });
    expect((await storage.diagnostics()).schemaVersion).toBe(SQLITE_MIGRATIONS.length);
    await storage.close();
    const reader = new Database(path, { readonly: true });
    const steps = reader
      .prepare('SELECT version, name FROM schema_migrations ORDER BY version')
      .all();
    reader.close();
    expect(steps).toEqual(SQLITE_MIGRATIONS.map(({ version, name }) => ({ version, name })));
    // Opened again, nothing runs twice (a second CREATE TABLE would throw).
    await storage.open();
    expect(await storage.getContext('old')).toEqual({ context: { k: 1 }, notes: [] });
    await storage.close();
  });

  it('runs each step in a transaction of its own: a failing step leaves the ones before it', () => {
    const db = new Database(tempFile());
    const steps = [
      { version: 1, name: 'one', up: 'CREATE TABLE one (x)' },
      { version: 2, name: 'two', up: 'CREATE TABLE two (x); SELECT * FROM missing' },
    ];
    expect(() => migrateSqlite(db, 'test', steps)).toThrow(/no such table: missing/);
    expect(db.pragma('user_version', { simple: true })).toBe(1);
    const tables = db
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
      .all()
      .map((row) => (row as { name: string }).name);
    expect(tables).toEqual(['one', 'schema_migrations']);
    expect(() => migrateSqlite(db, 'test', [{ version: 2, name: 'gap', up: '' }])).toThrow(
      TypeError,
    );
    db.close();
  });

  it('answers StoreError unavailable, not a plain Error, once the storage is closed under its caller', async () => {
    const storage = new SqliteStorage({ path: tempFile() });
    await storage.open();
    const { task } = await storage.insertTask(taskRow(), event('task.enqueued'));
    await storage.close();
    for (const call of [
      () => storage.getTask(task.id),
      () => storage.ping(),
      () => storage.appendEvent(event('x')),
      () => storage.updateTask(task.id, { state: 'todo' }, { priority: 1 }, { events: [] }),
    ]) {
      const error = await call().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreError);
      expect(error).toMatchObject({
        problem: 'unavailable',
        path: storage.location,
        details: { engine: 'sqlite', reason: 'closed' },
      });
    }
  });
});

describe('SqliteStorage: the claim', () => {
  const usesClaimIndex = (plan: string[]) => {
    expect(plan.some((step) => /USING (COVERING )?INDEX tasks_claim\b/.test(step))).toBe(true);
    expect(plan.some((step) => /TEMP B-TREE|SCAN tasks$/.test(step))).toBe(false);
  };

  it('walks the partial index in claim order, with and without a type filter', async () => {
    const storage = new SqliteStorage({ path: tempFile() });
    await storage.open();
    usesClaimIndex((await storage.diagnostics()).claimPlan);
    usesClaimIndex((await storage.diagnostics(['build'])).claimPlan);
    usesClaimIndex((await storage.diagnostics(['build', 'review', 'deploy'])).claimPlan);
    await storage.close();
  });

  it('lists and counts as the memory engine does, whichever index serves the filter', async () => {
    const sqlite = new SqliteStorage({ path: tempFile() });
    await sqlite.open();
    const memory = new MemoryStorage();
    await memory.open();
    let seed = 7;
    const pick = <T>(options: readonly T[]): T => {
      seed = (seed * 48_271) % 2_147_483_647;
      return options[seed % options.length] as T;
    };
    for (let i = 0; i < 300; i++) {
      const row = taskRow({
        state: pick(TASK_STATES),
        type: pick(['a', 'b']),
        agentId: pick(['agent-0', 'agent-1', 'agent-2']),
        leaseOwner: pick([null, 'w-1', 'w-2']),
        priority: pick([0, 1, 2, 3]),
      });
      await sqlite.insertTask(row, event('e'));
      await memory.insertTask(row, event('e'));
    }
    expect(await sqlite.countTasks()).toEqual(await memory.countTasks());
    const ids = async (
      storage: SqliteStorage | MemoryStorage,
      filter: Parameters<MemoryStorage['listTasks']>[0],
    ) => (await storage.listTasks(filter)).map((t) => t.id);
    for (const state of [undefined, ...TASK_STATES]) {
      for (const [type, agentId, leaseOwner, afterSeq, limit] of [
        [undefined, undefined, undefined, undefined, 1_000],
        [undefined, undefined, undefined, 150, 5],
        ['a', undefined, undefined, undefined, 1_000],
        [undefined, 'agent-1', undefined, 100, 1_000],
        [undefined, undefined, 'w-2', undefined, 1_000],
        ['b', 'agent-2', 'w-1', 20, 3],
      ] as const) {
        const filter = { state, type, agentId, leaseOwner, afterSeq, limit };
        expect(await ids(sqlite, filter)).toEqual(await ids(memory, filter));
      }
    }
    await sqlite.close();
  });

  it('still finds the next open task behind thousands of finished ones, even after ANALYZE', async () => {
    const path = tempFile();
    let storage = new SqliteStorage({ path });
    await storage.open();
    for (let i = 0; i < 5_000; i++) {
      await storage.insertTask(taskRow({ state: 'done', priority: i % 5 }), event('task.enqueued'));
    }
    const late = (await storage.insertTask(taskRow({ priority: 1, type: 'review' }), event('e')))
      .task;
    const next = (await storage.insertTask(taskRow({ priority: 2 }), event('e'))).task;
    await storage.close();

    // Statistics that say "almost everything is done" are what moved Postgres off its index (§3.4).
    const db = new Database(path);
    db.exec('ANALYZE');
    db.close();

    storage = new SqliteStorage({ path });
    await storage.open();
    usesClaimIndex((await storage.diagnostics()).claimPlan);
    usesClaimIndex((await storage.diagnostics(['review'])).claimPlan);
    const claim = (types: string[] | null) =>
      storage.claim(
        { agentId: 'w', types, leaseId: 'l', leaseUntil: 9_000, now: 5_000 },
        { type: 'task.claimed', agentId: 'w', data: {}, at: 5_000 },
      );
    expect((await claim(['review']))?.id).toBe(late.id);
    expect((await claim(null))?.id).toBe(next.id);
    expect(await claim(null)).toBeUndefined();
    expect(await storage.countTasks()).toMatchObject({ done: 5_000, in_progress: 2, todo: 0 });
    await storage.close();
  }, 30_000);
});
