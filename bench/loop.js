// Goal 2: the loop check should cost the same whatever the number of nodes held. Times `inspect`
// (check without registering) of a new task under a held parent at depth 4 to 6, whose creator is
// that parent (creator chain of at most three), against a detector holding 10^3 nodes and one
// holding 10^6. "random" picks parents across all held nodes (cache-unfriendly, the honest case);
// "hot" reuses eight parents. Also times `checkNewTask` (registering) in a full detector, where
// every call evicts the oldest node, for information.
import { LoopDetector } from '@exec-kernel/loop';
import { agentAt, forest, MAX_DEPTH, taskId, typeAt } from './graph.js';
import { measure, rng } from './harness.js';

const PICKS = 1 << 16;
const HOT_PICKS = 8;
const BATCH = 256;

/** A detector holding `count` nodes, and the held node numbers by depth. */
export function buildDetector(count, forestOptions = {}) {
  const detector = new LoopDetector({ maxDepth: MAX_DEPTH, maxNodes: count });
  const byDepth = Array.from({ length: MAX_DEPTH + 1 }, () => []);
  const started = performance.now();
  forest(
    count,
    (node, depth, n) => {
      detector.registerNode(node);
      byDepth[depth].push(n);
    },
    forestOptions,
  );
  return { detector, byDepth, count, setupMs: performance.now() - started };
}

/**
 * Candidate tasks under held parents drawn at random from the depths in `depths`; ids and links
 * are new strings. Each candidate is checked once here: a refusal would time the error path.
 */
export function makePicks({ detector, byDepth, count }, howMany, seed, depths = [4, 5, 6]) {
  const random = rng(seed);
  const parents = [];
  for (const depth of depths) for (const n of byDepth[depth]) parents.push(n, depth);
  const picks = [];
  for (let k = 0; k < howMany; k++) {
    const at = 2 * Math.floor(random() * (parents.length / 2));
    const n = parents[at];
    const depth = parents[at + 1];
    const pick = {
      taskId: taskId(count + k),
      agentId: agentAt(depth + 1),
      taskType: typeAt(depth + 1),
      options: { parentTaskId: taskId(n), createdByTaskId: taskId(n) },
    };
    const got = detector.inspect(pick.taskId, pick.agentId, pick.taskType, pick.options);
    if (got !== depth + 1) throw new Error(`inspect gave depth ${got}, expected ${depth + 1}`);
    picks.push(pick);
  }
  return picks;
}

export function inspectTask(name, detector, picks) {
  let cursor = 0;
  const mask = picks.length - 1;
  return {
    name,
    opsPerBatch: BATCH,
    batch: () => {
      let acc = 0;
      for (let i = 0; i < BATCH; i++) {
        const p = picks[cursor];
        cursor = (cursor + 1) & mask;
        acc += detector.inspect(p.taskId, p.agentId, p.taskType, p.options);
      }
      return acc;
    },
  };
}

/** A detector filled to `maxNodes`, then fed an endless stream of new tasks (a ring of specs). */
function steadyTask(maxNodes) {
  const specs = [];
  forest(Math.max(4 * maxNodes, 1 << 17), (node) => {
    const options = {};
    if (node.parentTaskId !== undefined) options.parentTaskId = node.parentTaskId;
    if (node.createdByTaskId !== undefined) options.createdByTaskId = node.createdByTaskId;
    specs.push({ ...node, options });
  });
  const detector = new LoopDetector({ maxDepth: MAX_DEPTH, maxNodes });
  let cursor = 0;
  const next = () => {
    const s = specs[cursor];
    cursor = cursor + 1 === specs.length ? 0 : cursor + 1;
    return detector.checkNewTask(s.taskId, s.agentId, s.taskType, s.options);
  };
  for (let i = 0; i < maxNodes; i++) next();
  if (detector.size !== maxNodes) throw new Error('steady-state detector not full');
  return {
    name: `checkNewTask, full at ${maxNodes} (evicting)`,
    opsPerBatch: 64,
    batch: () => {
      let acc = 0;
      for (let i = 0; i < 64; i++) acc += next();
      return acc;
    },
  };
}

export async function runLoop(options = {}) {
  const small = buildDetector(1e3);
  const large = buildDetector(1e6);
  const random = [makePicks(small, PICKS, 7), makePicks(large, PICKS, 7)];
  const hot = [makePicks(small, HOT_PICKS, 11), makePicks(large, HOT_PICKS, 11)];
  const tasks = [
    inspectTask('inspect, 10^3 held, random parents', small.detector, random[0]),
    inspectTask('inspect, 10^6 held, random parents', large.detector, random[1]),
    inspectTask('inspect, 10^3 held, hot parents', small.detector, hot[0]),
    inspectTask('inspect, 10^6 held, hot parents', large.detector, hot[1]),
  ];
  // Timed forwards, then backwards, and averaged, so neither size gains from running first.
  const forwards = await measure(tasks, options);
  const backwards = (await measure([...tasks].reverse(), options)).reverse();
  const results = forwards.map((f, i) => {
    const nsPerOp = (f.nsPerOp + backwards[i].nsPerOp) / 2;
    const rmePct = Math.max(f.rmePct, backwards[i].rmePct);
    return {
      ...f,
      nsPerOp,
      opsPerSec: 1e9 / nsPerOp,
      rmePct,
      passes: [f.nsPerOp, backwards[i].nsPerOp],
    };
  });
  const steady = await measure([steadyTask(1e3), steadyTask(1e5)], options);
  return {
    setupMs: { small: small.setupMs, large: large.setupMs },
    held: { small: small.detector.size, large: large.detector.size },
    results: [...results, ...steady],
    randomRatio: results[1].nsPerOp / results[0].nsPerOp,
    hotRatio: results[3].nsPerOp / results[2].nsPerOp,
  };
}
