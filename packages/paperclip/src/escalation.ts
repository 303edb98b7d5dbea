import type { Unsubscribe, Violation } from '@exec-kernel/core';
import type { PaperclipAdapter } from './adapter.js';
import type { TaskTransitionEvent } from './task-types.js';

/** Something a human or a manager agent should look at. */
export interface Escalation {
  /** `blocked`: a task entered `blocked`; `violation`: the adapter refused something. */
  kind: 'blocked' | 'violation';
  taskId: string | undefined;
  agentId: string | undefined;
  /** The comment given with the move, for `blocked`. */
  comment: string | undefined;
  /** The refusal, for `violation`. */
  violation: Violation | undefined;
  at: string;
}

/** Where escalations go: a queue, a chat channel, a log. */
export interface EscalationSink {
  send(escalation: Escalation): void | Promise<void>;
}

/** A sink that calls `fn` for each escalation. */
export function callbackSink(fn: (escalation: Escalation) => void | Promise<void>): EscalationSink {
  return { send: fn };
}

/** Options of {@link EscalationHook}. */
export interface EscalationHookOptions {
  /** Called when the sink throws or rejects; the escalation is not retried. Default: ignore. */
  onError?: ((error: unknown, escalation: Escalation) => void) | undefined;
}

/**
 * Forwards every task entering `blocked`, and every violation, from an adapter to a sink.
 *
 * @example
 * ```ts
 * const hook = new EscalationHook(callbackSink((e) => console.log(e.kind, e.taskId)));
 * hook.attach(adapter);
 * ```
 */
export class EscalationHook {
  readonly #sink: EscalationSink;
  readonly #onError: (error: unknown, escalation: Escalation) => void;
  readonly #pending = new Set<Promise<void>>();

  constructor(sink: EscalationSink, options: EscalationHookOptions = {}) {
    this.#sink = sink;
    this.#onError = options.onError ?? (() => undefined);
  }

  /** Starts forwarding from `adapter`; returns the function that stops it. */
  attach(adapter: Pick<PaperclipAdapter, 'onTransition' | 'onViolation'>): Unsubscribe {
    const offTransition = adapter.onTransition((event: TaskTransitionEvent) => {
      if (event.to === 'blocked') {
        this.forward({
          kind: 'blocked',
          taskId: event.identifier ?? event.taskId,
          agentId: event.agentId,
          comment: event.comment,
          violation: undefined,
          at: event.at,
        });
      }
    });
    const offViolation = adapter.onViolation((violation) =>
      this.forward({
        kind: 'violation',
        taskId: violation.taskId,
        agentId: violation.agentId,
        comment: undefined,
        violation,
        at: violation.at,
      }),
    );
    return () => {
      offTransition();
      offViolation();
    };
  }

  /** Sends one escalation to the sink. */
  forward(escalation: Escalation): void {
    const sent = Promise.resolve()
      .then(() => this.#sink.send(escalation))
      .catch((error: unknown) => this.#onError(error, escalation))
      .finally(() => this.#pending.delete(sent));
    this.#pending.add(sent);
  }

  /** Waits until every escalation forwarded so far has been handed to the sink. */
  async flush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }
}
