import type { ConfigProblem } from '@exec-kernel/core';
import * as v from 'valibot';
import type { ConfigSection, ExecKernelConfig, ReadonlyExecKernelConfig } from './defaults.js';
import { readEnvOverrides } from './env.js';
import { camelToSnake, SECTIONS, snakeToCamel, suggest } from './fields.js';
import { type ConfigPositions, configError, ENV_SOURCE, problemAt } from './problems.js';
import { defaultFileObject, describeValue, fileSchema } from './schema.js';

/** Options of {@link resolveConfig}. */
export interface ResolveConfigOptions {
  /**
   * Environment to read overrides and the coordination token from. Default: `{}` (none), so the
   * function stays pure; {@link loadConfig} passes `process.env`.
   */
  env?: Readonly<Record<string, string | undefined>> | undefined;
  /** The file the object came from, named in errors. */
  path?: string | undefined;
  /** Where each key is written, for line and column in errors (see {@link parseConfig}). */
  positions?: ConfigPositions | undefined;
}

/** The file's form of a configuration: snake_case, without the token. What `config show` prints. */
export interface ExecKernelFileConfig {
  lifecycle: { max_depth: number; max_heap_size: number };
  budget: {
    max_steps: number;
    max_depth: number;
    max_duration_seconds: number;
    max_tokens: number | null;
    max_cost_usd: number | null;
    warn_at: number;
  };
  idle: { default_timeout_seconds: number };
  admission: { required: string[] };
  store: { path: string };
  coordination: { url: string | null };
  paperclip: { api_url: string | null; company_id: string | null };
}

type FileObject = Record<string, Record<string, unknown>>;

const SECTION_NAMES = SECTIONS.map((section) => section.name);

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function unknownKey(key: string, known: readonly string[]): string {
  const guess = suggest(key, known);
  return guess === undefined
    ? `is not a known key (expected one of: ${known.join(', ')})`
    : `is not a known key (did you mean ${guess}?)`;
}

/** Problems valibot cannot report all of: unknown keys, secrets, sections that are not mappings. */
function findShapeProblems(root: Record<string, unknown>, positions?: ConfigPositions) {
  const problems: ConfigProblem[] = [];
  for (const [name, value] of Object.entries(root)) {
    const section = SECTIONS.find((s) => s.name === name);
    if (section === undefined) {
      problems.push(problemAt(positions, name, unknownKey(name, SECTION_NAMES), 'key'));
    } else if (value !== null && value !== undefined && !isMapping(value)) {
      problems.push(problemAt(positions, name, `must be a mapping, got ${describeValue(value)}`));
    } else if (isMapping(value)) {
      const known = section.fields.map((f) => f.key);
      for (const key of Object.keys(value)) {
        const secret = Object.hasOwn(section.secrets, key) ? section.secrets[key] : undefined;
        const path = `${name}.${key}`;
        if (secret !== undefined) {
          problems.push(problemAt(positions, path, `must not be in the file: ${secret}`, 'key'));
        } else if (!known.includes(key)) {
          problems.push(problemAt(positions, path, unknownKey(key, known), 'key'));
        }
      }
    }
  }
  return problems;
}

function issuePath(issue: v.BaseIssue<unknown>): string {
  let path = '';
  for (const item of issue.path ?? []) {
    const key = item.key as string | number;
    path = typeof key === 'number' ? `${path}[${key}]` : path === '' ? key : `${path}.${key}`;
  }
  return path;
}

/**
 * Validates a parsed config file, merges it over the defaults and applies environment overrides.
 * Pure: no I/O. `fileObject` is the file's data in its own spelling (snake_case keys);
 * `undefined` or `null` (an empty file) means the defaults.
 *
 * Merging: a key left out keeps its default, a mapping merges key by key, a list replaces.
 * Overrides `EXEC_KERNEL_<SECTION>_<KEY>` in `env` win over the file. The coordination token is
 * read only from `env.EXEC_KERNEL_COORDINATION_TOKEN`.
 *
 * @throws ConfigError listing every problem in the file at once (unknown keys, wrong types,
 *   out-of-range values, secrets in the file), each with its key path and, given `positions`,
 *   line and column. Then, if the file is valid, every bad or unknown override, with `path` `'env'`
 *   and the variable's name as key.
 */
export function resolveConfig(
  fileObject: unknown,
  options: ResolveConfigOptions = {},
): ExecKernelConfig {
  const { env = {}, path, positions } = options;
  const root = fileObject ?? {};
  if (!isMapping(root)) {
    const message = `must be a mapping of sections (${SECTION_NAMES.join(', ')}), got ${describeValue(root)}`;
    throw configError(path, [problemAt(positions, '', message)]);
  }

  let merged: FileObject;
  if (Object.keys(root).length === 0) {
    // No file, or an empty one: nothing to validate (and no schema to build).
    merged = defaultFileObject() as FileObject;
  } else {
    const problems = findShapeProblems(root, positions);
    const result = v.safeParse(fileSchema(), root, { abortEarly: false, abortPipeEarly: true });
    for (const issue of result.issues ?? []) {
      // Object-level issues (unknown keys, non-mappings) were all found above.
      if (issue.type !== 'strict_object') {
        problems.push(problemAt(positions, issuePath(issue), issue.message));
      }
    }
    if (problems.length > 0) throw configError(path, problems);
    if (!result.success)
      throw configError(path, [problemAt(positions, '', 'is not a valid config')]);
    merged = result.output as FileObject;
  }
  const overrides = readEnvOverrides(env);
  if (overrides.problems.length > 0) throw configError(ENV_SOURCE, overrides.problems);
  for (const { section, key, value } of overrides.values) {
    (merged[section] as Record<string, unknown>)[key] = value;
  }

  const token = env.EXEC_KERNEL_COORDINATION_TOKEN;
  return toLoadedConfig(merged, token === undefined || token === '' ? null : token);
}

function toLoadedConfig(file: FileObject, token: string | null): ExecKernelConfig {
  const config: Record<string, Record<string, unknown>> = {};
  for (const section of SECTIONS) {
    const values: Record<string, unknown> = {};
    const source = file[section.name] ?? {};
    for (const spec of section.fields) values[spec.name] = source[spec.key];
    config[section.name] = values;
  }
  const loaded = config as unknown as ExecKernelConfig;
  loaded.admission.required = [...new Set(loaded.admission.required.map(snakeToCamel))];
  loaded.coordination.token = token;
  return loaded;
}

/**
 * A configuration in the file's spelling: snake_case keys, admission fields in snake_case, and no
 * token (secrets never go in the file). Feeding the result back through {@link resolveConfig}
 * gives the same configuration (less the token). Used by `exec-kernel config show`.
 */
export function toFileConfig(
  config: ExecKernelConfig | ReadonlyExecKernelConfig,
): ExecKernelFileConfig {
  const file: Record<string, Record<string, unknown>> = {};
  for (const section of SECTIONS) {
    const values: Record<string, unknown> = {};
    const source = config[section.name as ConfigSection] as Record<string, unknown>;
    for (const spec of section.fields) {
      const value = source[spec.name];
      values[spec.key] = Array.isArray(value) ? value.map((n: string) => camelToSnake(n)) : value;
    }
    file[section.name] = values;
  }
  return file as unknown as ExecKernelFileConfig;
}
