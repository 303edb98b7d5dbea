import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import type { CliIO } from './context.js';
import { main } from './main.js';

let dir = '';
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'exec-kernel-main-'));
  await mkdir(join(dir, '.git'));
});
afterEach(() => rm(dir, { recursive: true, force: true }));

function io(env: Record<string, string> = {}): CliIO & { out: string; err: string } {
  const sink = {
    out: '',
    err: '',
    stdout: { write: (t: string) => (sink.out += t), isTTY: true },
    stderr: { write: (t: string) => (sink.err += t) },
    env,
    cwd: dir,
  };
  return sink;
}

it('runs in-process with the caller streams and returns the exit status', async () => {
  const ok = io({ NO_COLOR: '1' });
  expect(await main(['validate', 'todo', 'in_progress'], ok)).toBe(0);
  expect([ok.out, ok.err]).toEqual(['VALID: Work started\n', '']);

  const refused = io({ NO_COLOR: '1' });
  expect(await main(['validate', 'todo', 'done'], refused)).toBe(1);
  expect([refused.out, refused.err]).toEqual([
    '',
    'INVALID: No valid transition from todo to done\n',
  ]);
});

it('colours the status word on a terminal unless NO_COLOR is set, never in JSON', async () => {
  const tty = io();
  await main(['validate', 'todo', 'in_progress'], tty);
  expect(tty.out).toBe('\u001b[32mVALID:\u001b[0m Work started\n');
  const json = io();
  await main(['validate', 'todo', 'in_progress', '--json'], json);
  expect(json.out).not.toContain('\u001b[');
});

it('keeps state between calls through the store in the working directory', async () => {
  const first = io({ NO_COLOR: '1' });
  const admission = [
    '--consumer',
    'c',
    '--pain-point',
    'p',
    '--expected-value',
    'v',
    '--validation-path',
    't',
  ];
  expect(
    await main(['task', 'create', 't1', '--agent-id', 'a', '--type', 'x', ...admission], first),
  ).toBe(0);
  const second = io({ NO_COLOR: '1' });
  expect(await main(['step', 't1', '--count', '2'], second)).toBe(0);
  expect(second.out).toBe('OK: t1 step 2 of 50 (48 left)\n');
});

it('suggests the closest command for a typo', async () => {
  const typo = io();
  expect(await main(['task', 'craete'], typo)).toBe(1);
  expect(typo.err).toBe(
    "ERROR: Unknown command 'task craete'. Did you mean 'task create'? Run 'exec-kernel --help'.\n",
  );
});
