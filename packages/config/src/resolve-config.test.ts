import { ConfigError } from '@exec-kernel/core';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, type ExecKernelConfig } from './defaults.js';
import { resolveConfig, toFileConfig } from './resolve-config.js';

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    if (ConfigError.is(e)) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('resolveConfig: defaults and merging', () => {
  it('gives the defaults for an empty file', () => {
    expect(resolveConfig(undefined)).toEqual(DEFAULT_CONFIG);
    expect(resolveConfig(null)).toEqual(DEFAULT_CONFIG);
    expect(resolveConfig({})).toEqual(DEFAULT_CONFIG);
  });

  it('has the documented defaults, the budget ones equal to @exec-kernel/budget DEFAULT_LIMITS', () => {
    expect(DEFAULT_CONFIG).toEqual({
      lifecycle: { maxDepth: 10, maxHeapSize: 1000 },
      budget: {
        maxSteps: 50,
        maxDepth: 10,
        maxDurationSeconds: 1800,
        maxTokens: null,
        maxCostUsd: null,
        warnAt: 0.8,
      },
      idle: { defaultTimeoutSeconds: 300 },
      admission: { required: ['consumer', 'painPoint', 'expectedValue', 'validationPath'] },
      actions: {
        repeat: { warnAt: 3, blockAt: 5 },
        pingPong: { warnAt: 3, blockAt: 5 },
        window: { size: 20, warnAt: 6, blockAt: 8 },
        noProgress: { warnAt: 6, blockAt: 10 },
        exemptTools: [],
      },
      store: { path: '.exec-kernel/state.json' },
      coordination: { url: null, token: null },
      paperclip: { apiUrl: null, companyId: null },
    });
  });

  it('freezes DEFAULT_CONFIG at every depth and never hands it out to be mutated', () => {
    expect(Object.isFrozen(DEFAULT_CONFIG)).toBe(true);
    expect(Object.isFrozen(DEFAULT_CONFIG.budget)).toBe(true);
    expect(Object.isFrozen(DEFAULT_CONFIG.admission.required)).toBe(true);
    const config = resolveConfig({});
    config.budget.maxSteps = 1;
    config.admission.required.push('x');
    expect(DEFAULT_CONFIG.budget.maxSteps).toBe(50);
    expect(resolveConfig({}).admission.required).toHaveLength(4);
  });

  it('keeps the default of a key left out and merges a mapping key by key', () => {
    const config = resolveConfig({ budget: { max_steps: 20 }, lifecycle: { max_heap_size: 5 } });
    expect(config.budget).toEqual({ ...DEFAULT_CONFIG.budget, maxSteps: 20 });
    expect(config.lifecycle).toEqual({ maxDepth: 10, maxHeapSize: 5 });
    expect(config.idle).toEqual(DEFAULT_CONFIG.idle);
  });

  it('replaces a list rather than merging it', () => {
    const config = resolveConfig({ admission: { required: ['consumer'] } });
    expect(config.admission.required).toEqual(['consumer']);
    expect(resolveConfig({ admission: { required: [] } }).admission.required).toEqual([]);
  });

  it('reads a section with nothing under it as its defaults', () => {
    expect(resolveConfig({ budget: null, admission: null })).toEqual(DEFAULT_CONFIG);
  });

  it('loads a file written for the Python original unchanged', () => {
    const config = resolveConfig({
      lifecycle: { max_depth: 10, max_heap_size: 1000 },
      budget: { max_steps: 50, max_depth: 10, max_duration_seconds: 1800 },
    });
    expect(config).toEqual(DEFAULT_CONFIG);
    const custom = resolveConfig({
      lifecycle: { max_depth: 4, max_heap_size: 200 },
      budget: { max_steps: 7, max_depth: 3, max_duration_seconds: 60 },
    });
    expect(custom.lifecycle).toEqual({ maxDepth: 4, maxHeapSize: 200 });
    expect(custom.budget).toMatchObject({ maxSteps: 7, maxDepth: 3, maxDurationSeconds: 60 });
  });

  it('loads every key of the file into its camelCase name', () => {
    const config = resolveConfig({
      lifecycle: { max_depth: 1, max_heap_size: 2 },
      budget: {
        max_steps: 3,
        max_depth: 4,
        max_duration_seconds: 5,
        max_tokens: 6,
        max_cost_usd: 7.5,
        warn_at: 1,
      },
      idle: { default_timeout_seconds: 8 },
      admission: { required: ['consumer'] },
      actions: {
        repeat: { warn_at: 2, block_at: 3 },
        ping_pong: false,
        window: { size: 9, warn_at: 4, block_at: 6 },
        no_progress: { warn_at: 7, block_at: 11 },
        exempt_tools: ['wait'],
      },
      store: { path: 'state/here.json' },
      coordination: { url: 'https://coord.example:8443/base' },
      paperclip: { api_url: 'http://localhost:3100/api', company_id: 'acme' },
    });
    expect(config).toEqual({
      lifecycle: { maxDepth: 1, maxHeapSize: 2 },
      budget: {
        maxSteps: 3,
        maxDepth: 4,
        maxDurationSeconds: 5,
        maxTokens: 6,
        maxCostUsd: 7.5,
        warnAt: 1,
      },
      idle: { defaultTimeoutSeconds: 8 },
      admission: { required: ['consumer'] },
      actions: {
        repeat: { warnAt: 2, blockAt: 3 },
        pingPong: false,
        window: { size: 9, warnAt: 4, blockAt: 6 },
        noProgress: { warnAt: 7, blockAt: 11 },
        exemptTools: ['wait'],
      },
      store: { path: 'state/here.json' },
      coordination: { url: 'https://coord.example:8443/base', token: null },
      paperclip: { apiUrl: 'http://localhost:3100/api', companyId: 'acme' },
    });
  });
});

