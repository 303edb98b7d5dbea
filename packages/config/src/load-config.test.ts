import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '@exec-kernel/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from './defaults.js';
import { loadConfig } from './load-config.js';

let root: string;

beforeEach(async () => {
  root = await realpath(await mkdtemp(join(tmpdir(), 'ek-load-')));
  await mkdir(join(root, '.git'));
  await mkdir(join(root, 'pkg/src'), { recursive: true });
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('loadConfig', () => {
  it('gives the defaults and a store path under cwd when there is no file', async () => {
    const cwd = join(root, 'pkg/src');
    const loaded = await loadConfig({ cwd, env: {} });
    expect(loaded).toEqual({
      config: DEFAULT_CONFIG,
      path: undefined,
      storePath: join(cwd, '.exec-kernel/state.json'),
    });
  });

  it('applies environment overrides even without a file', async () => {
    const env = { EXEC_KERNEL_BUDGET_MAX_STEPS: '7', EXEC_KERNEL_COORDINATION_TOKEN: 't' };
    const { config } = await loadConfig({ cwd: root, env });
    expect(config.budget.maxSteps).toBe(7);
    expect(config.coordination.token).toBe('t');
  });

  it('reads the file found above cwd and resolves the store path against its directory', async () => {
    await writeFile(
      join(root, '.exec-kernel.yml'),
      'budget:\n  max_steps: 12\nstore:\n  path: var/state.json\n',
    );
    const loaded = await loadConfig({ cwd: join(root, 'pkg/src'), env: {} });
    expect(loaded.path).toBe(join(root, '.exec-kernel.yml'));
    expect(loaded.config.budget.maxSteps).toBe(12);
    expect(loaded.storePath).toBe(join(root, 'var/state.json'));
  });

  it('resolves the default store path against the file directory too', async () => {
    await writeFile(join(root, 'pkg/.exec-kernel.yaml'), '# defaults\n');
    const loaded = await loadConfig({ cwd: join(root, 'pkg/src'), env: {} });
    expect(loaded.storePath).toBe(join(root, 'pkg/.exec-kernel/state.json'));
  });

  it('keeps an absolute store path, and resolves one from the environment against cwd', async () => {
    await writeFile(join(root, '.exec-kernel.yml'), `store: { path: ${join(root, 'abs.json')} }\n`);
    const cwd = join(root, 'pkg/src');
    expect((await loadConfig({ cwd, env: {} })).storePath).toBe(join(root, 'abs.json'));
    const fromEnv = await loadConfig({ cwd, env: { EXEC_KERNEL_STORE_PATH: 'here.json' } });
    expect(fromEnv.storePath).toBe(join(cwd, 'here.json'));
  });

  it('uses an explicit file from the path option or EXEC_KERNEL_CONFIG', async () => {
    await writeFile(join(root, '.exec-kernel.yml'), 'budget: { max_steps: 1 }\n');
    await writeFile(join(root, 'pkg/ci.yml'), 'budget: { max_steps: 2 }\n');
    await writeFile(join(root, 'pkg/flag.yml'), 'budget: { max_steps: 3 }\n');
    const cwd = join(root, 'pkg');
    const env = { EXEC_KERNEL_CONFIG: 'ci.yml' };
    expect((await loadConfig({ cwd, env: {} })).config.budget.maxSteps).toBe(1);
    expect((await loadConfig({ cwd, env })).config.budget.maxSteps).toBe(2);
    const flagged = await loadConfig({ cwd, env, path: 'flag.yml' });
    expect(flagged.config.budget.maxSteps).toBe(3);
    expect(flagged.path).toBe(join(cwd, 'flag.yml'));
    expect(flagged.storePath).toBe(join(cwd, '.exec-kernel/state.json'));
  });

  it('names the file, line and column of a problem', async () => {
    const file = join(root, '.exec-kernel.yml');
    await writeFile(file, 'budget:\n  max_steps: lots\n');
    const error = await loadConfig({ cwd: root, env: {} }).catch((e: unknown) => e);
    expect(ConfigError.is(error)).toBe(true);
    expect(error).toMatchObject({ path: file, line: 2, column: 14, key: 'budget.max_steps' });
    expect((error as Error).message).toBe(
      `Invalid config ${file}: budget.max_steps (2:14) must be a non-negative integer, got "lots"`,
    );
  });

  it('refuses a missing explicit file', async () => {
    await expect(loadConfig({ cwd: root, env: {}, path: 'nope.yml' })).rejects.toThrow(
      `Config file not found: ${join(root, 'nope.yml')}`,
    );
  });
});
