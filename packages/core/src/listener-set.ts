/** Removes the listener it was returned for. Calling it twice is harmless. */
export type Unsubscribe = () => void;

/**
 * A minimal synchronous event channel used by the stateful kernels (`onTransition`, `onWarning`, …).
 * Listeners run in the order they were added; an error thrown by one propagates to the caller of
 * `emit` after the state change it reports has been made.
 */
export class ListenerSet<T> {
  #listeners: Array<(event: T) => void> = [];

  /** Adds a listener; returns the function that removes it. */
  add(listener: (event: T) => void): Unsubscribe {
    // Copy on write, so a listener that unsubscribes during emit does not skip its neighbour.
    this.#listeners = [...this.#listeners, listener];
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== listener);
    };
  }

  /** Whether any listener is attached (lets callers skip building an event nobody reads). */
  get isEmpty(): boolean {
    return this.#listeners.length === 0;
  }

  /** Calls every listener with `event`. */
  emit(event: T): void {
    for (const listener of this.#listeners) listener(event);
  }
}
