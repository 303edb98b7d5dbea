// Investigation, not part of `pnpm bench`: where the time of a loop check goes when parents are
// picked at random across 10^3 or 10^6 held nodes. Times a bare Map lookup (`has`), a lookup plus a
// read of the record (`depthOf`), `inspect` with the parent link only, the full `inspect`, full
// `inspect` by parent depth (the walk length), and the full check when chains are registered
// interleaved (parents far from children in memory). Run: `node bench/loop-breakdown.js`.
import { MAX_DEPTH } from './graph.js';
import { fmt, measure, sinkValue } from './harness.js';
import { buildDetector, inspectTask, makePicks } from './loop.js';

const PICKS = 1 << 16;
const BATCH = 256;

function lookupTask(name, picks, op) {
  let cursor = 0;
  const mask = picks.length - 1;
  return {
    name,
    opsPerBatch: BATCH,
    batch: () => {
      let acc = 0;
      for (let i = 0; i < BATCH; i++) {
        acc += op(picks[cursor]);
        cursor = (cursor + 1) & mask;
      }
      return acc;
    },
  };
}

async function breakdown(built) {
  const { detector } = built;
  const picks = makePicks(built, PICKS, 7);
  const parentOnly = picks.map((p) => ({
    ...p,
    options: { parentTaskId: p.options.parentTaskId },
  }));
  const tasks = [
    lookupTask('has(parent)', picks, (p) => (detector.has(p.options.parentTaskId) ? 1 : 0)),
    lookupTask('depthOf(parent)', picks, (p) => detector.depthOf(p.options.parentTaskId)),
    inspectTask('inspect, parent link only', detector, parentOnly),
    inspectTask('inspect, parent + creator', detector, picks),
  ];
  for (const depth of [0, 3, 6, 9]) {
    const byDepth = makePicks(built, PICKS, 13, [depth]);
    tasks.push(inspectTask(`inspect, parent at depth ${depth}`, detector, byDepth));
  }
  return measure(tasks, { time: 700 });
}

const rows = new Map();
function collect(label, results) {
  for (const r of results) {
    const row = rows.get(r.name) ?? { name: r.name };
    row[label] = r.nsPerOp;
    rows.set(r.name, row);
  }
}

const small = buildDetector(1e3);
collect('1e3', await breakdown(small));
let large = buildDetector(1e6);
collect('1e6', await breakdown(large));
large = undefined;

const interleaved = {};
for (const count of [1e3, 1e6]) {
  const built = buildDetector(count, { interleave: 64 });
  const picks = makePicks(built, PICKS, 7);
  const [r] = await measure([inspectTask('x', built.detector, picks)], { time: 700 });
  interleaved[count === 1e3 ? '1e3' : '1e6'] = r.nsPerOp;
}
rows.set('inspect, 64 chains interleaved', {
  name: 'inspect, 64 chains interleaved',
  ...interleaved,
});

console.log(`maxDepth ${MAX_DEPTH}, random parents, ns per operation (median)`);
console.log(`${'operation'.padEnd(34)} ${'10^3'.padStart(8)} ${'10^6'.padStart(8)}  ratio`);
for (const row of rows.values()) {
  const ratio = (row['1e6'] / row['1e3']).toFixed(2);
  const [small, large] = [fmt(row['1e3']).padStart(8), fmt(row['1e6']).padStart(8)];
  console.log(`${row.name.padEnd(34)} ${small} ${large}  ${ratio}x`);
}
console.log(`(sink ${sinkValue()})`);
