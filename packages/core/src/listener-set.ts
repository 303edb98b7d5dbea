/** Removes the listener it was returned for. Calling it twice is harmless. */
export type Unsubscribe = () => void;

/**
 * A minimal synchronous event channel used by the stateful kernels (`onTransition`, `onWarning`, …).
 * Listeners run in the order they were added; an error thrown by one propagates to the caller of
 * `emit` after the state change it reports has been made.
 */
export class ListenerSet<T> {
  #entries: Array<{ listener: (event: T) => void }> = [];

  /** Adds a listener; returns the function that removes it. */
  add(listener: (event: T) => void): Unsubscribe {
    // Copy on write, so a listener that unsubscribes during emit does not skip its neighbour.
    // Each add gets its own entry, so a listener added twice and unsubscribed once still runs once.
    const entry = { listener };
    this.#entries = [...this.#entries, entry];
    return () => {
      this.#entries = this.#entries.filter((e) => e !== entry);
    };
  }

  /** Whether any listener is attached (lets callers skip building an event nobody reads). */
  get isEmpty(): boolean {
    return this.#entries.length === 0;
  }

  /** Calls every listener with `event`. */
  emit(event: T): void {
    for (const entry of this.#entries) entry.listener(event);
  }
}
