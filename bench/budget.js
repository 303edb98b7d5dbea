// Goal 4 (information): the cost of `recordStep` for a task at depth 3 of a tree budget, which
// counts the step on the task and its three ancestors and then checks steps and duration on all
// four. Limits are set high enough that no call throws or warns.
import { BudgetTracker } from '@exec-kernel/budget';
import { measure } from './harness.js';

export async function runBudget(options = {}) {
  const tracker = new BudgetTracker({ defaults: { maxSteps: Number.MAX_SAFE_INTEGER } });
  let warnings = 0;
  tracker.onWarning(() => warnings++);
  const ids = ['task-0000001', 'task-0000002', 'task-0000003', 'task-0000004'];
  tracker.startTask(ids[0]);
  for (let d = 1; d < ids.length; d++) tracker.startTask(ids[d], { parentTaskId: ids[d - 1] });
  const leaf = ids[3];
  const batchSize = 64;
  const results = await measure(
    [
      {
        name: 'recordStep, depth 3',
        opsPerBatch: batchSize,
        batch: () => {
          let acc = 0;
          for (let i = 0; i < batchSize; i++) acc += tracker.recordStep(leaf).stepsTaken;
          return acc;
        },
      },
    ],
    options,
  );
  if (warnings !== 0) throw new Error('budget warned during the benchmark');
  const root = tracker.get(ids[0]);
  if (root.stepsTaken !== tracker.get(leaf).stepsTaken) throw new Error('steps not propagated');
  return { results, steps: root.stepsTaken };
}
