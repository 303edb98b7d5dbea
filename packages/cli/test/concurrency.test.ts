import { afterAll, beforeAll, expect, it } from 'vitest';
import { ADMISSION, cli, scratch } from './helpers.js';

let dir = '';
let done: () => Promise<void> = async () => {};
beforeAll(async () => {
  ({ dir, done } = await scratch());
});
afterAll(() => done());

// Agents calling the CLI at once: 8 processes at a time, 200 `step` calls each, on one task.
// Every call is a read-modify-write of the shared state file; none may be lost.
it('counts exactly 1,600 steps from 8 concurrent processes x 200 calls', async () => {
  const created = await cli(
    dir,
    ['task', 'create', 'shared', '--agent-id', 'a', '--type', 'x', ...ADMISSION],
    {
      EXEC_KERNEL_BUDGET_MAX_STEPS: '100000',
    },
  );
  expect(created.status).toBe(0);
  const failures: string[] = [];
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let i = 0; i < 200; i++) {
        const run = await cli(dir, ['step', 'shared']);
        if (run.status !== 0) failures.push(run.stderr);
      }
    }),
  );
  expect(failures).toEqual([]);
  const shown = JSON.parse((await cli(dir, ['task', 'show', 'shared', '--json'])).stdout);
  expect(shown.stepsTaken).toBe(1600);
}, 900_000);
