import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { StoreError } from '@exec-kernel/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileStore } from '../src/file-store.js';
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

  it('refuses a damaged file', async () => {
    await mkdir(join(dir, 'state'));
    for (const text of [
      '{"version": 1, "tasks": [',
      '[]',
      '{"version":1,"tasks":[{"taskId":"t","state":"open","history":[]}],"agents":[]}',
    ]) {
      await writeFile(file, text);
      expect((await storeError(new FileStore(file).read())).problem).toBe('corrupt');
    }
  });

  it('gives up on a lock that stays held, and breaks a stale one', async () => {
    await mkdir(`${file}.lock`, { recursive: true });
    const store = new FileStore(file, { lockTimeoutMs: 300 });
    const e = await storeError(store.update((s) => s.touch()));
    expect(e.problem).toBe('locked');
    expect(e.message).toContain('stayed locked by another process');
    const old = new Date(Date.now() - 60_000);
    await utimes(`${file}.lock`, old, old);
    await store.update((s) => s.ensureTask('t', 'now'));
    expect((await store.read()).tasks.has('t')).toBe(true);
  });
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

      const store = new FileStore(file, { staleLockMs: 2_000 });
      const state = await store.read();
      expect([...state.tasks.keys()].filter((id) => id.startsWith('task-'))).toHaveLength(2000);
      // The killed writer's lock is broken once stale; the next update goes through.
      await store.update((s) => s.ensureTask(`after-${delay}`, 'now'));
      expect((await store.read()).tasks.has(`after-${delay}`)).toBe(true);
    }
    const leftovers = (await readdir(join(dir, 'state'))).filter((f) => f.endsWith('.tmp'));
    // Temporary files of killed writers may remain; they never replace the state file.
    expect(leftovers.every((f) => f.startsWith('.state.json.'))).toBe(true);
  }, 120_000);
});
