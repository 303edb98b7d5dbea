import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError } from '@exec-kernel/core';
import { configStamp, readCachedConfig, writeCachedConfig } from './config-cache.js';
import type { ExecKernelConfig } from './defaults.js';
import { type FindConfigFileOptions, findConfigFile } from './find-config-file.js';
import { parseConfig } from './parse-config.js';
import { resolveConfig } from './resolve-config.js';

/**
 * The largest config file read. A real one is a few hundred bytes; a bigger file is a mistake (or
 * an attack) that would otherwise be read whole and parsed on every call.
 */
const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * Reads the file at `path` as UTF-8, at most {@link MAX_CONFIG_BYTES}. Sync on purpose: one small
 * file, and fs/promises costs CLI start-up a module load. Opened without blocking, so a FIFO put
 * in the file's place after the search cannot hang the caller.
 */
function readConfigText(path: string): string {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    throw unreadable(path, error);
  }
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new ConfigError(`Config file is not a file: ${path}`, { path });
    if (stat.size > MAX_CONFIG_BYTES) throw tooLarge(path, stat.size);
    // Read one byte past the cap, in case the file grew since fstat.
    const buffer = Buffer.alloc(Math.min(stat.size, MAX_CONFIG_BYTES) + 1);
    let length = 0;
    for (let n = 1; n > 0 && length < buffer.length; length += n) {
      n = readSync(fd, buffer, length, buffer.length - length, null);
    }
    if (length > MAX_CONFIG_BYTES) throw tooLarge(path, length);
    return buffer.toString('utf8', 0, length);
  } catch (error) {
    throw ConfigError.is(error) ? error : unreadable(path, error);
  } finally {
    closeSync(fd);
  }
}

function unreadable(path: string, error: unknown): ConfigError {
  const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
  return new ConfigError(`Cannot read config file ${path} (${code})`, { path }, { cause: error });
}

function tooLarge(path: string, size: number): ConfigError {
  return new ConfigError(
    `Config file ${path} is too large: ${size} bytes (at most ${MAX_CONFIG_BYTES})`,
    { path },
  );
}

/** Options of {@link loadConfig}: where to look, the environment to read, and a cache. */
export interface LoadConfigOptions extends FindConfigFileOptions {
  /**
   * A private directory in which validated config files are cached, for programs that load the
   * same file many times (the CLI uses one under the user's cache directory). A cached entry is
   * used only while the file's size, inode and change times and the `EXEC_KERNEL_*` overrides are
   * unchanged. Default: no cache.
   */
  cacheDir?: string | undefined;
}

/** What {@link loadConfig} found. */
export interface LoadedConfig {
  /** The configuration: defaults, then the file, then environment overrides. */
  config: ExecKernelConfig;
  /** The file used, absolute; `undefined` when none was found. */
  path: string | undefined;
  /**
   * `config.store.path` made absolute: against the config file's directory, or against `cwd` when
   * there is no file or the path came from `EXEC_KERNEL_STORE_PATH`.
   */
  storePath: string;
}

/**
 * Finds the config file (see {@link findConfigFile}), reads and validates it, merges it over the
 * defaults and applies the environment's overrides. Without a file the result is the defaults
 * plus overrides, and the YAML parser is never loaded.
 *
 * @throws ConfigError for a missing explicit file, an unreadable file, malformed YAML, any invalid
 *   key or value (all at once, with line and column), or a bad environment override.
 *
 * @example
 * ```ts
 * import { loadConfig } from '@exec-kernel/config';
 *
 * const { config, path, storePath } = await loadConfig();
 * console.log(path ?? 'defaults', config.budget.maxSteps, storePath);
 * ```
 */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<LoadedConfig> {
  const cwd = resolve(options.cwd ?? process.cwd());
  const env = options.env ?? process.env;
  const path = findConfigFile({ cwd, env, path: options.path });

  let config: ExecKernelConfig;
  const cached =
    path === undefined || options.cacheDir === undefined
      ? undefined
      : readCachedConfig(options.cacheDir, path, env);
  if (cached !== undefined) {
    config = cached;
  } else if (path === undefined) {
    config = resolveConfig(undefined, { env });
  } else {
    const stamp = configStamp(path);
    const text = readConfigText(path);
    config = await parseConfig(text, { path, env });
    if (options.cacheDir !== undefined)
      writeCachedConfig(options.cacheDir, path, env, stamp, config);
  }

  const fromEnv = env.EXEC_KERNEL_STORE_PATH !== undefined;
  const base = path === undefined || fromEnv ? cwd : dirname(path);
  return { config, path, storePath: resolve(base, config.store.path) };
}
