import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ExecKernelConfig } from './defaults.js';

/**
 * A cache of validated config files, for processes that load the same file hundreds of times (the
 * CLI, called by agents): a hit skips the YAML parser and the schema entirely. An entry is keyed by
 * the file's path and identified by its size, inode and change times, and by the `EXEC_KERNEL_*`
 * overrides in force, so any edit or different environment misses. The coordination token is
 * never written: it is applied from the environment after a hit.
 */
interface Entry {
  format: number;
  path: string;
  stamp: string;
  env: string;
  config: ExecKernelConfig;
}

/**
 * Bumped whenever validation changes, so a file cached under older rules (which might now be
 * refused, like `max_steps: 1e20` before limits had maximums) is validated again.
 */
const FORMAT = 3;

/** FNV-1a: a file name for a path without loading node:crypto (a start-up cost). */
function hash(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(36);
}

function stampOf(path: string): string | undefined {
  try {
    const s = statSync(path, { bigint: true });
    return `${s.size}:${s.ino}:${s.mtimeNs}:${s.ctimeNs}`;
  } catch {
    return undefined;
  }
}

/** Secrets with the override prefix: never written into a cache entry. */
const SECRETS: ReadonlySet<string> = new Set([
  'EXEC_KERNEL_COORDINATION_TOKEN',
  'EXEC_KERNEL_COORDINATION_ADMIN_TOKEN',
]);

/** The overrides that shape the loaded config, the tokens left out. */
function envKey(env: Readonly<Record<string, string | undefined>>): string {
  return Object.keys(env)
    .filter((k) => k.startsWith('EXEC_KERNEL_') && !SECRETS.has(k))
    .sort()
    .map((k) => `${k}=${env[k]}`)
    .join('\n');
}

function entryFile(dir: string, path: string): string {
  return join(dir, `${hash(path)}.json`);
}

/** The cached config for `path`, if the file and the environment are as they were when cached. */
export function readCachedConfig(
  dir: string,
  path: string,
  env: Readonly<Record<string, string | undefined>>,
): ExecKernelConfig | undefined {
  const stamp = stampOf(path);
  if (stamp === undefined) return undefined;
  try {
    const entry = JSON.parse(readFileSync(entryFile(dir, path), 'utf8')) as Entry;
    if (
      entry.format !== FORMAT ||
      entry.path !== path ||
      entry.stamp !== stamp ||
      entry.env !== envKey(env)
    )
      return undefined;
    const token = env.EXEC_KERNEL_COORDINATION_TOKEN;
    entry.config.coordination.token = token === undefined || token === '' ? null : token;
    return entry.config;
  } catch {
    return undefined;
  }
}

/** Caches a config just validated from `path`; failures to write are ignored (it is only a cache). */
export function writeCachedConfig(
  dir: string,
  path: string,
  env: Readonly<Record<string, string | undefined>>,
  stampBefore: string | undefined,
  config: ExecKernelConfig,
): void {
  // If the file changed while it was being read, the entry could describe the wrong content.
  if (stampBefore === undefined || stampOf(path) !== stampBefore) return;
  const entry: Entry = {
    format: FORMAT,
    path,
    stamp: stampBefore,
    env: envKey(env),
    config: { ...config, coordination: { ...config.coordination, token: null } },
  };
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = entryFile(dir, path);
    const temp = `${file}.${process.pid}.tmp`;
    writeFileSync(temp, JSON.stringify(entry), { mode: 0o600 });
    renameSync(temp, file);
  } catch {
    // A read-only or full disk only costs speed.
  }
}

/** The stamp of a file, taken before reading it (see {@link writeCachedConfig}). */
export function configStamp(path: string): string | undefined {
  return stampOf(path);
}
