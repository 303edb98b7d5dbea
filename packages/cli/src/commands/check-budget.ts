import { assertWithinBudget, type BudgetUsage, resolveLimits } from '@exec-kernel/budget';
import { formatAmount } from '@exec-kernel/core';
import { BUDGET_NUMBERS, idArg } from '../args.js';
import type { Command } from '../context.js';
import { configFor, memoryFor } from '../services.js';

export const checkBudget: Command = {
  usage: `Usage: exec-kernel check-budget <task-id> [options]

Checks a task's spending against its budget. A task in the store is checked with its recorded
steps, elapsed time and limits; flags given override them. Limits not given come from the
config (budget.*). A limit is the amount allowed: 10 of 10 steps passes, 11 fails.

Options:
  --steps <n>          steps taken            --max-steps <n>       step limit
  --elapsed <s>        seconds elapsed        --max-duration <s>    duration limit
  --tokens <n>         tokens used            --max-tokens <n>      token limit
  --cost <usd>         dollars spent          --max-cost <usd>      cost limit

Examples:
  exec-kernel check-budget task-1 --steps 5 --max-steps 10
      OK: 5 steps, 0s elapsed (max 10 steps, 1800s)
  exec-kernel check-budget task-1 --steps 15 --max-steps 10
      EXCEEDED: [steps] Task task-1 exceeded step budget: 15 steps taken, max 10
`,
  options: {
    steps: { type: 'string' },
    elapsed: { type: 'string' },
    tokens: { type: 'string' },
    cost: { type: 'string' },
    'max-steps': { type: 'string' },
    'max-duration': { type: 'string' },
    'max-tokens': { type: 'string' },
    'max-cost': { type: 'string' },
  },
  positionals: { min: 1, max: 1, names: '<task-id>' },
  args: {
    'task-id': idArg('task id'),
    steps: BUDGET_NUMBERS.steps,
    elapsed: BUDGET_NUMBERS.seconds,
    tokens: BUDGET_NUMBERS.tokens,
    cost: BUDGET_NUMBERS.dollars,
    'max-steps': BUDGET_NUMBERS.steps,
    'max-duration': BUDGET_NUMBERS.seconds,
    'max-tokens': BUDGET_NUMBERS.tokens,
    'max-cost': BUDGET_NUMBERS.dollars,
  },
  async run(ctx) {
    const [taskId] = ctx.positionals as [string];
    const n = ctx.numbers;
    const flags = {
      stepsTaken: n.steps,
      elapsedSeconds: n.elapsed,
      tokens: n.tokens,
      costUsd: n.cost,
      maxSteps: n['max-steps'],
      maxDurationSeconds: n['max-duration'],
      maxTokens: n['max-tokens'],
      maxCostUsd: n['max-cost'],
    };
    const { config } = await configFor(ctx);
    const stored = (await (await memoryFor(ctx)).snapshot()).budget.get(taskId);
    const limits = resolveLimits(
      {
        maxSteps: flags.maxSteps,
        maxDurationSeconds: flags.maxDurationSeconds,
        maxTokens: flags.maxTokens,
        maxCostUsd: flags.maxCostUsd,
      },
      stored?.limits ?? resolveLimits(config.budget),
    );
    const usage = {
      stepsTaken: flags.stepsTaken ?? stored?.stepsTaken ?? 0,
      elapsedSeconds: flags.elapsedSeconds ?? stored?.elapsedSeconds ?? 0,
      tokens: flags.tokens ?? stored?.tokens ?? 0,
      costUsd: flags.costUsd ?? stored?.costUsd ?? 0,
    } satisfies BudgetUsage;
    assertWithinBudget(taskId, usage, limits);
    const line =
      `OK: ${usage.stepsTaken} steps, ${Math.floor(usage.elapsedSeconds)}s elapsed ` +
      `(max ${limits.maxSteps} steps, ${formatAmount(limits.maxDurationSeconds)}s)`;
    return { line, data: { ok: true, taskId, ...usage, limits, known: stored !== undefined } };
  },
};
