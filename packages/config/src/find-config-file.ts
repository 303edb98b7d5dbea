import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ConfigError } from '@exec-kernel/core';

/** The file names searched for in each directory, in order. */
export const CONFIG_FILE_NAMES: readonly string[] = Object.freeze([
  '.exec-kernel.yml',
  '.exec-kernel.yaml',
]);

/** Options of {@link findConfigFile}. */
export interface FindConfigFileOptions {
  /** Where the upward search starts, and what relative paths are resolved against. Default: `process.cwd()`. */
  cwd?: string | undefined;
  /** Read for `EXEC_KERNEL_CONFIG`. Default: `process.env`. */
  env?: Readonly<Record<string, string | undefined>> | undefined;
  /** An explicit config file (the CLI's `--config`); wins over everything else. */
  path?: string | undefined;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function explicitFile(path: string, origin: string): string {
  if (isFile(path)) return path;
  const problem = existsSync(path) ? 'Config file is not a file' : 'Config file not found';
  throw new ConfigError(`${problem}: ${path}${origin}`, { path });
}

/**
 * Finds the config file to use, as an absolute path:
 *
 * 1. `path` (the CLI's `--config`), resolved against `cwd`;
 * 2. else `env.EXEC_KERNEL_CONFIG` (ignored when empty);
 * 3. else the first `.exec-kernel.yml`, then `.exec-kernel.yaml`, in `cwd` and each directory
 *    above it. The search stops at the filesystem root, or after a directory that contains `.git`:
 *    the repository's top directory is searched, its parents are not.
 *
 * Returns `undefined` when the search finds nothing (the defaults apply). Synchronous, reads only
 * file metadata.
 *
 * @throws ConfigError when an explicit file (from `path` or `EXEC_KERNEL_CONFIG`) does not exist
 *   or is not a file.
 */
export function findConfigFile(options: FindConfigFileOptions = {}): string | undefined {
  const cwd = resolve(options.cwd ?? process.cwd());
  if (options.path !== undefined) return explicitFile(resolve(cwd, options.path), '');
  const fromEnv = (options.env ?? process.env).EXEC_KERNEL_CONFIG;
  if (fromEnv !== undefined && fromEnv !== '') {
    return explicitFile(resolve(cwd, fromEnv), ' (from EXEC_KERNEL_CONFIG)');
  }
  for (let dir = cwd; ; dir = dirname(dir)) {
    for (const name of CONFIG_FILE_NAMES) {
      const candidate = join(dir, name);
      if (isFile(candidate)) return candidate;
    }
    if (existsSync(join(dir, '.git')) || dirname(dir) === dir) return undefined;
  }
}
