import { ConfigError } from '@exec-kernel/core';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from './defaults.js';
import { envVariableName } from './env.js';
import { SECTIONS } from './fields.js';
import { resolveConfig } from './resolve-config.js';

function envError(env: Record<string, string>, file: unknown = {}): ConfigError {
  try {
    resolveConfig(file, { env, path: '/p/.exec-kernel.yml' });
  } catch (e) {
    if (ConfigError.is(e)) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('environment overrides', () => {
  it('win over the file', () => {
    const config = resolveConfig(
      { budget: { max_steps: 10, max_depth: 3 } },
      { env: { EXEC_KERNEL_BUDGET_MAX_STEPS: '20' } },
    );
    expect(config.budget.maxSteps).toBe(20);
    expect(config.budget.maxDepth).toBe(3);
  });

  it('coerce numbers, nulls, lists and strings by the key type', () => {
    const config = resolveConfig(
      { budget: { max_tokens: 100, max_cost_usd: 3 }, paperclip: { company_id: 'acme' } },
      {
        env: {
          EXEC_KERNEL_LIFECYCLE_MAX_HEAP_SIZE: ' 2000 ',
          EXEC_KERNEL_BUDGET_MAX_DURATION_SECONDS: '1e3',
          EXEC_KERNEL_BUDGET_MAX_TOKENS: 'null',
          EXEC_KERNEL_BUDGET_MAX_COST_USD: '',
          EXEC_KERNEL_BUDGET_WARN_AT: '.5',
          EXEC_KERNEL_ADMISSION_REQUIRED: 'consumer, pain_point,,custom_field',
          EXEC_KERNEL_STORE_PATH: '/var/lib/ek/state.json',
          EXEC_KERNEL_COORDINATION_URL: 'http://127.0.0.1:7000',
          EXEC_KERNEL_PAPERCLIP_API_URL: 'https://paperclip.example/api',
          EXEC_KERNEL_PAPERCLIP_COMPANY_ID: 'NULL',
        },
      },
    );
    expect(config.lifecycle.maxHeapSize).toBe(2000);
    expect(config.budget).toMatchObject({
      maxDurationSeconds: 1000,
      maxTokens: null,
      maxCostUsd: null,
      warnAt: 0.5,
    });
    expect(config.admission.required).toEqual(['consumer', 'painPoint', 'customField']);
    expect(config.store.path).toBe('/var/lib/ek/state.json');
    expect(config.coordination.url).toBe('http://127.0.0.1:7000');
    expect(config.paperclip).toEqual({ apiUrl: 'https://paperclip.example/api', companyId: null });
  });

  it('read an empty list variable as "require nothing"', () => {
    const config = resolveConfig({}, { env: { EXEC_KERNEL_ADMISSION_REQUIRED: '' } });
    expect(config.admission.required).toEqual([]);
  });

  it('ignore variables outside the config sections, and the three that are not overrides', () => {
    const config = resolveConfig(
      {},
      {
        env: {
          EXEC_KERNEL_CONFIG: '/somewhere/else.yml',
          EXEC_KERNEL_COORDINATION_TOKEN: 'tok',
          EXEC_KERNEL_COORDINATION_ADMIN_TOKEN: 'admin-tok',
          EXEC_KERNEL_DEBUG: '1',
          EXEC_KERNEL_AGENT_ID: 'agent-1',
          EXEC_KERNELS_BUDGET_MAX_STEPS: 'x',
          PATH: '/usr/bin',
        },
      },
    );
    expect({ ...config, coordination: { ...config.coordination, token: null } }).toEqual(
      DEFAULT_CONFIG,
    );
  });

  it('exist for every key of the file', () => {
    const names = SECTIONS.flatMap((s) => s.fields.map((f) => envVariableName(s.name, f.key)));
    expect(names).toContain('EXEC_KERNEL_BUDGET_MAX_STEPS');
    expect(names).toContain('EXEC_KERNEL_PAPERCLIP_COMPANY_ID');
    expect(names).toContain('EXEC_KERNEL_ACTIONS_EXEMPT_TOOLS');
    expect(names).toHaveLength(19);
  });
});

describe('bad environment overrides', () => {
  it('name the variable, with path "env"', () => {
    const e = envError({ EXEC_KERNEL_BUDGET_MAX_STEPS: 'twenty' });
    expect(e.path).toBe('env');
    expect(e.key).toBe('EXEC_KERNEL_BUDGET_MAX_STEPS');
    expect(e.line).toBeUndefined();
    expect(e.message).toBe(
      'Invalid config from the environment: EXEC_KERNEL_BUDGET_MAX_STEPS must be a non-negative integer, got "twenty"',
    );
  });

  it.each([
    ['EXEC_KERNEL_BUDGET_MAX_STEPS', '-3', 'must be a non-negative integer, got -3'],
    ['EXEC_KERNEL_BUDGET_MAX_STEPS', '', 'must be a non-negative integer, got ""'],
    ['EXEC_KERNEL_BUDGET_MAX_STEPS', 'null', 'must be a non-negative integer, got "null"'],
    ['EXEC_KERNEL_LIFECYCLE_MAX_DEPTH', '0x10', 'must be a non-negative integer, got "0x10"'],
    ['EXEC_KERNEL_BUDGET_MAX_TOKENS', '1.5', 'must be a non-negative integer or null, got 1.5'],
    ['EXEC_KERNEL_BUDGET_WARN_AT', '0', 'must be in (0, 1], got 0'],
    ['EXEC_KERNEL_IDLE_DEFAULT_TIMEOUT_SECONDS', '0', 'must be a positive integer, got 0'],
    [
      'EXEC_KERNEL_COORDINATION_URL',
      'localhost:7000',
      'must be an http or https URL or null, got "localhost:7000"',
    ],
    ['EXEC_KERNEL_STORE_PATH', '', 'must be a non-empty string, got ""'],
  ])('refuse %s=%j', (name, value, message) => {
    expect(envError({ [name]: value }).problems).toEqual([{ key: name, message }]);
  });

  it('refuse an unknown key in a known section, suggesting the right name', () => {
    const e = envError({ EXEC_KERNEL_BUDGET_MAX_STEP: '20', EXEC_KERNEL_IDLE: '5' });
    expect(e.problems).toEqual([
      {
        key: 'EXEC_KERNEL_BUDGET_MAX_STEP',
        message: 'is not a known setting (did you mean EXEC_KERNEL_BUDGET_MAX_STEPS?)',
      },
      {
        key: 'EXEC_KERNEL_IDLE',
        message:
          'is not a known setting (expected one of: EXEC_KERNEL_IDLE_DEFAULT_TIMEOUT_SECONDS)',
      },
    ]);
  });

  it('refuse secrets passed as overrides, pointing at the right variable', () => {
    const e = envError({ EXEC_KERNEL_PAPERCLIP_API_KEY: 'k' });
    expect(e.problems).toEqual([
      {
        key: 'EXEC_KERNEL_PAPERCLIP_API_KEY',
        message: 'is not a config override: set PAPERCLIP_API_KEY instead',
      },
    ]);
    expect(e.message).not.toContain(': k');
  });

  it('are all reported at once', () => {
    const e = envError({
      EXEC_KERNEL_BUDGET_MAX_STEPS: 'x',
      EXEC_KERNEL_BUDGET_WARN_AT: '2',
      EXEC_KERNEL_STORE_PATHS: 'a',
    });
    expect(e.problems.map((p) => p.key)).toEqual([
      'EXEC_KERNEL_BUDGET_MAX_STEPS',
      'EXEC_KERNEL_BUDGET_WARN_AT',
      'EXEC_KERNEL_STORE_PATHS',
    ]);
  });

  it('come after the file: a bad file is reported first, as the file', () => {
    const e = envError({ EXEC_KERNEL_BUDGET_MAX_STEPS: 'x' }, { budget: { max_steps: -1 } });
    expect(e.path).toBe('/p/.exec-kernel.yml');
    expect(e.key).toBe('budget.max_steps');
  });
});
