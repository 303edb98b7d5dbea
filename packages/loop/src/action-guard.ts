import {
  KernelError,
  ListenerSet,
  type LoopDetectionError,
  type Unsubscribe,
} from '@exec-kernel/core';
import {
  type ActionCall,
  type ActionCheck,
  ActionHistory,
  type ActionHistoryJSON,
  type ActionLoopWarning,
  type ActionResultRecord,
} from './action-history.js';
import { type ActionRules, type ActionRulesOptions, resolveActionRules } from './action-rules.js';

/** Options of {@link ActionGuard}: the rules' thresholds, and how many tasks it holds at most. */
export interface ActionGuardOptions extends ActionRulesOptions {
  /** Most tasks held at once; past it, the task observed first is forgotten. Default: `1000`. */
  maxTasks?: number | undefined;
}

/** A call of a given task, as {@link ActionGuard.observe} takes it. */
export interface TaskActionCall extends ActionCall {
  taskId: string;
}

/** What `onObserve` listeners receive: an allowed call, or a refused one with its error. */
export type ActionEvent =
  | { taskId: string; outcome: 'recorded'; check: ActionCheck }
  | { taskId: string; outcome: 'result'; warnings: ActionLoopWarning[] }
  | { taskId: string; outcome: 'refused'; error: LoopDetectionError };

/** The plain-data form of an {@link ActionGuard}: its limit and its tasks, oldest first. */
export interface ActionGuardJSON {
  maxTasks: number;
  tasks: ActionHistoryJSON[];
}

/**
 * Stops an agent that loops inside a task: the same tool call again and again (`repeat`), two or
 * three calls in turn (`ping_pong`), one call too often in its recent calls (`window`), or the same
 * result whatever it tries (`no_progress`). Each task's history is bounded (a ring of its recent
 * call fingerprints); at most `maxTasks` tasks are held, and `end(taskId)` forgets a finished one.
 *
 * @example
 * ```ts
 * const guard = new ActionGuard({ repeat: { warnAt: 2, blockAt: 3 } });
 * guard.observe({ taskId: 't1', tool: 'read_file', args: { path: 'a.ts' } });
 * guard.observe({ taskId: 't1', tool: 'read_file', args: { path: 'a.ts' } }); // a warning
 * guard.observe({ taskId: 't1', tool: 'read_file', args: { path: 'a.ts' } }); // throws LoopDetectionError
 * ```
 */
export class ActionGuard {
  readonly rules: ActionRules;
  readonly maxTasks: number;
  readonly #tasks = new Map<string, ActionHistory>();
  readonly #listeners = new ListenerSet<ActionEvent>();
  #oldestCursor: MapIterator<string> | undefined;

  constructor(options: ActionGuardOptions = {}) {
    this.rules = resolveActionRules(options);
    const maxTasks = options.maxTasks ?? 1000;
    if (!(Number.isInteger(maxTasks) && maxTasks >= 1)) {
      throw new RangeError(`ActionGuard maxTasks must be an integer >= 1, got ${maxTasks}`);
    }
    this.maxTasks = maxTasks;
  }

  /** How many tasks are held. */
  get size(): number {
    return this.#tasks.size;
  }

  /**
   * Checks a task's call against the rules and records it.
   *
   * @throws LoopDetectionError when the call is refused (nothing is recorded).
   */
  observe(call: TaskActionCall): ActionCheck {
    const history = this.#history(call.taskId);
    try {
      const check = history.observe(call);
      if (!this.#listeners.isEmpty)
        this.#listeners.emit({ taskId: call.taskId, outcome: 'recorded', check });
      return check;
    } catch (error) {
      this.#refused(call.taskId, error);
      throw error;
    }
  }

  /** The same check as {@link observe}, without recording anything. */
  check(call: TaskActionCall): ActionCheck {
    return (this.#tasks.get(call.taskId) ?? new ActionHistory(call.taskId, this.rules)).check(call);
  }

  /**
   * Records the result of the task's newest call; answers the call it was attached to, with any
   * warnings.
   *
   * @throws LoopDetectionError (`no_progress`) when it is refused; InvalidInputError when the task
   * has no call waiting for a result.
   */
  recordResult(taskId: string, result: unknown, digest?: string): ActionResultRecord {
    const history = this.#history(taskId);
    try {
      const record = history.recordResult(result, digest);
      if (!this.#listeners.isEmpty) {
        this.#listeners.emit({ taskId, outcome: 'result', warnings: record.warnings });
      }
      return record;
    } catch (error) {
      this.#refused(taskId, error);
      throw error;
    }
  }

  /** The task's history, when held. */
  history(taskId: string): ActionHistory | undefined {
    return this.#tasks.get(taskId);
  }

  /** Whether the task is held. */
  has(taskId: string): boolean {
    return this.#tasks.has(taskId);
  }

  /** Forgets a task (when it is finished). */
  end(taskId: string): boolean {
    return this.#tasks.delete(taskId);
  }

  /** Calls `listener` after every observation, allowed or refused. Returns the function that removes it. */
  onObserve(listener: (event: ActionEvent) => void): Unsubscribe {
    return this.#listeners.add(listener);
  }

  toJSON(): ActionGuardJSON {
    return { maxTasks: this.maxTasks, tasks: [...this.#tasks.values()].map((h) => h.toJSON()) };
  }

  /** Rebuilds a guard from `toJSON()` output under `options` (its rules; `maxTasks` from the JSON by default). */
  static fromJSON(json: ActionGuardJSON, options: ActionGuardOptions = {}): ActionGuard {
    const guard = new ActionGuard({ maxTasks: json.maxTasks, ...options });
    for (const task of json.tasks) {
      const history = ActionHistory.fromJSON(task, guard.rules);
      guard.#remember(history);
    }
    return guard;
  }

  #refused(taskId: string, error: unknown): void {
    if (this.#listeners.isEmpty || !KernelError.is(error) || error.code !== 'LOOP_DETECTED') return;
    this.#listeners.emit({ taskId, outcome: 'refused', error: error as LoopDetectionError });
  }

  #history(taskId: string): ActionHistory {
    const held = this.#tasks.get(taskId);
    if (held !== undefined) return held;
    const history = new ActionHistory(taskId, this.rules);
    this.#remember(history);
    return history;
  }

  #remember(history: ActionHistory): void {
    if (this.#tasks.has(history.taskId)) this.#tasks.delete(history.taskId);
    else if (this.#tasks.size >= this.maxTasks) this.#evictOldest();
    this.#tasks.set(history.taskId, history);
  }

  // One iterator kept across evictions (as LoopDetector does): a fresh one would step over every
  // entry deleted at the front since the map was last rebuilt.
  #evictOldest(): void {
    let step = this.#oldestCursor?.next();
    if (step === undefined || step.done) {
      this.#oldestCursor = this.#tasks.keys();
      step = this.#oldestCursor.next();
    }
    if (!step.done) this.#tasks.delete(step.value);
  }
}