describe('resolveConfig: admission names', () => {
  it('accepts snake_case and camelCase names and loads them as camelCase, once each', () => {
    const config = resolveConfig({
      admission: { required: ['pain_point', 'expectedValue', 'painPoint', 'risk_level'] },
    });
    expect(config.admission.required).toEqual(['painPoint', 'expectedValue', 'riskLevel']);
  });

  it('refuses blank or non-string names', () => {
    const e = configError(() => resolveConfig({ admission: { required: ['consumer', ' ', 3] } }));
    expect(e.problems).toEqual([
      { key: 'admission.required[1]', message: 'must be a non-empty string, got " "' },
      { key: 'admission.required[2]', message: 'must be a non-empty string, got 3' },
    ]);
  });
});

describe('resolveConfig: validation', () => {
  const cases: Array<[string, Record<string, unknown>, string, string]> = [
    [
      'negative count',
      { budget: { max_steps: -1 } },
      'budget.max_steps',
      'must be a non-negative integer, got -1',
    ],
    [
      'fractional count',
      { lifecycle: { max_depth: 1.5 } },
      'lifecycle.max_depth',
      'must be a non-negative integer, got 1.5',
    ],
    [
      'string count',
      { budget: { max_steps: '50' } },
      'budget.max_steps',
      'must be a non-negative integer, got "50"',
    ],
    [
      'null for a count that cannot be null',
      { budget: { max_steps: null } },
      'budget.max_steps',
      'must be a non-negative integer, got null',
    ],
    [
      'zero heap',
      { lifecycle: { max_heap_size: 0 } },
      'lifecycle.max_heap_size',
      'must be a positive integer, got 0',
    ],
    [
      'zero idle timeout',
      { idle: { default_timeout_seconds: 0 } },
      'idle.default_timeout_seconds',
      'must be a positive integer, got 0',
    ],
    [
      'negative tokens',
      { budget: { max_tokens: -5 } },
      'budget.max_tokens',
      'must be a non-negative integer or null, got -5',
    ],
    [
      'negative cost',
      { budget: { max_cost_usd: -0.01 } },
      'budget.max_cost_usd',
      'must be a non-negative number or null, got -0.01',
    ],
    [
      'infinite cost',
      { budget: { max_cost_usd: Number.POSITIVE_INFINITY } },
      'budget.max_cost_usd',
      'must be a non-negative number or null, got Infinity',
    ],
    [
      'warn_at above 1',
      { budget: { warn_at: 1.5 } },
      'budget.warn_at',
      'must be in (0, 1], got 1.5',
    ],
    ['warn_at of 0', { budget: { warn_at: 0 } }, 'budget.warn_at', 'must be in (0, 1], got 0'],
    [
      'warn_at not a number',
      { budget: { warn_at: 'high' } },
      'budget.warn_at',
      'must be a number in (0, 1], got "high"',
    ],
    [
      'url of another scheme',
      { coordination: { url: 'ftp://host' } },
      'coordination.url',
      'must be an http or https URL or null, got "ftp://host"',
    ],
    [
      'url that does not parse',
      { paperclip: { api_url: 'http://' } },
      'paperclip.api_url',
      'must be an http or https URL or null, got "http://"',
    ],
    [
      'empty store path',
      { store: { path: '' } },
      'store.path',
      'must be a non-empty string, got ""',
    ],
    [
      'blank company id',
      { paperclip: { company_id: '  ' } },
      'paperclip.company_id',
      'must be a non-empty string or null, got "  "',
    ],
    [
      'list given as a string',
      { admission: { required: 'consumer' } },
      'admission.required',
      'must be a list of field names, got "consumer"',
    ],
    ['section that is not a mapping', { budget: 5 }, 'budget', 'must be a mapping, got 5'],
    ['section that is a list', { idle: [300] }, 'idle', 'must be a mapping, got a list'],
    [
      'unknown key',
      { budget: { max_step: 5 } },
      'budget.max_step',
      'is not a known key (did you mean max_steps?)',
    ],
    ['unknown section', { budgets: {} }, 'budgets', 'is not a known key (did you mean budget?)'],
    [
      'unknown key with no near match',
      { idle: { nap: 1 } },
      'idle.nap',
      'is not a known key (expected one of: default_timeout_seconds)',
    ],
  ];

  it.each(cases)('refuses a %s', (_, file, key, message) => {
    const e = configError(() => resolveConfig(file, { path: '/p/.exec-kernel.yml' }));
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.problems).toEqual([{ key, message }]);
    expect(e.key).toBe(key);
    expect(e.path).toBe('/p/.exec-kernel.yml');
    expect(e.message).toBe(`Invalid config /p/.exec-kernel.yml: ${key} ${message}`);
  });

  it('accepts the edges of every range', () => {
    const config = resolveConfig({
      lifecycle: { max_depth: 0, max_heap_size: 1 },
      budget: { max_steps: 0, max_duration_seconds: 0, max_tokens: 0, max_cost_usd: 0, warn_at: 1 },
      idle: { default_timeout_seconds: 1 },
    });
    expect(config.lifecycle).toEqual({ maxDepth: 0, maxHeapSize: 1 });
    expect(config.budget).toMatchObject({ maxSteps: 0, maxTokens: 0, maxCostUsd: 0, warnAt: 1 });
    expect(resolveConfig({ budget: { warn_at: 0.001 } }).budget.warnAt).toBe(0.001);
  });

  it('reports every problem at once, in one line', () => {
    const e = configError(() =>
      resolveConfig({ budget: { max_steps: -1, max_step: 3, warn_at: 2 }, extra: true }),
    );
    expect(e.problems.map((p) => p.key).sort()).toEqual([
      'budget.max_step',
      'budget.max_steps',
      'budget.warn_at',
      'extra',
    ]);
    expect(e.message).not.toContain('\n');
    expect(e.line).toBeUndefined();
  });

  it('refuses a top level that is not a mapping', () => {
    for (const file of [['a'], 'text', 42]) {
      const e = configError(() => resolveConfig(file));
      expect(e.problems).toHaveLength(1);
      expect(e.problems[0]?.key).toBe('');
      expect(e.message).toMatch(/^Invalid config: the top level must be a mapping of sections/);
    }
  });
});

