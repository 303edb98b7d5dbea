import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const run = promisify(execFile);

// The tutorial the seed promised: run as a process, on the embedded SQLite engine.
it('plans, works, refuses a self-looping subtask and escalates a budget overrun', async () => {
  const { stdout } = await run(process.execPath, ['run.js'], { cwd: import.meta.dirname });
  expect(stdout).toMatch(/^service: http:\/\/127\.0\.0\.1:\d+ \(sqlite:.*queue\.db\)\n/);
  expect(stdout).toContain('planner: enqueued benchmark (depth 1)\n');
  expect(stdout).toContain(
    'planner: refused: Task login-epic-2 re-creates task login-epic: same agent planner and type plan on its creator chain login-epic-2 -> login-epic\n',
  );
  expect(stdout).toContain('worker: finished profile in 2 steps\n');
  expect(stdout).toContain(
    'worker: benchmark stopped: Task benchmark exceeded step budget: 4 steps taken, max 3\n',
  );
  expect(stdout).toContain('worker: handled 3 tasks\n');
  expect(stdout).toContain('escalation: [loop_identity] login-epic-2: ');
  expect(stdout).toContain(
    'escalation: [budget_steps] benchmark: Task benchmark exceeded step budget: 4 steps taken, max 3\n',
  );
  expect(stdout).toContain(
    'tasks: login-epic=backlog, profile=done, index=done, benchmark=blocked\n',
  );
}, 60_000);
