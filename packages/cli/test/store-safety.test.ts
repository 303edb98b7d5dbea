import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { FileStore, TaskMemory } from '@exec-kernel/memory';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ADMISSION, BIN, cli, exited, type Run, scratch, start } from './helpers.js';

let dir = '';
let done: () => Promise<void> = async () => undefined;
beforeEach(async () => {
  ({ dir, done } = await scratch());
});
afterEach(() => done());

const stateFile = () => join(dir, '.exec-kernel', 'state.json');

describe('the state file under a stalled step', () => {
  it('refuses the write of a step suspended (SIGSTOP) past the stale limit, and counts every other step exactly', async () => {
    // A big state makes each step hold the lock for a while, so it can be stopped inside it.
    const memory = new TaskMemory(new FileStore(stateFile()));
    await memory.transaction((s) => {
      for (let i = 0; i < 20_000; i++) s.note(`bulk-${i}`, 'x'.repeat(100));
      s.loop.checkNewTask('t1', 'agent-1', 'work');
      s.budget.startTask('t1', { maxSteps: 1000 });
    });
    const lockDir = `${stateFile()}.lock`;

    // Stop a step while it holds the lock: watch for its lock and stop it the moment it appears.
    let stalled: ReturnType<typeof start> | undefined;
    let before = 0;
    for (let attempt = 0; attempt < 20 && stalled === undefined; attempt++) {
      const child = start(dir, ['step', 't1']);
      const until = Date.now() + 10_000;
      while (!existsSync(lockDir) && child.exitCode === null && Date.now() < until);
      child.kill('SIGSTOP');
      const holder = existsSync(lockDir) ? readdirSync(lockDir)[0] : undefined;
      if (holder?.startsWith(`${child.pid}-`)) {
        stalled = child;
      } else {
        // It finished before the stop landed; that step counted. Try again.
        child.kill('SIGCONT');
        expect(await exited(child)).toBe(0);
        before++;
      }
    }
    if (stalled === undefined) throw new Error('never caught a step inside its lock');
    let stalledOut = '';
    let stalledErr = '';
    stalled.stdout?.on('data', (chunk: Buffer) => {
      stalledOut += chunk.toString();
    });
    stalled.stderr?.on('data', (chunk: Buffer) => {
      stalledErr += chunk.toString();
    });

    // Three more agents step meanwhile: the first waits out the 10 s stale limit.
    const others: Run[] = await Promise.all([0, 1, 2].map(() => cli(dir, ['step', 't1'])));
    stalled.kill('SIGCONT');
    expect(await exited(stalled)).toBe(1);

    expect(others.map((o) => o.status)).toEqual([0, 0, 0]);
    const printed = others.map((o) => o.stdout.trim()).sort();
    expect(printed).toEqual(
      [1, 2, 3].map((n) => `OK: t1 step ${before + n} of 1000 (${1000 - before - n} left)`),
    );
    expect(stalledOut).toBe('');
    const lines = stalledErr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toBe(
      `ERROR: [store] State file ${stateFile()} was not written: this process stalled past the 10000 ms stale-lock limit and another process took over its lock; nothing was lost, run the command again`,
    );
    expect((await memory.getTask('t1'))?.budget?.stepsTaken).toBe(before + 3);
    expect(await readdir(join(dir, '.exec-kernel'))).toEqual(['state.json']);
  }, 120_000);
});

describe('the state file and what users type', () => {
  it('keeps a context key named __proto__ and shows it back', async () => {
    const argv = ['task', 'create', 't1', '--agent-id', 'a', '--type', 'x', ...ADMISSION];
    expect((await cli(dir, argv)).status).toBe(0);
    const set = await cli(dir, ['context', 'set', 't1', '__proto__', '{"admin":true}']);
    expect([set.status, set.stdout]).toEqual([0, 'OK: t1 context __proto__={"admin":true}\n']);
    expect((await cli(dir, ['context', 'set', 't1', 'constructor', '7'])).status).toBe(0);
    const one = await cli(dir, ['context', 'get', 't1', '__proto__']);
    expect([one.status, one.stdout]).toEqual([0, '{"admin":true}\n']);
    const all = await cli(dir, ['context', 'get', 't1', '--json']);
    expect(JSON.parse(all.stdout).context).toEqual(
      JSON.parse('{"__proto__":{"admin":true},"constructor":7}'),
    );
  });

  it('says at once, in one line, that the store folder is not writable', async () => {
    await mkdir(join(dir, '.exec-kernel'));
    await chmod(dir, 0o755);
    // Root writes anywhere, so as root the CLI runs as nobody against a folder root owns.
    const asRoot = process.getuid?.() === 0;
    if (!asRoot) await chmod(join(dir, '.exec-kernel'), 0o555);
    const started = Date.now();
    const run = await new Promise<Run>((resolve) => {
      const child = spawn(process.execPath, [BIN, 'step', 't1'], {
        cwd: dir,
        env: { PATH: process.env.PATH ?? '', HOME: dir },
        stdio: ['ignore', 'pipe', 'pipe'],
        ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
      });
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      child.once('exit', (code) => resolve({ status: code ?? -1, stdout, stderr }));
    });
    await chmod(join(dir, '.exec-kernel'), 0o755);
    expect(run.status).toBe(1);
    expect(run.stderr).toBe(
      `ERROR: [store] State file ${stateFile()} cannot be written: permission denied on ${join(dir, '.exec-kernel')} (EACCES)\n`,
    );
    // At once, not after the 30 s a held lock is waited for.
    expect(Date.now() - started).toBeLessThan(20_000);
  }, 60_000);
});
