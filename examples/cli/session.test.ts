import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const run = promisify(execFile);

// The Quick start's CLI session, run as a process: every command ends as the script expects.
it('shows each seed command, each refusal and a sleep ended by a wake', async () => {
  const { stdout } = await run(process.execPath, ['session.js'], { cwd: import.meta.dirname });
  expect(stdout).toContain('  VALID: Work started\n');
  expect(stdout).toContain('  INVALID: No valid transition from todo to done\n');
  expect(stdout).toContain('  ALLOWED: depth=1\n');
  expect(stdout).toContain('  OK: 5 steps, 0s elapsed (max 10 steps, 1800s)\n');
  expect(stdout).toContain(
    '  EXCEEDED: [steps] Task task-1 exceeded step budget: 15 steps taken, max 10\n',
  );
  expect(stdout).toContain('  INVALID: No valid transition from in_progress to backlog\n');
  expect(stdout).toMatch(/ {2}DENIED: \[identity\] Task fix-login-again re-creates task fix-login/);
  expect(stdout).toContain(
    '  EXCEEDED: [steps] Task fix-login exceeded step budget: 51 steps taken, max 50\n',
  );
  expect(stdout).toContain('  SLEEP:idle agent=agent-2 reason=no_tasks timeout=30s\n');
  expect(stdout).toMatch(/ {2}DENIED: \[idle\] Agent agent-2 is idle until/);
  expect(stdout).toContain('  WAKE: agent=agent-2 reason=woken\n  (sleep exited 0)\n');
}, 60_000);
