import { LIMIT_MAXIMUMS } from '@exec-kernel/budget';
import { idArg, numberArg, stringFlag } from '../args.js';
import { BACKEND_OPTION } from '../backends/backend.js';
import { backendFor } from '../backends/select.js';
import type { Command } from '../context.js';
import { AGENT_ID, TASK_ID } from './task.js';

/** Seconds of a lease or a wait: the coordination client's timer must not overflow (24.8 days). */
const LEASE_SECONDS = numberArg({ exclusiveMin: true, max: LIMIT_MAXIMUMS.maxDurationSeconds });
const WAIT_SECONDS = numberArg({ max: 86_400 });

export const taskCheckout: Command = {
  usage: `Usage: exec-kernel task checkout <task-id> [--agent-id <id>] [--backend paperclip|coordination]

Claims a task for this agent (todo -> in_progress): a Paperclip checkout for this run, or a lease
on a coordination service. Exit 1 with the holder named when someone else has it.
`,
  options: {
    ...BACKEND_OPTION,
    'agent-id': { type: 'string' },
    'lease-seconds': { type: 'string' },
  },
  positionals: { min: 1, max: 1, names: '<task-id>' },
  args: { 'task-id': TASK_ID, 'agent-id': AGENT_ID, 'lease-seconds': LEASE_SECONDS },
  async run(ctx) {
    const [taskId] = ctx.positionals as [string];
    const held = await (await backendFor(ctx)).checkout(taskId, {
      agentId: stringFlag(ctx.values, 'agent-id'),
      leaseSeconds: ctx.numbers['lease-seconds'],
    });
    const lease =
      held.lease === undefined ? '' : `, lease ${held.lease.id} until ${held.lease.until}`;
    return { line: `OK: ${held.name} checked out (${held.state}${lease})`, data: held.data };
  },
};

export const taskRelease: Command = {
  usage: `Usage: exec-kernel task release <task-id> [--agent-id <id>] [--backend paperclip|coordination]

Gives a checked-out task back: in_progress returns to todo.
`,
  options: { ...BACKEND_OPTION, 'agent-id': { type: 'string' } },
  positionals: { min: 1, max: 1, names: '<task-id>' },
  args: { 'task-id': TASK_ID, 'agent-id': AGENT_ID },
  async run(ctx) {
    const [taskId] = ctx.positionals as [string];
    const held = await (await backendFor(ctx)).release(taskId, {
      agentId: stringFlag(ctx.values, 'agent-id'),
    });
    return { line: `OK: ${held.name} released (${held.state})`, data: held.data };
  },
};

export const taskClaim: Command = {
  usage: `Usage: exec-kernel task claim [--type <type>]... [--wait <seconds>] [--lease-seconds <s>]

Claims the next todo task from a coordination service (highest priority, then oldest), waiting up
to --wait seconds for one. Prints the task and its lease; exit 0 with "No task." when none came.
`,
  options: {
    ...BACKEND_OPTION,
    type: { type: 'string', multiple: true },
    wait: { type: 'string' },
    'lease-seconds': { type: 'string' },
  },
  positionals: { min: 0, max: 0, names: '' },
  args: { type: idArg('task type'), wait: WAIT_SECONDS, 'lease-seconds': LEASE_SECONDS },
  async run(ctx) {
    const claimed = await (await backendFor(ctx)).claim({
      waitSeconds: ctx.numbers.wait ?? 0,
      leaseSeconds: ctx.numbers['lease-seconds'],
      types: ctx.values.type as string[] | undefined,
    });
    if (claimed === undefined) return { line: 'No task.', data: { task: null } };
    const { taskId, type, lease } = claimed;
    return {
      line: `CLAIMED: ${taskId} type=${type} lease=${lease.id} until=${lease.until}`,
      data: claimed.data,
    };
  },
};
