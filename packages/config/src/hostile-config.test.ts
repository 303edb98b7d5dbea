import { mkdir, mkdtemp, readdir, readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LIMIT_MAXIMUMS } from '@exec-kernel/budget';
import { ConfigError } from '@exec-kernel/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from './load-config.js';

// Issue 11: config files and overrides as an attacker would write them, read from real files.

let root = '';
let file = '';
beforeEach(async () => {
  root = await realpath(await mkdtemp(join(tmpdir(), 'ek-hostile-')));
  await mkdir(join(root, '.git'));
  file = join(root, '.exec-kernel.yml');
});
afterEach(() => rm(root, { recursive: true, force: true }));

async function refusal(env: Record<string, string> = {}, path?: string): Promise<ConfigError> {
  try {
    await loadConfig({ cwd: root, env, path });
  } catch (error) {
    if (ConfigError.is(error)) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('numbers past the limits budget accepts', () => {
  it('are refused for every count and amount, each with its key, line and column', async () => {
    await writeFile(
      file,
      [
        'lifecycle:',
        '  max_depth: 10001',
        '  max_heap_size: 1e7',
        'budget:',
        '  max_steps: 1e20',
        '  max_depth: 10001',
        '  max_duration_seconds: 1e10',
        '  max_tokens: 1e16',
        '  max_cost_usd: 1e10',
        'idle:',
        '  default_timeout_seconds: 1e10',
        '',
      ].join('\n'),
    );
    const error = await refusal();
    expect(error.problems.map((p) => [p.key, p.line, p.column, p.message])).toEqual([
      ['lifecycle.max_depth', 2, 14, 'must be at most 10000, got 10001'],
      ['lifecycle.max_heap_size', 3, 18, 'must be at most 1000000, got 10000000'],
      ['budget.max_steps', 5, 14, 'must be at most 1000000000, got 100000000000000000000'],
      ['budget.max_depth', 6, 14, 'must be at most 10000, got 10001'],
      ['budget.max_duration_seconds', 7, 25, 'must be at most 1000000000, got 10000000000'],
      ['budget.max_tokens', 8, 15, 'must be at most 1000000000000000, got 10000000000000000'],
      ['budget.max_cost_usd', 9, 17, 'must be at most 1000000000, got 10000000000'],
      ['idle.default_timeout_seconds', 11, 28, 'must be at most 1000000000, got 10000000000'],
    ]);
    expect(error.message).toContain(
      `Invalid config ${file}: lifecycle.max_depth (2:14) must be at most 10000, got 10001;`,
    );
    expect([error.path, error.line, error.column, error.key]).toEqual([
      file,
      2,
      14,
      'lifecycle.max_depth',
    ]);

    // The maximum itself is a valid limit.
    const m = LIMIT_MAXIMUMS;
    await writeFile(
      file,
      `budget: { max_steps: ${m.maxSteps}, max_tokens: ${m.maxTokens}, max_cost_usd: ${m.maxCostUsd} }\n`,
    );
    const { config } = await loadConfig({ cwd: root, env: {} });
    expect(config.budget).toMatchObject({
      maxSteps: m.maxSteps,
      maxTokens: m.maxTokens,
      maxCostUsd: m.maxCostUsd,
    });
  });

  it('are refused from EXEC_KERNEL_* overrides too, as are -1, NaN and Infinity', async () => {
    const error = await refusal({
      EXEC_KERNEL_BUDGET_MAX_STEPS: '1e20',
      EXEC_KERNEL_BUDGET_MAX_TOKENS: '-1',
      EXEC_KERNEL_LIFECYCLE_MAX_DEPTH: 'NaN',
      EXEC_KERNEL_BUDGET_MAX_COST_USD: 'Infinity',
      EXEC_KERNEL_IDLE_DEFAULT_TIMEOUT_SECONDS: '1e20',
    });
    expect(error.path).toBe('env');
    expect(Object.fromEntries(error.problems.map((p) => [p.key, p.message]))).toEqual({
      EXEC_KERNEL_BUDGET_MAX_STEPS: 'must be at most 1000000000, got 100000000000000000000',
      EXEC_KERNEL_BUDGET_MAX_TOKENS: 'must be a non-negative integer or null, got -1',
      EXEC_KERNEL_LIFECYCLE_MAX_DEPTH: 'must be a non-negative integer, got "NaN"',
      EXEC_KERNEL_BUDGET_MAX_COST_USD: 'must be a non-negative number or null, got "Infinity"',
      EXEC_KERNEL_IDLE_DEFAULT_TIMEOUT_SECONDS:
        'must be at most 1000000000, got 100000000000000000000',
    });
  });
});

describe('strings with control characters', () => {
  it('are refused for paths, ids, URLs and admission names, in the file and the environment', async () => {
    await writeFile(
      file,
      [
        'store:',
        '  path: "state\\n.json"',
        'paperclip:',
        '  company_id: "acme\\u001b[2J"',
        'coordination:',
        '  url: "http://127.0.0.1:7000\\n"',
        'admission:',
        '  required: ["consumer\\r"]',
        '',
      ].join('\n'),
    );
    expect((await refusal()).problems.map((p) => [p.key, p.message])).toEqual([
      ['store.path', 'must not contain control characters, got "state\\n.json"'],
      ['paperclip.company_id', 'must not contain control characters, got "acme\\u001b[2J"'],
      ['coordination.url', 'must not contain control characters, got "http://127.0.0.1:7000\\n"'],
      ['admission.required[0]', 'must not contain control characters, got "consumer\\r"'],
    ]);
    await rm(file);
    const error = await refusal({ EXEC_KERNEL_STORE_PATH: '/tmp/a\nb' });
    expect(error.problems).toEqual([
      {
        key: 'EXEC_KERNEL_STORE_PATH',
        message: 'must not contain control characters, got "/tmp/a\\nb"',
      },
    ]);
  });
});

describe('YAML nested deep', () => {
  it('200,000 levels: says it is nested too deep, where, and names no aliases', async () => {
    await writeFile(file, `budget:\n  max_steps: ${'['.repeat(200_000)}${']'.repeat(200_000)}\n`);
    const error = await refusal();
    expect(error.message).toMatch(
      new RegExp(`^Invalid YAML in ${file} \\(2:\\d+\\): nested too deep`),
    );
    expect(error.message).not.toMatch(/alias/);
    expect(error.line).toBe(2);
  });

  it('past 32 levels: refused with the place the 33rd level starts, keys included', async () => {
    await writeFile(file, `budget:\n  max_steps: ${'['.repeat(40)}1${']'.repeat(40)}\n`);
    expect((await refusal()).message).toBe(
      `Invalid YAML in ${file} (2:44): nested too deep (more than 32 levels)`,
    );
    await writeFile(file, `? ${'['.repeat(40)}k${']'.repeat(40)}\n: 1\n`);
    expect((await refusal()).message).toBe(
      `Invalid YAML in ${file} (1:34): nested too deep (more than 32 levels)`,
    );
  });
});

describe('the file itself', () => {
  it('is refused past 1 MiB, without being parsed, as is a directory', async () => {
    await writeFile(file, `# ${'x'.repeat(1024 * 1024)}\n`);
    const error = await refusal();
    expect(error.message).toBe(`Config file ${file} is too large: 1048579 bytes (at most 1048576)`);
    expect(error.path).toBe(file);

    await mkdir(join(root, 'conf.yml'));
    expect((await refusal({}, 'conf.yml')).message).toBe(
      `Config file is not a file: ${join(root, 'conf.yml')}`,
    );
  });

  it('is validated again when its cache entry was written under older rules', async () => {
    const cacheDir = join(root, 'cache');
    await writeFile(file, 'budget: { max_steps: 4 }\n');
    await loadConfig({ cwd: root, env: {}, cacheDir });
    const [name] = await readdir(cacheDir);
    const entryFile = join(cacheDir, name as string);
    // An entry as the previous release wrote it: no format, and a limit it let through.
    const entry = JSON.parse(await readFile(entryFile, 'utf8'));
    delete entry.format;
    entry.config.budget.maxSteps = 1e20;
    await writeFile(entryFile, JSON.stringify(entry));
    const { config } = await loadConfig({ cwd: root, env: {}, cacheDir });
    expect(config.budget.maxSteps).toBe(4);
  });
});
