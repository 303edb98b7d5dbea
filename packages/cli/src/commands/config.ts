import { toFileConfig } from '@exec-kernel/config';
import type { Command } from '../context.js';
import { configFor } from '../services.js';

export const configShow: Command = {
  usage: `Usage: exec-kernel config show [--config <file>] [--json]

Prints the effective configuration: defaults, then the file, then EXEC_KERNEL_* overrides, in the
file's own snake_case form. Tokens and keys are never printed.
`,
  options: {},
  positionals: { min: 0, max: 0, names: '' },
  async run(ctx) {
    const { config, path, storePath } = await configFor(ctx, { fresh: true });
    const file = toFileConfig(config);
    const { stringify } = await import('yaml');
    const header = `# ${path ?? 'no config file found: defaults and environment only'}\n`;
    return {
      lines: `${header}${stringify(file).trimEnd()}`.split('\n'),
      data: { path: path ?? null, storePath, config: file },
    };
  },
};

export const configValidate: Command = {
  usage: `Usage: exec-kernel config validate [--config <file>]

Checks the configuration file (and EXEC_KERNEL_* overrides). Every problem is reported at once,
with its line, column and key; exit 1 if there is any.
`,
  options: {},
  positionals: { min: 0, max: 0, names: '' },
  async run(ctx) {
    const { path } = await configFor(ctx, { fresh: true });
    return {
      line: path === undefined ? 'VALID: no config file found; defaults apply' : `VALID: ${path}`,
      data: { valid: true, path: path ?? null },
    };
  },
};
