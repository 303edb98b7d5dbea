import type { PaperclipAdapter } from '@exec-kernel/paperclip';
import type { CommandContext } from './context.js';
import { UsageError } from './context.js';
import { configFor, memoryFor } from './services.js';

/** Where task commands act: the local file store, or a Paperclip server. */
export type Backend = 'local' | 'paperclip';

const BACKENDS = new Set<Backend>(['local', 'paperclip']);

/** The `--backend` option task commands take. */
export const BACKEND_OPTION = { backend: { type: 'string' } } as const;

/**
 * `--backend`, else Paperclip when `PAPERCLIP_API_URL` and `PAPERCLIP_API_KEY` are set (as inside
 * every Paperclip heartbeat), else the local store.
 */
export function backendFor(ctx: CommandContext): Backend {
  const flag = ctx.values.backend;
  if (typeof flag === 'string') {
    if (!BACKENDS.has(flag as Backend)) {
      throw new UsageError(`--backend must be local or paperclip, got '${flag}'`);
    }
    return flag as Backend;
  }
  const env = ctx.io.env;
  return env.PAPERCLIP_API_URL && env.PAPERCLIP_API_KEY ? 'paperclip' : 'local';
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
