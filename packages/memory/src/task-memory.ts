import type { BudgetTracker } from '@exec-kernel/budget';
import type { Unsubscribe } from '@exec-kernel/core';
import type { IdleGuard, TaskLifecycle } from '@exec-kernel/lifecycle';
import type { ActionGuard, LoopDetector } from '@exec-kernel/loop';
import { actionMemoryEvent, applyEvent, type MemoryEvent } from './events.js';
import { type MemoryOptions, MemorySession } from './session.js';
import type { JsonValue, MemoryState, TaskNote, TaskRecord } from './state.js';
import type { StateStore } from './store.js';

/** Kernels whose events {@link TaskMemory.attach} records. */
export interface AttachableKernels {
  lifecycle?: TaskLifecycle | readonly TaskLifecycle[] | undefined;
  budget?: BudgetTracker | undefined;
  loop?: LoopDetector | undefined;
  idle?: IdleGuard | undefined;
  actions?: ActionGuard | undefined;
}

/** A filter for {@link TaskMemory.listTasks}. */
export interface TaskFilter {
  state?: string | undefined;
  agentId?: string | undefined;
}

/**
 * Task context that outlives an agent's session: lifecycle state and history, budget counters,
 * the loop graph, notes, key/value context and agents' sleep, kept in a {@link StateStore}.
 *
 * Two ways to use it:
 * - `restore()` at the start of a session rebuilds the kernels from the store, with hooks that save
 *   every event they emit; `flush()` waits for the saves.
 * - `transaction(fn)` rebuilds the kernels inside one atomic update and saves what `fn` did: the
 *   way to make a check-then-act exact when several processes share the store.
 *
 * @example
 * ```ts
 * const memory = new TaskMemory(new FileStore('.exec-kernel/state.json'));
 * const session = await memory.restore();
 * session.lifecycle('task-1')?.transition('in_progress');
 * session.budget.recordStep('task-1');
 * await memory.flush();
 * ```
 */
export class TaskMemory {
  readonly store: StateStore;
  readonly options: MemoryOptions;
  #pending: Promise<void> = Promise.resolve();
  #batch: MemoryEvent[] = [];
  #failures: unknown[] = [];

  constructor(store: StateStore, options: MemoryOptions = {}) {
    this.store = store;
    this.options = options;
  }

  /**
   * Runs `fn` over kernels rebuilt from the current state, inside one atomic update of the store,
   * and saves every event it recorded. When `fn` throws after recording something (an over-budget
   * step is counted, then refused), what it recorded is still saved and the error rethrown.
   */
  async transaction<T>(fn: (session: MemorySession) => T): Promise<T> {
    const outcome = await this.store.update((state) => {
      const session = new MemorySession(state, this.options);
      try {
        return { ok: true as const, value: fn(session) };
      } catch (error) {
        if (!state.changed) throw error;
        return { ok: false as const, error };
      }
    });
    if (!outcome.ok) throw outcome.error;
    return outcome.value;
  }

  /** The kernels rebuilt from the current state, for reading; nothing done to them is saved. */
  async snapshot(): Promise<MemorySession> {
    return new MemorySession(await this.store.read(), this.options);
  }

  /**
   * Rebuilds the kernels from the store at the start of a session. Every event they emit from now
   * on is applied to the session at once and saved to the store in the background; call
   * {@link flush} before the process exits.
   */
  async restore(): Promise<MemorySession> {
    const state = await this.store.read();
    return new MemorySession(state, this.options, (event) => {
      applyEvent(state, event);
      this.#save(event);
    });
  }

  /** Saves every event of kernels built elsewhere. Returns the function that stops it. */
  attach(kernels: AttachableKernels): Unsubscribe {
    const offs: Unsubscribe[] = [];
    const lifecycles =
      kernels.lifecycle === undefined
        ? []
        : Array.isArray(kernels.lifecycle)
          ? kernels.lifecycle
          : [kernels.lifecycle];
    for (const lifecycle of lifecycles as TaskLifecycle[]) {
      offs.push(lifecycle.onTransition((event) => this.#save({ type: 'transition', event })));
    }
    if (kernels.budget)
      offs.push(kernels.budget.onRecord((event) => this.#save({ type: 'budget', event })));
    if (kernels.loop) {
      offs.push(
        kernels.loop.onRegister((event) =>
          this.#save({ type: 'register', event, at: new Date().toISOString() }),
        ),
      );
    }
    if (kernels.idle)
      offs.push(kernels.idle.onChange((event) => this.#save({ type: 'idle', event })));
    const actions = kernels.actions;
    if (actions) {
      offs.push(
        actions.onObserve((event) => {
          const recorded = actionMemoryEvent(actions, event, new Date().toISOString());
          if (recorded !== undefined) this.#save(recorded);
        }),
      );
    }
    return () => {
      for (const off of offs) off();
    };
  }

  /** Appends a note to a task. */
  async note(taskId: string, text: string, author?: string): Promise<TaskNote> {
    return this.transaction((session) => session.note(taskId, text, author));
  }

  /** Sets (or, with `undefined`, removes) a context value on a task. */
  async setContext(taskId: string, key: string, value: JsonValue | undefined): Promise<void> {
    await this.transaction((session) => session.setContext(taskId, key, value));
  }

  /** The task's remembered record. */
  async getTask(taskId: string): Promise<TaskRecord | undefined> {
    return (await this.store.read()).tasks.get(taskId);
  }

  /** Remembered tasks, oldest first, optionally filtered by state and agent. */
  async listTasks(filter: TaskFilter = {}): Promise<TaskRecord[]> {
    const state = await this.store.read();
    return [...state.tasks.values()].filter(
      (t) =>
        (filter.state === undefined || t.state === filter.state) &&
        (filter.agentId === undefined || t.agentId === filter.agentId),
    );
  }

  /**
   * Waits until every event recorded so far is saved.
   *
   * @throws the first error a save met (an `InvalidTransitionError` when another process moved
   *   the task meanwhile, a `StoreError`); the events that could be applied are saved.
   */
  async flush(): Promise<void> {
    await this.#pending;
    const [first] = this.#failures;
    this.#failures = [];
    if (first !== undefined) throw first;
  }

  #save(event: MemoryEvent): void {
    this.#batch.push(event);
    // One write per burst of events: the batch is taken when the queued write starts.
    if (this.#batch.length === 1) this.#pending = this.#pending.then(() => this.#writeBatch());
  }

  async #writeBatch(): Promise<void> {
    const batch = this.#batch;
    this.#batch = [];
    try {
      await this.store.update((state: MemoryState) => {
        for (const event of batch) {
          try {
            applyEvent(state, event);
          } catch (error) {
            this.#failures.push(error);
          }
        }
      });
    } catch (error) {
      this.#failures.push(error);
    }
  }
}
