import { join } from 'node:path';
import { type LoadedConfig, loadConfig } from '@exec-kernel/config';
import { FileStore, TaskMemory } from '@exec-kernel/memory';
import type { CommandContext } from './context.js';
import { budgetWarningLine } from './render.js';

// One config and one store per command run (a test may run many commands in one process).
const configs = new WeakMap<CommandContext, Promise<LoadedConfig>>();
const memories = new WeakMap<CommandContext, Promise<TaskMemory>>();

/** Where validated config files are cached between calls: the user's own cache directory. */
function cacheDir(env: Record<string, string | undefined>): string | undefined {
  const base =
    env.XDG_CACHE_HOME || env.LOCALAPPDATA || (env.HOME ? join(env.HOME, '.cache') : undefined);
  return base === undefined ? undefined : join(base, 'exec-kernel', 'config');
}

/**
 * The configuration for this run: `--config`, else `EXEC_KERNEL_CONFIG`, else found upward.
 * Validated files are cached (an agent calls the CLI hundreds of times with the same file);
 * `fresh` skips the cache, for the config commands themselves.
 */
export function configFor(
  ctx: CommandContext,
  { fresh = false }: { fresh?: boolean } = {},
): Promise<LoadedConfig> {
  let config = configs.get(ctx);
  if (config === undefined) {
    config = loadConfig({
      cwd: ctx.io.cwd,
      env: ctx.io.env,
      path: ctx.flags.config,
      cacheDir: fresh ? undefined : cacheDir(ctx.io.env),
    });
    configs.set(ctx, config);
  }
  return config;
}

/** Task memory over the configured file store, with the configured kernel settings. */
export function memoryFor(ctx: CommandContext): Promise<TaskMemory> {
  let memory = memories.get(ctx);
  if (memory === undefined) {
    memory = configFor(ctx).then(
      ({ config, storePath }) =>
        new TaskMemory(new FileStore(storePath), {
          maxDepth: config.lifecycle.maxDepth,
          maxNodes: config.lifecycle.maxHeapSize,
          budgetDefaults: config.budget,
          warnAt: config.budget.warnAt,
          idleTimeoutSeconds: config.idle.defaultTimeoutSeconds,
          actionRules: config.actions,
          onWarning: (w) => ctx.out.warn(budgetWarningLine(w)),
        }),
    );
    memories.set(ctx, memory);
  }
  return memory;
}
