import { InvalidTransitionError, TASK_STATES } from '@exec-kernel/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { TaskLifecycle } from './task-lifecycle.js';
import {
  allowedTargets,
  canTransition,
  transitionRefusal,
  validateTransition,
} from './transitions.js';

// The table as the spec writes it, typed out independently of the implementation's.
const SPEC_TABLE: Record<string, Record<string, string>> = {
  backlog: { todo: 'Task ready' },
  todo: { in_progress: 'Work started', cancelled: 'Task cancelled', blocked: 'Task blocked' },
  in_progress: {
    done: 'Work completed',
    blocked: 'Work blocked',
    cancelled: 'Work cancelled',
    in_review: 'Submitted for review',
  },
  in_review: {
    done: 'Review approved',
    in_progress: 'Changes requested',
    blocked: 'Review blocked',
    cancelled: 'Review cancelled',
  },
  blocked: { in_progress: 'Work resumed', cancelled: 'Task cancelled', todo: 'Task unblocked' },
  done: {},
  cancelled: {},
};
const STATES = Object.keys(SPEC_TABLE);
const EXPECTED = 'backlog, todo, in_progress, in_review, blocked, done, cancelled';

function thrown(fn: () => unknown): InvalidTransitionError {
  try {
    fn();
  } catch (e) {
    if (InvalidTransitionError.is(e)) return e;
    throw e;
  }
  throw new Error('expected a throw');
}

describe('validateTransition', () => {
  it('agrees with the spec table on all 49 pairs, with the exact reason texts', () => {
    for (const from of STATES) {
      for (const to of STATES) {
        const reason = SPEC_TABLE[from]?.[to];
        if (reason !== undefined) {
          expect(validateTransition(from, to)).toBe(reason);
          expect(canTransition(from, to)).toBe(true);
        } else {
          const e = thrown(() => validateTransition(from, to));
          const expected =
            from === 'done' || from === 'cancelled'
              ? `Cannot transition from terminal state ${from}`
              : `No valid transition from ${from} to ${to}`;
          expect([e.from, e.to, e.reason, e.message]).toEqual([from, to, expected, expected]);
          expect(canTransition(from, to)).toBe(false);
        }
      }
    }
  });

  it('refuses a move to the current state', () => {
    expect(thrown(() => validateTransition('todo', 'todo')).reason).toBe(
      'No valid transition from todo to todo',
    );
  });

  it('names unknown states and the expected ones', () => {
    expect(thrown(() => validateTransition('started', 'done')).reason).toBe(
      `Unknown state 'started' (expected one of: ${EXPECTED})`,
    );
    expect(thrown(() => validateTransition('todo', 'finished')).reason).toBe(
      `Unknown state 'finished' (expected one of: ${EXPECTED})`,
    );
    // Prototype keys are not states.
    for (const odd of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      expect(canTransition('todo', odd)).toBe(false);
      expect(canTransition(odd, 'todo')).toBe(false);
      expect(thrown(() => validateTransition(odd, 'todo')).reason).toMatch(/^Unknown state/);
    }
  });

  it('carries the task id when given', () => {
    expect(thrown(() => validateTransition('done', 'todo', 'task-7')).taskId).toBe('task-7');
    expect(transitionRefusal('todo', 'in_progress')).toBeUndefined();
  });

  it('lists allowed targets in table order', () => {
    expect(allowedTargets('in_progress')).toEqual(['done', 'blocked', 'cancelled', 'in_review']);
    expect(allowedTargets('done')).toEqual([]);
    expect(allowedTargets('nope')).toEqual([]);
  });
});

describe('property: random walks', () => {
  it('never leave a terminal state and agree with the table at every step', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...STATES),
        fc.array(fc.constantFrom(...STATES), { maxLength: 60 }),
        (initial, moves) => {
          const task = new TaskLifecycle({ taskId: 't', initial: initial as never });
          let state = initial;
          let enteredTerminal = false;
          for (const to of moves) {
            const allowed = SPEC_TABLE[state]?.[to];
            expect(task.canTransitionTo(to as never)).toBe(allowed !== undefined);
            if (allowed === undefined) {
              expect(() => task.transition(to as never)).toThrow(InvalidTransitionError);
            } else {
              expect(enteredTerminal).toBe(false);
              expect(task.transition(to as never)).toBe(allowed);
              state = to;
            }
            if (state === 'done' || state === 'cancelled') enteredTerminal = true;
            expect(task.state).toBe(state);
            expect(task.isTerminal).toBe(enteredTerminal);
          }
          // History is exactly the accepted moves, each one an edge of the table.
          for (const entry of task.history)
            expect(SPEC_TABLE[entry.from]?.[entry.to]).toBeDefined();
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('reach every state from backlog and nothing after a terminal one', () => {
    const reachable = new Set(['backlog']);
    const queue = ['backlog'];
    while (queue.length > 0) {
      const from = queue.shift() as string;
      for (const to of allowedTargets(from)) {
        if (!reachable.has(to)) {
          reachable.add(to);
          queue.push(to);
        }
      }
    }
    expect([...reachable].sort()).toEqual([...TASK_STATES].sort());
    for (const terminal of ['done', 'cancelled']) {
      for (const to of TASK_STATES) expect(canTransition(terminal, to)).toBe(false);
    }
  });
});
