import {
  type BudgetUsage,
  budgetWarnings,
  evaluateBudget,
  evaluateUsageLeft,
  narrowHeadroom,
  UNLIMITED_HEADROOM,
  type UsageHeadroom,
} from '@exec-kernel/budget';
import { InvalidInputError, isTerminalState, NotFoundError } from '@exec-kernel/core';
import type { TaskRow } from '../model.js';
import { countOne, eventNow, type ServiceContext } from './context.js';
import { leaseGoneNow } from './leases.js';
import { agentOf, checkLease, endLease, liveExpectation } from './rules.js';
import type { Caller, SpendWarning, UsageLeft } from './types.js';
import { escalating } from './violations.js';

const MAX_LINEAGE_HOPS = 10_000;

/** What a spend records: steps and/or usage, on the lease the caller holds. */
export interface SpendDelta {
  steps?: number | undefined;
  tokens?: number | undefined;
  costUsd?: number | undefined;
  leaseId?: string | undefined;
}

/**
 * Records spending on a task and every budget ancestor (along `parentId`), then checks their
 * budgets, the task's first. Spending is counted even when it exceeds; the task is then
 * blocked, and the violation escalated. The task and its ancestry are read in one go.
 *
 * @throws BudgetExceededError naming the task whose budget was exceeded.
 */
export async function spend(
  ctx: ServiceContext,
  caller: Caller,
  id: string,
  delta: SpendDelta,
): Promise<{ task: TaskRow; warnings: SpendWarning[] }> {
  const lineage = await ctx.storage.lineage([id]);
  const byId = new Map<string, TaskRow>();
  for (const row of lineage) byId.set(row.id, row);
  const task = byId.get(id);
  if (task === undefined) throw new NotFoundError({ resource: 'task', id });
  checkLease(caller, task, delta.leaseId, ctx.clock.now());
  const agentId = agentOf(caller);
  const chain: string[] = [];
  const tokens = delta.tokens ?? 0;
  for (let t: TaskRow | undefined = task; t !== undefined && chain.length < MAX_LINEAGE_HOPS; ) {
    // Past 2^53 a count is no longer exact (and PostgreSQL's bigint ends soon after).
    if (t.tokens + tokens > Number.MAX_SAFE_INTEGER) throw tooManyTokens(t.id);
    chain.push(t.id);
    t = t.parentId === null ? undefined : byId.get(t.parentId);
  }
  const now = ctx.clock.now();
  const steps = delta.steps ?? 0;
  const costUsd = delta.costUsd ?? 0;
  const kind = steps > 0 ? 'task.step' : 'task.usage';
  // Compare-and-set on the lease as read: one that lapsed or changed hands since spends nothing.
  const rows = await ctx.storage.addSpending(
    chain,
    { steps, tokens, costUsd },
    now,
    eventNow(ctx, kind, { taskId: id, agentId, data: { steps, tokens, costUsd } }),
    caller.kind === 'agent'
      ? {
          state: 'in_progress',
          leaseId: task.leaseId,
          leaseOwner: task.leaseOwner,
          ...liveExpectation(caller, now),
        }
      : undefined,
  );
  if (rows === undefined) throw await leaseGoneNow(ctx, caller, id, delta.leaseId);
  const warnings: SpendWarning[] = [];
  return escalating(ctx, agentId, id, async () => {
    let spent = rows[0]?.id === id ? rows[0] : undefined;
    for (const row of rows) {
      if (isTerminalState(row.state)) continue;
      const usage: BudgetUsage = {
        stepsTaken: row.stepsTaken,
        elapsedSeconds: row.startedAt === null ? 0 : (now - row.startedAt) / 1000,
        tokens: row.tokens,
        costUsd: row.costUsd,
      };
      const warned = await warn(ctx, row, usage, warnings);
      if (warned !== undefined && row.id === id) spent = warned;
      const error = evaluateBudget(row.id, usage, row.limits);
      if (error !== undefined) {
        await blockOverrun(ctx, spent, agentId, error.message);
        throw error;
      }
    }
    return { task: spent ?? ((await ctx.storage.getTask(id)) as TaskRow), warnings };
  });
}

