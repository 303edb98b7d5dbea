import { ConfigError } from '@exec-kernel/core';
import { describe, expect, it } from 'vitest';
import { YAMLParseError } from 'yaml';
import { DEFAULT_CONFIG } from './defaults.js';
import { parseConfig } from './parse-config.js';

const FILE = '/p/.exec-kernel.yml';

async function configError(text: string): Promise<ConfigError> {
  try {
    await parseConfig(text, { path: FILE });
  } catch (e) {
    if (ConfigError.is(e)) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('parseConfig', () => {
  it('gives the defaults for an empty file, a file of comments, or a bare document marker', async () => {
    for (const text of ['', '\n\n', '# nothing set yet\n  # indented comment\n', '---\n']) {
      expect(await parseConfig(text)).toEqual(DEFAULT_CONFIG);
    }
  });

  it('reads the block and flow styles of the spec alike', async () => {
    const block = await parseConfig(
      [
        '# yaml-language-server: $schema=./node_modules/@exec-kernel/config/schema.json',
        'budget:',
        '  max_steps: 20',
        '  max_cost_usd: 1.25',
        'admission:',
        '  required:',
        '    - consumer',
        '    - pain_point',
        'store:',
        '  path: .state/ek.json',
      ].join('\n'),
    );
    const flow = await parseConfig(
      [
        'budget: { max_steps: 20, max_cost_usd: 1.25 }',
        'admission: { required: [consumer, pain_point] }',
        'store: { path: .state/ek.json }',
      ].join('\n'),
    );
    expect(block).toEqual(flow);
    expect(block.budget.maxSteps).toBe(20);
    expect(block.admission.required).toEqual(['consumer', 'painPoint']);
  });

  it('loads the seed file of the Python original unchanged', async () => {
    const seed = [
      'lifecycle:',
      '  max_depth: 10',
      '  max_heap_size: 1000',
      '',
      'budget:',
      '  max_steps: 50',
      '  max_depth: 10',
      '  max_duration_seconds: 1800',
      '',
    ].join('\n');
    expect(await parseConfig(seed)).toEqual(DEFAULT_CONFIG);
  });

  it('loads the full example file of the spec as the defaults', async () => {
    const spec = [
      'lifecycle: { max_depth: 10, max_heap_size: 1000 }',
      'budget: { max_steps: 50, max_depth: 10, max_duration_seconds: 1800, max_tokens: null, max_cost_usd: null, warn_at: 0.8 }',
      'idle: { default_timeout_seconds: 300 }',
      'admission: { required: [consumer, pain_point, expected_value, validation_path] }',
      'store: { path: .exec-kernel/state.json }',
      'coordination: { url: null }          # token only from EXEC_KERNEL_COORDINATION_TOKEN, never the file',
      'paperclip: { api_url: null, company_id: null }   # key only from PAPERCLIP_API_KEY',
    ].join('\n');
    expect(await parseConfig(spec)).toEqual(DEFAULT_CONFIG);
  });

  it('applies environment overrides on top of the file', async () => {
    const config = await parseConfig('budget:\n  max_steps: 5\n', {
      env: { EXEC_KERNEL_BUDGET_MAX_STEPS: '9' },
    });
    expect(config.budget.maxSteps).toBe(9);
  });
});

describe('parseConfig: problems with positions', () => {
  // Lines and columns are 1-based; the comments on the right are not part of the file.
  const fixture = [
    'lifecycle:', //                       1
    '  max_depth: 10', //                  2
    '  max_heap_size: 0', //               3  value at column 18
    'budget:', //                          4
    '  max_steps: -1', //                  5  value at column 14
    '  max_step: 3', //                    6  key at column 3
    '  warn_at: 1.5', //                   7  value at column 12
    '  max_cost_usd: cheap', //            8  value at column 17
    'budgets: {}', //                      9  key at column 1
    'coordination:', //                    10
    '  url: ftp://example.com', //         11 value at column 8
    '  token: hunter2', //                 12 key at column 3
    'admission:', //                       13
    '  required: [consumer, "", 7]', //    14 items at columns 24 and 28
    'store:', //                           15
    '  path:', //                          16 no value: points at the key, column 3
    '',
  ].join('\n');

  it('reports every problem at once, in file order, with key path, line and column', async () => {
    const e = await configError(fixture);
    expect(e.problems).toEqual([
      {
        key: 'lifecycle.max_heap_size',
        line: 3,
        column: 18,
        message: 'must be a positive integer, got 0',
      },
      {
        key: 'budget.max_steps',
        line: 5,
        column: 14,
        message: 'must be a non-negative integer, got -1',
      },
      {
        key: 'budget.max_step',
        line: 6,
        column: 3,
        message: 'is not a known key (did you mean max_steps?)',
      },
      { key: 'budget.warn_at', line: 7, column: 12, message: 'must be in (0, 1], got 1.5' },
      {
        key: 'budget.max_cost_usd',
        line: 8,
        column: 17,
        message: 'must be a non-negative number or null, got "cheap"',
      },
      { key: 'budgets', line: 9, column: 1, message: 'is not a known key (did you mean budget?)' },
      {
        key: 'coordination.url',
        line: 11,
        column: 8,
        message: 'must be an http or https URL or null, got "ftp://example.com"',
      },
      {
        key: 'coordination.token',
        line: 12,
        column: 3,
        message:
          'must not be in the file: set EXEC_KERNEL_COORDINATION_TOKEN instead (tokens never go in the file)',
      },
      {
        key: 'admission.required[1]',
        line: 14,
        column: 24,
        message: 'must be a non-empty string, got ""',
      },
      {
        key: 'admission.required[2]',
        line: 14,
        column: 28,
        message: 'must be a non-empty string, got 7',
      },
      { key: 'store.path', line: 16, column: 3, message: 'must be a non-empty string, got null' },
    ]);
  });

  it('puts the file and the first problem on the error, and everything on one line', async () => {
    const e = await configError(fixture);
    expect(e).toBeInstanceOf(ConfigError);
    expect([e.path, e.line, e.column, e.key]).toEqual([FILE, 3, 18, 'lifecycle.max_heap_size']);
    expect(e.message).not.toContain('\n');
    expect(e.message).not.toContain('hunter2');
    expect(e.message).toMatch(
      /^Invalid config \/p\/\.exec-kernel\.yml: lifecycle\.max_heap_size \(3:18\) must be a positive integer, got 0; budget\.max_steps \(5:14\) must be a non-negative integer, got -1; budget\.max_step \(6:3\) is not a known key \(did you mean max_steps\?\); /,
    );
  });

  it('points at the value of a section that is not a mapping', async () => {
    const e = await configError('idle: 300\nbudget:\n  - 1\n');
    expect(e.problems).toEqual([
      { key: 'idle', line: 1, column: 7, message: 'must be a mapping, got 300' },
      { key: 'budget', line: 3, column: 3, message: 'must be a mapping, got a list' },
    ]);
  });

  it('points at a value reached through an alias where the alias is written', async () => {
    const e = await configError('x: &bad -1\nbudget:\n  max_steps: *bad\n');
    expect(e.problems).toContainEqual({
      key: 'budget.max_steps',
      line: 3,
      column: 14,
      message: 'must be a non-negative integer, got -1',
    });
  });
});

describe('parseConfig: malformed YAML', () => {
  it.each([
    ['bad indentation', 'budget:\n  max_steps: 1\n bad: 2\n', 3, 1, /^bad indentation/],
    ['an unclosed flow mapping', 'budget: { max_steps: 5\n', 2, 1, /left open/],
    ['an unterminated string', 'store:\n  path: "abc\n', 3, 1, /closing character is missing/],
    ['a duplicate key', 'budget:\n  max_steps: 1\n  max_steps: 2\n', 3, 3, /^duplicate key$/],
    ['a tab as indentation', 'budget:\n\tmax_steps: 1\n', 2, 1, /tab/],
  ])(
    'names line and column of %s, in our words, with the YAML error as cause',
    async (_, text, line, column, wording) => {
      const e = await configError(text);
      expect([e.path, e.line, e.column]).toEqual([FILE, line, column]);
      expect(e.message).toMatch(
        new RegExp(`^Invalid YAML in /p/\\.exec-kernel\\.yml \\(${line}:${column}\\): `),
      );
      expect(e.problems[0]?.message).toMatch(wording);
      expect(e.cause).toBeInstanceOf(YAMLParseError);
      expect(e.message).not.toContain((e.cause as Error).message);
      expect(e.message).not.toContain('\n');
    },
  );

  it('refuses more than one document', async () => {
    const e = await configError('budget:\n  max_steps: 1\n---\nbudget:\n  max_steps: 2\n');
    expect([e.line, e.column]).toEqual([3, 1]);
    expect(e.message).toBe(
      'Invalid YAML in /p/.exec-kernel.yml (3:1): more than one YAML document (a config file holds one)',
    );
  });

  it('refuses a top level that is a list or a scalar, pointing at it', async () => {
    const list = await configError('\n- budget\n- lifecycle\n');
    expect([list.line, list.column, list.key]).toEqual([2, 1, undefined]);
    expect(list.message).toBe(
      'Invalid config /p/.exec-kernel.yml: the top level (2:1) must be a mapping of sections (lifecycle, budget, idle, admission, actions, store, coordination, paperclip), got a list',
    );
    const scalar = await configError('just text\n');
    expect(scalar.message).toMatch(
      /the top level \(1:1\) must be a mapping of sections .*, got "just text"$/,
    );
  });

  it('works without a path', async () => {
    await expect(parseConfig('budget: [')).rejects.toThrow(/^Invalid YAML \(1:\d+\): /);
    await expect(parseConfig('budget: {max_steps: -1}')).rejects.toThrow(
      'Invalid config: budget.max_steps (1:21) must be a non-negative integer, got -1',
    );
  });
});
