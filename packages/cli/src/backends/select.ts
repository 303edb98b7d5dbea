import type { CommandContext } from '../context.js';
import { UsageError } from '../context.js';
import { quote } from '../render.js';
import { configFor } from '../services.js';
import type { BackendName, TaskBackend } from './backend.js';

const BACKENDS = new Set<BackendName>(['local', 'paperclip', 'coordination']);

/**
 * Which backend a call uses: `--backend`, else Paperclip when `PAPERCLIP_API_URL` and
 * `PAPERCLIP_API_KEY` are set (as inside every Paperclip heartbeat), else a coordination service
 * when `EXEC_KERNEL_COORDINATION_URL` (or `coordination.url` in the config) is set, else local.
 */
export async function backendNameFor(ctx: CommandContext): Promise<BackendName> {
  const flag = ctx.values.backend;
  if (typeof flag === 'string') {
    if (!BACKENDS.has(flag as BackendName)) {
      throw new UsageError(
        `--backend must be local, paperclip or coordination, got ${quote(flag)}`,
      );
    }
    return flag as BackendName;
  }
  const env = ctx.io.env;
  if (env.PAPERCLIP_API_URL && env.PAPERCLIP_API_KEY) return 'paperclip';
  if (env.EXEC_KERNEL_COORDINATION_URL) return 'coordination';
  const { config } = await configFor(ctx);
  return config.coordination.url === null ? 'local' : 'coordination';
}

/**
 * The backend for this call (see {@link backendNameFor}). Each is loaded on first use, and the
 * Paperclip adapter and the coordination client only by the backends that need them.
 */
export async function backendFor(ctx: CommandContext): Promise<TaskBackend> {
  switch (await backendNameFor(ctx)) {
    case 'paperclip':
      return new (await import('./paperclip.js')).PaperclipBackend(ctx);
    case 'coordination':
      return new (await import('./coordination.js')).CoordinationBackend(ctx);
    default:
      return new (await import('./local.js')).LocalBackend(ctx);
  }
}
