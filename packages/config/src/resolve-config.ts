import type { ConfigProblem } from '@exec-kernel/core';
import { type ActionRulesOptions, resolveActionRules } from '@exec-kernel/loop';
import * as v from 'valibot';
import type { ConfigSection, ExecKernelConfig, ReadonlyExecKernelConfig } from './defaults.js';
import { envVariableName, readEnvOverrides } from './env.js';
import {
  camelToSnake,
  type FieldSpec,
  SECTIONS,
  snakeToCamel,
  suggest,
  THRESHOLD_KEYS,
  WINDOW_KEYS,
} from './fields.js';
import { type ConfigPositions, configError, ENV_SOURCE, problemAt } from './problems.js';
import {
  defaultFileObject,
  describeValue,
  fileSchema,
  reportedIssues,
  toFileSpelling,
} from './schema.js';

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
  actions: {
    repeat: FileThreshold | false;
    ping_pong: FileThreshold | false;
    window: (FileThreshold & { size: number }) | false;
    no_progress: FileThreshold | false;
    exempt_tools: string[];
  };
  store: { path: string };
  coordination: { url: string | null };
  paperclip: { api_url: string | null; company_id: string | null };
}

/** An action rule's thresholds in the file's spelling. */
export interface FileThreshold {
  warn_at: number;
  block_at: number;
}

type FileObject = Record<string, Record<string, unknown>>;

function mappingKeys(spec: FieldSpec): readonly string[] | undefined {
  if (spec.type === 'threshold') return THRESHOLD_KEYS;
  if (spec.type === 'window') return WINDOW_KEYS;
  return undefined;
}

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
        } else {
          const spec = section.fields.find((f) => f.key === key) as FieldSpec;
          const keys = mappingKeys(spec);
          const inner = value[key];
          if (keys === undefined || !isMapping(inner)) continue;
          for (const innerKey of Object.keys(inner)) {
            if (keys.includes(innerKey)) continue;
            const innerPath = `${path}.${innerKey}`;
            problems.push(problemAt(positions, innerPath, unknownKey(innerKey, keys), 'key'));
          }
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
    for (const issue of (result.issues ?? []).flatMap(reportedIssues)) {
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
  const fromEnv = new Set<string>();
  // Whole values first, so `EXEC_KERNEL_ACTIONS_REPEAT=false` and `…_REPEAT_BLOCK_AT=7` together
  // turn the rule back on with that threshold whatever order the environment lists them in.
  const ordered = [...overrides.values].sort(
    (a, b) => Number(a.part !== undefined) - Number(b.part !== undefined),
  );
  for (const { section, key, part, value } of ordered) {
    const values = merged[section] as Record<string, unknown>;
    fromEnv.add(`${section}.${key}`);
    if (part === undefined) {
      values[key] = value;
    } else {
      const current = values[key];
      values[key] = { ...(isMapping(current) ? current : {}), [part]: value };
    }
  }

  const token = env.EXEC_KERNEL_COORDINATION_TOKEN;
  const config = toLoadedConfig(merged, token === undefined || token === '' ? null : token);
  config.actions = resolveActions(merged.actions ?? {}, { path, positions, fromEnv });
  return config;
}

const ACTION_RULES = [
  ['repeat', 'repeat'],
  ['ping_pong', 'pingPong'],
  ['window', 'window'],
  ['no_progress', 'noProgress'],
] as const;

/**
 * The `actions` section resolved by `resolveActionRules`, which owns the ranges (`block_at` at
 * least 2, a window of at least `block_at` and 3 calls). Each rule is resolved apart so that every
 * rule out of range is reported, not only the first.
 */
function resolveActions(
  section: Record<string, unknown>,
  where: { path: string | undefined; positions: ConfigPositions | undefined; fromEnv: Set<string> },
): ExecKernelConfig['actions'] {
  const options: Record<string, unknown> = {
    exemptTools: section.exempt_tools as string[] | undefined,
  };
  const problems: ConfigProblem[] = [];
  let envProblem = false;
  for (const [fileKey, name] of ACTION_RULES) {
    const given = section[fileKey];
    const rule = isMapping(given)
      ? Object.fromEntries(Object.entries(given).map(([k, item]) => [snakeToCamel(k), item]))
      : given;
    try {
      resolveActionRules({ [name]: rule } as ActionRulesOptions);
      options[name] = rule;
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      // "action rule window.size must be an integer >= 8, got 5": the key it names, in the file's spelling.
      const found = /^action rule \w+\.(\w+) (must be .*)$/.exec(error.message);
      const key = `actions.${fileKey}${found === null ? '' : `.${camelToSnake(found[1] as string)}`}`;
      const message = found?.[2] ?? 'is out of range';
      if (where.fromEnv.has(`actions.${fileKey}`)) {
        envProblem = true;
        const part = found === null ? fileKey : `${fileKey}_${camelToSnake(found[1] as string)}`;
        problems.push({ key: envVariableName('actions', part), message });
      } else {
        problems.push(problemAt(where.positions, key, message));
      }
    }
  }
  if (problems.length > 0) throw configError(envProblem ? ENV_SOURCE : where.path, problems);
  return resolveActionRules(options as ActionRulesOptions);
}

function toLoadedConfig(file: FileObject, token: string | null): ExecKernelConfig {
  const config: Record<string, Record<string, unknown>> = {};
  for (const section of SECTIONS) {
    const values: Record<string, unknown> = {};
    const source = file[section.name] ?? {};
    for (const spec of section.fields) {
      const value = source[spec.key];
      values[spec.name] = isMapping(value)
        ? Object.fromEntries(Object.entries(value).map(([k, item]) => [snakeToCamel(k), item]))
        : value;
    }
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
      if (Array.isArray(value)) {
        values[spec.key] =
          spec.items === 'field names' ? value.map((n: string) => camelToSnake(n)) : [...value];
      } else {
        values[spec.key] = toFileSpelling(value);
      }
    }
    file[section.name] = values;
  }
  return file as unknown as ExecKernelFileConfig;
}
