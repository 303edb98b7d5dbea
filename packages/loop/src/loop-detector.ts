import { ListenerSet, type Unsubscribe } from '@exec-kernel/core';
import {
  type ChainNode,
  decideNewTask,
  type LoopDecision,
  loopFlags,
  normalizeTitle,
  type WorkNode,
} from './rules.js';

/** Options of {@link LoopDetector}. */
export interface LoopDetectorOptions {
  /** Deepest allowed nesting along parent links (config `lifecycle.max_depth`). Default: `10`. */
  maxDepth?: number | undefined;
  /**
   * Most nodes held at once (config `lifecycle.max_heap_size`). Past it, the node finished longest
   * ago is dropped first, else the oldest registered. Default: `1000`.
   */
  maxNodes?: number | undefined;
}

/** The optional links of a candidate task, as `checkNewTask` takes them. */
export interface NewTaskOptions {
  parentTaskId?: string | undefined;
  createdByTaskId?: string | undefined;
  title?: string | undefined;
}

/** A registered node as the detector reports it. */
export interface RegisteredNode extends WorkNode {
  depth: number;
  finished: boolean;
}

/** What `onRegister` listeners receive. */
export interface RegisterEvent {
  node: WorkNode;
  depth: number;
}

/** The plain-data form of a {@link LoopDetector}: its settings and held nodes, oldest first. */
export interface LoopDetectorJSON {
  maxDepth: number;
  maxNodes: number;
  nodes: RegisteredNode[];
}

// One shape for every record keeps property access monomorphic on the hot path.
class NodeRecord implements ChainNode {
  readonly taskId: string;
  readonly agentId: string;
  readonly taskType: string;
  readonly title: string | undefined;
  readonly titleKey: string | undefined;
  // Ids are kept only when the link did not resolve; otherwise the linked node carries them.
  readonly #unlinkedParentId: string | undefined;
  readonly #unlinkedCreatorId: string | undefined;
  readonly depth: number;
  readonly parent: NodeRecord | undefined;
  readonly creator: NodeRecord | undefined;
  readonly parentLoop: boolean;
  readonly creatorLoop: boolean;
  finished = false;

  constructor(
    node: WorkNode,
    depth: number,
    parent: NodeRecord | undefined,
    creator: NodeRecord | undefined,
  ) {
    const flags = loopFlags(node.taskId, parent, creator);
    this.taskId = node.taskId;
    this.agentId = node.agentId;
    this.taskType = node.taskType;
    this.title = node.title;
    this.titleKey = normalizeTitle(node.title);
    this.#unlinkedParentId = parent === undefined ? node.parentTaskId : undefined;
    this.#unlinkedCreatorId = creator === undefined ? node.createdByTaskId : undefined;
    this.depth = depth;
    this.parent = parent;
    this.creator = creator;
    this.parentLoop = flags.parentLoop;
    this.creatorLoop = flags.creatorLoop;
  }

  get parentTaskId(): string | undefined {
    return this.parent?.taskId ?? this.#unlinkedParentId;
  }

  get createdByTaskId(): string | undefined {
    return this.creator?.taskId ?? this.#unlinkedCreatorId;
  }
}

function integerAtLeast(name: string, value: number, min: number): number {
  if (!(Number.isInteger(value) && value >= min)) {
    throw new RangeError(`LoopDetector ${name} must be an integer >= ${min}, got ${value}`);
  }
  return value;
}

/**
 * Refuses self-generated work that loops: a task that would become its own ancestor (`cycle`), an
 * agent re-creating its own work down its creator chain (`identity`), or nesting past `maxDepth`
 * (`depth`). Checks cost O(chain length) whatever the number of nodes held; each node keeps its
 * depth and chains from registration, so dropping old nodes never changes a held node's depth.
 *
 * @example
 * ```ts
 * const detector = new LoopDetector({ maxDepth: 10 });
 * detector.registerNode({ taskId: 'parent-1', agentId: 'agent-1', taskType: 'research' });
 * detector.checkNewTask('child-1', 'agent-1', 'research', { parentTaskId: 'parent-1' }); // 1
 * detector.checkNewTask('deep-task', 'agent-1', 'research', {
 *   parentTaskId: 'parent-1',
 *   createdByTaskId: 'parent-1',
 * }); // throws LoopDetectionError, loopType 'identity'
 * ```
 */
