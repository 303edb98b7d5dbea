import type { EventRow } from '../model.js';
import { type ServiceContext, waitForChange } from './context.js';

/**
 * Events after `afterSeq`, in order. A gap in the log (a write on another instance still
 * committing) is waited for up to `eventGapMs` before it is skipped, so a reader following the
 * cursor misses nothing that commits late. One task's events (`taskId`) have gaps by nature: the
 * engine's own hold on seqs still in flight (PostgreSQL's horizon) is all that applies to them.
 */
export async function readEvents(
  ctx: ServiceContext,
  afterSeq: number,
  limit: number,
  taskId?: string | undefined,
): Promise<EventRow[]> {
  if (taskId !== undefined) return ctx.storage.readEvents(afterSeq, limit, taskId);
  const rows = await ctx.storage.readEvents(afterSeq, limit);
  const out: EventRow[] = [];
  let last = afterSeq;
  for (const row of rows) {
    if (row.seq !== last + 1 && ctx.clock.now() - row.at < ctx.settings.eventGapMs) break;
    out.push(row);
    last = row.seq;
  }
  return out;
}

/** Waits until events after the reader's cursor may exist, for `ms` at most. */
export function waitForEvents(
  ctx: ServiceContext,
  ms: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  return waitForChange(ctx, ms, signal);
}
