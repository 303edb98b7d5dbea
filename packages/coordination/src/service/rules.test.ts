import { isLeaseGone } from '@exec-kernel/coordination-client';
import {
  ConflictError,
  ForbiddenError,
  InvalidTransitionError,
  NotFoundError,
  ValidationError,
} from '@exec-kernel/core';
import { describe, expect, it } from 'vitest';
import type { TaskRow } from '../model.js';
import {
  checkLease,
  claimantOf,
  heldMove,
  leaseMs,
  leaseRefusal,
  type MoveSubject,
  mayMove,
  prepareMove,
  requireAdmin,
} from './rules.js';
import type { Caller } from './types.js';

const NOW = 1_000_000;
const ADMIN: Caller = { kind: 'admin' };
const A: Caller = { kind: 'agent', agentId: 'a' };
const B: Caller = { kind: 'agent', agentId: 'b' };

/** A task `a` holds under lease `l1` until a minute from NOW. */
const held: MoveSubject = {
  id: 't',
  state: 'in_progress',
  agentId: 'owner',
  leaseId: 'l1',
  leaseOwner: 'a',
  leaseUntil: NOW + 60_000,
};
const unheld: MoveSubject = { ...held, state: 'todo', leaseId: null, leaseOwner: null };

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

describe('checkLease', () => {
  it('passes the holder, with or without naming the lease, and the admin always', () => {
    expect(checkLease(A, held, 'l1', NOW)).toBe(held);
    expect(checkLease(A, held, undefined, NOW)).toBe(held);
    expect(checkLease(ADMIN, unheld, 'gone', NOW)).toBe(unheld);
  });

  it('says why a named lease is gone: claimed again, moved, expired', () => {
    const again = thrown(() => checkLease(A, { ...held, leaseId: 'l2' }, 'l1', NOW));
    expect(isLeaseGone(again) && again.details).toMatchObject({ reason: 'claimed_again' });
    const moved = thrown(() => checkLease(A, { ...unheld, state: 'done' }, 'l1', NOW));
    expect(isLeaseGone(moved) && moved.details).toMatchObject({ reason: 'moved', state: 'done' });
    const expired = thrown(() => checkLease(A, held, 'l1', NOW + 60_001));
    expect(isLeaseGone(expired) && expired.details).toMatchObject({ reason: 'expired' });
    const none = thrown(() => checkLease(A, unheld, undefined, NOW));
    expect(isLeaseGone(none) && none.details).toMatchObject({ reason: 'not_leased' });
  });

  it('a lease still running at its last millisecond holds', () => {
    expect(checkLease(A, held, 'l1', NOW + 60_000)).toBe(held);
  });

  it('refuses another agent acting on a task it does not hold as FORBIDDEN', () => {
    const error = thrown(() => checkLease(B, held, undefined, NOW));
    expect(error).toBeInstanceOf(ForbiddenError);
    expect(error).toMatchObject({ message: 'Task t is leased by a, not b' });
  });
});

describe('leaseRefusal', () => {
  const row = held as TaskRow;
  it('is NotFound for a task gone, the lease refusal, or a lease that changed meanwhile', () => {
    expect(leaseRefusal(A, 't', undefined, 'l1', NOW)).toBeInstanceOf(NotFoundError);
    expect(isLeaseGone(leaseRefusal(A, 't', row, 'l9', NOW))).toBe(true);
    const changed = leaseRefusal(A, 't', row, 'l1', NOW);
    expect(changed).toBeInstanceOf(ConflictError);
    expect(changed.message).toBe('The lease on task t changed while the request ran');
  });
});

describe('mayMove', () => {
  it('lets the owner move a task nobody holds, but not start it, and nobody else', () => {
    const owner: Caller = { kind: 'agent', agentId: 'owner' };
    expect(() => mayMove(owner, unheld, 'backlog', undefined, NOW)).not.toThrow();
    expect(thrown(() => mayMove(owner, unheld, 'in_progress', undefined, NOW))).toBeInstanceOf(
      ConflictError,
    );
    expect(thrown(() => mayMove(A, unheld, 'backlog', undefined, NOW))).toMatchObject({
      code: 'FORBIDDEN',
      message: 'Task t belongs to owner, not a',
    });
    expect(() => mayMove(ADMIN, unheld, 'in_progress', undefined, NOW)).not.toThrow();
  });
});

