import { MemoryState } from './state.js';

/**
 * Where remembered state lives. `update` is an atomic read-modify-write: no update made meanwhile
 * by another caller (or, for `FileStore`, another process) is lost.
 */
export interface StateStore {
  /** Names the store in messages: a file path, or `memory`. */
  readonly location: string;
  /** A consistent copy of the current state. */
  read(): Promise<MemoryState>;
  /**
   * Runs `mutate` on the current state and saves the result if `mutate` marked it changed. If
   * `mutate` throws, nothing is saved and the error propagates.
   */
  update<T>(mutate: (state: MemoryState) => T): Promise<T>;
}

/**
 * A store in process memory: for tests, demos, and services that keep their own persistence.
 * Updates run one at a time and see each other's results, like the file store's.
 */
export class InMemoryStore implements StateStore {
  readonly location = 'memory';
  #state = new MemoryState();
  #queue: Promise<unknown> = Promise.resolve();

  async read(): Promise<MemoryState> {
    await this.#queue;
    return this.#state.clone();
  }

  update<T>(mutate: (state: MemoryState) => T): Promise<T> {
    const run = this.#queue.then(() => {
      const draft = this.#state.clone();
      const result = mutate(draft);
      if (draft.changed) this.#state = draft.clone();
      return result;
    });
    this.#queue = run.catch(() => undefined);
    return run;
  }
}
