import { stat } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { LIMIT_MAXIMUMS } from '@exec-kernel/budget';
import { formatAmount } from '@exec-kernel/core';
import type { SleepRecord, WakeReason } from '@exec-kernel/lifecycle';
import type { TaskMemory } from '@exec-kernel/memory';
import { got, idArg, numberArg, requiredFlag, stringFlag } from '../args.js';
import { type Command, UsageError } from '../context.js';
import { configFor, memoryFor } from '../services.js';

// How often a sleeping process looks at the store for a wake from another process.
const POLL_MS = 100;

async function modifiedAt(path: string): Promise<number> {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return 0;
  }
}

/** Resolves with why the sleep ended: its timeout, a `wake` by another process, or `signal`. */
async function waitForWake(
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

export const sleep: Command = {
  usage: `Usage: exec-kernel sleep --agent-id <id> [--timeout <seconds>] [--reason <text>]

Puts an agent to sleep because it has nothing to do: until the timeout passes or another process
runs 'exec-kernel wake', 'exec-kernel task create' refuses that agent's new tasks. Prints a SLEEP
line, blocks, then prints a WAKE line with why it ended (timeout, woken or task_available).

Options:
  --agent-id <id>      the agent going idle (required)
  --timeout <seconds>  how long at most (default: idle.default_timeout_seconds, 300)
  --reason <text>      why (default: no_tasks)

Example:
  exec-kernel sleep --timeout 30 --agent-id agent-1
      SLEEP:idle agent=agent-1 reason=no_tasks timeout=30s
      WAKE: agent=agent-1 reason=timeout
`,
  options: {
    'agent-id': { type: 'string' },
    timeout: { type: 'string' },
    reason: { type: 'string' },
  },
  positionals: { min: 0, max: 0, names: '' },
  args: {
    'agent-id': idArg('agent id'),
    timeout: numberArg({ exclusiveMin: true, max: LIMIT_MAXIMUMS.maxDurationSeconds }),
    reason: idArg('sleep reason'),
  },
  async run(ctx) {
    const agentId = requiredFlag(ctx.values, 'agent-id');
    const reason = stringFlag(ctx.values, 'reason') ?? 'no_tasks';
    const timeoutFlag = ctx.numbers.timeout;
    const { config } = await configFor(ctx);
    const timeoutSeconds = timeoutFlag ?? config.idle.defaultTimeoutSeconds;
    const memory = await memoryFor(ctx);
    const record = await memory.transaction((s) =>
      s.idle.sleep({ agentId, timeoutSeconds, reason }),
    );
    ctx.out.result(
      `SLEEP:idle agent=${agentId} reason=${reason} timeout=${formatAmount(timeoutSeconds)}s`,
      {
        event: 'sleep',
        ...record,
        timeoutSeconds,
      },
    );

    let ended = await waitForWake(memory, record, ctx.io.signal);
    if (ended === 'interrupted') {
      // Interrupted by the user or a supervisor: end the sleep rather than leave it in force.
      await memory.transaction((s) => s.idle.wake(agentId, 'woken'));
      ended = 'woken';
      ctx.out.result(`WAKE: agent=${agentId} reason=${ended}`, {
        event: 'wake',
        agentId,
        reason: ended,
      });
      return 130;
    }
    ctx.out.result(`WAKE: agent=${agentId} reason=${ended}`, {
      event: 'wake',
      agentId,
      reason: ended,
    });
    return 0;
  },
};

const WAKE_REASONS = new Set(['woken', 'task_available']);

export const wake: Command = {
  usage: `Usage: exec-kernel wake --agent-id <id> [--reason woken|task_available]

Ends an agent's sleep; a 'sleep' command blocking for that agent prints its WAKE line and exits.

Options:
  --agent-id <id>   the agent to wake (required)
  --reason <r>      woken (default) or task_available
`,
  options: { 'agent-id': { type: 'string' }, reason: { type: 'string' } },
  positionals: { min: 0, max: 0, names: '' },
  args: { 'agent-id': idArg('agent id') },
  async run(ctx) {
    const agentId = requiredFlag(ctx.values, 'agent-id');
    const reason = stringFlag(ctx.values, 'reason') ?? 'woken';
    if (!WAKE_REASONS.has(reason)) {
      throw new UsageError(`--reason must be woken or task_available, ${got(reason)}`);
    }
    const memory = await memoryFor(ctx);
    const woke = await memory.transaction((s) => s.idle.wake(agentId, reason as WakeReason));
    if (woke === undefined) {
      ctx.out.result(`OK: agent ${agentId} was not asleep`, { woken: false, agentId });
    } else {
      ctx.out.result(`WOKE: agent=${agentId} reason=${reason}`, { woken: true, ...woke });
    }
    return 0;
  },
};
