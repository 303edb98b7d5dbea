import type {
  AgentListItemView,
  EscalationView,
  EventView,
} from '@exec-kernel/coordination-client';
import { KernelError, TransportError } from '@exec-kernel/core';
import { got, idArg, numberArg, stringFlag, textArg } from '../args.js';
import { clientFor } from '../backends/coordination.js';
import { type Command, type CommandResult, UsageError } from '../context.js';
import { jsonLine, printable } from '../render.js';

// The operator's commands: the coordination service's escalation queue, its event log and its
// agents, from a shell. They talk to the service at EXEC_KERNEL_COORDINATION_URL with the token in
// EXEC_KERNEL_COORDINATION_TOKEN (the admin token, for all but `events` of one's own).

const ESCALATION_ID = idArg('escalation id');
const STATUSES = new Set(['open', 'acknowledged', 'resolved']);
const LIMIT = numberArg({ integer: true, exclusiveMin: true, max: 1000 });
const SEQ = numberArg({ integer: true, max: Number.MAX_SAFE_INTEGER });
const MAX_RESOLUTION = 10_000;

const SERVICE_ENV = `The service is EXEC_KERNEL_COORDINATION_URL, with the admin token in
EXEC_KERNEL_COORDINATION_TOKEN.`;

/** One escalation as one line: id, status, kind, task, agent, and what happened. */
export function escalationLine(e: EscalationView): string {
  const what = e.violation?.message ?? e.comment ?? '';
  const kind = e.violation?.kind === undefined ? e.kind : `${e.kind}/${e.violation.kind}`;
  return printable(
    `${e.id} ${e.status} ${kind} task=${e.taskId ?? '-'} agent=${e.agentId ?? '-'}: ${what}`,
  );
}

/** One event as one line: its position, time, type, task, agent and data. */
export function eventLine(e: EventView): string {
  const data = e.data === null || e.data === undefined ? '' : ` ${jsonLine(e.data)}`;
  return printable(
    `${e.seq} ${e.at} ${e.type} task=${e.taskId ?? '-'} agent=${e.agentId ?? '-'}${data}`,
  );
}

/** One agent as one line: id, asleep (and until when) or awake, and the tasks it holds. */
export function agentLine(a: AgentListItemView): string {
  const sleep = a.asleep
    ? `asleep${a.sleepUntil === null ? '' : ` until ${a.sleepUntil}`}`
    : 'awake';
  const held = a.holding.length === 0 ? '-' : a.holding.join(',');
  return printable(`${a.id} ${sleep} holding ${a.holding.length}: ${held}`);
}

export const escalationList: Command = {
  usage: `Usage: exec-kernel escalation list [--status open|acknowledged|resolved] [--after <seq>] [--limit <n>]

Lists the coordination service's escalations, oldest first, one line each:
  <id> <status> <kind>[/<violation kind>] task=<id> agent=<id>: <message>
A page holds --limit of them (default 100); the last line says where the next page starts.
${SERVICE_ENV}
`,
  options: {
    status: { type: 'string' },
    after: { type: 'string' },
    limit: { type: 'string' },
  },
  positionals: { min: 0, max: 0, names: '' },
  args: { after: SEQ, limit: LIMIT },
  async run(ctx) {
    const status = stringFlag(ctx.values, 'status');
    if (status !== undefined && !STATUSES.has(status)) {
      throw new UsageError(`--status must be open, acknowledged or resolved, ${got(status)}`);
    }
    const page = await (await clientFor(ctx)).listEscalations({
      ...(status === undefined ? {} : { status: status as 'open' | 'acknowledged' | 'resolved' }),
      ...(ctx.numbers.after === undefined ? {} : { after: ctx.numbers.after }),
      ...(ctx.numbers.limit === undefined ? {} : { limit: ctx.numbers.limit }),
    });
    const lines = page.escalations.map(escalationLine);
    if (lines.length === 0) lines.push('No escalations.');
    if (page.next !== null) lines.push(`More: exec-kernel escalation list --after ${page.next}`);
    return { lines, data: page };
  },
};

export const escalationAck: Command = {
  usage: `Usage: exec-kernel escalation ack <escalation-id>

Acknowledges an open escalation: someone is on it. ${SERVICE_ENV}
`,
  options: {},
  positionals: { min: 1, max: 1, names: '<escalation-id>' },
  args: { 'escalation-id': ESCALATION_ID },
  async run(ctx) {
    const [id] = ctx.positionals as [string];
    const escalation = await (await clientFor(ctx)).acknowledge(id);
    return { line: `ACKNOWLEDGED: ${escalationLine(escalation)}`, data: { escalation } };
  },
};

