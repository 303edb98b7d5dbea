import {
  type Clock,
  isTaskState,
  isTerminalState,
  ListenerSet,
  systemClock,
  type TaskState,
  toIsoTime,
  type Unsubscribe,
} from '@exec-kernel/core';
import {
  allowedTargets,
  canTransition,
  transitionRefusal,
  validateTransition,
} from './transitions.js';

/** One move in a task's history. */
export interface TransitionRecord {
  from: TaskState;
  to: TaskState;
  /** The reason given by the caller, else the table's reason text. */
  reason: string;
  /** Who made the move, when the caller said. */
  actor?: string;
  /** When (ISO-8601). */
  at: string;
}

/** What `onTransition` listeners receive: the history record plus the task id. */
export interface TransitionEvent extends TransitionRecord {
  taskId: string;
}

/** Options of {@link TaskLifecycle}. */
export interface TaskLifecycleOptions {
  taskId: string;
  /** The starting state. Default: `'todo'`. */
  initial?: TaskState | undefined;
  /** Source of `at` timestamps. Default: the system clock. */
  clock?: Clock | undefined;
}

/** Options of {@link TaskLifecycle.transition}. */
export interface TransitionOptions {
  /** Recorded in the history instead of the table's reason text. */
  reason?: string | undefined;
  /** Who made the move (an agent id, a user). */
  actor?: string | undefined;
}

/** The plain-data form of a {@link TaskLifecycle}. */
export interface TaskLifecycleJSON {
  taskId: string;
  state: TaskState;
  history: TransitionRecord[];
}

/**
 * One task's position in the lifecycle, with its history. Every move is checked against the table
 * before it happens; a refused move changes nothing and throws `InvalidTransitionError`.
 *
 * @example
 * ```ts
 * const task = new TaskLifecycle({ taskId: 'my-task' });
 * task.transition(TaskState.IN_PROGRESS); // 'Work started'
 * task.transition(TaskState.DONE);        // 'Work completed'
 * task.transition(TaskState.TODO);        // throws: Cannot transition from terminal state done
 * ```
 */
export class TaskLifecycle {
  readonly taskId: string;
  #state: TaskState;
  readonly #history: TransitionRecord[];
  readonly #clock: Clock;
  readonly #listeners = new ListenerSet<TransitionEvent>();

  constructor(options: TaskLifecycleOptions) {
    const initial = options.initial ?? 'todo';
    if (!isTaskState(initial)) throw new TypeError(transitionRefusal(initial, 'todo'));
    this.taskId = options.taskId;
    this.#state = initial;
    this.#history = [];
    this.#clock = options.clock ?? systemClock;
  }

  /** The current state. */
  get state(): TaskState {
    return this.#state;
  }

  /** Whether the task is `done` or `cancelled`: nothing moves it any more. */
  get isTerminal(): boolean {
    return isTerminalState(this.#state);
  }

  /** Every move made, oldest first (a copy). */
  get history(): TransitionRecord[] {
    return this.#history.map((r) => ({ ...r }));
  }

  /**
   * Moves the task to `to`.
   *
   * @returns the table's reason text for the edge, e.g. `Work completed`.
   * @throws InvalidTransitionError when the table has no such edge; the state is unchanged.
   */
  transition(to: TaskState, options: TransitionOptions = {}): string {
    const from = this.#state;
    const tableReason = validateTransition(from, to, this.taskId);
    const record: TransitionRecord = {
      from,
      to,
      reason: options.reason ?? tableReason,
      at: toIsoTime(this.#clock.now()),
    };
    if (options.actor !== undefined) record.actor = options.actor;
    this.#state = to;
    this.#history.push(record);
    if (!this.#listeners.isEmpty) this.#listeners.emit({ taskId: this.taskId, ...record });
    return tableReason;
  }

  /** Whether `transition(to)` would succeed now. */
  canTransitionTo(to: TaskState): boolean {
    return canTransition(this.#state, to);
  }

  /** The states the task may move to now, in table order. */
  allowedTargets(): TaskState[] {
    return allowedTargets(this.#state);
  }

  /**
   * Calls `listener` after every successful move. Returns the function that removes it. A listener
   * that throws does not undo the move; its error reaches the caller of `transition`.
   */
  onTransition(listener: (event: TransitionEvent) => void): Unsubscribe {
    return this.#listeners.add(listener);
  }

  toJSON(): TaskLifecycleJSON {
    return { taskId: this.taskId, state: this.#state, history: this.history };
  }

  /**
   * Rebuilds a lifecycle from `toJSON()` output. The history is checked against the table, so a
   * tampered record (say `done → todo`) is refused with a `TypeError` naming the bad entry.
   */
  static fromJSON(json: TaskLifecycleJSON, options: { clock?: Clock } = {}): TaskLifecycle {
    if (typeof json !== 'object' || json === null || typeof json.taskId !== 'string') {
      throw new TypeError('Lifecycle JSON needs a string taskId');
    }
    if (!isTaskState(json.state)) {
      throw new TypeError(
        `Lifecycle JSON for ${json.taskId}: ${transitionRefusal(json.state, 'todo')}`,
      );
    }
    const history = Array.isArray(json.history) ? json.history : [];
    history.forEach((entry, i) => {
      const refusal = transitionRefusal(entry?.from, entry?.to);
      const next = history[i + 1];
      if (refusal !== undefined) {
        throw new TypeError(`Lifecycle JSON for ${json.taskId}: history[${i}]: ${refusal}`);
      }
      if (next !== undefined && next.from !== entry.to) {
        throw new TypeError(
          `Lifecycle JSON for ${json.taskId}: history[${i + 1}] starts at ${next.from}, not ${entry.to}`,
        );
      }
    });
    const last = history.at(-1);
    if (last !== undefined && last.to !== json.state) {
      throw new TypeError(
        `Lifecycle JSON for ${json.taskId}: state ${json.state} does not match the last move to ${last.to}`,
      );
    }
    const lifecycle = new TaskLifecycle({
      taskId: json.taskId,
      initial: json.state,
      clock: options.clock,
    });
    for (const entry of history) lifecycle.#history.push({ ...entry });
    return lifecycle;
  }
}
