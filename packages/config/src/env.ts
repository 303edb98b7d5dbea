import type { ConfigProblem } from '@exec-kernel/core';
import * as v from 'valibot';
import type { ConfigSection } from './defaults.js';
import {
  type FieldSpec,
  SECTIONS,
  type SectionSpec,
  suggest,
  THRESHOLD_KEYS,
  WINDOW_KEYS,
} from './fields.js';
import { fieldSchema, reportedIssues } from './schema.js';

type Issue = v.BaseIssue<unknown>;

const PREFIX = 'EXEC_KERNEL_';

/** Variables with the override prefix that are not overrides. */
const NOT_OVERRIDES: ReadonlySet<string> = new Set([
  'EXEC_KERNEL_CONFIG',
  'EXEC_KERNEL_COORDINATION_TOKEN',
  // The coordination service's own admin secret (`exec-kernel serve`), not a client setting.
  'EXEC_KERNEL_COORDINATION_ADMIN_TOKEN',
]);

const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?$/i;

/** The environment variable that overrides `section.key`, e.g. `EXEC_KERNEL_BUDGET_MAX_STEPS`. */
export function envVariableName(section: ConfigSection, key: string): string {
  return `${PREFIX}${section}_${key}`.toUpperCase();
}

/** An override read from the environment, validated, in the file's spelling. */
export interface EnvOverride {
  section: ConfigSection;
  key: string;
  /** For an action rule's one threshold (`EXEC_KERNEL_ACTIONS_REPEAT_BLOCK_AT`): `block_at`. */
  part?: string | undefined;
  value: unknown;
}

/** The sub-keys a mapping-valued key can be overridden by, one variable each. */
function parts(spec: FieldSpec): readonly string[] {
  if (spec.type === 'threshold') return THRESHOLD_KEYS;
  if (spec.type === 'window') return WINDOW_KEYS;
  return [];
}

function isNull(text: string): boolean {
  return text === '' || text.toLowerCase() === 'null';
}

/** Reads a variable's string as the key's type; what cannot be read stays a string and fails validation. */
function coerce(spec: FieldSpec, raw: string): unknown {
  const text = raw.trim();
  if (spec.nullable && isNull(text)) return null;
  switch (spec.type) {
    case 'count':
    case 'amount':
    case 'fraction':
      return NUMBER.test(text) ? Number(text) : raw;
    case 'list':
      return text
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== '');
    case 'threshold':
    case 'window':
      // The whole rule from one variable can only turn it off; thresholds have a variable each.
      return ['false', 'off'].includes(text.toLowerCase()) ? false : raw;
    case 'string':
    case 'url':
      return raw;
  }
}

function unknownVariable(name: string, section: SectionSpec, key: string): string {
  const secret = Object.hasOwn(section.secrets, key) ? section.secrets[key] : undefined;
  if (secret !== undefined) return `is not a config override: ${secret.replace(/ \(.*\)$/, '')}`;
  const known = section.fields.flatMap((spec) => [
    envVariableName(section.name, spec.key),
    ...parts(spec).map((part) => envVariableName(section.name, `${spec.key}_${part}`)),
  ]);
  const guess = suggest(name, known);
  return guess === undefined
    ? `is not a known setting (expected one of: ${known.join(', ')})`
    : `is not a known setting (did you mean ${guess}?)`;
}

/**
 * Reads every `EXEC_KERNEL_<SECTION>_<KEY>` override in `env`. Variables whose section is not a
 * config section are ignored; an unknown key in a known section is a problem (typo protection).
 */
export function readEnvOverrides(env: Readonly<Record<string, string | undefined>>): {
  values: EnvOverride[];
  problems: ConfigProblem[];
} {
  const values: EnvOverride[] = [];
  const problems: ConfigProblem[] = [];
  for (const [name, raw] of Object.entries(env)) {
    if (raw === undefined || !name.startsWith(PREFIX) || NOT_OVERRIDES.has(name)) continue;
    const rest = name.slice(PREFIX.length);
    const cut = rest.indexOf('_');
    const sectionName = cut === -1 ? rest : rest.slice(0, cut);
    const section = SECTIONS.find((s) => s.name.toUpperCase() === sectionName);
    if (section === undefined) continue;
    const key = cut === -1 ? '' : rest.slice(cut + 1).toLowerCase();
    const spec = section.fields.find((f) => envVariableName(section.name, f.key) === name);
    const partOf =
      spec === undefined
        ? section.fields
            .flatMap((f) => parts(f).map((part) => ({ spec: f, part })))
            .find((p) => envVariableName(section.name, `${p.spec.key}_${p.part}`) === name)
        : undefined;
    if (partOf !== undefined) {
      const text = raw.trim();
      const value = NUMBER.test(text) ? Number(text) : raw;
      const result = v.safeParse(
        fieldSchema(section, partOf.spec),
        { [partOf.part]: value },
        { abortPipeEarly: true },
      );
      if (result.success) {
        values.push({ section: section.name, key: partOf.spec.key, part: partOf.part, value });
      } else {
        problems.push({
          key: name,
          message: (reportedIssues(result.issues[0])[0] as Issue).message,
        });
      }
      continue;
    }
    if (spec === undefined) {
      problems.push({ key: name, message: unknownVariable(name, section, key) });
      continue;
    }
    const result = v.safeParse(fieldSchema(section, spec), coerce(spec, raw), {
      abortPipeEarly: true,
    });
    if (result.success) values.push({ section: section.name, key: spec.key, value: result.output });
    else problems.push({ key: name, message: result.issues[0].message });
  }
  return { values, problems };
}
