import { stat } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import type { SleepRecord, WakeReason } from '@exec-kernel/lifecycle';
import type { TaskMemory } from '@exec-kernel/memory';

// How often a sleeping process looks at the store for a wake from another process.
const POLL_MS = 100;

async function modifiedAt(path: string): Promise<number> {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return 0;
  }
}

/**
 * Resolves with why a sleep in the local store ended: its timeout, a `wake` by another process,
 * or `signal`. Reads the store only when its file has changed.
 */
export async function waitForLocalWake(
  memory: TaskMemory,
  sleep: SleepRecord,
  signal: AbortSignal | undefined,
): Promise<WakeReason | 'interrupted'> {
  const until = Date.parse(sleep.until);
  let seen = -1;
  while (true) {
    if (signal?.aborted) return 'interrupted';
    const left = until - Date.now();
    if (left <= 0) return 'timeout';
    const mtime = await modifiedAt(memory.store.location);
    if (mtime !== seen) {
      seen = mtime;
      const agent = (await memory.store.read()).agents.get(sleep.agentId);
      if (agent?.sleep?.since !== sleep.since) {
        // Our sleep record is gone: woken (lastWake says how), or replaced by a newer sleep.
        const wake = agent?.lastWake;
        return wake !== undefined && wake.at >= sleep.since ? wake.reason : 'woken';
      }
    }
    try {
      await delay(Math.min(POLL_MS, left), undefined, signal === undefined ? {} : { signal });
    } catch {
      return 'interrupted';
    }
  }
}
