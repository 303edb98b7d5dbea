// Runs every kernel benchmark in sequence (`pnpm bench` at the root builds the packages first) and
// prints a table of figures and one PASS/MISS line per goal. Ratios compare figures measured in
// the same run. Memory is measured in a fresh child process per node count, so the heap holds
// nothing else. Timing figures are medians of batched samples (see harness.js).
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { runBudget } from './budget.js';
import { measureCliStartup } from './cli-startup.js';
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
};
// `node run.js <section>` runs one section: kernels, cli or paperclip (which starts a live
// Paperclip server, installing it on first use).
const only = process.argv[2];
const runKernels = only === undefined || only === 'kernels';
const runCli = only === undefined || only === 'cli';
const runPaperclip = only === undefined || only === 'paperclip';
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
if (runCli) cli();
if (runPaperclip) await paperclip();
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
        `step ${c.stepMs.toFixed(1)} ms`,
    );
  }
  for (const c of cases) {
    const label = c.withConfig ? 'with a config file' : 'no config file';
    for (const [name, ratio] of [
      ['validate todo in_progress', c.validateRatio],
      ['step t1', c.stepRatio],
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
