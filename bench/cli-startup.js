// Startup cost of the CLI, the way agents pay it: one short process per call. Times
// `exec-kernel validate todo in_progress`, `exec-kernel step t1` and `exec-kernel action t1
// read_file --args …` (with 1,000 tasks in the store; each action reads a different file, so none
// is refused) against `node -e ""`, each the median of many runs, interleaved so that machine noise
// hits all three alike; once without a config file and once with one. Goal: each within 1.5x of
// bare node. Output goes to a pipe, as when an agent captures it.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median } from './harness.js';

const require = createRequire(import.meta.url);
const bin = join(require.resolve('@exec-kernel/cli/package.json'), '..', 'dist', 'bin.cjs');

/** A store with `count` tasks, each with a budget and a little history, as a busy agent leaves it. */
function seedStore(dir, count) {
  const now = new Date().toISOString();
  const limits = {
    maxSteps: 1e9,
    maxDepth: 10,
    maxDurationSeconds: 1e9,
    maxTokens: null,
    maxCostUsd: null,
  };
  const tasks = Array.from({ length: count }, (_, i) => ({
    taskId: `t${i}`,
    createdAt: now,
    updatedAt: now,
    agentId: `agent-${i % 8}`,
    taskType: ['feature', 'research', 'review'][i % 3],
    title: `Task number ${i}`,
    depth: 0,
    state: 'in_progress',
    history: [{ from: 'todo', to: 'in_progress', reason: 'Work started', at: now }],
    budget: { limits, stepsTaken: 0, tokens: 0, costUsd: 0, startedAt: now },
    notes: [],
    context: {},
  }));
  mkdirSync(join(dir, '.exec-kernel'));
  writeFileSync(
    join(dir, '.exec-kernel', 'state.json'),
    `${JSON.stringify({ version: 1, tasks, agents: [] })}\n`,
  );
  mkdirSync(join(dir, '.git')); // the config search stops here
}

function timeOnce(args, cwd) {
  const start = process.hrtime.bigint();
  const result = spawnSync(process.execPath, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (result.status !== 0) throw new Error(`${args.join(' ')} failed: ${result.stderr}`);
  return ms;
}

/** A config an agent's project would have: every section touched, comments included. */
const CONFIG = `# exec-kernel settings for this project
lifecycle: { max_depth: 8, max_heap_size: 5000 }
budget:
  max_steps: 1000000000   # the bench takes many steps on one task
  max_duration_seconds: 1000000000
  max_tokens: 2000000
  warn_at: 0.9
idle: { default_timeout_seconds: 120 }
admission:
  required: [consumer, pain_point, expected_value, validation_path]
store: { path: .exec-kernel/state.json }
`;

export function measureCliStartup({ runs = 30, tasks = 1000, withConfig = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'exec-kernel-cli-bench-'));
  try {
    seedStore(dir, tasks);
    if (withConfig) writeFileSync(join(dir, '.exec-kernel.yml'), CONFIG);
    let file = 0;
    const cases = {
      node: () => ['-e', ''],
      validate: () => [bin, 'validate', 'todo', 'in_progress'],
      step: () => [bin, 'step', 't1'],
      action: () => [bin, 'action', 't1', 'read_file', '--args', `{"path":"src/f${file++}.ts"}`],
    };
    const times = { node: [], validate: [], step: [], action: [] };
    for (const args of Object.values(cases)) timeOnce(args(), dir); // warm the file cache
    for (let i = 0; i < runs; i++) {
      for (const [name, args] of Object.entries(cases)) times[name].push(timeOnce(args(), dir));
    }
    const node = median(times.node);
    return {
      runs,
      tasks,
      withConfig,
      nodeMs: node,
      validateMs: median(times.validate),
      stepMs: median(times.step),
      actionMs: median(times.action),
      validateRatio: median(times.validate) / node,
      stepRatio: median(times.step) / node,
      actionRatio: median(times.action) / node,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const runs = Number(process.argv[2] ?? 30);
  console.log(JSON.stringify(measureCliStartup({ runs })));
  console.log(JSON.stringify(measureCliStartup({ runs, withConfig: true })));
}
