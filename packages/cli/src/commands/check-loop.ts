import { LoopDetector } from '@exec-kernel/loop';
import { BUDGET_NUMBERS, idArg, stringFlag, textArg } from '../args.js';
import type { Command } from '../context.js';
import { memoryFor } from '../services.js';

export const checkLoop: Command = {
  usage: `Usage: exec-kernel check-loop <task-id> <agent-id> <task-type> [options]

Checks a new task against the loop rules without creating it: cycle (the task would become its
own ancestor), identity (the agent re-creates a task of the same type on its creator chain),
then depth. Tasks already in the store are used as the graph; a parent the store does not know
counts as a root, so its child is at depth 1.

Options:
  --parent-task-id <id>      the task this one decomposes (sets depth)
  --created-by-task-id <id>  the task whose work produced this one
  --title <text>             tells apart same-type tasks on the creator chain
  --max-depth <n>            instead of lifecycle.max_depth from the config

Examples:
  exec-kernel check-loop child-1 agent-1 feature --parent-task-id parent-1   ALLOWED: depth=1
`,
  options: {
    'parent-task-id': { type: 'string' },
    'created-by-task-id': { type: 'string' },
    title: { type: 'string' },
    'max-depth': { type: 'string' },
  },
  positionals: { min: 3, max: 3, names: '<task-id> <agent-id> <task-type>' },
  args: {
    'task-id': idArg('task id'),
    'agent-id': idArg('agent id'),
    'task-type': idArg('task type'),
    'parent-task-id': idArg('parent task id'),
    'created-by-task-id': idArg('creator task id'),
    title: textArg('title', 1000),
    'max-depth': BUDGET_NUMBERS.depth,
  },
  async run(ctx) {
    const [taskId, agentId, taskType] = ctx.positionals as [string, string, string];
    const maxDepth = ctx.numbers['max-depth'];
    const memory = await memoryFor(ctx);
    const session = await memory.snapshot();
    const loop =
      maxDepth === undefined
        ? session.loop
        : LoopDetector.fromJSON(session.loop.toJSON(), { maxDepth });
    const depth = loop.inspect(taskId, agentId, taskType, {
      parentTaskId: stringFlag(ctx.values, 'parent-task-id'),
      createdByTaskId: stringFlag(ctx.values, 'created-by-task-id'),
      title: stringFlag(ctx.values, 'title'),
    });
    return { line: `ALLOWED: depth=${depth}`, data: { allowed: true, taskId, depth } };
  },
};
