// Investigation, not part of `pnpm bench`: why `checkNewTask` in a full detector slows down as
// maxNodes grows. The detector evicts with `map.keys().next()`, and a fresh V8 Map iterator walks
// from the start of the table over every entry deleted since the table was last rebuilt. This
// times "evict oldest, insert new" on a plain Map of M string keys, both that way and with one
// iterator kept across evictions (it stays valid across inserts, deletes and rehashes).
// Run: `node bench/eviction-probe.js`.
import { taskId } from './graph.js';
import { fmt, measure, sinkValue } from './harness.js';

const BATCH = 64;

function fullMap(size) {
  const map = new Map();
  for (let i = 0; i < size; i++) map.set(taskId(i), { i });
  return map;
}

function freshIterator(size) {
  const map = fullMap(size);
  let n = size;
  return {
    name: `fresh keys().next(), M=${size}`,
    opsPerBatch: BATCH,
    batch: () => {
      for (let i = 0; i < BATCH; i++) {
        map.delete(map.keys().next().value);
        map.set(taskId(n), { n });
        n++;
      }
      return map.size;
    },
  };
}

function keptIterator(size) {
  const map = fullMap(size);
  let oldest = map.keys();
  let n = size;
  return {
    name: `kept iterator, M=${size}`,
    opsPerBatch: BATCH,
    batch: () => {
      for (let i = 0; i < BATCH; i++) {
        let next = oldest.next();
        if (next.done) {
          oldest = map.keys();
          next = oldest.next();
        }
        map.delete(next.value);
        map.set(taskId(n), { n });
        n++;
      }
      return map.size;
    },
  };
}

const tasks = [];
for (const size of [1e3, 1e4, 1e5]) tasks.push(freshIterator(size), keptIterator(size));
const results = await measure(tasks, { time: 700 });
for (const r of results) console.log(`${r.name.padEnd(34)} ${fmt(r.nsPerOp).padStart(8)} ns/op`);
console.log(`(sink ${sinkValue()})`);
