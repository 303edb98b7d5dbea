import { LIMIT_MAXIMUMS } from '@exec-kernel/budget';
import { idArg, numberArg } from '../args.js';
import { BACKEND_OPTION } from '../backends/backend.js';
import { backendFor } from '../backends/select.js';
import type { Command } from '../context.js';

export const step: Command = {
  usage: `Usage: exec-kernel step <task-id> [--count <n>]

Records steps on a task's budget and checks its step and duration limits, and those of every
ancestor whose budget it spends. A step past the limit is still counted, then refused (exit 1),
so the count always tells the truth. Safe to run from many processes at once.

Options:
  --count <n>   how many steps (default 1)

Examples:
  exec-kernel step task-1              OK: task-1 step 1 of 50 (49 left)
`,
  options: { ...BACKEND_OPTION, count: { type: 'string' } },
  positionals: { min: 1, max: 1, names: '<task-id>' },
  args: {
    'task-id': idArg('task id'),
    count: numberArg({ integer: true, min: 1, max: LIMIT_MAXIMUMS.maxSteps }),
  },
  async run(ctx) {
    const [taskId] = ctx.positionals as [string];
    const count = ctx.numbers.count ?? 1;
    const stepped = await (await backendFor(ctx)).step(taskId, count);
    const { name, stepsTaken, maxSteps, left } = stepped;
    return {
      line: `OK: ${name} step ${stepsTaken} of ${maxSteps} (${left} left)`,
      data: stepped.data,
    };
  },
};
