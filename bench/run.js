// Runs every kernel benchmark in sequence (`pnpm bench` at the root builds the packages first) and
// prints a table of figures and one PASS/MISS line per goal. Ratios compare figures measured in
// the same run. Memory is measured in a fresh child process per node count, so the heap holds
// nothing else. Timing figures are medians of batched samples (see harness.js).
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { runActions } from './actions.js';
import { runAiSdk } from './ai-sdk.js';
import { runBudget } from './budget.js';
import { measureCliStartup } from './cli-startup.js';
import { runCoordination } from './coordination.js';
import { fmt, sinkValue } from './harness.js';
import { runLoop } from './loop.js';
import { measureLocalOverhead, measurePaperclipOverhead } from './paperclip-overhead.js';
import { runTransition } from './transition.js';

const GOALS = {
  transitionSpeedup: 10,
  loopRatio: 1.5,
  bytesPerNode: 300,
  cliRatio: 1.5,
  paperclipMs: 1,
  coordinationVsPgBoss: 5,
  coordinationLatencyRatio: 1.5,
  coordinationSqlitePerSecond: 5000,
  actionObserveNs: 1000,
  middlewareMs: 0.1,
};
// `node run.js <section>` runs one section: kernels (with actions), actions, cli, paperclip (which starts a live
// Paperclip server, installing it on first use), ai-sdk (the model-call middleware; starts a
// coordination service on SQLite) or coordination (which needs PostgreSQL; see
// coordination.js for its BENCH_COORD_* settings).
const only = process.argv[2];
const runKernels = only === undefined || only === 'kernels';
const runActionsSection = only === undefined || only === 'kernels' || only === 'actions';
const runCli = only === undefined || only === 'cli';
const runPaperclip = only === undefined || only === 'paperclip';
const runCoordinationSection = only === undefined || only === 'coordination';
const runAiSdkSection = only === undefined || only === 'ai-sdk';
const MEMORY_COUNTS = [1e5, 1e6];

function memoryInChild(count) {
  const script = fileURLToPath(new URL('./memory.js', import.meta.url));
  const child = spawnSync(process.execPath, ['--expose-gc', script, String(count)], {
    encoding: 'utf8',
  });
  if (child.status !== 0) throw new Error(`memory.js ${count} failed:\n${child.stderr}`);
  return JSON.parse(child.stdout);
}

function verdict(ok) {
  return ok ? 'PASS' : 'MISS';
}

function printTable(section, results) {
  for (const r of results) {
    const rme = `±${r.rmePct.toFixed(1)}%`;
    console.log(
      `${section.padEnd(11)} ${r.name.padEnd(40)} ${fmt(r.nsPerOp).padStart(8)} ` +
        `${fmt(r.opsPerSec).padStart(8)} ${rme.padStart(7)}`,
    );
  }
}

const started = performance.now();
console.log(
  `node ${process.version}, ${os.availableParallelism()} CPUs (${os.cpus()[0]?.model ?? '?'}), ` +
    `${new Date().toISOString()}`,
);

if (runKernels) await kernels();
if (runActionsSection) await actions();
if (runCli) cli();
if (runPaperclip) await paperclip();
if (runAiSdkSection) await aiSdk();
if (runCoordinationSection) await coordination();
const seconds = ((performance.now() - started) / 1000).toFixed(0);
console.log(`(ran in ${seconds} s; sink ${sinkValue()})`);

