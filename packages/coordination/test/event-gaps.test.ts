import { ManualClock } from '@exec-kernel/core';
import { expect, it } from 'vitest';
import type { EventRow } from '../src/model.js';
import { CoordinationService } from '../src/service.js';
import { MemoryStorage } from '../src/storage/memory.js';

// On PostgreSQL, with several instances, event 7 may commit after event 8: a reader at cursor 6
// that took 8 would never see 7. The reader waits for a gap to fill, and skips it only once it
// is older than eventGapMs (a rolled-back write leaves a gap that never fills).
class GappyStorage extends MemoryStorage {
  rows: EventRow[] = [];
  override async readEvents(afterSeq: number, limit: number): Promise<EventRow[]> {
    return this.rows.filter((r) => r.seq > afterSeq).slice(0, limit);
  }
}

const row = (seq: number, at: number): EventRow => ({
  seq,
  type: 't',
  taskId: null,
  agentId: null,
  data: {},
  at,
});

it('stops before a fresh gap, and skips one that stayed open past eventGapMs', async () => {
  const clock = new ManualClock(10_000);
  const storage = new GappyStorage();
  const service = new CoordinationService({ storage, adminToken: 'x', clock, eventGapMs: 2_000 });
  storage.rows = [row(1, 9_000), row(2, 9_500), row(4, 9_900), row(5, 9_950)];
  expect((await service.readEvents(0, 10)).map((e) => e.seq)).toEqual([1, 2]);
  // The gap before 4 is still fresh: nothing after cursor 2 is delivered yet.
  expect(await service.readEvents(2, 10)).toEqual([]);
  // Event 3 commits: the reader catches up in order.
  storage.rows.splice(2, 0, row(3, 9_990));
  expect((await service.readEvents(2, 10)).map((e) => e.seq)).toEqual([3, 4, 5]);
  // A gap that never fills (6 rolled back) is skipped once event 7 is older than eventGapMs.
  storage.rows.push(row(7, 10_000));
  expect(await service.readEvents(5, 10)).toEqual([]);
  clock.advance(2_001);
  expect((await service.readEvents(5, 10)).map((e) => e.seq)).toEqual([7]);
});
