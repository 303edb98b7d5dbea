import { LoopDetectionError } from '@exec-kernel/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LoopDetector } from './loop-detector.js';
import type { WorkNode } from './rules.js';

/**
 * A deliberately naive reference: every node copies its whole parent and creator chains into arrays
 * when it is registered, lookups are linear scans, eviction scans the list. Slow and obviously
 * right, so the detector must agree with it everywhere.
 */
interface NaiveNode {
  taskId: string;
  agentId: string;
  taskType: string;
  titleKey: string | undefined;
  parentTaskId: string | undefined;
  createdByTaskId: string | undefined;
  depth: number;
  parentChain: NaiveNode[];
  creatorChain: NaiveNode[];
  finished: boolean;
}

type Outcome =
  | { depth: number }
  | { loopType: string; chain: string[] | undefined; depth?: number };

const norm = (title: string | undefined) => {
  const key = title?.trim().split(/\s+/).join(' ').toLowerCase();
  return key === '' ? undefined : key;
};

class NaiveDetector {
  nodes: NaiveNode[] = [];
  finishOrder: string[] = [];
  readonly maxDepth: number;
  readonly maxNodes: number;
  constructor(maxDepth: number, maxNodes: number) {
    this.maxDepth = maxDepth;
    this.maxNodes = maxNodes;
  }

  find(id: string | undefined): NaiveNode | undefined {
    return id === undefined ? undefined : this.nodes.find((n) => n.taskId === id);
  }

  decide(c: WorkNode): Outcome {
    const existing = this.find(c.taskId);
    if (
      existing &&
      existing.agentId === c.agentId &&
      existing.taskType === c.taskType &&
      existing.parentTaskId === c.parentTaskId &&
      existing.createdByTaskId === c.createdByTaskId &&
      existing.titleKey === norm(c.title)
    ) {
      return { depth: existing.depth };
    }
    if (c.parentTaskId === c.taskId || c.createdByTaskId === c.taskId) {
      return { loopType: 'cycle', chain: [c.taskId, c.taskId] };
    }
    const p = this.find(c.parentTaskId);
    const cr = this.find(c.createdByTaskId);
    const parentChain = p ? [p, ...p.parentChain] : [];
    const creatorChain = cr ? [cr, ...cr.creatorChain] : [];
    const upTo = (chain: NaiveNode[], i: number) => [
      c.taskId,
      ...chain.slice(0, i + 1).map((n) => n.taskId),
    ];
    const firstRepeat = (chain: NaiveNode[]) =>
      chain.findIndex((n, i) => chain.slice(0, i).some((m) => m.taskId === n.taskId));

    let i = parentChain.findIndex((n) => n.taskId === c.taskId);
    if (i >= 0) return { loopType: 'cycle', chain: upTo(parentChain, i) };
    i = creatorChain.findIndex((n) => n.taskId === c.taskId);
    if (i >= 0) return { loopType: 'cycle', chain: upTo(creatorChain, i) };
    i = firstRepeat(creatorChain);
    if (i >= 0) return { loopType: 'cycle', chain: upTo(creatorChain, i) };
    i = firstRepeat(parentChain);
    if (i >= 0) return { loopType: 'cycle', chain: upTo(parentChain, i) };

    const key = norm(c.title);
    i = creatorChain.findIndex(
      (n) =>
        n.agentId === c.agentId &&
        n.taskType === c.taskType &&
        (key === undefined || n.titleKey === undefined || n.titleKey === key),
    );
    if (i >= 0) return { loopType: 'identity', chain: upTo(creatorChain, i) };

    const depth = p ? p.depth + 1 : c.parentTaskId !== undefined ? 1 : 0;
    if (depth > this.maxDepth) return { loopType: 'depth', chain: undefined, depth };
    return { depth };
  }