describe('prepareMove', () => {
  it('checks the table first, whoever asks', () => {
    expect(
      thrown(() => prepareMove(B, { ...unheld, state: 'done' }, { to: 'todo' }, NOW)),
    ).toBeInstanceOf(InvalidTransitionError);
  });

  it('ends the lease, expects it live for an agent, and logs the move', () => {
    const move = prepareMove(A, held, { to: 'done', leaseId: 'l1', comment: 'ok' }, NOW);
    expect(move).toMatchObject({ to: 'done', reason: 'Work completed', escalates: false });
    expect(move.update.expect).toEqual({
      state: 'in_progress',
      leaseId: 'l1',
      leaseOwner: 'a',
      leaseLiveAt: NOW,
    });
    expect(move.update.changes).toEqual({
      state: 'done',
      leaseOwner: null,
      leaseId: null,
      leaseUntil: null,
      updatedAt: NOW,
    });
    expect(move.update.extras.events).toEqual([
      {
        type: 'task.transitioned',
        taskId: 't',
        agentId: 'a',
        data: { from: 'in_progress', to: 'done', reason: 'Work completed', comment: 'ok' },
        at: NOW,
      },
    ]);
    expect(prepareMove(ADMIN, held, { to: 'done' }, NOW).update.expect).not.toHaveProperty(
      'leaseLiveAt',
    );
  });

  it('raises an escalation with its event for a move into blocked, and resets attempts into todo', () => {
    const blocked = prepareMove(A, held, { to: 'blocked', comment: 'stuck' }, NOW);
    expect(blocked.escalates).toBe(true);
    expect(blocked.update.extras.escalation).toMatchObject({
      kind: 'blocked',
      taskId: 't',
      agentId: 'a',
      comment: 'stuck',
      status: 'open',
    });
    expect(blocked.update.extras.events.map((e) => e.type)).toEqual([
      'task.transitioned',
      'escalation.created',
    ]);
    const unblocked = { ...unheld, state: 'blocked' } as const;
    expect(prepareMove(ADMIN, unblocked, { to: 'todo' }, NOW).update.changes.attempts).toBe(0);
  });
});

describe('heldMove', () => {
  it('takes an agent naming its lease at its word, and nobody else', () => {
    expect(heldMove(A, 't', { to: 'done', leaseId: 'l1' }, NOW)?.update.expect).toEqual({
      state: 'in_progress',
      leaseId: 'l1',
      leaseOwner: 'a',
      leaseLiveAt: NOW,
    });
    expect(heldMove(A, 't', { to: 'done' }, NOW)).toBeUndefined();
    expect(heldMove(ADMIN, 't', { to: 'done', leaseId: 'l1' }, NOW)).toBeUndefined();
    expect(heldMove(A, 't', { to: 'in_progress', leaseId: 'l1' }, NOW)).toBeUndefined();
  });
});

describe('callers and lease lengths', () => {
  it('keeps admin work for the admin and claims for agents', () => {
    expect(thrown(() => requireAdmin(A, 'resolve escalations'))).toMatchObject({
      code: 'FORBIDDEN',
      message: 'Only the admin may resolve escalations',
    });
    expect(() => requireAdmin(ADMIN, 'x')).not.toThrow();
    expect(claimantOf(A)).toBe('a');
    expect(thrown(() => claimantOf(ADMIN))).toBeInstanceOf(ForbiddenError);
  });

  it('gives the default lease, and refuses one outside (0, max]', () => {
    const limits = { defaultLeaseSeconds: 60, maxLeaseSeconds: 600 };
    expect(leaseMs(undefined, limits)).toBe(60_000);
    expect(leaseMs(600, limits)).toBe(600_000);
    for (const bad of [0, -1, 601, Number.NaN])
      expect(thrown(() => leaseMs(bad, limits))).toBeInstanceOf(ValidationError);
  });
});