export class LoopDetector {
  readonly maxDepth: number;
  readonly maxNodes: number;
  // Map iteration order is registration order: the first key is the oldest node.
  readonly #nodes = new Map<string, NodeRecord>();
  // Insertion order is finishing order: the first key finished longest ago.
  readonly #finished = new Set<string>();
  readonly #listeners = new ListenerSet<RegisterEvent>();
  #oldestCursor: MapIterator<string> | undefined;
  #finishedCursor: SetIterator<string> | undefined;

  constructor(options: LoopDetectorOptions = {}) {
    this.maxDepth = integerAtLeast('maxDepth', options.maxDepth ?? 10, 0);
    this.maxNodes = integerAtLeast('maxNodes', options.maxNodes ?? 1000, 1);
  }

  /** How many nodes are held. */
  get size(): number {
    return this.#nodes.size;
  }

  /**
   * Checks a new task against the loop rules and registers it.
   *
   * @returns the task's depth (0 for a root, 1 under an unknown parent).
   * @throws LoopDetectionError with `loopType` `cycle`, `identity` or `depth`; nothing is registered.
   *
   * Checking a registered task again with the same agent, type, title, parent and creator returns
   * its depth without error.
   */
  checkNewTask(
    taskId: string,
    agentId: string,
    taskType: string,
    options: NewTaskOptions = {},
  ): number {
    const node: WorkNode = { taskId, agentId, taskType, ...options };
    const existing = this.#same(node);
    if (existing !== undefined) return existing.depth;
    const decision = this.#decide(node);
    if (!decision.ok) throw decision.error;
    this.#register(node);
    return decision.depth;
  }

  /** The same check as {@link checkNewTask}, without registering anything. */
  inspect(taskId: string, agentId: string, taskType: string, options: NewTaskOptions = {}): number {
    const decision = this.evaluate({ taskId, agentId, taskType, ...options });
    if (!decision.ok) throw decision.error;
    return decision.depth;
  }

  /** The check as a result instead of an exception; registers nothing. */
  evaluate(node: WorkNode): LoopDecision {
    const existing = this.#same(node);
    return existing !== undefined ? { ok: true, depth: existing.depth } : this.#decide(node);
  }

  /**
   * Registers a node without checking it (for tasks that already exist, such as roots). A node with
   * the same id is replaced; nodes registered under the old one keep their depth.
   *
   * @returns the node's depth.
   */
  registerNode(node: WorkNode): number {
    return this.#register(node).depth;
  }

  /** Marks a task finished, so it is among the first dropped when the detector is full. */
  markFinished(taskId: string): boolean {
    const record = this.#nodes.get(taskId);
    if (record === undefined || record.finished) return false;
    record.finished = true;
    this.#finished.add(taskId);
    return true;
  }

  /** Whether the task is held. */
  has(taskId: string): boolean {
    return this.#nodes.has(taskId);
  }

  /** The held node for `taskId`, with its depth. */
  get(taskId: string): RegisteredNode | undefined {
    const record = this.#nodes.get(taskId);
    return record === undefined ? undefined : view(record);
  }

  /** The depth recorded for a held task. */
  depthOf(taskId: string): number | undefined {
    return this.#nodes.get(taskId)?.depth;
  }

  /** Calls `listener` after every registration. Returns the function that removes it. */
  onRegister(listener: (event: RegisterEvent) => void): Unsubscribe {
    return this.#listeners.add(listener);
  }

