import { checkId, ForbiddenError, NotFoundError, toIsoTime } from '@exec-kernel/core';
import type { AgentRow } from '../model.js';
import type { AgentHolding } from '../storage/storage.js';
import { eventNow, type ServiceContext } from './context.js';
import { requireAdmin } from './rules.js';
import { hashToken, newToken } from './tokens.js';
import type { Caller } from './types.js';

/** The caller a bearer token stands for, or `undefined` for an unknown token. */
export async function authenticate(
  ctx: ServiceContext,
  token: string,
): Promise<Caller | undefined> {
  const now = ctx.clock.now();
  const cached = ctx.callers.get(token);
  if (cached !== undefined && cached.until > now) return cached.caller;
  const hash = hashToken(token);
  let caller: Caller | undefined;
  if (hash === ctx.adminTokenHash) caller = { kind: 'admin' };
  else {
    const agent = await ctx.storage.findAgentByTokenHash(hash);
    if (agent !== undefined) caller = { kind: 'agent', agentId: agent.id };
  }
  if (caller === undefined) return undefined;
  // A token seen a moment ago is taken on trust for a second: an agent's every call would
  // otherwise hash it and read the database first. Rotation here drops it at once; another
  // instance's rotation reaches this one within the second.
  if (ctx.callers.size >= 10_000) ctx.callers.clear();
  ctx.callers.set(token, { caller, until: now + 1_000 });
  return caller;
}

/** Registers an agent (or gives it a new token); the token is returned once and stored hashed. */
export async function registerAgent(
  ctx: ServiceContext,
  caller: Caller,
  agentId: string,
): Promise<{ agentId: string; token: string }> {
  requireAdmin(caller, 'register agents');
  checkId(agentId, 'agent id');
  for (const [known, entry] of ctx.callers) {
    if (entry.caller.kind === 'agent' && entry.caller.agentId === agentId)
      ctx.callers.delete(known);
  }
  const token = newToken('ekt');
  const existing = await ctx.storage.getAgent(agentId);
  const now = ctx.clock.now();
  await ctx.storage.putAgent({
    id: agentId,
    tokenHash: hashToken(token),
    sleepUntil: existing?.sleepUntil ?? null,
    sleepReason: existing?.sleepReason ?? null,
    sleepSince: existing?.sleepSince ?? null,
    createdAt: existing?.createdAt ?? now,
  });
  await ctx.storage.appendEvent(
    eventNow(ctx, 'agent.registered', { agentId, data: { rotated: existing !== undefined } }),
  );
  return { agentId, token };
}

/**
 * An agent as stored.
 *
 * @throws ForbiddenError for an agent reading another; NotFoundError for an unknown agent.
 */
export async function getAgent(
  ctx: ServiceContext,
  caller: Caller,
  agentId: string,
): Promise<AgentRow> {
  if (caller.kind === 'agent' && caller.agentId !== agentId) {
    throw new ForbiddenError(
      { agentId: caller.agentId, action: `read agent ${agentId}` },
      { message: `Agent ${caller.agentId} may not read agent ${agentId}` },
    );
  }
  const agent = await ctx.storage.getAgent(agentId);
  if (agent === undefined) throw new NotFoundError({ resource: 'agent', id: agentId });
  return agent;
}

/**
 * A page of agents by id, after `afterId`, each with the tasks it holds under a lease live now
 * (by the service's clock).
 *
 * @throws ForbiddenError for an agent: only the admin lists agents.
 */
export async function listAgents(
  ctx: ServiceContext,
  caller: Caller,
  page: { afterId?: string | undefined; limit: number },
): Promise<AgentHolding[]> {
  requireAdmin(caller, 'list agents');
  return ctx.storage.listAgentsHolding({ ...page, now: ctx.clock.now() });
}

/** Puts an agent to sleep: until woken or timed out, it may not enqueue tasks. */
export async function sleep(
  ctx: ServiceContext,
  caller: Caller,
  agentId: string,
  options: { timeoutSeconds?: number | undefined; reason?: string | undefined },
): Promise<AgentRow> {
  await getAgent(ctx, caller, agentId);
  const now = ctx.clock.now();
  const until = now + (options.timeoutSeconds ?? ctx.settings.idleTimeoutSeconds) * 1000;
  const reason = options.reason ?? 'no_tasks';
  const agent = await ctx.storage.updateAgent(
    agentId,
    { sleepUntil: until, sleepReason: reason, sleepSince: now },
    eventNow(ctx, 'agent.sleep', { agentId, data: { reason, until: toIsoTime(until) } }),
  );
  return agent as AgentRow;
}

/** Ends an agent's sleep; says whether it was asleep. */
export async function wake(
  ctx: ServiceContext,
  caller: Caller,
  agentId: string,
  reason: 'woken' | 'task_available',
): Promise<{ agent: AgentRow; wasAsleep: boolean }> {
  const before = await getAgent(ctx, caller, agentId);
  const wasAsleep = before.sleepUntil !== null && ctx.clock.now() < before.sleepUntil;
  const agent = await ctx.storage.updateAgent(
    agentId,
    { sleepUntil: null, sleepReason: null, sleepSince: null },
    wasAsleep ? eventNow(ctx, 'agent.wake', { agentId, data: { reason } }) : undefined,
  );
  return { agent: agent as AgentRow, wasAsleep };
}