/**
 * Checks, before spending (a model call, say), that the task and each budget ancestor along
 * `parentId` still have tokens and dollars left, on the lease the caller holds (the admin needs
 * none), and answers the least left over the chain. Tasks in a terminal state are skipped, as
 * {@link spend} skips them. Nothing is recorded and the task is not blocked; a refusal is
 * escalated like every violation. The task and its ancestry are read in one go.
 *
 * @throws BudgetExceededError naming the first task (the caller's first, then up the chain) with
 * a token or cost budget used up; NotFoundError for an unknown task; the lease's refusals.
 */
export async function checkUsageLeft(
  ctx: ServiceContext,
  caller: Caller,
  id: string,
  options: { leaseId?: string | undefined },
): Promise<UsageLeft> {
  const lineage = await ctx.storage.lineage([id]);
  const byId = new Map<string, TaskRow>();
  for (const row of lineage) byId.set(row.id, row);
  const task = byId.get(id);
  if (task === undefined) throw new NotFoundError({ resource: 'task', id });
  checkLease(caller, task, options.leaseId, ctx.clock.now());
  return escalating(ctx, agentOf(caller), id, async () => {
    let remaining: UsageHeadroom = UNLIMITED_HEADROOM;
    let hops = 0;
    for (let t: TaskRow | undefined = task; t !== undefined && hops < MAX_LINEAGE_HOPS; hops++) {
      if (!isTerminalState(t.state)) {
        const error = evaluateUsageLeft(t.id, t, t.limits);
        if (error !== undefined) throw error;
        remaining = narrowHeadroom(remaining, t, t.limits);
      }
      t = t.parentId === null ? undefined : byId.get(t.parentId);
    }
    return { taskId: id, remaining: { ...remaining } };
  });
}

function tooManyTokens(taskId: string): InvalidInputError {
  return new InvalidInputError({
    field: 'tokens',
    problem: `would take the token count of task ${taskId} past ${Number.MAX_SAFE_INTEGER}`,
  });
}

/**
 * Records the warnings `budgetWarnings` finds newly due on `row` (the `warned` list and their
 * `budget.warning` events) and adds them to `warnings`. Returns the row as written, `undefined`
 * when nothing was (no warning due, or a concurrent writer recorded them first).
 */
async function warn(
  ctx: ServiceContext,
  row: TaskRow,
  usage: BudgetUsage,
  warnings: SpendWarning[],
): Promise<TaskRow | undefined> {
  const fresh = budgetWarnings(usage, row.limits, ctx.settings.warnAt, row.warned);
  if (fresh.length === 0) return undefined;
  const warned = [...row.warned, ...fresh.map((w) => w.budgetType)];
  const events = fresh.map(({ budgetType, observed, limit, fraction }) =>
    eventNow(ctx, 'budget.warning', {
      taskId: row.id,
      data: { budgetType, observed, limit, fraction },
    }),
  );
  // Only the first writer records the warning; a concurrent one finds `warned` changed.
  const updated = await ctx.storage.updateTask(
    row.id,
    { state: row.state },
    { warned },
    { events },
  );
  if (updated !== undefined) {
    for (const { budgetType, fraction } of fresh)
      warnings.push({ taskId: row.id, budgetType, fraction });
  }
  return updated;
}

/**
 * Blocks the task whose spending ran over (if it is still leased, as `task` was read after the
 * spending), so work stops; the move is counted with the others.
 */
async function blockOverrun(
  ctx: ServiceContext,
  task: TaskRow | undefined,
  agentId: string,
  message: string,
): Promise<void> {
  if (task === undefined || task.state !== 'in_progress') return;
  const id = task.id;
  const updated = await ctx.storage.updateTask(
    id,
    { state: 'in_progress', leaseId: task.leaseId },
    endLease('blocked', ctx.clock.now()),
    {
      events: [
        eventNow(ctx, 'task.transitioned', {
          taskId: id,
          agentId,
          data: { from: 'in_progress', to: 'blocked', reason: 'Work blocked', comment: message },
        }),
      ],
    },
  );
  if (updated !== undefined) countOne(ctx.counters.transitions, 'blocked');
}
