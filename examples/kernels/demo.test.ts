import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const run = promisify(execFile);

// The Quick start's main job: it runs the built packages as a user's script would.
it('walks a task, refuses each kind of violation and exits 0', async () => {
  const { stdout } = await run(process.execPath, ['demo.js'], { cwd: import.meta.dirname });
  const refusals = [...stdout.matchAll(/refused \[(\w+)\]/g)].map((m) => m[1]);
  expect(refusals).toEqual([
    'invalid_transition',
    'loop_identity',
    'loop_cycle',
    'loop_depth',
    'admission',
    'idle',
    'budget_steps',
    'budget_tokens',
    'budget_duration',
  ]);
  expect(stdout).toContain('in_review -> done: Review approved');
  expect(stdout).toContain('story-1 under epic-1: allowed at depth 1');
  expect(stdout).not.toContain('unexpected');
});
