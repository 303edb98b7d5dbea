import { LIMIT_MAXIMUMS } from '@exec-kernel/budget';
import { formatAmount } from '@exec-kernel/core';
import type { WakeReason } from '@exec-kernel/lifecycle';
import { got, idArg, numberArg, requiredFlag, stringFlag } from '../args.js';
import { backendFor } from '../backends/select.js';
import { type Command, type CommandResult, UsageError } from '../context.js';
import { configFor } from '../services.js';

function wakeLine(agentId: string, reason: WakeReason, status?: number): CommandResult {
  return {
    line: `WAKE: agent=${agentId} reason=${reason}`,
    data: { event: 'wake', agentId, reason },
    ...(status === undefined ? {} : { status }),
  };
}

export const sleep: Command = {
  usage: `Usage: exec-kernel sleep --agent-id <id> [--timeout <seconds>] [--reason <text>]

Puts an agent to sleep because it has nothing to do: until the timeout passes or another process
runs 'exec-kernel wake', 'exec-kernel task create' refuses that agent's new tasks. Prints a SLEEP
line, blocks, then prints a WAKE line with why it ended (timeout, woken or task_available).

With a coordination service (EXEC_KERNEL_COORDINATION_URL) the agent sleeps on the service, so
its 'task create' there is refused, and the sleep ends when the service says it has; there a wake
reads 'woken' whatever its reason. On Paperclip, which has no sleep, it sleeps in the local store,
which the Paperclip backend reads.

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
    const timeoutSeconds =
      ctx.numbers.timeout ?? (await configFor(ctx)).config.idle.defaultTimeoutSeconds;
    const backend = await backendFor(ctx);
    const asleep = await backend.sleep({ agentId, timeoutSeconds, reason });
    ctx.out.progress({
      line: `SLEEP:idle agent=${agentId} reason=${reason} timeout=${formatAmount(timeoutSeconds)}s`,
      data: { event: 'sleep', ...asleep.sleep, timeoutSeconds },
    });
    const ended = await asleep.wait(ctx.io.signal);
    if (ended === 'interrupted') {
      // Interrupted by the user or a supervisor: end the sleep rather than leave it in force.
      await backend.wake(agentId, 'woken');
      return wakeLine(agentId, 'woken', 130);
    }
    return wakeLine(agentId, ended);
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
    const woke = await (await backendFor(ctx)).wake(agentId, reason as WakeReason);
    return woke.woken
      ? { line: `WOKE: agent=${agentId} reason=${reason}`, data: woke.data }
      : { line: `OK: agent ${agentId} was not asleep`, data: woke.data };
  },
};