  toJSON(): LoopDetectorJSON {
    return {
      maxDepth: this.maxDepth,
      maxNodes: this.maxNodes,
      nodes: [...this.#nodes.values()].map(view),
    };
  }

  /**
   * Rebuilds a detector from `toJSON()` output. Each node keeps its recorded depth; links are
   * restored between held nodes (chains through nodes dropped before saving are not kept).
   */
  static fromJSON(json: LoopDetectorJSON, options: LoopDetectorOptions = {}): LoopDetector {
    const detector = new LoopDetector({
      maxDepth: options.maxDepth ?? json.maxDepth,
      maxNodes: options.maxNodes ?? json.maxNodes,
    });
    for (const node of json.nodes) {
      detector.#register(node, node.depth);
      if (node.finished) detector.markFinished(node.taskId);
    }
    return detector;
  }

  #same(node: WorkNode): NodeRecord | undefined {
    const r = this.#nodes.get(node.taskId);
    if (
      r !== undefined &&
      r.agentId === node.agentId &&
      r.taskType === node.taskType &&
      r.parentTaskId === node.parentTaskId &&
      r.createdByTaskId === node.createdByTaskId &&
      r.titleKey === normalizeTitle(node.title)
    ) {
      return r;
    }
    return undefined;
  }

  #decide(node: WorkNode): LoopDecision {
    return decideNewTask(
      node,
      {
        parent: node.parentTaskId === undefined ? undefined : this.#nodes.get(node.parentTaskId),
        creator:
          node.createdByTaskId === undefined ? undefined : this.#nodes.get(node.createdByTaskId),
      },
      this,
    );
  }

  #register(node: WorkNode, recordedDepth?: number): NodeRecord {
    const parent = node.parentTaskId === undefined ? undefined : this.#nodes.get(node.parentTaskId);
    const creator =
      node.createdByTaskId === undefined ? undefined : this.#nodes.get(node.createdByTaskId);
    const depth =
      recordedDepth ??
      (parent !== undefined ? parent.depth + 1 : node.parentTaskId !== undefined ? 1 : 0);
    const record = new NodeRecord(node, depth, parent, creator);
    if (this.#nodes.has(node.taskId)) {
      // Re-registering moves the task to the newest position.
      this.#nodes.delete(node.taskId);
      this.#finished.delete(node.taskId);
    } else if (this.#nodes.size >= this.maxNodes) {
      this.#evictOne();
    }
    this.#nodes.set(node.taskId, record);
    if (!this.#listeners.isEmpty) this.#listeners.emit({ node: view(record), depth });
    return record;
  }

  #evictOne(): void {
    const victim = this.#nextFinished() ?? this.#nextOldest();
    if (victim === undefined) return;
    this.#finished.delete(victim);
    this.#nodes.delete(victim);
  }

  // A fresh Map iterator steps over every entry deleted since the table was last rebuilt, and
  // oldest-first eviction piles those up at the front; so one iterator is kept across evictions.
  // Everything before its position has been evicted, so its next key is always the oldest.
  #nextFinished(): string | undefined {
    let step = this.#finishedCursor?.next();
    if (step === undefined || step.done) {
      this.#finishedCursor = this.#finished.values();
      step = this.#finishedCursor.next();
    }
    return step.done ? undefined : step.value;
  }

  #nextOldest(): string | undefined {
    let step = this.#oldestCursor?.next();
    if (step === undefined || step.done) {
      this.#oldestCursor = this.#nodes.keys();
      step = this.#oldestCursor.next();
    }
    return step.done ? undefined : step.value;
  }
}

function view(r: NodeRecord): RegisteredNode {
  const node: RegisteredNode = {
    taskId: r.taskId,
    agentId: r.agentId,
    taskType: r.taskType,
    depth: r.depth,
    finished: r.finished,
  };
  if (r.title !== undefined) node.title = r.title;
  if (r.parentTaskId !== undefined) node.parentTaskId = r.parentTaskId;
  if (r.createdByTaskId !== undefined) node.createdByTaskId = r.createdByTaskId;
  return node;
}
