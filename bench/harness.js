// Shared timing helper. Each tinybench task calls a function that performs a whole batch of
// operations, so the cost of reading the clock around every call is spread over the batch and
// operations of a few nanoseconds can be timed honestly; a figure is the median batch time divided
// by the batch size. Results are folded into a sink so the JIT cannot drop the measured work.
import { Bench } from 'tinybench';

let sink = 0;

/** Keeps a value alive as far as the optimiser can tell. */
export function consume(value) {
  sink = (sink + (typeof value === 'number' ? value : 1)) | 0;
}

/** The sink, printed at the end of a run so it is observably used. */
export function sinkValue() {
  return sink;
}

/**
 * Times each task and returns `{ name, nsPerOp, opsPerSec, rmePct, samples }` per task.
 *
 * @param {Array<{ name: string, batch: () => number, opsPerBatch: number }>} tasks
 * @param {{ time?: number, warmupTime?: number }} options milliseconds per task
 */
export async function measure(tasks, options = {}) {
  const bench = new Bench({
    time: options.time ?? 1000,
    warmupTime: options.warmupTime ?? 300,
    timestampProvider: 'hrtimeNow',
    throws: true,
  });
  for (const task of tasks) {
    bench.add(task.name, () => {
      sink = (sink + task.batch()) | 0;
    });
  }
  await bench.run();
  return tasks.map((task, i) => {
    const { result } = bench.tasks[i];
    if (result.state !== 'completed') throw new Error(`${task.name}: ${result.state}`);
    const nsPerOp = (result.latency.p50 * 1e6) / task.opsPerBatch;
    return {
      name: task.name,
      nsPerOp,
      opsPerSec: 1e9 / nsPerOp,
      rmePct: result.latency.rme,
      samples: result.latency.samplesCount ?? bench.tasks[i].runs,
    };
  });
}

/** A small seeded PRNG (mulberry32), so every run builds the same graphs and picks. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The median of a list of numbers. */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** `1234` → `'1.23k'`-style short numbers for tables. */
export function fmt(n, digits = 3) {
  if (!Number.isFinite(n)) return String(n);
  const abs = Math.abs(n);
  if (abs >= 1e9) return `${(n / 1e9).toPrecision(digits)}G`;
  if (abs >= 1e6) return `${(n / 1e6).toPrecision(digits)}M`;
  if (abs >= 1e4) return `${(n / 1e3).toPrecision(digits)}k`;
  return n.toPrecision(digits);
}
