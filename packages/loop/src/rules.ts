import { LoopDetectionError } from '@exec-kernel/core';

/**
 * A task in the creation graph. `parentTaskId` is structural decomposition (it sets depth);
 * `createdByTaskId` is the task whose execution produced this one (self-generated work).
 */
export interface WorkNode {
  taskId: string;
  agentId: string;
  taskType: string;
  title?: string | undefined;
  parentTaskId?: string | undefined;
  createdByTaskId?: string | undefined;
}

/**
 * A node linked to its parent and creator, as the loop rules walk it. Links are fixed when the node
 * is made, so a node keeps its depth and chains however the graph around it changes later.
 */
export interface ChainNode {
  readonly taskId: string;
  readonly agentId: string;
  readonly taskType: string;
  /** The title normalised for comparison (see {@link normalizeTitle}); `undefined` without a title. */
  readonly titleKey: string | undefined;
  readonly depth: number;
  readonly parent: ChainNode | undefined;
  readonly creator: ChainNode | undefined;
  /** Whether the parent chain starting at this node names some task twice. */
  readonly parentLoop: boolean;
  /** Whether the creator chain starting at this node names some task twice. */
  readonly creatorLoop: boolean;
}

/** The outcome of a loop check that does not throw. */
export type LoopDecision =
  | { readonly ok: true; readonly depth: number }
  | { readonly ok: false; readonly error: LoopDetectionError };

/** The resolved neighbours of a candidate task. */
export interface ChainLinks {
  /** The parent's node, or `undefined` when there is no parent or it is unknown. */
  parent?: ChainNode | undefined;
  /** The creator's node, or `undefined` when there is no creator or it is unknown. */
  creator?: ChainNode | undefined;
}

/** Lower-case, whitespace collapsed and trimmed; an empty result means "no title". */
export function normalizeTitle(title: string | undefined): string | undefined {
  if (title === undefined) return undefined;
  const key = title.trim().replace(/\s+/g, ' ').toLowerCase();
  return key === '' ? undefined : key;
}

// A walk longer than this can only come from hand-built nodes that point at each other.
const WALK_LIMIT = 1_000_000;

type Via = 'parent' | 'creator';

/** Ids from `start` along `via` up to and including the first node with `taskId`, or `undefined`. */
function pathTo(start: ChainNode | undefined, via: Via, taskId: string): string[] | undefined {
  let steps = 0;
  for (let node = start; node !== undefined && steps < WALK_LIMIT; node = node[via], steps++) {
    if (node.taskId === taskId) {
      const path: string[] = [];
      for (let n = start; n !== node; n = (n as ChainNode)[via]) path.push((n as ChainNode).taskId);
      path.push(taskId);
      return path;
    }
  }
  return steps >= WALK_LIMIT ? [] : undefined;
}

/** Ids from `start` along `via` up to and including the first id seen twice. */
function pathToRepeat(start: ChainNode, via: Via): string[] {
  const seen = new Set<string>();
  const path: string[] = [];
  for (let node: ChainNode | undefined = start; node !== undefined; node = node[via]) {
    path.push(node.taskId);
    if (seen.has(node.taskId)) return path;
    seen.add(node.taskId);
  }
  // The flag was set by a link that no longer exists (a cycle cut while linking rows).
  return path;
}

function cycle(candidate: WorkNode, chain: string[]): LoopDecision {
  return {
    ok: false,
    error: new LoopDetectionError({
      loopType: 'cycle',
      taskId: candidate.taskId,
      agentId: candidate.agentId,
      taskType: candidate.taskType,
      chain,
    }),
  };
}

/**
 * Applies the loop rules to a candidate task, first failure wins. Pure: it only reads the nodes
 * it is given, so a server can run it over rows it loaded from a database (see {@link linkWorkNodes}).
 *
 * 1. **cycle**: the candidate's id is on its own parent or creator chain, or either chain above it
 *    names a task twice.
 * 2. **identity**: a task on the candidate's creator chain has the same agent, the same type and,
 *    when both have titles, the same normalised title.
 * 3. **depth**: parent's depth + 1 (1 under an unknown parent, 0 for a root) may not exceed `maxDepth`.
 *
 * Cost is linear in the length of the two chains, whatever the size of the graph.
 */
