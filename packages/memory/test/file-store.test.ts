import { execFile, spawn } from 'node:child_process';
import {
  chmod,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { StoreError } from '@exec-kernel/core';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FileStore } from '../src/file-store.js';
import { MemoryState } from '../src/state.js';
import { TaskMemory } from '../src/task-memory.js';

const run = promisify(execFile);
const fixture = (name: string) => join(import.meta.dirname, 'fixtures', name);

let dir = '';
let file = '';
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'exec-kernel-store-'));
  file = join(dir, 'state', 'state.json');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function storeError(promise: Promise<unknown>): Promise<StoreError> {
  return promise.then(
    () => {
      throw new Error('expected a StoreError');
    },
    (e: unknown) => {
      if (StoreError.is(e)) return e;
      throw e;
    },
  );
}

describe('FileStore', () => {
  it('reads a missing file as empty and creates the file and its folder on the first change', async () => {
    const store = new FileStore(file);
    expect((await store.read()).tasks.size).toBe(0);
    await new TaskMemory(store).transaction((s) => s.loop.checkNewTask('t1', 'a', 'x'));
    const json = JSON.parse(await readFile(file, 'utf8'));
    expect(json).toMatchObject({
      version: 1,
      tasks: [{ taskId: 't1', state: 'todo', depth: 0 }],
      agents: [],
    });
    expect((await readdir(join(dir, 'state'))).sort()).toEqual(['state.json']);
  });

  it('writes nothing when an update changes nothing or throws', async () => {
    const store = new FileStore(file);
    await store.update(() => 1);
    await expect(readFile(file)).rejects.toMatchObject({ code: 'ENOENT' });
    await new TaskMemory(store).transaction((s) => s.loop.checkNewTask('t1', 'a', 'x'));
    const before = await readFile(file, 'utf8');
    await expect(
      store.update((state) => {
        state.ensureTask('t2', 'now');
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    expect(await readFile(file, 'utf8')).toBe(before);
  });

  it('refuses a file from a newer format version, clearly, without touching it', async () => {
    await mkdir(join(dir, 'state'));
    const newer = JSON.stringify({ version: 2, tasks: [], agents: [], shards: {} });
    await writeFile(file, newer);
    const store = new FileStore(file);
    const e = await storeError(store.read());
    expect([e.problem, e.details.version]).toEqual(['newer_version', 2]);
    expect(e.message).toBe(
      `State file ${file} has format version 2, newer than this exec-kernel reads; upgrade @exec-kernel/memory to use it`,
    );
    expect((await storeError(new TaskMemory(store).note('t', 'x'))).problem).toBe('newer_version');
    expect(await readFile(file, 'utf8')).toBe(newer);
  });

  it('keeps the permissions a user gave the file', async () => {
    const store = new FileStore(file);
    await store.update((s) => s.ensureTask('t1', 'now'));
    await chmod(file, 0o600);
    await store.update((s) => s.ensureTask('t2', 'now'));
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('refuses a damaged file', async () => {
    await mkdir(join(dir, 'state'));
    for (const text of [
      '{"version":1,"tasks":[{"taskId":"t","state":"todo","history":[],"notes":[],"context":null}],"agents":[]}',
      '{"version":1,"tasks":[{"taskId":"t","state":"todo","history":[],"context":{}}],"agents":[]}',
      '{"version": 1, "tasks": [',
      '[]',
      '{"version":1,"tasks":[{"taskId":"t","state":"open","history":[]}],"agents":[]}',
    ]) {
      await writeFile(file, text);
      expect((await storeError(new FileStore(file).read())).problem).toBe('corrupt');
    }
  });

  it('waits for a lock a live process holds, and breaks it once stale', async () => {
    // A lock as a running process holds it: its token's folder with the owner file inside.
    const owner = join(`${file}.lock`, `${process.pid}-held`);
    await mkdir(owner, { recursive: true });
    await writeFile(
      join(owner, 'owner.json'),
      JSON.stringify({ pid: process.pid, host: hostname() }),
    );
    const store = new FileStore(file, { lockTimeoutMs: 300 });
    const e = await storeError(store.update((s) => s.touch()));
    expect(e.problem).toBe('locked');
    expect(e.message).toContain('stayed locked by another process');
    const old = new Date(Date.now() - 60_000);
    await utimes(join(owner, 'owner.json'), old, old);
    await store.update((s) => s.ensureTask('t', 'now'));
    expect((await store.read()).tasks.has('t')).toBe(true);
    await expect(readdir(`${dir}/state`)).resolves.toEqual(['state.json']);
  });

  it('breaks at once a fresh lock whose holder no longer runs', async () => {
    const gone = spawn(process.execPath, ['-e', '']);
    const pid = gone.pid as number;
    await new Promise((r) => gone.once('exit', r));
    const owner = join(`${file}.lock`, `${pid}-dead`);
    await mkdir(owner, { recursive: true });
    await writeFile(join(owner, 'owner.json'), JSON.stringify({ pid, host: hostname() }));
    // Far inside both the stale limit and the timeout: only the dead holder explains success.
    const store = new FileStore(file, { lockTimeoutMs: 500, staleLockMs: 60_000 });
    await store.update((s) => s.ensureTask('t', 'now'));
    expect((await store.read()).tasks.has('t')).toBe(true);
  });

  it('keeps a context key named __proto__ (or constructor) like any other, polluting nothing', async () => {
    const memory = new TaskMemory(new FileStore(file));
    await memory.transaction((s) => s.loop.checkNewTask('t1', 'a', 'x'));
    await memory.setContext('t1', '__proto__', { polluted: true });
    await memory.setContext('t1', 'constructor', 'c');
    await memory.setContext('t1', 'hasOwnProperty', 1);
    const context = (await new TaskMemory(new FileStore(file)).getTask('t1'))?.context ?? {};
    expect(Object.keys(context)).toEqual(['__proto__', 'constructor', 'hasOwnProperty']);
    expect(Object.getOwnPropertyDescriptor(context, '__proto__')?.value).toEqual({
      polluted: true,
    });
    expect(Object.getPrototypeOf(context)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    await memory.setContext('t1', '__proto__', undefined);
    expect(Object.keys((await memory.getTask('t1'))?.context ?? {})).toEqual([
      'constructor',
      'hasOwnProperty',
    ]);
  });

  it('removes what killed writers left beside the file, but not what live ones are using', async () => {
    const store = new FileStore(file, { staleLockMs: 60_000 });
    await store.update((s) => s.ensureTask('t', 'now'));
    const gone = spawn(process.execPath, ['-e', '']);
    const dead = gone.pid as number;
    await new Promise((r) => gone.once('exit', r));
    const state = join(dir, 'state');
    // An older version's temporary file (20 MiB in the report), a half-made lock and a broken one
    // of dead processes; a live process's lock in the making; someone else's file.
    await writeFile(join(state, `.state.json.${dead}.m1x2.0.tmp`), 'x'.repeat(1 << 20));
    await mkdir(join(state, `.state.json.${dead}-abc.acquire`, `${dead}-abc`), { recursive: true });
    await mkdir(join(state, `.state.json.${dead}-def.broken`, `${dead}-def`), { recursive: true });
    await mkdir(join(state, `.state.json.${process.pid}-live.acquire`));
    await writeFile(join(state, 'notes.txt'), 'mine');
    await store.update((s) => s.ensureTask('t2', 'now'));
    expect((await readdir(state)).sort()).toEqual([
      `.state.json.${process.pid}-live.acquire`,
      'notes.txt',
      'state.json',
    ]);
  });

  it('says at once, in one line, that a folder it may not write to is not a lock to wait for', async () => {
    await mkdir(join(dir, 'state'));
    await writeFile(file, new MemoryState().toText());
    // Root writes anywhere, so as root the writer runs as nobody against a folder root owns.
    const asRoot = process.getuid?.() === 0;
    await chmod(dir, 0o755);
    await chmod(join(dir, 'state'), asRoot ? 0o755 : 0o555);
    await chmod(file, 0o644);
    const started = Date.now();
    const result = await new Promise<{ code: number | null; stderr: string }>((done) => {
      const child = spawn(process.execPath, [fixture('step-worker.mjs'), file, 't1', '1'], {
        stdio: ['ignore', 'ignore', 'pipe'],
        ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      child.once('exit', (code) => done({ code, stderr }));
    });
    await chmod(join(dir, 'state'), 0o755);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(
      `State file ${file} cannot be written: permission denied on ${join(dir, 'state')} (EACCES)`,
    );
    expect(result.stderr).not.toContain('locked');
    // Told at once: not after the 30 s lock timeout.
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(await readdir(join(dir, 'state'))).toEqual(['state.json']);
  }, 40_000);
});

describe('FileStore under concurrent processes', () => {
  it('loses no update: 8 processes x 200 steps on one task count exactly 1,600', async () => {
    const memory = new TaskMemory(new FileStore(file));
    await memory.transaction((s) => s.budget.startTask('shared', { maxSteps: 1_000_000 }));
    await Promise.all(
      Array.from({ length: 8 }, () =>
        run(process.execPath, [fixture('step-worker.mjs'), file, 'shared', '200']),
      ),
    );
    expect((await memory.getTask('shared'))?.budget?.stepsTaken).toBe(1600);
  }, 180_000);

  it('survives SIGKILL in the middle of a write: the file still loads and the next writer proceeds', async () => {
    for (const delay of [5, 40, 90, 160]) {
      const writer = spawn(process.execPath, [fixture('busy-writer.mjs'), file], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      await new Promise<void>((resolve, reject) => {
        writer.stdout.once('data', () => resolve());
        writer.once('exit', (code) => reject(new Error(`writer exited early with ${code}`)));
      });
      await new Promise((r) => setTimeout(r, delay));
      writer.kill('SIGKILL');
      await new Promise((r) => writer.once('exit', r));

      // A stale limit far beyond the test: the dead writer's lock is broken because it is dead.
      const store = new FileStore(file, { staleLockMs: 600_000, lockTimeoutMs: 5_000 });
      const state = await store.read();
      expect([...state.tasks.keys()].filter((id) => id.startsWith('task-'))).toHaveLength(2000);
      // The killed writer's lock is broken at once; the next update goes through.
      await store.update((s) => s.ensureTask(`after-${delay}`, 'now'));
      expect((await store.read()).tasks.has(`after-${delay}`)).toBe(true);
    }
    const leftovers = (await readdir(join(dir, 'state'))).filter((f) => f.endsWith('.tmp'));
    // Temporary files of killed writers may remain; they never replace the state file.
    expect(leftovers.every((f) => f.startsWith('.state.json.'))).toBe(true);
  }, 120_000);
});

describe('FileStore when a lock holder stalls', () => {
  it('never writes over a state it did not read: a holder stopped past the stale limit is refused on waking', async () => {
    const memory = new TaskMemory(new FileStore(file));
    await memory.transaction((s) => s.budget.startTask('shared', { maxSteps: 1_000_000 }));
    await run(process.execPath, [fixture('step-worker.mjs'), file, 'shared', '2']);

    const stalled = spawn(process.execPath, [fixture('stall-step.mjs'), file, 'shared', '1000'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    stalled.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('holding') && !stalled.killed) stalled.kill('SIGSTOP');
    });
    stalled.stderr.on('data', (chunk: Buffer) => {
      err += chunk.toString();
    });
    const exited = new Promise<number | null>((r) => stalled.once('exit', (code) => r(code)));
    await vi.waitFor(() => expect(out).toContain('holding'), { timeout: 10_000 });
    // Stopped inside its update: the lock is the stalled process's.
    const [holder] = await readdir(`${file}.lock`);
    expect(holder?.startsWith(`${stalled.pid}-`)).toBe(true);

    // Three more steps, one process each: the first breaks the stale lock after 1 s.
    const others = await Promise.all(
      [0, 1, 2].map(() =>
        run(process.execPath, [fixture('step-worker.mjs'), file, 'shared', '1', '1000']),
      ),
    );
    stalled.kill('SIGCONT');
    expect(await exited).toBe(1);
    expect(err).toContain('STORE: State file');
    expect(err).toContain(
      'another process took over its lock; nothing was lost, run the command again',
    );
    expect(out).not.toContain('step ');

    const printed = others.map((o) => o.stdout.trim()).sort();
    expect(printed).toEqual(['step 3', 'step 4', 'step 5']);
    expect((await memory.getTask('shared'))?.budget?.stepsTaken).toBe(5);
    expect(await readdir(join(dir, 'state'))).toEqual(['state.json']);
  }, 60_000);
});