async function kernels() {
  const transition = await runTransition();
  const loop = await runLoop();
  const budget = await runBudget();
  const memory = MEMORY_COUNTS.map(memoryInChild);

  console.log('');
  console.log(`${'section'.padEnd(11)} ${'measurement'.padEnd(40)} ${'ns/op'.padStart(8)} `);
  console.log(`${''.padEnd(11)} ${''.padEnd(40)} ${'(median)'.padStart(8)} ops/s    rme`);
  printTable('transition', transition.results);
  printTable('loop', loop.results);
  printTable('budget', budget.results);
  for (const m of memory) {
    console.log(
      `${'memory'.padEnd(11)} ${`${fmt(m.nodes)} nodes held`.padEnd(40)} ` +
        `${m.bytesPerNode.toFixed(0)} B/node total, ${m.bytesPerNodeWithoutIds.toFixed(0)} B/node ` +
        `without ids (${m.idStringsPerNode.toFixed(2)} id strings of ` +
        `${m.bytesPerIdString.toFixed(0)} B per node)`,
    );
  }
  console.log(
    `(${transition.edges} valid edges, ${transition.invalidPairs} refused pairs; ` +
      `10^6 detector built in ${(loop.setupMs.large / 1000).toFixed(1)} s)`,
  );

  console.log('');
  const speedup = transition.ratio;
  const goal1 = verdict(speedup >= GOALS.transitionSpeedup);
  console.log(
    `${goal1} goal 1: transition check ${speedup.toFixed(0)}x ` +
      `faster than xstate transition() (goal >= ${GOALS.transitionSpeedup}x)`,
  );
  for (const [label, ratio] of [
    ['random parents', loop.randomRatio],
    ['hot parents', loop.hotRatio],
  ]) {
    console.log(
      `${verdict(ratio <= GOALS.loopRatio)} goal 2: loop check, 10^6 held / 10^3 held = ` +
        `${ratio.toFixed(2)}x, ${label} (goal <= ${GOALS.loopRatio}x)`,
    );
  }
  for (const m of memory) {
    console.log(
      `${verdict(m.bytesPerNode <= GOALS.bytesPerNode)} goal 3: ${m.bytesPerNode.toFixed(0)} ` +
        `bytes per node at ${fmt(m.nodes)} nodes (goal <= ${GOALS.bytesPerNode})`,
    );
  }
  console.log(`INFO goal 4: recordStep at depth 3 = ${fmt(budget.results[0].nsPerOp)} ns/op`);
}

async function actions() {
  const { results, typicalNs, guardNs, stringifyNs } = await runActions();
  console.log('');
  printTable('actions', results);
  for (const [label, ns] of [
    ['ActionHistory.observe', typicalNs],
    ['ActionGuard.observe', guardNs],
  ]) {
    console.log(
      `${verdict(ns <= GOALS.actionObserveNs)} goal 10: ${label} on a full window, ~200 B args = ` +
        `${fmt(ns)} ns median (goal <= ${GOALS.actionObserveNs} ns; ` +
        `${(ns / stringifyNs).toFixed(2)}x JSON.stringify of the same args in this run)`,
    );
  }
}

function cli() {
  const cases = [
    measureCliStartup({ runs: 30 }),
    measureCliStartup({ runs: 30, withConfig: true }),
  ];
  console.log('');
  for (const c of cases) {
    const label = c.withConfig ? 'with a config file' : 'no config file';
    console.log(
      `cli start-up (${label}, median of ${c.runs}, ${c.tasks} tasks in the store): ` +
        `node -e "" ${c.nodeMs.toFixed(1)} ms, validate ${c.validateMs.toFixed(1)} ms, ` +
        `step ${c.stepMs.toFixed(1)} ms, action ${c.actionMs.toFixed(1)} ms`,
    );
  }
  for (const c of cases) {
    const label = c.withConfig ? 'with a config file' : 'no config file';
    for (const [name, ratio] of [
      ['validate todo in_progress', c.validateRatio],
      ['step t1', c.stepRatio],
      ['action t1 read_file', c.actionRatio],
    ]) {
      console.log(
        `${verdict(ratio <= GOALS.cliRatio)} goal 5: exec-kernel ${name} = ${ratio.toFixed(2)}x ` +
          `node -e "" (${label}; goal <= ${GOALS.cliRatio}x)`,
      );
    }
  }
}