export function decideNewTask(
  candidate: WorkNode,
  links: ChainLinks,
  options: { maxDepth: number },
): LoopDecision {
  const { taskId } = candidate;
  const { parent, creator } = links;

  if (candidate.parentTaskId === taskId || candidate.createdByTaskId === taskId) {
    return cycle(candidate, [taskId, taskId]);
  }
  const viaParent = pathTo(parent, 'parent', taskId);
  if (viaParent !== undefined) return cycle(candidate, [taskId, ...viaParent]);
  const viaCreator = pathTo(creator, 'creator', taskId);
  if (viaCreator !== undefined) return cycle(candidate, [taskId, ...viaCreator]);
  if (creator?.creatorLoop) return cycle(candidate, [taskId, ...pathToRepeat(creator, 'creator')]);
  if (parent?.parentLoop) return cycle(candidate, [taskId, ...pathToRepeat(parent, 'parent')]);

  const titleKey = normalizeTitle(candidate.title);
  let steps = 0;
  for (let node = creator; node !== undefined && steps < WALK_LIMIT; node = node.creator, steps++) {
    if (
      node.agentId === candidate.agentId &&
      node.taskType === candidate.taskType &&
      (titleKey === undefined || node.titleKey === undefined || node.titleKey === titleKey)
    ) {
      const chain = [taskId];
      for (let n = creator; n !== node; n = (n as ChainNode).creator)
        chain.push((n as ChainNode).taskId);
      chain.push(node.taskId);
      return {
        ok: false,
        error: new LoopDetectionError({
          loopType: 'identity',
          taskId,
          agentId: candidate.agentId,
          taskType: candidate.taskType,
          chain,
        }),
      };
    }
  }

  const depth =
    parent !== undefined ? parent.depth + 1 : candidate.parentTaskId !== undefined ? 1 : 0;
  if (depth > options.maxDepth) {
    return {
      ok: false,
      error: new LoopDetectionError({
        loopType: 'depth',
        taskId,
        agentId: candidate.agentId,
        taskType: candidate.taskType,
        depth,
        maxDepth: options.maxDepth,
      }),
    };
  }
  return { ok: true, depth };
}

/** Whether `taskId` is on the chain from `start` along `via`. */
function onChain(start: ChainNode | undefined, via: Via, taskId: string): boolean {
  let steps = 0;
  for (let node = start; node !== undefined; node = node[via]) {
    if (node.taskId === taskId || ++steps >= WALK_LIMIT) return true;
  }
  return false;
}

/** The loop flags a node gets from its links. */
export function loopFlags(
  taskId: string,
  parent: ChainNode | undefined,
  creator: ChainNode | undefined,
): { parentLoop: boolean; creatorLoop: boolean } {
  return {
    parentLoop: (parent?.parentLoop ?? false) || onChain(parent, 'parent', taskId),
    creatorLoop: (creator?.creatorLoop ?? false) || onChain(creator, 'creator', taskId),
  };
}

/** A stored task, optionally with the depth recorded when it was admitted. */
export interface StoredWorkNode extends WorkNode {
  /** The depth recorded at admission; computed from the parent when absent. */
  depth?: number | undefined;
}

/**
 * Links plain rows (say, a task and its ancestors loaded from a database) into {@link ChainNode}s
 * keyed by task id. Rows that point at each other are linked up to the point where they would
 * close a loop, and the nodes on that loop are flagged so the cycle rule refuses anything under them.
 */
export function linkWorkNodes(rows: Iterable<StoredWorkNode>): Map<string, ChainNode> {
  const byId = new Map<string, StoredWorkNode>();
  for (const row of rows) byId.set(row.taskId, row);
  const linked = new Map<string, ChainNode>();
  const inProgress = new Set<string>();

  const link = (taskId: string | undefined): { node?: ChainNode; looped: boolean } => {
    if (taskId === undefined) return { looped: false };
    const done = linked.get(taskId);
    if (done !== undefined) return { node: done, looped: false };
    if (inProgress.has(taskId)) return { looped: true };
    const row = byId.get(taskId);
    if (row === undefined) return { looped: false };
    inProgress.add(taskId);
    const p = link(row.parentTaskId);
    const c = link(row.createdByTaskId);
    inProgress.delete(taskId);
    const flags = loopFlags(taskId, p.node, c.node);
    const node: ChainNode = {
      taskId,
      agentId: row.agentId,
      taskType: row.taskType,
      titleKey: normalizeTitle(row.title),
      depth:
        row.depth ??
        (p.node !== undefined ? p.node.depth + 1 : row.parentTaskId !== undefined ? 1 : 0),
      parent: p.node,
      creator: c.node,
      parentLoop: flags.parentLoop || p.looped,
      creatorLoop: flags.creatorLoop || c.looped,
    };
    linked.set(taskId, node);
    return { node, looped: false };
  };

  // Iterative over roots, recursive along chains: chains are short (bounded by max depth in practice).
  for (const taskId of byId.keys()) link(taskId);
  return linked;
}

/**
 * {@link decideNewTask} over plain rows: links `rows` and decides `candidate` against them.
 * `rows` need only hold the candidate's parent and creator chains.
 */
export function evaluateNewTask(
  candidate: WorkNode,
  rows: Iterable<StoredWorkNode>,
  options: { maxDepth: number },
): LoopDecision {
  return loopOver(rows, options).evaluate(candidate);
}

/**
 * The loop rules over plain rows, linked once: `evaluate(candidate)` is {@link evaluateNewTask}
 * without re-linking. What a server passes to `admitTask` after loading a task's ancestry.
 */
export function loopOver(
  rows: Iterable<StoredWorkNode>,
  options: { maxDepth: number },
): { evaluate(candidate: WorkNode): LoopDecision } {
  const nodes = linkWorkNodes(rows);
  return {
    evaluate: (candidate) =>
      decideNewTask(
        candidate,
        {
          parent:
            candidate.parentTaskId === undefined ? undefined : nodes.get(candidate.parentTaskId),
          creator:
            candidate.createdByTaskId === undefined
              ? undefined
              : nodes.get(candidate.createdByTaskId),
        },
        options,
      ),
  };
}
