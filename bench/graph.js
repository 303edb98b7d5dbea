// Synthetic task graphs for the loop and memory benchmarks: a forest of chains (depth 0 to 10),
// ids like `task-0001234`, four agents and three task types. Two thirds of the nodes name their
// parent as creator too, so creator chains stay short (at most three nodes). Agent and type follow
// the depth in a pattern that repeats only every 12 levels, so no chain breaks the identity rule.
// Link ids are fresh strings, as they would be when they come from a request or a database row.
import { rng } from './harness.js';

export const AGENTS = ['agent-planner', 'agent-researcher', 'agent-writer', 'agent-reviewer'];
export const TYPES = ['research', 'analysis', 'writing'];
export const MAX_DEPTH = 10;

/** The task id for number `n`, as a new string each call. */
export function taskId(n) {
  return `task-${String(n).padStart(7, '0')}`;
}

export function agentAt(depth) {
  return AGENTS[depth % AGENTS.length];
}

export function typeAt(depth) {
  return TYPES[depth % TYPES.length];
}

/** Whether the node at `depth` names its parent as its creator. */
export function createdByParent(depth) {
  return depth > 0 && depth % 3 !== 0;
}

/**
 * Calls `visit(node, depth, n)` for `count` nodes, parents before children. `first` is the number
 * of the first id. With `interleave: k`, k chains grow side by side (one node each in turn), as
 * when agents work on many trees at once; with 1 (the default) each chain is registered in one go.
 */
export function forest(count, visit, { seed = 1, first = 0, interleave = 1 } = {}) {
  const random = rng(seed);
  const slots = Array.from({ length: interleave }, () => ({ length: 0, depth: 0, last: -1 }));
  const end = first + count;
  for (let n = first, step = 0; n < end; n++, step++) {
    const slot = slots[step % interleave];
    if (slot.depth === slot.length) {
      slot.length = 1 + Math.floor(random() * (MAX_DEPTH + 1));
      slot.depth = 0;
    }
    const depth = slot.depth;
    const node = { taskId: taskId(n), agentId: agentAt(depth), taskType: typeAt(depth) };
    if (depth > 0) node.parentTaskId = taskId(slot.last);
    if (createdByParent(depth)) node.createdByTaskId = taskId(slot.last);
    visit(node, depth, n);
    slot.depth++;
    slot.last = n;
  }
}
