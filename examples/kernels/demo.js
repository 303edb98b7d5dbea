// The kernels at work, as an agent harness would use them: a task walked through its lifecycle,
// work refused before it happens (a bad move, a loop, a speculative task, an overrun), and each
// refusal turned into the Violation record a service would log or escalate.
import { BudgetTracker } from '@exec-kernel/budget';
import { KernelError, ManualClock, toViolation } from '@exec-kernel/core';
import { IdleGuard, TaskLifecycle, validateAdmission } from '@exec-kernel/lifecycle';
import { LoopDetector } from '@exec-kernel/loop';

const clock = new ManualClock(Date.UTC(2026, 10, 26, 9, 0, 0));

function refused(what, action) {
  try {
    action();
    console.log(`  ${what}: allowed (unexpected)`);
    process.exitCode = 1;
  } catch (error) {
    if (!KernelError.is(error)) throw error;
    const v = toViolation(error, clock.now());
    console.log(`  ${what}: refused [${v.kind}] ${v.message}`);
  }
}

console.log('1. A task walked through its lifecycle');
const task = new TaskLifecycle({ taskId: 'fix-login', clock });
task.onTransition((e) => console.log(`  ${e.from} -> ${e.to}: ${e.reason}`));
task.transition('in_progress', { actor: 'agent-1' });
task.transition('in_review', { actor: 'agent-1' });
task.transition('done', { actor: 'reviewer' });
refused('reopen done', () => task.transition('todo'));

console.log('2. Self-generated work that loops');
const detector = new LoopDetector({ maxDepth: 3 });
detector.registerNode({ taskId: 'epic-1', agentId: 'planner', taskType: 'plan' });
const depth = detector.checkNewTask('story-1', 'planner', 'feature', { parentTaskId: 'epic-1' });
console.log(`  story-1 under epic-1: allowed at depth ${depth}`);
refused('planner re-plans from its own plan', () =>
  detector.checkNewTask('epic-2', 'planner', 'plan', { createdByTaskId: 'epic-1' }),
);
refused('epic-1 under story-1', () =>
  detector.checkNewTask('epic-1', 'planner', 'plan', { parentTaskId: 'story-1' }),
);
detector.checkNewTask('task-2', 'worker', 'build', { parentTaskId: 'story-1' });
detector.checkNewTask('task-3', 'worker', 'test', { parentTaskId: 'task-2' });
refused('a fourth level', () =>
  detector.checkNewTask('task-4', 'worker', 'lint', { parentTaskId: 'task-3' }),
);

console.log('3. Speculative work');
refused('a task with no case for it', () =>
  validateAdmission({ consumer: 'end-user', painPoint: '  ' }, { taskId: 'nice-to-have' }),
);
const idle = new IdleGuard({ clock });
idle.sleep({ agentId: 'worker', timeoutSeconds: 30 });
refused('a sleeping agent creating work', () => idle.assertMayCreate('worker', 'busywork'));

console.log('4. Budgets');
const tracker = new BudgetTracker({
  clock,
  onWarning: (w) =>
    console.log(`  warning: ${w.taskId} used ${w.observed} of ${w.limit} ${w.budgetType}`),
});
tracker.startTask('story-1', { maxSteps: 10, maxTokens: 50_000 });
tracker.startTask('task-2', { parentTaskId: 'story-1', maxSteps: 20 });
for (let step = 1; step <= 10; step++) tracker.recordStep('task-2');
console.log(`  task-2 took 10 steps; story-1 has ${tracker.get('story-1').remaining().steps} left`);
refused('an eleventh step (counts against story-1)', () => tracker.recordStep('task-2'));
refused('a big prompt', () => tracker.recordUsage('story-1', { tokens: 60_000 }));
clock.advance(31 * 60 * 1000);
refused('31 minutes in', () => tracker.get('task-2').checkAll());
