import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';

const run = promisify(execFile);
// pnpm and vitest put the workspace's own node_modules on NODE_PATH; a user's shell has none.
const { NODE_PATH: _workspaceModules, ...userEnv } = process.env;

// What `npm install -g @exec-kernel/cli` gives a user, from the tarball `pnpm publish` would upload.
let dir = '';
let prefix = '';
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'exec-kernel-global-'));
  const { stdout } = await run('pnpm', ['pack', '--pack-destination', dir], {
    cwd: resolve(import.meta.dirname, '..'),
  });
  const tarball = resolve(dir, stdout.trim().split('\n').at(-1) as string);
  prefix = join(dir, 'prefix');
  await run('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', tarball]);
}, 120_000);
afterAll(async () => {
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

it('runs from the global prefix with nothing else installed', async () => {
  const { stdout, stderr } = await run(
    join(prefix, 'bin', 'exec-kernel'),
    ['validate', 'todo', 'in_progress'],
    {
      cwd: dir,
      env: userEnv,
    },
  );
  expect(stdout).toBe('VALID: Work started\n');
  expect(stderr).toBe('');
  // Everything is bundled: the package brings no dependencies of its own.
  const installed = join(prefix, 'lib', 'node_modules', '@exec-kernel', 'cli');
  expect(await readdir(installed)).not.toContain('node_modules');
  expect(await readdir(join(prefix, 'lib', 'node_modules'))).toEqual(['@exec-kernel']);
});

it('asks for the coordination service when serve runs without it', async () => {
  const failed = await run(
    join(prefix, 'bin', 'exec-kernel'),
    ['serve', '--db', 'memory', '--port', '0'],
    {
      cwd: dir,
      env: userEnv,
      timeout: 10_000,
    },
  ).then(
    () => undefined,
    (error: { code: number; stderr: string }) => error,
  );
  expect(failed?.code).toBe(1);
  expect(failed?.stderr).toBe(
    'ERROR: serve needs the coordination service installed beside the CLI: npm install -g @exec-kernel/coordination\n',
  );
});

it('refuses from the global prefix with exit 1', async () => {
  const failed = await run(join(prefix, 'bin', 'exec-kernel'), ['validate', 'todo', 'done'], {
    cwd: dir,
    env: userEnv,
  }).then(
    () => undefined,
    (error: { code: number; stderr: string }) => error,
  );
  expect(failed?.code).toBe(1);
  expect(failed?.stderr).toBe('INVALID: No valid transition from todo to done\n');
});
