import { setTimeout as delay } from 'node:timers/promises';
import { type Clock, InvalidInputError } from '@exec-kernel/core';
import type { IdleGuard } from '@exec-kernel/lifecycle';
import type { WaitForWorkOptions, WaitResult } from './task-types.js';
import type { InboxItem } from './types.js';

/**
 * While `agentId` sleeps in `idle`, polls `inbox` and returns as soon as work is assigned (waking
 * the agent with `task_available`), or when the sleep times out or ends by a wake.
 *
 * @throws InvalidInputError for a `pollIntervalMs` outside 10 ms to 1 hour.
 */
export async function waitForWork(
  idle: IdleGuard,
  agentId: string,
  clock: Clock,
  inbox: () => Promise<InboxItem[]>,
  options: WaitForWorkOptions,
): Promise<WaitResult> {
  const interval = options.pollIntervalMs ?? 5_000;
  if (!(interval >= 10 && interval <= 3_600_000)) {
    throw new InvalidInputError({
      field: 'pollIntervalMs',
      problem: 'must be a number of milliseconds from 10 to 3600000',
    });
  }
  const sleep = idle.sleepOf(agentId);
  if (sleep === undefined) return { reason: 'woken', tasks: [] };
  const until = Date.parse(sleep.until);
  while (true) {
    if (!idle.isAsleep(agentId)) {
      return { reason: clock.now() >= until ? 'timeout' : 'woken', tasks: [] };
    }
    const tasks = await inbox();
    if (tasks.length > 0) {
      idle.wake(agentId, 'task_available');
      return { reason: 'task_available', tasks };
    }
    const left = until - clock.now();
    if (left <= 0) return { reason: 'timeout', tasks: [] };
    await delay(
      Math.min(interval, left),
      undefined,
      options.signal ? { signal: options.signal } : {},
    );
  }
}
