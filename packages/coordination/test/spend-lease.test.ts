import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConflictError, ManualClock } from '@exec-kernel/core';
import postgres from 'postgres';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { isLeaseGone } from '../src/index.js';
import { type Caller, CoordinationService } from '../src/service.js';
import { openStorage } from '../src/storage/open.js';

// Spending is a compare-and-set on the lease, like heartbeat and transition: a lease that is
// reaped, or reaped and claimed by another agent, between the service's check of the lease and
// its write of the spending spends nothing. The test holds the write back to open that window.

const ADMIN = 'spend-lease-admin-token';
const ADMISSION = { consumer: 'c', painPoint: 'p', expectedValue: 'v', validationPath: 't' };
const PG_URL = process.env.EXEC_KERNEL_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';

const pg = postgres(PG_URL, { max: 1, onnotice: () => {} });
const scratch: string[] = [];
const schemas: string[] = [];
const services: CoordinationService[] = [];
afterEach(async () => {
  for (const service of services.splice(0)) await service.stop();
});
afterAll(async () => {
  for (const schema of schemas) await pg.unsafe(`drop schema if exists "${schema}" cascade`);
  await pg.end({ timeout: 5 });
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
});

const ENGINES: Record<string, () => string> = {
  memory: () => 'memory',
  sqlite: () => {
    const dir = mkdtempSync(join(tmpdir(), 'ek-spend-'));
    scratch.push(dir);
    return `sqlite:${join(dir, 'queue.db')}`;
  },
  postgres: () => {
    const schema = `ek_spend_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
    schemas.push(schema);
    return `${PG_URL}?schema=${schema}`;
  },
};

describe.each(Object.keys(ENGINES))('spending on a lease that ends mid-request (%s)', (engine) => {
  async function setUp() {
    const clock = new ManualClock(1_000_000);
    const service = new CoordinationService({
      storage: await openStorage((ENGINES[engine] as () => string)()),
      adminToken: ADMIN,
      clock,
      reapIntervalMs: 3_600_000,
    });
    await service.start();
    services.push(service);
    const admin = (await service.authenticate(ADMIN)) as Caller;
    const agent = async (id: string) =>
      (await service.authenticate((await service.registerAgent(admin, id)).token)) as Caller;
    const [worker, rival] = [await agent('worker'), await agent('rival')];
    await service.enqueue(worker, { id: 'job', type: 'build', admission: ADMISSION });
    const claimed = await service.claim(worker, { leaseSeconds: 30 });
    if (claimed === undefined) throw new Error('expected a claim');
    /** Runs `meanwhile` once, after the service has checked the lease, before its write lands. */
    const between = (meanwhile: () => Promise<void>) => {
      const addSpending = service.storage.addSpending.bind(service.storage);
      service.storage.addSpending = async (...args) => {
        service.storage.addSpending = addSpending;
        await meanwhile();
        return addSpending(...args);
      };
    };
    return { service, clock, worker, rival, leaseId: claimed.lease.id, between };
  }

  async function spendingOf(service: CoordinationService) {
    const task = await service.storage.getTask('job');
    const events = await service.storage.readEvents(0, 100);
    return { steps: task?.stepsTaken, logged: events.filter((e) => e.type === 'task.step').length };
  }

  it('refuses a spend whose lease lapsed and was reaped after it was checked', async () => {
    const { service, clock, worker, leaseId, between } = await setUp();
    between(async () => {
      clock.advance(31_000);
      await service.reapExpiredLeases();
    });
    const error = await service.spend(worker, 'job', { steps: 1, leaseId }).catch((e) => e);
    expect(error).toBeInstanceOf(ConflictError);
    expect(isLeaseGone(error)).toBe(true);
    expect(await spendingOf(service)).toEqual({ steps: 0, logged: 0 });
  });

  it('refuses a spend whose task was reaped and claimed by another agent meanwhile', async () => {
    const { service, clock, worker, rival, leaseId, between } = await setUp();
    between(async () => {
      clock.advance(31_000);
      await service.reapExpiredLeases();
      await service.claim(rival, { leaseSeconds: 30 });
    });
    const error = await service.spend(worker, 'job', { steps: 1, leaseId }).catch((e) => e);
    expect(error).toBeInstanceOf(ConflictError);
    expect(error.details).toMatchObject({ reason: 'claimed_again' });
    expect(await spendingOf(service)).toEqual({ steps: 0, logged: 0 });
  });

  it('spends on a lease that still runs when the write lands', async () => {
    const { service, clock, worker, leaseId, between } = await setUp();
    between(async () => {
      clock.advance(29_000);
      await service.reapExpiredLeases();
    });
    const { task } = await service.spend(worker, 'job', { steps: 2, leaseId });
    expect(task.stepsTaken).toBe(2);
    expect(await spendingOf(service)).toEqual({ steps: 2, logged: 1 });
  });
});