async function paperclip() {
  const local = await measureLocalOverhead();
  const live = await measurePaperclipOverhead({ runs: 1000 });
  console.log('');
  for (const [label, m] of [
    ['local stand-in', local],
    ['live Paperclip', live],
  ]) {
    for (const r of m.results) {
      console.log(
        `paperclip (${label}, ${m.runs} paired calls) ${r.name}: adapter ${r.adapterMs.toFixed(2)} ms, ` +
          `bare fetch ${r.fetchMs.toFixed(2)} ms, added ${r.addedMs.toFixed(2)} ms ` +
          `(median of pairs${r.addedSeMs === undefined ? '' : `, ± ${r.addedSeMs.toFixed(2)} ms standard error`})`,
      );
    }
  }
  for (const r of [...local.results, ...live.results]) {
    console.log(
      `${verdict(r.addedMs < GOALS.paperclipMs)} goal 6: adapter adds ${r.addedMs.toFixed(2)} ms ` +
        `to ${r.name} (goal < ${GOALS.paperclipMs} ms)`,
    );
  }
}

async function aiSdk() {
  const results = await runAiSdk();
  console.log('');
  for (const r of results) {
    console.log(
      `ai-sdk ${r.name}: ${r.wrappedMs.toFixed(4)} ms with the middleware, ` +
        `${r.bareMs.toFixed(4)} ms ${r.baseline}, added ${r.addedMs.toFixed(4)} ms ` +
        `(median of ${r.rounds} rounds of ${r.calls} calls)`,
    );
  }
  for (const r of results.filter((x) => x.name.includes('local tracker'))) {
    console.log(
      `${verdict(r.addedMs < GOALS.middlewareMs)} goal 11: budgetMiddleware adds ` +
        `${r.addedMs.toFixed(4)} ms to ${r.name} (goal < ${GOALS.middlewareMs} ms)`,
    );
  }
  for (const r of results.filter((x) => x.name.includes('coordination'))) {
    console.log(`INFO goal 11: budgetMiddleware adds ${r.addedMs.toFixed(2)} ms to ${r.name}`);
  }
}

