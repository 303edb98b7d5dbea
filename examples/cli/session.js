// A short CLI session as an agent in a shell would run it, in a scratch folder: each of the seed's
// commands, a refused transition, a refused loop, an exceeded budget, and a sleep that a `wake`
// from a second process ends. Prints each command, its output and its exit status.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
const bin = join(dirname(require.resolve('@exec-kernel/cli/package.json')), 'dist', 'bin.cjs');
const dir = mkdtempSync(join(tmpdir(), 'exec-kernel-session-'));
mkdirSync(join(dir, '.git'));
const env = { ...process.env, NO_COLOR: '1' };
let unexpected = 0;

function run(args, expectStatus = 0) {
  console.log(`$ exec-kernel ${args.join(' ')}`);
  const result = spawnSync(process.execPath, [bin, ...args], { cwd: dir, env, encoding: 'utf8' });
  const output = `${result.stdout}${result.stderr}`.trimEnd();
  if (output !== '') console.log(output.replace(/^/gm, '  '));
  console.log(`  (exit ${result.status})`);
  if (result.status !== expectStatus) unexpected++;
}

const admission = [
  '--consumer',
  'end-users',
  '--pain-point',
  'login-is-slow',
  '--expected-value',
  'faster-login',
  '--validation-path',
  'login-benchmark',
];

try {
  console.log('The seed commands:');
  run(['validate', 'todo', 'in_progress']);
  run(['validate', 'todo', 'done'], 1);
  run(['check-loop', 'child-1', 'agent-1', 'feature', '--parent-task-id', 'parent-1']);
  run(['check-budget', 'task-1', '--steps', '5', '--max-steps', '10']);
  run(['check-budget', 'task-1', '--steps', '15', '--max-steps', '10'], 1);

  console.log('\nState that outlives each call:');
  run(['task', 'create', 'fix-login', '--agent-id', 'agent-1', '--type', 'bugfix', ...admission]);
  run(['task', 'transition', 'fix-login', 'in_progress', '--agent-id', 'agent-1']);
  run(['task', 'transition', 'fix-login', 'backlog'], 1);
  run(
    [
      'task',
      'create',
      'fix-login-again',
      '--agent-id',
      'agent-1',
      '--type',
      'bugfix',
      '--created-by-task-id',
      'fix-login',
      ...admission,
    ],
    1,
  );
  run(['step', 'fix-login', '--count', '49']);
  run(['step', 'fix-login', '--count', '2'], 1);

  console.log('\nA sleep that a wake from another process ends:');
  console.log('$ exec-kernel sleep --timeout 30 --agent-id agent-2 &');
  const sleeper = spawn(
    process.execPath,
    [bin, 'sleep', '--timeout', '30', '--agent-id', 'agent-2'],
    { cwd: dir, env },
  );
  const printed = [];
  sleeper.stdout.on('data', (chunk) => printed.push(...chunk.toString().trim().split('\n')));
  while (printed.length === 0) await new Promise((r) => setTimeout(r, 20));
  console.log(`  ${printed.shift()}`);
  run(
    ['task', 'create', 'busywork', '--agent-id', 'agent-2', '--type', 'research', ...admission],
    1,
  );
  run(['wake', '--agent-id', 'agent-2']);
  const status = await new Promise((r) => sleeper.once('exit', r));
  for (const line of printed) console.log(`  ${line}`);
  console.log(`  (sleep exited ${status})`);
  if (status !== 0) unexpected++;
} finally {
  rmSync(dir, { recursive: true, force: true });
}

if (unexpected > 0) {
  console.error(`${unexpected} command(s) ended with an unexpected status`);
  process.exitCode = 1;
}
