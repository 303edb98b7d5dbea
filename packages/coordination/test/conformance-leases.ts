import { expect, it } from 'vitest';
import type { TaskRow } from '../src/model.js';
import type { Expectation, Storage } from '../src/storage/storage.js';
import { claimed, claimRequest, event, taskRow } from './conformance.js';

/**
 * A lapsed lease can do nothing, at the storage: a holder's heartbeat, move and spending carry
 * `leaseLiveAt` (the service's clock) and are refused once it is past the lease's `leaseUntil`,
 * with no reaper having run. Part of {@link storageConformance}.
 */
export function lapsedLeaseConformance(current: () => Storage): void {
  // claimRequest leases until 60_000.
  const held = (task: TaskRow, at: number): Expectation => ({
    state: 'in_progress',
    leaseId: task.leaseId,
    leaseOwner: task.leaseOwner,
    leaseLiveAt: at,
  });

  async function claimedTask(storage: Storage, fields = {}): Promise<TaskRow> {
    await storage.insertTask(taskRow(fields), event('e'));
    const task = await storage.claim(claimRequest('w'), claimed);
    if (task === undefined) throw new Error('expected a claim');
    return task;
  }

  it('refuses a heartbeat on a lease that lapsed, though no reaper ran', async () => {
    const storage = current();
    const task = await claimedTask(storage);
    const beat = (at: number) =>
      storage.updateTask(
        task.id,
        held(task, at),
        { leaseUntil: at + 30_000, updatedAt: at },
        { events: [] },
      );
    expect(await beat(60_001)).toBeUndefined();
    expect((await storage.getTask(task.id))?.leaseUntil).toBe(60_000);
    expect((await beat(60_000))?.leaseUntil).toBe(90_000);
  });

  it('refuses a move on a lease that lapsed, alone or followed by a claim, writing nothing', async () => {
    const storage = current();
    const task = await claimedTask(storage);
    await storage.insertTask(taskRow(), event('e'));
    const before = (await storage.readEvents(0, 1000)).length;
    const done = (at: number) => ({
      id: task.id,
      expect: held(task, at),
      changes: { state: 'done' as const, leaseOwner: null, leaseId: null, leaseUntil: null },
      extras: { events: [event('task.transitioned', { taskId: task.id })] },
    });
    const late = done(60_001);
    expect(await storage.updateTask(late.id, late.expect, late.changes, late.extras)).toBe(
      undefined,
    );
    expect(await storage.updateTasks([late])).toEqual([undefined]);
    const next = { request: claimRequest('w'), max: 1, event: claimed };
    expect(await storage.updateThenClaim([late], next)).toEqual({
      tasks: [undefined],
      claimed: undefined,
    });
    expect((await storage.getTask(task.id))?.state).toBe('in_progress');
    expect(await storage.readEvents(0, 1000)).toHaveLength(before);
    const live = done(60_000);
    expect((await storage.updateThenClaim([live], next)).tasks[0]?.state).toBe('done');
  });

  it('refuses spending on a lease that lapsed or changed hands, on the task and its ancestors alike', async () => {
    const storage = current();
    const parent = (await storage.insertTask(taskRow({ priority: -1 }), event('e'))).task;
    const task = await claimedTask(storage, { parentId: parent.id, priority: 5 });
    const before = (await storage.readEvents(0, 1000)).length;
    const spend = (expect: Expectation) =>
      storage.addSpending(
        [task.id, parent.id],
        { steps: 1, tokens: 10, costUsd: 0.5 },
        61_000,
        event('task.step', { taskId: task.id }),
        expect,
      );
    expect(await spend(held(task, 60_001))).toBeUndefined();
    expect(await spend({ ...held(task, 60_000), leaseId: 'someone-else' })).toBeUndefined();
    expect(await spend({ ...held(task, 60_000), state: 'todo' })).toBeUndefined();
    for (const id of [task.id, parent.id]) {
      expect(await storage.getTask(id)).toMatchObject({ stepsTaken: 0, tokens: 0, costUsd: 0 });
    }
    expect(await storage.readEvents(0, 1000)).toHaveLength(before);
    const rows = await spend(held(task, 60_000));
    expect(rows?.map((r) => [r.id, r.stepsTaken, r.tokens])).toEqual([
      [task.id, 1, 10],
      [parent.id, 1, 10],
    ]);
    expect(await storage.readEvents(0, 1000)).toHaveLength(before + 1);
    // A lease the reaper took back (the task is todo again) spends nothing either.
    await storage.updateTask(
      task.id,
      { state: 'in_progress', leaseId: task.leaseId, leaseEndedBefore: 60_001 },
      { state: 'todo', leaseOwner: null, leaseId: null, leaseUntil: null },
      { events: [] },
    );
    expect(await spend(held(task, 50_000))).toBeUndefined();
    expect((await storage.getTask(parent.id))?.stepsTaken).toBe(1);
  });
}