async function coordination() {
  const { settings, throughput, backlog, seconds } = await runCoordination();
  const ms = (x) => (Number.isFinite(x) ? x.toFixed(2) : '–');
  const n = (x) => Math.round(x).toLocaleString('en-US');
  console.log('');
  console.log(
    `coordination: ${n(settings.tasks)} tasks per drain after ${n(settings.warmup)} warm-up, ` +
      `a fresh service process and database per row; claim latency per claim request; CPU per task ` +
      `done: service process / this process (workers, or pg-boss) / PostgreSQL backends ` +
      `(section ran in ${seconds.toFixed(0)} s)`,
  );
  console.log(
    `${'engine'.padEnd(15)} ${'W'.padStart(2)} ${'B'.padStart(3)} ${'done/s'.padStart(8)} ` +
      `${'p50 ms'.padStart(7)} ${'p99 ms'.padStart(7)} ${'done'.padStart(7)} dup ` +
      `${'enqueue/s'.padStart(9)}  CPU µs/task`,
  );
  for (const r of throughput) {
    const head = `${r.engine.padEnd(15)} ${String(r.workers).padStart(2)} ${String(r.batch).padStart(3)}`;
    if (r.unavailable) {
      console.log(`${head} batching unavailable (this client has no claimMany)`);
      continue;
    }
    const cpu = [r.serviceCpuUsPerTask, r.clientCpuUsPerTask, r.pgCpuUsPerTask]
      .map((us) => (us === undefined ? '–' : n(us)))
      .join(' / ');
    console.log(
      `${head} ${n(r.perSecond).padStart(8)} ${ms(r.p50).padStart(7)} ${ms(r.p99).padStart(7)} ` +
        `${String(r.done).padStart(7)} ${String(r.duplicates).padStart(3)} ` +
        `${n(r.enqueuePerSecond).padStart(9)}  ${cpu}${r.refused ? `, ${r.refused} refused` : ''}`,
    );
  }
  for (const b of backlog) {
    console.log(
      `coordination claim latency, ${n(b.backlog)} waiting (${settings.backlogClaims} claims): ` +
        `ours p50 ${ms(b.oursP50)} / p99 ${ms(b.oursP99)} ms, pg-boss fetch p50 ${ms(b.bossP50)} / ` +
        `p99 ${ms(b.bossP99)} ms (${n(b.added)} added: ours ${(b.oursEnqueueMs / 1000).toFixed(1)} s ` +
        `through HTTP, pg-boss insert ${(b.bossInsertMs / 1000).toFixed(1)} s; ${b.duplicates} dup); ` +
        `one worker's claim+complete: ours ${n(b.oursPerSecond)}/s, pg-boss ${n(b.bossPerSecond)}/s`,
    );
  }

  const find = (engine, workers, batch) =>
    throughput.find(
      (r) => r.engine === engine && r.workers === workers && r.batch === batch && !r.unavailable,
    );
  // Goal 7 is set on the research's workload (coordination-research.md §3.1): 20,000 tasks drained
  // by 1 and by 4 workers, one task per call. Other drains and batches are reported beside it.
  const researchWorkload = settings.tasks === 20_000;
  for (const batch of settings.batches) {
    for (const workers of settings.workers) {
      const ours = find('postgres', workers, batch);
      const boss = find('pg-boss', workers, batch);
      if (ours === undefined || boss === undefined) {
        console.log(
          `INFO goal 7: PostgreSQL W=${workers} B=${batch}: not measured (left out by BENCH_COORD_ONLY, or PostgreSQL unreachable)`,
        );
        continue;
      }
      const ratio = ours.perSecond / boss.perSecond;
      const judged = researchWorkload && batch === 1;
      console.log(
        `${judged ? verdict(ratio >= GOALS.coordinationVsPgBoss) : 'INFO'} goal 7: PostgreSQL ` +
          `claim+complete, W=${workers} B=${batch}: ours ${n(ours.perSecond)}/s through HTTP = ` +
          `${ratio.toFixed(2)}x pg-boss ${n(boss.perSecond)}/s direct (backlog ${n(settings.tasks)} ` +
          `drained to 0; goal >= ${GOALS.coordinationVsPgBoss}x` +
          `${judged ? '' : ` on 20,000 drained one per call; this row ${batch > 1 ? 'batches' : 'drains another backlog'}`})`,
      );
    }
  }
  for (const b of backlog) {
    const ratio = b.oursPerSecond / b.bossPerSecond;
    console.log(
      `INFO goal 7: PostgreSQL claim+complete, W=1 B=1 with ${n(b.backlog)} waiting (held): ` +
        `ours ${n(b.oursPerSecond)}/s through HTTP = ${ratio.toFixed(2)}x pg-boss ` +
        `${n(b.bossPerSecond)}/s direct (claim and complete as two requests)`,
    );
  }
  if (backlog.length >= 2) {
    const [first, last] = [backlog[0], backlog[backlog.length - 1]];
    const ratio = last.oursP50 / first.oursP50;
    console.log(
      `${verdict(ratio <= GOALS.coordinationLatencyRatio)} goal 8: claim p50 at ` +
        `${n(last.backlog)} waiting = ${ratio.toFixed(2)}x p50 at ${n(first.backlog)} ` +
        `(${ms(last.oursP50)} vs ${ms(first.oursP50)} ms; pg-boss fetch ` +
        `${(last.bossP50 / first.bossP50).toFixed(2)}x; goal <= ${GOALS.coordinationLatencyRatio}x)`,
    );
  }
  const sqlite = settings.batches
    .map((batch) => find('sqlite', 4, batch))
    .filter((r) => r !== undefined);
  if (sqlite.length > 0) {
    const best = sqlite.reduce((a, b) => (b.perSecond > a.perSecond ? b : a));
    const passing = sqlite.filter((r) => r.perSecond >= GOALS.coordinationSqlitePerSecond);
    console.log(
      `${verdict(passing.length > 0)} goal 9: SQLite, 4 workers: ` +
        `${sqlite.map((r) => `B=${r.batch} ${n(r.perSecond)}/s`).join(', ')} ` +
        `(${passing.length > 0 ? `met with B=${passing.map((r) => r.batch).join(', ')}` : `best B=${best.batch}`}; ` +
        `goal >= ${n(GOALS.coordinationSqlitePerSecond)}/s)`,
    );
  }
}
