import type { Unsubscribe, Violation } from '@exec-kernel/core';
import type { PaperclipAdapter } from './adapter.js';
import type { TaskTransitionEvent } from './task-types.js';

/** Something a human or a manager agent should look at. */
export interface Escalation {
  /** `blocked`: a task entered `blocked`; `violation`: the adapter refused something. */
  kind: 'blocked' | 'violation';
  taskId: string | undefined;
  /**
   * The Paperclip issue (its UUID) the escalation is about: the blocked one, or the one a refused
   * call was about when the adapter had read it. `undefined` for a refusal before any issue was
   * read (a `createTask` refusal, an id refused by the id rule).
   */
  issueId: string | undefined;
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

/** The one line a refusal is posted as: `DENIED: [loop_repeat] Task KER-4 called …`. */
export function refusalLine(violation: Pick<Violation, 'kind' | 'message'>): string {
  return `DENIED: [${violation.kind}] ${violation.message}`;
}

/**
 * A sink that posts each refusal as a comment on the issue it was about (`Escalation.issueId`),
 * as {@link refusalLine} reads, with the adapter's own `comment` (so its run and key). Refusals
 * about no issue, and tasks entering `blocked` (the move carries its own comment), are skipped.
 *
 * @example
 * ```ts
 * new EscalationHook(issueCommentSink(adapter)).attach(adapter);
 * ```
 */
export function issueCommentSink(adapter: Pick<PaperclipAdapter, 'comment'>): EscalationSink {
  return {
    async send(escalation) {
      if (escalation.kind !== 'violation' || escalation.issueId === undefined) return;
      if (escalation.violation === undefined) return;
      await adapter.comment(escalation.issueId, refusalLine(escalation.violation));
    },
  };
}

/** Options of {@link EscalationHook}. */
export interface EscalationHookOptions {
  /** Called when the sink throws or rejects; the escalation is not retried. Default: ignore. */
  onError?: ((error: unknown, escalation: Escalation) => void) | undefined;
}

/**
 * Forwards every task entering `blocked`, and every violation, from an adapter to a sink. The
 * hook only forwards: it neither comments nor moves an issue itself (for comments, attach a hook
 * with {@link issueCommentSink} as well), and a refusal still reaches the adapter's caller.
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
          issueId: event.taskId,
          agentId: event.agentId,
          comment: event.comment,
          violation: undefined,
          at: event.at,
        });
      }
    });
    const offViolation = adapter.onViolation((violation, issue) =>
      this.forward({
        kind: 'violation',
        taskId: violation.taskId,
        issueId: issue?.id,
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