describe('resolveConfig: secrets', () => {
  it('refuses the coordination token in the file without repeating it', () => {
    const e = configError(() => resolveConfig({ coordination: { token: 's3cret-token' } }));
    expect(e.problems).toEqual([
      {
        key: 'coordination.token',
        message:
          'must not be in the file: set EXEC_KERNEL_COORDINATION_TOKEN instead (tokens never go in the file)',
      },
    ]);
    expect(JSON.stringify(e.toJSON())).not.toContain('s3cret-token');
    expect(e.message).not.toContain('s3cret-token');
  });

  it('refuses a Paperclip key in the file under either name', () => {
    const e = configError(() => resolveConfig({ paperclip: { api_key: 'k1', key: 'k2' } }));
    expect(e.problems.map((p) => [p.key, p.message])).toEqual([
      [
        'paperclip.api_key',
        'must not be in the file: set PAPERCLIP_API_KEY instead (keys never go in the file)',
      ],
      [
        'paperclip.key',
        'must not be in the file: set PAPERCLIP_API_KEY instead (keys never go in the file)',
      ],
    ]);
  });

  it('reads the token only from EXEC_KERNEL_COORDINATION_TOKEN', () => {
    expect(resolveConfig({}).coordination.token).toBeNull();
    const env = { EXEC_KERNEL_COORDINATION_TOKEN: 'tok' };
    expect(resolveConfig({}, { env }).coordination.token).toBe('tok');
    expect(
      resolveConfig({}, { env: { EXEC_KERNEL_COORDINATION_TOKEN: '' } }).coordination.token,
    ).toBeNull();
  });
});

describe('toFileConfig', () => {
  it('writes the file spelling, without the token', () => {
    const config: ExecKernelConfig = resolveConfig(
      { budget: { max_tokens: 1000 }, coordination: { url: 'http://127.0.0.1:7000' } },
      { env: { EXEC_KERNEL_COORDINATION_TOKEN: 'sekrit-value' } },
    );
    const file = toFileConfig(config);
    expect(file.budget).toEqual({
      max_steps: 50,
      max_depth: 10,
      max_duration_seconds: 1800,
      max_tokens: 1000,
      max_cost_usd: null,
      warn_at: 0.8,
    });
    expect(file.admission.required).toEqual([
      'consumer',
      'pain_point',
      'expected_value',
      'validation_path',
    ]);
    expect(file.coordination).toEqual({ url: 'http://127.0.0.1:7000' });
    expect(config.coordination.token).toBe('sekrit-value');
    expect(JSON.stringify(file)).not.toContain('sekrit-value');
  });

  it('round-trips through resolveConfig', () => {
    const config = resolveConfig({
      admission: { required: ['consumer', 'riskLevel', 'Odd Name'] },
      paperclip: { company_id: 'acme' },
      budget: { max_cost_usd: 2.5, warn_at: 0.5 },
    });
    expect(resolveConfig(toFileConfig(config))).toEqual(config);
    expect(resolveConfig(toFileConfig(DEFAULT_CONFIG))).toEqual(DEFAULT_CONFIG);
  });
});
