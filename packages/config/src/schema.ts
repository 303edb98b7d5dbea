import * as v from 'valibot';
import { DEFAULT_CONFIG } from './defaults.js';
import {
  ACTION_WINDOW_MAXIMUM,
  camelToSnake,
  type FieldSpec,
  SECTIONS,
  type SectionSpec,
} from './fields.js';

type Issue = { readonly input: unknown };

/** A value as it reads in a message: `-1`, `"abc"`, `null`, `a list`. Long strings are cut. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') {
    return JSON.stringify(value.length > 40 ? `${value.slice(0, 37)}...` : value);
  }
  if (Array.isArray(value)) return 'a list';
  if (value === undefined) return 'nothing';
  if (value !== null && typeof value === 'object') return 'a mapping';
  return String(value);
}

/** What a key must be, as it reads after "must be". */
export function expectation(spec: FieldSpec): string {
  const base = {
    count: spec.min === 0 ? 'a non-negative integer' : 'a positive integer',
    amount: 'a non-negative number',
    fraction: 'a number in (0, 1]',
    string: 'a non-empty string',
    url: 'an http or https URL',
    list: `a list of ${spec.items}`,
    threshold: 'a mapping of warn_at and block_at, or false',
    window: 'a mapping of size, warn_at and block_at, or false',
  }[spec.type];
  return spec.nullable ? `${base} or null` : base;
}

function mustBe(expected: string): (issue: Issue) => string {
  return (issue) => `must be ${expected}, got ${describeValue(issue.input)}`;
}

// Newlines, escapes and the other C0/C1 controls have no place in a path, an id or a URL (URL
// parsing drops some of them silently). A check, not a regex: the JSON Schema takes one pattern.
function noControls(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0x2028 || c === 0x2029) return false;
  }
  return true;
}

function valueSchema(spec: FieldSpec): v.GenericSchema {
  const message = mustBe(expectation(spec));
  const max = spec.max ?? Number.MAX_SAFE_INTEGER;
  const atMost = mustBe(`at most ${max}`);
  const controls = (issue: Issue) =>
    `must not contain control characters, got ${describeValue(issue.input)}`;
  switch (spec.type) {
    case 'count':
      return v.pipe(
        v.number(message),
        v.integer(message),
        v.minValue(spec.min, message),
        v.maxValue(max, atMost),
      );
    case 'amount':
      return v.pipe(
        v.number(message),
        v.finite(message),
        v.minValue(0, message),
        v.maxValue(max, atMost),
      );
    case 'fraction': {
      const range = mustBe('in (0, 1]');
      return v.pipe(v.number(message), v.gtValue(0, range), v.maxValue(1, range));
    }
    case 'string':
      return v.pipe(v.string(message), v.regex(/\S/, message), v.check(noControls, controls));
    case 'url':
      return v.pipe(
        v.string(message),
        v.regex(/^https?:\/\//, message),
        v.check(noControls, controls),
        v.url(message),
      );
    case 'threshold':
    case 'window': {
      const count = (most: number) =>
        v.optional(
          v.pipe(
            v.number(mustBe('a positive integer')),
            v.integer(mustBe('a positive integer')),
            v.minValue(1, mustBe('a positive integer')),
            v.maxValue(most, mustBe(`at most ${most}`)),
          ),
        );
      // Thresholds are left unset when not written: resolveActionRules fills them from the
      // defaults, and checks the ranges between them (block_at >= 2, a window of block_at calls).
      const entries: Record<string, v.GenericSchema> =
        spec.type === 'window' ? { size: count(ACTION_WINDOW_MAXIMUM) } : {};
      entries.warn_at = count(max);
      entries.block_at = count(max);
      return v.union([v.literal(false), v.strictObject(entries)], message);
    }
    case 'list': {
      const item = mustBe('a non-empty string');
      return v.array(
        v.pipe(v.string(item), v.regex(/\S/, item), v.check(noControls, controls)),
        message,
      );
    }
  }
}

/**
 * The issues to report for one valibot issue. A rule's `false | {…}` union fails as a whole when a
 * threshold inside the mapping is bad; the mapping branch's own issues say which one.
 */
export function reportedIssues(issue: v.BaseIssue<unknown>): v.BaseIssue<unknown>[] {
  if (issue.type !== 'union' || issue.issues === undefined) return [issue];
  // Issues without a path are the branches' own (not `false`, not a mapping); the union says those.
  const inner = issue.issues
    .filter((item) => item.path !== undefined && item.path.length > 0)
    .map(
      (item) => ({ ...item, path: [...(issue.path ?? []), ...(item.path ?? [])] }) as typeof item,
    );
  return inner.length === 0 ? [issue] : inner.flatMap(reportedIssues);
}

/** The default of a key in the file's spelling (admission names in snake_case). */
export function fileDefault(section: SectionSpec, spec: FieldSpec): unknown {
  const value = (DEFAULT_CONFIG[section.name] as Record<string, unknown>)[spec.name];
  if (Array.isArray(value)) {
    return spec.items === 'field names' ? value.map((name: string) => camelToSnake(name)) : value;
  }
  return toFileSpelling(value);
}

/** A threshold mapping's keys in the file's spelling (`blockAt` → `block_at`); other values as they are. */
export function toFileSpelling(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [camelToSnake(key), item]));
}

