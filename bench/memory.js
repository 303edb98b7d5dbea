// Goal 3: heap bytes per node held by a LoopDetector. Run as `node --expose-gc memory.js N` in a
// fresh process (run.js does this), so nothing else on the heap blurs the figure. Measures heapUsed
// after full GCs before and after registering N nodes of the benchmark forest, keeping the
// detector alive. The id strings the detector keeps (its own id, plus a parent or creator id only
// when that task was not held) are then measured on their own and subtracted for a second figure:
// the detector's own overhead per node.
import { fileURLToPath } from 'node:url';
import { LoopDetector } from '@exec-kernel/loop';
import { forest, MAX_DEPTH, taskId } from './graph.js';

function settledHeap() {
  for (let i = 0; i < 4; i++) global.gc();
  return process.memoryUsage().heapUsed;
}

export function measureMemory(count) {
  if (typeof global.gc !== 'function') throw new Error('run with node --expose-gc');
  let idStrings = 0;
  const before = settledHeap();
  const detector = new LoopDetector({ maxDepth: MAX_DEPTH, maxNodes: count });
  const keptId = (id) => (id === undefined || detector.has(id) ? 0 : 1);
  forest(count, (node) => {
    idStrings += 1 + keptId(node.parentTaskId) + keptId(node.createdByTaskId);
    detector.registerNode(node);
  });
  const after = settledHeap();
  if (detector.size !== count) throw new Error(`held ${detector.size}, expected ${count}`);

  // The same number of id strings, alone: their heap cost minus the array's slots.
  const ids = new Array(idStrings);
  const arrayOnly = settledHeap();
  for (let i = 0; i < idStrings; i++) ids[i] = taskId(i % count);
  const withIds = settledHeap();
  const idBytes = withIds - arrayOnly;

  const total = after - before;
  return {
    nodes: count,
    heapBytes: total,
    bytesPerNode: total / count,
    // Read after the last measurement, so neither the detector nor the ids die early.
    idStringsPerNode: ids.length / detector.size,
    bytesPerIdString: idBytes / idStrings,
    bytesPerNodeWithoutIds: (total - idBytes) / count,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const count = Number(process.argv[2] ?? 1e5);
  console.log(JSON.stringify(measureMemory(count)));
}
