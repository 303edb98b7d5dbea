// Goal 1: the lifecycle transition check against XState v5's pure `transition()` on the same
// seven-state machine, built from our TRANSITIONS table. Both sides walk the same sequence of valid
// (from, to) edges; XState snapshots and events are made up front, so only the transition call is
// timed. Also times `canTransition` and the refused-move path (throws InvalidTransitionError).
import {
  canTransition,
  InvalidTransitionError,
  TRANSITIONS,
  validateTransition,
} from '@exec-kernel/lifecycle';
import { createMachine, initialTransition, transition } from 'xstate';
import { measure } from './harness.js';

/** The XState machine equivalent to TRANSITIONS: one event per target state, named after it. */
export function machineFromTable(table) {
  const states = {};
  for (const [from, targets] of Object.entries(table)) {
    const on = {};
    for (const to of Object.keys(targets)) on[to] = { target: to };
    states[from] = Object.keys(on).length === 0 ? { type: 'final' } : { on };
  }
  return createMachine({ id: 'task', initial: 'backlog', states });
}

export async function runTransition(options = {}) {
  const stateNames = Object.keys(TRANSITIONS);
  const edges = [];
  for (const from of stateNames) {
    for (const to of Object.keys(TRANSITIONS[from])) edges.push([from, to]);
  }
  const invalid = [];
  for (const from of stateNames) {
    for (const to of stateNames) if (!canTransition(from, to)) invalid.push([from, to]);
  }

  const machine = machineFromTable(TRANSITIONS);
  const [initial] = initialTransition(machine);
  const snapshots = {};
  for (const name of stateNames) {
    snapshots[name] = name === initial.value ? initial : machine.resolveState({ value: name });
  }
  const froms = edges.map(([from]) => from);
  const tos = edges.map(([, to]) => to);
  const snaps = edges.map(([from]) => snapshots[from]);
  const events = edges.map(([, to]) => ({ type: to }));
  const badFroms = invalid.map(([from]) => from);
  const badTos = invalid.map(([, to]) => to);

  // Both sides must agree on every edge before anything is timed.
  for (let i = 0; i < edges.length; i++) {
    const [next] = transition(machine, snaps[i], events[i]);
    if (next.value !== tos[i]) throw new Error(`XState went ${froms[i]} → ${next.value}`);
    if (typeof validateTransition(froms[i], tos[i]) !== 'string') throw new Error('no reason');
  }
  for (let i = 0; i < invalid.length; i++) {
    const [next] = transition(machine, snapshots[badFroms[i]], { type: badTos[i] });
    if (next.value !== badFroms[i]) throw new Error(`XState allowed ${badFroms[i]} → ${badTos[i]}`);
  }

  const n = edges.length;
  const oursRounds = 64;
  const xstateRounds = 2;
  const results = await measure(
    [
      {
        name: 'validateTransition (ours)',
        opsPerBatch: n * oursRounds,
        batch: () => {
          let acc = 0;
          for (let r = 0; r < oursRounds; r++) {
            for (let i = 0; i < n; i++) acc += validateTransition(froms[i], tos[i]).length;
          }
          return acc;
        },
      },
      {
        name: 'xstate transition()',
        opsPerBatch: n * xstateRounds,
        batch: () => {
          let acc = 0;
          for (let r = 0; r < xstateRounds; r++) {
            for (let i = 0; i < n; i++)
              acc += transition(machine, snaps[i], events[i])[0].value.length;
          }
          return acc;
        },
      },
      {
        name: 'canTransition (ours)',
        opsPerBatch: n * oursRounds,
        batch: () => {
          let acc = 0;
          for (let r = 0; r < oursRounds; r++) {
            for (let i = 0; i < n; i++) if (canTransition(froms[i], tos[i])) acc++;
          }
          return acc;
        },
      },
      {
        name: 'validateTransition invalid (throws)',
        opsPerBatch: invalid.length,
        batch: () => {
          let acc = 0;
          for (let i = 0; i < invalid.length; i++) {
            try {
              validateTransition(badFroms[i], badTos[i]);
            } catch (error) {
              if (error instanceof InvalidTransitionError) acc++;
            }
          }
          return acc;
        },
      },
    ],
    options,
  );
  const [ours, xstate] = results;
  return {
    edges: n,
    invalidPairs: invalid.length,
    results,
    ratio: xstate.nsPerOp / ours.nsPerOp,
  };
}
