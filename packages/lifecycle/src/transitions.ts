import {
  InvalidTransitionError,
  isTerminalState,
  TASK_STATES,
  type TaskState,
} from '@exec-kernel/core';

/** The reason text of each allowed edge, by source state then target state. */
export type TransitionTable = Readonly<
  Record<TaskState, Readonly<Partial<Record<TaskState, string>>>>
>;

function row(
  entries: Partial<Record<TaskState, string>>,
): Readonly<Partial<Record<TaskState, string>>> {
  // Null prototype: a lookup of an arbitrary string ('constructor', '__proto__') finds nothing.
  return Object.freeze(Object.assign(Object.create(null), entries));
}

/**
 * The lifecycle: every allowed edge and the reason text a successful move returns. `done` and
 * `cancelled` have no outgoing edges; a move to the current state is not an edge.
 */
export const TRANSITIONS: TransitionTable = Object.freeze(
  Object.assign(Object.create(null), {
    backlog: row({ todo: 'Task ready' }),
    todo: row({
      in_progress: 'Work started',
      cancelled: 'Task cancelled',
      blocked: 'Task blocked',
    }),
    in_progress: row({
      done: 'Work completed',
      blocked: 'Work blocked',
      cancelled: 'Work cancelled',
      in_review: 'Submitted for review',
    }),
    in_review: row({
      done: 'Review approved',
      in_progress: 'Changes requested',
      blocked: 'Review blocked',
      cancelled: 'Review cancelled',
    }),
    blocked: row({
      in_progress: 'Work resumed',
      cancelled: 'Task cancelled',
      todo: 'Task unblocked',
    }),
    done: row({}),
    cancelled: row({}),
  }),
);

const STATE_LIST = TASK_STATES.join(', ');

/** The refusal text for a move, or `undefined` when the move is allowed. */
export function transitionRefusal(from: string, to: string): string | undefined {
  const targets = (TRANSITIONS as Record<string, Record<string, string> | undefined>)[from];
  if (targets === undefined) return `Unknown state '${from}' (expected one of: ${STATE_LIST})`;
  if (targets[to] !== undefined) return undefined;
  if ((TRANSITIONS as Record<string, unknown>)[to] === undefined) {
    return `Unknown state '${to}' (expected one of: ${STATE_LIST})`;
  }
  if (isTerminalState(from)) return `Cannot transition from terminal state ${from}`;
  return `No valid transition from ${from} to ${to}`;
}

/**
 * Checks a move against the lifecycle table. Pure: no state, no clock.
 *
 * @returns the edge's reason text, e.g. `Work started` for `todo → in_progress`.
 * @throws InvalidTransitionError with `reason` `No valid transition from <from> to <to>`,
 *   `Cannot transition from terminal state <state>`, or `Unknown state '<x>' (expected one of: …)`.
 *
 * @example
 * ```ts
 * validateTransition('todo', 'in_progress'); // 'Work started'
 * validateTransition('todo', 'done');        // throws: No valid transition from todo to done
 * ```
 */
export function validateTransition(from: string, to: string, taskId?: string): string {
  const reason = (TRANSITIONS as Record<string, Record<string, string> | undefined>)[from]?.[to];
  if (reason !== undefined) return reason;
  throw new InvalidTransitionError({
    from,
    to,
    reason: transitionRefusal(from, to) as string,
    taskId,
  });
}

/** Whether the table allows `from → to`. Never throws, also for unknown states. */
export function canTransition(from: string, to: string): boolean {
  return (
    (TRANSITIONS as Record<string, Record<string, string> | undefined>)[from]?.[to] !== undefined
  );
}

/** The states reachable from `from` in one move, in table order (empty for terminal or unknown states). */
export function allowedTargets(from: string): TaskState[] {
  const targets = (TRANSITIONS as Record<string, Record<string, string> | undefined>)[from];
  return targets === undefined ? [] : (Object.keys(targets) as TaskState[]);
}
