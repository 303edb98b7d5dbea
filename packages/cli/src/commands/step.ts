import { LIMIT_MAXIMUMS } from '@exec-kernel/budget';
import { isTerminalState, NotFoundError } from '@exec-kernel/core';
import { idArg, numberArg } from '../args.js';
import { BACKEND_OPTION, backendFor, coordinationFor } from '../backend.js';
import type { Command } from '../context.js';
import { memoryFor } from '../services.js';

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
    if ((await backendFor(ctx)) === 'coordination') {
      const { task, warnings } = await (await coordinationFor(ctx)).step(taskId, { count });
      for (const w of warnings) {
        ctx.out.warn(
          `WARN: [${w.budgetType}] Task ${w.taskId} has used ${Math.round(w.fraction * 100)}% of its budget`,
        );
      }
      const left = Math.max(0, task.limits.maxSteps - task.stepsTaken);
      ctx.out.result(
        `OK: ${taskId} step ${task.stepsTaken} of ${task.limits.maxSteps} (${left} left)`,
        { task, warnings },
      );
      return 0;
    }
    const memory = await memoryFor(ctx);
    const result = await memory.transaction((s) => {
      const task = s.task(taskId);
      if (task === undefined) {
        throw new NotFoundError(
          { resource: 'task', id: taskId },
          { message: `Task ${taskId} not found; create it with 'exec-kernel task create'` },
        );
      }
      if (isTerminalState(task.state)) {
        throw new NotFoundError(
          { resource: 'open budget', id: taskId },
          { message: `Task ${taskId} is ${task.state}; its budget is closed` },
        );
      }
      if (s.budget.get(taskId) === undefined) {
        const parent = task.parentTaskId;
        s.budget.startTask(taskId, {
          parentTaskId: parent !== undefined && s.budget.get(parent) ? parent : undefined,
        });
      }
      const state = s.budget.recordStep(taskId, count);
      return {
        taskId,
        stepsTaken: state.stepsTaken,
        maxSteps: state.limits.maxSteps,
        remaining: state.remaining(),
      };
    });
    ctx.out.result(
      `OK: ${taskId} step ${result.stepsTaken} of ${result.maxSteps} (${result.remaining.steps} left)`,
      result,
    );
    return 0;
  },
};
