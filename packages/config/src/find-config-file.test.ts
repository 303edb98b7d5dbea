import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ConfigError } from '@exec-kernel/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findConfigFile } from './find-config-file.js';

let root: string;

beforeEach(async () => {
  root = await realpath(await mkdtemp(join(tmpdir(), 'ek-find-')));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Creates each path under `root`: ending in `/` a directory, else a file (parents included). */
async function tree(...paths: string[]): Promise<void> {
  for (const path of paths) {
    const full = join(root, path);
    if (path.endsWith('/')) await mkdir(full, { recursive: true });
    else {
      await mkdir(dirname(full), { recursive: true });
      await writeFile(full, '');
    }
  }
}

function notFound(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    if (ConfigError.is(e)) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

const noEnv = {};

describe('findConfigFile: upward search', () => {
  it('finds .exec-kernel.yml in the working directory', async () => {
    await tree('.git/', '.exec-kernel.yml');
    expect(findConfigFile({ cwd: root, env: noEnv })).toBe(join(root, '.exec-kernel.yml'));
  });

  it('searches each directory above the working directory, nearest first', async () => {
    await tree('.git/', '.exec-kernel.yml', 'a/.exec-kernel.yaml', 'a/b/c/');
    expect(findConfigFile({ cwd: join(root, 'a/b/c'), env: noEnv })).toBe(
      join(root, 'a/.exec-kernel.yaml'),
    );
    expect(findConfigFile({ cwd: join(root, 'a'), env: noEnv })).toBe(
      join(root, 'a/.exec-kernel.yaml'),
    );
  });

  it('prefers .yml to .yaml in the same directory, and falls back to .yaml', async () => {
    await tree(
      '.git/',
      'both/.exec-kernel.yml',
      'both/.exec-kernel.yaml',
      'only/.exec-kernel.yaml',
    );
    expect(findConfigFile({ cwd: join(root, 'both'), env: noEnv })).toBe(
      join(root, 'both/.exec-kernel.yml'),
    );
    expect(findConfigFile({ cwd: join(root, 'only'), env: noEnv })).toBe(
      join(root, 'only/.exec-kernel.yaml'),
    );
  });

  it('searches the directory holding .git but not its parents', async () => {
    await tree('.exec-kernel.yml', 'repo/.git/', 'repo/src/deep/');
    expect(findConfigFile({ cwd: join(root, 'repo/src/deep'), env: noEnv })).toBeUndefined();
    await tree('repo/.exec-kernel.yml');
    expect(findConfigFile({ cwd: join(root, 'repo/src/deep'), env: noEnv })).toBe(
      join(root, 'repo/.exec-kernel.yml'),
    );
  });

  it('treats a .git file (worktree, submodule) as a boundary too', async () => {
    await tree('.exec-kernel.yml', 'worktree/.git', 'worktree/src/');
    expect(findConfigFile({ cwd: join(root, 'worktree/src'), env: noEnv })).toBeUndefined();
  });

  it('skips a directory that has a config file name', async () => {
    await tree('.git/', '.exec-kernel.yml', 'sub/.exec-kernel.yml/');
    expect(findConfigFile({ cwd: join(root, 'sub'), env: noEnv })).toBe(
      join(root, '.exec-kernel.yml'),
    );
  });

  it('returns undefined when nothing is found up to the filesystem root', async (context) => {
    // Only meaningful when no directory above the temp dir holds a config file of its own.
    for (let dir = root; dir !== dirname(dir); dir = dirname(dir)) {
      const names = ['.exec-kernel.yml', '.exec-kernel.yaml'];
      if (dir !== root && names.some((n) => existsSync(join(dir, n)))) context.skip();
    }
    await tree('a/b/');
    expect(findConfigFile({ cwd: join(root, 'a/b'), env: noEnv })).toBeUndefined();
  });
});

describe('findConfigFile: explicit files', () => {
  it('takes the path option first, then EXEC_KERNEL_CONFIG, then the search', async () => {
    await tree('.git/', '.exec-kernel.yml', 'flag.yml', 'env.yml');
    const env = { EXEC_KERNEL_CONFIG: join(root, 'env.yml') };
    expect(findConfigFile({ cwd: root, env, path: join(root, 'flag.yml') })).toBe(
      join(root, 'flag.yml'),
    );
    expect(findConfigFile({ cwd: root, env })).toBe(join(root, 'env.yml'));
    expect(findConfigFile({ cwd: root, env: { EXEC_KERNEL_CONFIG: '' } })).toBe(
      join(root, '.exec-kernel.yml'),
    );
  });

  it('resolves relative explicit paths against cwd, and does no search for them', async () => {
    await tree('.git/', 'conf/team.yml', 'conf/sub/');
    expect(findConfigFile({ cwd: join(root, 'conf'), env: noEnv, path: 'team.yml' })).toBe(
      join(root, 'conf/team.yml'),
    );
    expect(findConfigFile({ cwd: root, env: { EXEC_KERNEL_CONFIG: 'conf/team.yml' } })).toBe(
      join(root, 'conf/team.yml'),
    );
  });

  it('refuses an explicit file that does not exist, or is a directory', async () => {
    await tree('.git/', '.exec-kernel.yml', 'adir/');
    const missing = join(root, 'missing.yml');
    const fromFlag = notFound(() => findConfigFile({ cwd: root, env: noEnv, path: 'missing.yml' }));
    expect(fromFlag.message).toBe(`Config file not found: ${missing}`);
    expect(fromFlag.path).toBe(missing);

    const fromEnv = notFound(() =>
      findConfigFile({ cwd: root, env: { EXEC_KERNEL_CONFIG: 'missing.yml' } }),
    );
    expect(fromEnv.message).toBe(`Config file not found: ${missing} (from EXEC_KERNEL_CONFIG)`);

    const dir = notFound(() => findConfigFile({ cwd: root, env: noEnv, path: 'adir' }));
    expect(dir.message).toBe(`Config file is not a file: ${join(root, 'adir')}`);
  });
});
