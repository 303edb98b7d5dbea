import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from './defaults.js';
import { buildJsonSchema } from './json-schema.js';
import { resolveConfig, toFileConfig } from './resolve-config.js';

const SCHEMA_FILE = fileURLToPath(new URL('../schema.json', import.meta.url));

type Schema = Record<string, unknown>;

describe('schema.json', () => {
  it('is in sync with buildJsonSchema() (write schema)', async () => {
    const built = buildJsonSchema();
    // `pnpm --filter @exec-kernel/config generate-schema` runs this test in this mode to write the file.
    if (process.env.MODE === 'write-schema') {
      await writeFile(SCHEMA_FILE, `${JSON.stringify(built, null, 2)}\n`);
    }
    const committed: unknown = JSON.parse(await readFile(SCHEMA_FILE, 'utf8'));
    expect(
      committed,
      'schema.json is out of date: run `pnpm --filter @exec-kernel/config generate-schema`',
    ).toEqual(built);
  });

  it('describes every key, gives its default, and closes every mapping', async () => {
    const schema = JSON.parse(await readFile(SCHEMA_FILE, 'utf8')) as Schema;
    expect(schema.$schema).toBe('http://json-schema.org/draft-07/schema#');
    const sections = schema.properties as Record<string, Schema>;
    expect(Object.keys(sections)).toEqual(Object.keys(DEFAULT_CONFIG));
    expect(schema.additionalProperties).toBe(false);
    const fileDefaults = toFileConfig(DEFAULT_CONFIG) as unknown as Record<string, Schema>;
    let keys = 0;
    for (const [name, section] of Object.entries(sections)) {
      expect(section.description, name).toEqual(expect.any(String));
      expect(section.default, name).toEqual(fileDefaults[name]);
      const mapping = (section.anyOf as Schema[])[0] as Schema;
      expect(mapping.additionalProperties, name).toBe(false);
      for (const [key, property] of Object.entries(mapping.properties as Record<string, Schema>)) {
        expect(property.description, `${name}.${key}`).toEqual(expect.any(String));
        expect(property.default, `${name}.${key}`).toEqual(fileDefaults[name]?.[key]);
        keys++;
      }
    }
    expect(keys).toBe(19);
  });
});

describe('the JSON Schema and the loader agree', () => {
  const ajv = new Ajv({ strict: true, allErrors: true, formats: { uri: URL.canParse } });
  const validate = ajv.compile(buildJsonSchema() as Record<string, unknown>);

  function loads(file: unknown): boolean {
    try {
      resolveConfig(file);
      return true;
    } catch {
      return false;
    }
  }

  const accepted: Array<[string, unknown]> = [
    ['an empty file', {}],
    ['the defaults, written out', toFileConfig(DEFAULT_CONFIG)],
    ['empty sections', { budget: null, store: null }],
    [
      'the Python original',
      { lifecycle: { max_depth: 10, max_heap_size: 1000 }, budget: { max_steps: 50 } },
    ],
    [
      'edges of ranges',
      { budget: { max_steps: 0, warn_at: 1, max_cost_usd: 0 }, lifecycle: { max_heap_size: 1 } },
    ],
    ['unlimited tokens', { budget: { max_tokens: null, max_cost_usd: null } }],
    ['camelCase admission names', { admission: { required: ['painPoint', 'own_field'] } }],
    ['no admission at all', { admission: { required: [] } }],
    [
      'URLs',
      {
        coordination: { url: 'http://127.0.0.1:7000' },
        paperclip: { api_url: 'https://x.example/api' },
      },
    ],
    [
      'action rules, one off',
      {
        actions: {
          repeat: { warn_at: 2, block_at: 4 },
          ping_pong: false,
          window: { size: 30 },
          exempt_tools: ['wait'],
        },
      },
    ],
  ];
  const refused: Array<[string, unknown]> = [
    ['an action rule set to true', { actions: { repeat: true } }],
    ['an unknown threshold', { actions: { repeat: { block: 3 } } }],
    ['a zero threshold', { actions: { no_progress: { warn_at: 0 } } }],
    ['a window past its maximum', { actions: { window: { size: 100_000 } } }],
    ['a blank exempt tool', { actions: { exempt_tools: [''] } }],
    ['an unknown section', { budgets: {} }],
    ['an unknown key', { budget: { max_step: 5 } }],
    ['a token in the file', { coordination: { token: 't' } }],
    ['a Paperclip key in the file', { paperclip: { api_key: 'k' } }],
    ['a negative count', { budget: { max_steps: -1 } }],
    ['a fractional count', { budget: { max_depth: 2.5 } }],
    ['a zero heap size', { lifecycle: { max_heap_size: 0 } }],
    ['a zero idle timeout', { idle: { default_timeout_seconds: 0 } }],
    ['a count as a string', { budget: { max_steps: '5' } }],
    ['warn_at of 0', { budget: { warn_at: 0 } }],
    ['warn_at above 1', { budget: { warn_at: 1.01 } }],
    ['a negative cost', { budget: { max_cost_usd: -1 } }],
    ['a blank admission name', { admission: { required: [' '] } }],
    ['an admission list as a string', { admission: { required: 'consumer' } }],
    ['an ftp URL', { coordination: { url: 'ftp://x' } }],
    ['an empty store path', { store: { path: '' } }],
    ['a section as a list', { idle: [300] }],
    ['a top level list', ['budget']],
  ];

  it.each(accepted)('both accept %s', (_, file) => {
    expect(validate(file), JSON.stringify(validate.errors)).toBe(true);
    expect(loads(file)).toBe(true);
  });

  it.each(refused)('both refuse %s', (_, file) => {
    expect(validate(file)).toBe(false);
    expect(loads(file)).toBe(false);
  });
});