const fieldSchemas = new Map<FieldSpec, v.GenericSchema>();

/** The valibot schema of one key: its checks, description and default. */
export function fieldSchema(section: SectionSpec, spec: FieldSpec): v.GenericSchema {
  let schema = fieldSchemas.get(spec);
  if (schema === undefined) {
    const inner = spec.nullable ? v.nullable(valueSchema(spec)) : valueSchema(spec);
    schema = v.optional(v.pipe(inner, v.description(spec.description)), fileDefault(section, spec));
    fieldSchemas.set(spec, schema);
  }
  return schema;
}

function sectionSchema(section: SectionSpec): v.GenericSchema {
  const entries: Record<string, v.GenericSchema> = {};
  const defaults: Record<string, unknown> = {};
  for (const spec of section.fields) {
    entries[spec.key] = fieldSchema(section, spec);
    defaults[spec.key] = fileDefault(section, spec);
  }
  // A section written with nothing under it (`budget:`, its keys commented out) keeps its defaults.
  return v.pipe(
    v.nullish(v.strictObject(entries, mustBe('a mapping')), defaults),
    v.description(`${section.description} Left out or empty: the defaults.`),
  );
}

let fileSchemaCache: v.GenericSchema | undefined;

/**
 * The schema of the whole file, in the file's spelling. Parsing fills every default; unknown keys
 * and non-mapping sections are reported by `resolveConfig` itself (valibot stops at the first
 * unknown key of an object, and we want them all). Built on first use: a CLI call without a
 * config file never needs it.
 */
export function fileSchema(): v.GenericSchema {
  fileSchemaCache ??= v.pipe(
    v.strictObject(
      Object.fromEntries(SECTIONS.map((section) => [section.name, sectionSchema(section)])),
      mustBe('a mapping'),
    ),
    v.title('.exec-kernel.yml'),
    v.description(
      'exec-kernel configuration: lifecycle, budget, idle, admission, actions, store, coordination and ' +
        'paperclip settings. Every key is optional; a key left out keeps its default.',
    ),
  );
  return fileSchemaCache;
}

/** Every section with every key at its default, in the file's spelling. */
export function defaultFileObject(): Record<string, Record<string, unknown>> {
  const file: Record<string, Record<string, unknown>> = {};
  for (const section of SECTIONS) {
    const values: Record<string, unknown> = {};
    for (const spec of section.fields) {
      const value = fileDefault(section, spec);
      values[spec.key] = Array.isArray(value) ? [...value] : toFileSpelling(value);
    }
    file[section.name] = values;
  }
  return file;
}
