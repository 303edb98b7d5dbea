// Goal 10: checking a tool call against the action-loop rules should cost at most 1 µs (median) for
// the arguments of a typical tool call (about 200 bytes of JSON), on a task whose window is full.
// Each measured task cycles through 64 distinct calls, so the window (20) is always full and no
// rule ever refuses: the figure is the allowed path, the one every call of a healthy agent takes.
// For scale, the same arguments are also put through JSON.stringify, and the cost is reported for
// 10 KB arguments and for a call that comes with its result.
import { ActionGuard, ActionHistory, callFingerprint } from '@exec-kernel/loop';
import { measure } from './harness.js';

const BATCH = 256;
const DISTINCT = 64;

/** Arguments shaped like a code agent's file read, about `bytes` long as JSON. */
export function typicalArgs(n, bytes = 200) {
  const args = {
    path: `src/components/dashboard/widgets/panel-${n}.tsx`,
    offset: n * 40,
    limit: 200,
    encoding: 'utf8',
    options: { followSymlinks: false, maxBytes: 65536 },
  };
  const padding = bytes - JSON.stringify(args).length;
  if (padding > 0) args.note = 'x'.repeat(Math.max(0, padding - 10));
  return args;
}

function calls(bytes, withResult) {
  return Array.from({ length: DISTINCT }, (_, n) => {
    const call = { tool: 'read_file', args: typicalArgs(n, bytes) };
    if (withResult) call.result = { content: `line ${n}\n`.repeat(12), truncated: false };
    return call;
  });
}

function historyTask(name, list) {
  const history = new ActionHistory('task-1');
  // Fill the window first.
  for (const call of list) history.observe(call);
  let cursor = 0;
  return {
    name,
    opsPerBatch: BATCH,
    batch: () => {
      let acc = 0;
      for (let i = 0; i < BATCH; i++) {
        acc += history.observe(list[cursor]).repeats;
        cursor = (cursor + 1) % DISTINCT;
      }
      return acc;
    },
  };
}

function guardTask(name, list, tasks) {
  const guard = new ActionGuard({ maxTasks: tasks });
  const ids = Array.from({ length: tasks }, (_, n) => `task-${n}`);
  for (const taskId of ids)
    for (const call of list.slice(0, 24)) guard.observe({ taskId, ...call });
  const requests = [];
  for (let n = 0; n < 4096; n++)
    requests.push({ taskId: ids[(n * 7919) % tasks], ...list[n % DISTINCT] });
  let cursor = 0;
  return {
    name,
    opsPerBatch: BATCH,
    batch: () => {
      let acc = 0;
      for (let i = 0; i < BATCH; i++) {
        acc += guard.observe(requests[cursor]).repeats;
        cursor = (cursor + 1) & 4095;
      }
      return acc;
    },
  };
}

function stringifyTask(name, list) {
  let cursor = 0;
  return {
    name,
    opsPerBatch: BATCH,
    batch: () => {
      let acc = 0;
      for (let i = 0; i < BATCH; i++) {
        acc += JSON.stringify(list[cursor].args).length;
        cursor = (cursor + 1) % DISTINCT;
      }
      return acc;
    },
  };
}

function fingerprintTask(name, list) {
  let cursor = 0;
  return {
    name,
    opsPerBatch: BATCH,
    batch: () => {
      let acc = 0;
      for (let i = 0; i < BATCH; i++) {
        acc += callFingerprint(list[cursor].tool, list[cursor].args).length;
        cursor = (cursor + 1) % DISTINCT;
      }
      return acc;
    },
  };
}

/** Times the action-loop check; returns the results and the figure the goal is judged on. */
export async function runActions() {
  const typical = calls(200, false);
  const large = calls(10_000, false);
  const withResult = calls(200, true);
  const bytes = JSON.stringify(typical[0].args).length;
  const largeBytes = JSON.stringify(large[0].args).length;
  const results = await measure([
    historyTask(`observe, ${bytes} B args, full window`, typical),
    guardTask(`guard.observe, ${bytes} B args, 1000 tasks`, typical, 1000),
    historyTask(`observe, ${bytes} B args + result`, withResult),
    historyTask(`observe, ${(largeBytes / 1000).toFixed(0)} KB args`, large),
    fingerprintTask(`callFingerprint, ${bytes} B args`, typical),
    stringifyTask(`JSON.stringify, ${bytes} B args (scale)`, typical),
    stringifyTask(`JSON.stringify, ${(largeBytes / 1000).toFixed(0)} KB args (scale)`, large),
  ]);
  return {
    results,
    typicalNs: results[0].nsPerOp,
    guardNs: results[1].nsPerOp,
    stringifyNs: results[5].nsPerOp,
  };
}