export const escalationResolve: Command = {
  usage: `Usage: exec-kernel escalation resolve <escalation-id> [--resolution <text>] [--requeue]

Resolves an escalation. With --requeue, its blocked task goes back to todo for another try.
${SERVICE_ENV}
`,
  options: { resolution: { type: 'string' }, requeue: { type: 'boolean' } },
  positionals: { min: 1, max: 1, names: '<escalation-id>' },
  args: { 'escalation-id': ESCALATION_ID, resolution: textArg('resolution', MAX_RESOLUTION) },
  async run(ctx) {
    const [id] = ctx.positionals as [string];
    const resolution = stringFlag(ctx.values, 'resolution');
    const escalation = await (await clientFor(ctx)).resolve(id, {
      ...(resolution === undefined ? {} : { resolution }),
      ...(ctx.values.requeue === true ? { requeue: true } : {}),
    });
    return { line: `RESOLVED: ${escalationLine(escalation)}`, data: { escalation } };
  },
};

export const events: Command = {
  usage: `Usage: exec-kernel events [--after <seq>] [--limit <n>] [--task <task-id>] [--follow]

Prints the coordination service's event log from after --after, one line each:
  <seq> <time> <type> task=<id> agent=<id> <data as JSON>
With --task, only that task's events: the service filters the page (a full --limit of them).
With --follow it then keeps printing events as they happen, until interrupted (Ctrl-C); with
--task too, the stream carries every event and this command drops the other tasks' itself.
${SERVICE_ENV}
`,
  options: {
    after: { type: 'string' },
    limit: { type: 'string' },
    task: { type: 'string' },
    follow: { type: 'boolean' },
  },
  positionals: { min: 0, max: 0, names: '' },
  args: { after: SEQ, limit: LIMIT, task: idArg('task id') },
  async run(ctx) {
    const client = await clientFor(ctx);
    const after = ctx.numbers.after ?? 0;
    const taskId = stringFlag(ctx.values, 'task');
    if (ctx.values.follow !== true) {
      const page = await client.events({
        after,
        ...(ctx.numbers.limit === undefined ? {} : { limit: ctx.numbers.limit }),
        ...(taskId === undefined ? {} : { taskId }),
      });
      const lines = page.events.map(eventLine);
      if (lines.length === 0) lines.push('No events.');
      return { lines, data: page };
    }
    let last = after;
    const signal = ctx.io.signal ?? new AbortController().signal;
    try {
      for await (const event of client.stream({ after, signal })) {
        last = event.seq;
        if (taskId !== undefined && event.taskId !== taskId) continue;
        ctx.out.progress({ line: eventLine(event), data: { event } });
      }
    } catch (error) {
      if (!signal.aborted && KernelError.is(error)) throw error;
    }
    if (!signal.aborted) {
      // The stream only ends when the service stops or the connection drops: say so, and where.
      const base = client.url.replace(/\/+$/, '');
      throw new TransportError(
        { method: 'GET', url: `${base}/v1/events/stream` },
        {
          message: `The event stream of ${base} ended after event ${last}: the service stopped or the connection dropped`,
        },
      );
    }
    const result: CommandResult = {
      line: `STOPPED: after event ${last}`,
      data: { stopped: true, after: last },
    };
    return { ...result, status: 130 };
  },
};

export const agentAdd: Command = {
  usage: `Usage: exec-kernel agent add <agent-id>

Registers an agent with the coordination service (admin) and prints its token, alone on the line,
so it can be captured: TOKEN=$(exec-kernel agent add worker-1). Run it again to rotate the token:
the old one stops working. The token is shown this once. ${SERVICE_ENV}
`,
  options: {},
  positionals: { min: 1, max: 1, names: '<agent-id>' },
  args: { 'agent-id': idArg('agent id') },
  async run(ctx) {
    const [agentId] = ctx.positionals as [string];
    const registered = await (await clientFor(ctx)).registerAgent(agentId);
    return { line: registered.token, data: registered };
  },
};

export const agentList: Command = {
  usage: `Usage: exec-kernel agent list [--after <agent-id>] [--limit <n>]

Lists the agents registered with the coordination service (admin), ordered by id, one line each:
  <id> awake|asleep[ until <time>] holding <n>: <task ids, comma-separated, or ->
The tasks are those it holds under a live lease now. A page holds --limit of them (default 100);
the last line says where the next page starts. ${SERVICE_ENV}
`,
  options: { after: { type: 'string' }, limit: { type: 'string' } },
  positionals: { min: 0, max: 0, names: '' },
  args: { after: idArg('agent id'), limit: LIMIT },
  async run(ctx) {
    const after = stringFlag(ctx.values, 'after');
    const page = await (await clientFor(ctx)).listAgents({
      ...(after === undefined ? {} : { after }),
      ...(ctx.numbers.limit === undefined ? {} : { limit: ctx.numbers.limit }),
    });
    const lines = page.agents.map(agentLine);
    if (lines.length === 0) lines.push('No agents.');
    if (page.next !== null) lines.push(`More: exec-kernel agent list --after ${page.next}`);
    return { lines, data: page };
  },
};
