import { ConfigError } from '@exec-kernel/core';
import { ActionGuard, DEFAULT_ACTION_RULES, resolveActionRules } from '@exec-kernel/loop';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from './defaults.js';
import { parseConfig } from './parse-config.js';
import { resolveConfig, toFileConfig } from './resolve-config.js';

const FILE = '/p/.exec-kernel.yml';

async function configError(text: string, env: Record<string, string> = {}): Promise<ConfigError> {
  try {
    await parseConfig(text, { path: FILE, env });
  } catch (e) {
    if (ConfigError.is(e)) return e;
    throw e;
  }
  throw new Error('expected a ConfigError');
}

describe('the actions section', () => {
  it('defaults to the loop package’s DEFAULT_ACTION_RULES', async () => {
    expect(DEFAULT_CONFIG.actions).toEqual(DEFAULT_ACTION_RULES);
    expect((await parseConfig('budget: { max_steps: 3 }\n')).actions).toEqual(DEFAULT_ACTION_RULES);
  });

  it('reads every rule, merges a partial rule over its default, and turns a rule off with false', async () => {
    const config = await parseConfig(
      [
        'actions:',
        '  repeat: { warn_at: 2, block_at: 4 }',
        '  ping_pong: false',
        '  window: { size: 30 }',
        '  no_progress: { block_at: 12 }',
        '  exempt_tools: [wait, poll_Job]',
      ].join('\n'),
    );
    expect(config.actions).toEqual({
      repeat: { warnAt: 2, blockAt: 4 },
      pingPong: false,
      window: { size: 30, warnAt: 6, blockAt: 8 },
      noProgress: { warnAt: 6, blockAt: 12 },
      exemptTools: ['wait', 'poll_Job'],
    });
    // What the loaded rules give the guard is what the file said: the fourth repeat is refused.
    const guard = new ActionGuard(config.actions);
    for (let i = 0; i < 3; i++) guard.observe({ taskId: 't', tool: 'read', args: { p: 1 } });
    expect(() => guard.observe({ taskId: 't', tool: 'read', args: { p: 1 } })).toThrow(/4 times/);
  });

  it('lowers warn_at with a block_at below it, as resolveActionRules does', async () => {
    const config = await parseConfig('actions:\n  repeat: { block_at: 2 }\n');
    expect(config.actions.repeat).toEqual(resolveActionRules({ repeat: { blockAt: 2 } }).repeat);
  });

  it('round-trips through toFileConfig (tool names kept as written)', async () => {
    const config = await parseConfig(
      'actions:\n  window: false\n  exempt_tools: [waitFor]\n  repeat: { warn_at: 4, block_at: 9 }\n',
    );
    const file = toFileConfig(config);
    expect(file.actions).toEqual({
      repeat: { warn_at: 4, block_at: 9 },
      ping_pong: { warn_at: 3, block_at: 5 },
      window: false,
      no_progress: { warn_at: 6, block_at: 10 },
      exempt_tools: ['waitFor'],
    });
    expect(resolveConfig(file)).toEqual({ ...config, coordination: { url: null, token: null } });
  });

  it('reports every bad value at once, with line, column and key path', async () => {
    const error = await configError(
      [
        'actions:',
        '  repeat: { warn_at: -1, blok_at: 5 }',
        '  ping_pong: true',
        '  window: { size: 1e9 }',
        '  exempt_tools: [wait, ""]',
        '  no_progres: false',
      ].join('\n'),
    );
    expect(error.problems.map((p) => [p.key, p.line, p.column, p.message])).toEqual([
      ['actions.repeat.warn_at', 2, 22, 'must be a positive integer, got -1'],
      ['actions.repeat.blok_at', 2, 26, 'is not a known key (did you mean block_at?)'],
      ['actions.ping_pong', 3, 14, 'must be a mapping of warn_at and block_at, or false, got true'],
      ['actions.window.size', 4, 19, 'must be at most 10000, got 1000000000'],
      ['actions.exempt_tools[1]', 5, 24, 'must be a non-empty string, got ""'],
      ['actions.no_progres', 6, 3, 'is not a known key (did you mean no_progress?)'],
    ]);
    expect(error.message.split('\n')).toHaveLength(1);
  });

  it('leaves the ranges between thresholds to resolveActionRules, naming the key in the file', async () => {
    const error = await configError(
      'actions:\n  repeat: { block_at: 1 }\n  window: { size: 5, block_at: 8 }\n',
    );
    expect(error.problems.map((p) => [p.key, p.line, p.column, p.message])).toEqual([
      ['actions.repeat.block_at', 2, 23, 'must be an integer >= 2, got 1'],
      ['actions.window.size', 3, 19, 'must be an integer >= 8, got 5'],
    ]);
  });

  it('takes environment overrides: a rule off, one threshold, the exempt tools', () => {
    const config = resolveConfig(
      { actions: { repeat: false, window: { size: 40 } } },
      {
        env: {
          EXEC_KERNEL_ACTIONS_REPEAT_BLOCK_AT: '7',
          EXEC_KERNEL_ACTIONS_PING_PONG: 'false',
          EXEC_KERNEL_ACTIONS_WINDOW_BLOCK_AT: '9',
          EXEC_KERNEL_ACTIONS_EXEMPT_TOOLS: 'wait, sleep',
        },
      },
    );
    expect(config.actions).toEqual({
      repeat: { warnAt: 3, blockAt: 7 },
      pingPong: false,
      window: { size: 40, warnAt: 6, blockAt: 9 },
      noProgress: { warnAt: 6, blockAt: 10 },
      exemptTools: ['wait', 'sleep'],
    });
  });

  it('refuses bad overrides, naming the variable', async () => {
    const bad = await configError('', { EXEC_KERNEL_ACTIONS_REPEAT_BLOCK_AT: 'x' });
    expect(bad.path).toBe('env');
    expect(bad.problems).toEqual([
      {
        key: 'EXEC_KERNEL_ACTIONS_REPEAT_BLOCK_AT',
        message: 'must be a positive integer, got "x"',
      },
    ]);
    const range = await configError('', { EXEC_KERNEL_ACTIONS_NO_PROGRESS_BLOCK_AT: '1' });
    expect(range.problems).toEqual([
      {
        key: 'EXEC_KERNEL_ACTIONS_NO_PROGRESS_BLOCK_AT',
        message: 'must be an integer >= 2, got 1',
      },
    ]);
    const typo = await configError('', { EXEC_KERNEL_ACTIONS_REPEAT_BLOK_AT: '3' });
    expect(typo.problems[0]?.message).toBe(
      'is not a known setting (did you mean EXEC_KERNEL_ACTIONS_REPEAT_BLOCK_AT?)',
    );
    const on = await configError('', { EXEC_KERNEL_ACTIONS_REPEAT: 'true' });
    expect(on.problems[0]?.message).toBe(
      'must be a mapping of warn_at and block_at, or false, got "true"',
    );
  });
});