  register(c: WorkNode): void {
    const p = this.find(c.parentTaskId);
    const cr = this.find(c.createdByTaskId);
    const node: NaiveNode = {
      taskId: c.taskId,
      agentId: c.agentId,
      taskType: c.taskType,
      titleKey: norm(c.title),
      parentTaskId: c.parentTaskId,
      createdByTaskId: c.createdByTaskId,
      depth: p ? p.depth + 1 : c.parentTaskId !== undefined ? 1 : 0,
      parentChain: p ? [p, ...p.parentChain] : [],
      creatorChain: cr ? [cr, ...cr.creatorChain] : [],
      finished: false,
    };
    if (this.find(c.taskId)) {
      this.remove(c.taskId);
    } else if (this.nodes.length >= this.maxNodes) {
      this.remove(this.finishOrder[0] ?? (this.nodes[0] as NaiveNode).taskId);
    }
    this.nodes.push(node);
  }

  remove(id: string): void {
    this.nodes = this.nodes.filter((n) => n.taskId !== id);
    this.finishOrder = this.finishOrder.filter((f) => f !== id);
  }

  check(c: WorkNode): Outcome {
    const outcome = this.decide(c);
    if ('depth' in outcome && !('loopType' in outcome) && !this.isSame(c)) this.register(c);
    return outcome;
  }

  isSame(c: WorkNode): boolean {
    const e = this.find(c.taskId);
    return (
      e !== undefined &&
      e.agentId === c.agentId &&
      e.taskType === c.taskType &&
      e.parentTaskId === c.parentTaskId &&
      e.createdByTaskId === c.createdByTaskId &&
      e.titleKey === norm(c.title)
    );
  }

  finish(id: string): void {
    const n = this.find(id);
    if (n && !n.finished) {
      n.finished = true;
      this.finishOrder.push(id);
    }
  }
}

function outcomeOf(fn: () => number): Outcome {
  try {
    return { depth: fn() };
  } catch (e) {
    if (!LoopDetectionError.is(e)) throw e;
    return e.loopType === 'depth'
      ? { loopType: 'depth', chain: e.chain, depth: e.depth as number }
      : { loopType: e.loopType, chain: e.chain };
  }
}

const ids = fc.constantFrom(...Array.from({ length: 14 }, (_, i) => `t${i}`));
const node = fc.record(
  {
    taskId: ids,
    agentId: fc.constantFrom('a1', 'a2', 'a3'),
    taskType: fc.constantFrom('plan', 'build', 'test'),
    title: fc.constantFrom(undefined, 'Fix bug', ' fix   BUG', 'Write docs'),
    parentTaskId: fc.option(ids, { nil: undefined }),
    createdByTaskId: fc.option(ids, { nil: undefined }),
  },
  { requiredKeys: ['taskId', 'agentId', 'taskType'] },
);
const op = fc.oneof(
  { weight: 6, arbitrary: node.map((n) => ({ kind: 'check' as const, node: n })) },
  { weight: 2, arbitrary: node.map((n) => ({ kind: 'inspect' as const, node: n })) },
  { weight: 2, arbitrary: node.map((n) => ({ kind: 'register' as const, node: n })) },
  { weight: 2, arbitrary: ids.map((id) => ({ kind: 'finish' as const, id })) },
);

describe('property: LoopDetector agrees with a naive reference', () => {
  it('on thousands of random task graphs, with evictions and re-registrations', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 5 }),
        fc.integer({ min: 1, max: 16 }),
        fc.array(op, { minLength: 1, maxLength: 60 }),
        (maxDepth, maxNodes, ops) => {
          const detector = new LoopDetector({ maxDepth, maxNodes });
          const reference = new NaiveDetector(maxDepth, maxNodes);
          for (const o of ops) {
            if (o.kind === 'finish') {
              detector.markFinished(o.id);
              reference.finish(o.id);
            } else if (o.kind === 'register') {
              detector.registerNode(o.node);
              reference.register(o.node);
            } else {
              const { taskId, agentId, taskType, ...links } = o.node;
              const expected =
                o.kind === 'check' ? reference.check(o.node) : reference.decide(o.node);
              const actual = outcomeOf(() =>
                o.kind === 'check'
                  ? detector.checkNewTask(taskId, agentId, taskType, links)
                  : detector.inspect(taskId, agentId, taskType, links),
              );
              expect(actual).toEqual(expected);
            }
            expect(detector.toJSON().nodes.map((n) => [n.taskId, n.depth, n.finished])).toEqual(
              reference.nodes.map((n) => [n.taskId, n.depth, n.finished]),
            );
          }
        },
      ),
      { numRuns: 3000 },
    );
  });
});
