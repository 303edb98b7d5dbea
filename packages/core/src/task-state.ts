/**
 * The seven states a task moves through. Frozen, so `TaskState.DONE` can be used like an enum
 * member while every API also accepts the plain string (`'done'`).
 *
 * @example
 * ```ts
 * lifecycle.transition(TaskState.IN_PROGRESS); // same as lifecycle.transition('in_progress')
 * ```
 */
export const TaskState: Readonly<{
  BACKLOG: 'backlog';
  TODO: 'todo';
  IN_PROGRESS: 'in_progress';
  IN_REVIEW: 'in_review';
  BLOCKED: 'blocked';
  DONE: 'done';
  CANCELLED: 'cancelled';
}> = Object.freeze({
  BACKLOG: 'backlog',
  TODO: 'todo',
  IN_PROGRESS: 'in_progress',
  IN_REVIEW: 'in_review',
  BLOCKED: 'blocked',
  DONE: 'done',
  CANCELLED: 'cancelled',
});

/** One of the seven task states, as its plain string value. */
export type TaskState = (typeof TaskState)[keyof typeof TaskState];

/** Every state, in lifecycle order. */
export const TASK_STATES: readonly TaskState[] = Object.freeze([
  'backlog',
  'todo',
  'in_progress',
  'in_review',
  'blocked',
  'done',
  'cancelled',
]);

/** The absorbing states: nothing leaves them. */
export const TERMINAL_STATES: readonly TaskState[] = Object.freeze(['done', 'cancelled']);

/** Whether `value` is one of the seven state strings. */
export function isTaskState(value: unknown): value is TaskState {
  return typeof value === 'string' && (TASK_STATES as readonly string[]).includes(value);
}

/** Whether `state` is `done` or `cancelled`. */
export function isTerminalState(state: string): boolean {
  return state === 'done' || state === 'cancelled';
}
