import type { CoordinationClient } from '@exec-kernel/coordination/client';
import type { PaperclipAdapter } from '@exec-kernel/paperclip';
import type { CommandContext } from './context.js';
import { quote, UsageError } from './context.js';
import { configFor, memoryFor } from './services.js';

/** Where task commands act: the local file store, a Paperclip server, or a coordination service. */
export type Backend = 'local' | 'paperclip' | 'coordination';

const BACKENDS = new Set<Backend>(['local', 'paperclip', 'coordination']);

/** The `--backend` option task commands take. */
export const BACKEND_OPTION = { backend: { type: 'string' } } as const;

/**
 * `--backend`, else Paperclip when `PAPERCLIP_API_URL` and `PAPERCLIP_API_KEY` are set (as inside
 * every Paperclip heartbeat), else a coordination service when `EXEC_KERNEL_COORDINATION_URL` (or
 * `coordination.url` in the config) is set, else the local store.
 */
export async function backendFor(ctx: CommandContext): Promise<Backend> {
  const flag = ctx.values.backend;
  if (typeof flag === 'string') {
    if (!BACKENDS.has(flag as Backend)) {
      throw new UsageError(
        `--backend must be local, paperclip or coordination, got ${quote(flag)}`,
      );
    }
    return flag as Backend;
  }
  const env = ctx.io.env;
  if (env.PAPERCLIP_API_URL && env.PAPERCLIP_API_KEY) return 'paperclip';
  if (env.EXEC_KERNEL_COORDINATION_URL) return 'coordination';
  const { config } = await configFor(ctx);
  return config.coordination.url === null ? 'local' : 'coordination';
}

/**
 * The Paperclip adapter for this call, from the heartbeat's `PAPERCLIP_*` variables, with the
 * config's loop and admission settings and the agent's sleep state from the local store (so
 * `exec-kernel sleep` also stops task creation on Paperclip).
 */
export async function paperclipFor(
  ctx: CommandContext,
  agentId?: string,
): Promise<PaperclipAdapter> {
  const [{ PaperclipAdapter }, { config }, memory] = await Promise.all([
    import('@exec-kernel/paperclip'),
    configFor(ctx),
    memoryFor(ctx),
  ]);
  const { idle } = await memory.snapshot();
  const env = ctx.io.env;
  return PaperclipAdapter.fromEnv(env, {
    maxDepth: config.lifecycle.maxDepth,
    admissionRequired: config.admission.required,
    idle,
    ...(config.paperclip.apiUrl !== null && !env.PAPERCLIP_API_URL
      ? { apiUrl: config.paperclip.apiUrl }
      : {}),
    ...(config.paperclip.companyId !== null && !env.PAPERCLIP_COMPANY_ID
      ? { companyId: config.paperclip.companyId }
      : {}),
    ...(agentId === undefined ? {} : { agentId }),
  });
}

/**
 * A client of the coordination service at `coordination.url` (or `EXEC_KERNEL_COORDINATION_URL`),
 * with the token from `EXEC_KERNEL_COORDINATION_TOKEN`.
 */
export async function coordinationFor(ctx: CommandContext): Promise<CoordinationClient> {
  const [{ CoordinationClient }, { config }] = await Promise.all([
    import('@exec-kernel/coordination/client'),
    configFor(ctx),
  ]);
  const { url, token } = config.coordination;
  const missing = [
    url === null ? 'EXEC_KERNEL_COORDINATION_URL' : '',
    token === null ? 'EXEC_KERNEL_COORDINATION_TOKEN' : '',
  ].filter(Boolean);
  if (url === null || token === null) {
    const { ConfigError } = await import('@exec-kernel/core');
    throw new ConfigError(`The coordination service is not configured: set ${missing.join(', ')}`, {
      path: 'env',
      key: missing[0],
    });
  }
  return new CoordinationClient({ url, token });
}
