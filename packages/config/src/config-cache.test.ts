import { mkdir, mkdtemp, readdir, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { loadConfig } from './load-config.js';
import * as parse from './parse-config.js';

let root = '';
let cacheDir = '';
let file = '';
beforeEach(async () => {
  root = await realpath(await mkdtemp(join(tmpdir(), 'ek-cache-')));
  await mkdir(join(root, '.git'));
  cacheDir = join(root, 'cache');
  file = join(root, '.exec-kernel.yml');
  await writeFile(file, 'budget: { max_steps: 4 }\n');
});
afterEach(() => rm(root, { recursive: true, force: true }));

it('serves an unchanged file from the cache without parsing it again', async () => {
  const spy = vi.spyOn(parse, 'parseConfig');
  const first = await loadConfig({ cwd: root, env: {}, cacheDir });
  const second = await loadConfig({ cwd: root, env: {}, cacheDir });
  expect(second).toEqual(first);
  expect(second.config.budget.maxSteps).toBe(4);
  expect(spy).toHaveBeenCalledTimes(1);
});

it('misses when the file changes, even to the same size', async () => {
  await loadConfig({ cwd: root, env: {}, cacheDir });
  await new Promise((r) => setTimeout(r, 5));
  await writeFile(file, 'budget: { max_steps: 5 }\n');
  expect((await loadConfig({ cwd: root, env: {}, cacheDir })).config.budget.maxSteps).toBe(5);
});

it('misses when the overrides differ, and still refuses a bad one', async () => {
  await loadConfig({ cwd: root, env: {}, cacheDir });
  const overridden = await loadConfig({
    cwd: root,
    env: { EXEC_KERNEL_BUDGET_MAX_STEPS: '9' },
    cacheDir,
  });
  expect(overridden.config.budget.maxSteps).toBe(9);
  await expect(
    loadConfig({ cwd: root, env: { EXEC_KERNEL_BUDGET_MAX_STEPS: 'many' }, cacheDir }),
  ).rejects.toThrow('EXEC_KERNEL_BUDGET_MAX_STEPS');
});

it('never writes the coordination tokens, and applies the current one on a hit', async () => {
  await loadConfig({
    cwd: root,
    env: {
      EXEC_KERNEL_COORDINATION_TOKEN: 'secret-1',
      EXEC_KERNEL_COORDINATION_ADMIN_TOKEN: 'admin-secret',
    },
    cacheDir,
  });
  const [entry] = await readdir(cacheDir);
  const written = await readFile(join(cacheDir, entry as string), 'utf8');
  expect(written).not.toContain('secret-1');
  expect(written).not.toContain('admin-secret');
  const hit = await loadConfig({
    cwd: root,
    env: { EXEC_KERNEL_COORDINATION_TOKEN: 'secret-2' },
    cacheDir,
  });
  expect(hit.config.coordination.token).toBe('secret-2');
});

it('does not cache an invalid file', async () => {
  await writeFile(file, 'budget: { max_steps: -1 }\n');
  await expect(loadConfig({ cwd: root, env: {}, cacheDir })).rejects.toThrow('max_steps');
  await expect(loadConfig({ cwd: root, env: {}, cacheDir })).rejects.toThrow('max_steps');
  await expect(readdir(cacheDir)).rejects.toMatchObject({ code: 'ENOENT' });
});
