import { CoordinationClient } from '@exec-kernel/coordination-client';
import { ForbiddenError } from '@exec-kernel/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN,
  ADMISSION,
  call,
  type Engine,
  startServer,
  type TestServer,
} from './http-helpers.js';

// `GET /v1/agents` and `GET /v1/events?taskId=` over real HTTP on both databases: the operator's
// view of who is registered, asleep or awake, and which tasks each holds under a live lease; and
// one task's history out of the whole log.

const sleepMs = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each<Engine>(['sqlite', 'postgres'])('listing agents and events (%s)', (engine) => {
  let running: TestServer;
  let admin: CoordinationClient;

  beforeAll(async () => {
    // No reaper: a lapsed lease stays on its in_progress task, which the list must still leave out.
    running = await startServer(engine, { reapIntervalMs: 3_600_000 });
    admin = new CoordinationClient({ url: running.url, token: ADMIN, retries: 0 });
  });
  afterAll(async () => {
    await running?.stop();
  });

  async function register(id: string): Promise<CoordinationClient> {
    const { token } = await admin.registerAgent(id);
    return new CoordinationClient({ url: running.url, token, retries: 0 });
  }

  it('lists every agent by id with the tasks it holds under a live lease only', async () => {
    // Registered out of order: the list is by id, not by registration.
    const carol = await register('carol');
    const alice = await register('alice');
    const bob = await register('bob');
    for (const id of ['a-live-2', 'a-live-1', 'a-lapsed', 'a-released', 'a-done', 'b-live']) {
      await admin.enqueue({ id, type: 'work', admission: ADMISSION });
    }
    await alice.claimTask('a-live-2');
    await alice.claimTask('a-live-1');
    await alice.claimTask('a-lapsed', { leaseSeconds: 0.2 });
    await alice.claimTask('a-released');
    await alice.release('a-released');
    await alice.claimTask('a-done');
    await alice.transition('a-done', 'done');
    await bob.claimTask('b-live');
    await carol.sleep('carol', { timeoutSeconds: 600, reason: 'no_tasks' });
    await sleepMs(400);

    expect((await admin.getTask('a-lapsed')).state).toBe('in_progress');
    const { agents, next } = await admin.listAgents();
    expect(next).toBeNull();
    expect(agents.map((a) => [a.id, a.asleep, a.holding])).toEqual([
      ['alice', false, ['a-live-1', 'a-live-2']],
      ['bob', false, ['b-live']],
      ['carol', true, []],
    ]);
    const [first, , sleeper] = agents;
    expect(first).toEqual({
      id: 'alice',
      asleep: false,
      sleepUntil: null,
      sleepReason: null,
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      holding: ['a-live-1', 'a-live-2'],
    });
    expect(sleeper?.sleepReason).toBe('no_tasks');
    expect(Date.parse(sleeper?.sleepUntil ?? '') - Date.now()).toBeGreaterThan(500_000);

    await carol.wake('carol');
    const woken = (await admin.listAgents()).agents.find((a) => a.id === 'carol');
    expect(woken).toMatchObject({ asleep: false, sleepUntil: null, sleepReason: null });
  });

  it('pages by id with after, limit and next', async () => {
    const first = await admin.listAgents({ limit: 2 });
    expect(first.agents.map((a) => a.id)).toEqual(['alice', 'bob']);
    expect(first.next).toBe('bob');
    const rest = await admin.listAgents({ after: first.next ?? '', limit: 2 });
    expect(rest.agents.map((a) => a.id)).toEqual(['carol']);
    expect(rest.next).toBeNull();
    const bad = await call(running.url, 'GET', '/v1/agents?after=%20x');
    expect([bad.status, bad.code]).toEqual([400, 'INVALID_INPUT']);
  });

  it('refuses an agent token as other admin-only routes do', async () => {
    const dave = await register('dave');
    const refused = await dave.listAgents().catch((error: unknown) => error);
    expect(ForbiddenError.is(refused)).toBe(true);
    const registering = await dave.registerAgent('x').catch((error: unknown) => error);
    expect(ForbiddenError.is(registering)).toBe(true);
    const answer = await call(running.url, 'GET', '/v1/agents', {
      token: (await admin.registerAgent('dave')).token,
    });
    expect([answer.status, answer.code]).toEqual([403, 'FORBIDDEN']);
  });

  it("reads one task's events: a full page past other tasks' events, and the cursor moves", async () => {
    const erin = await register('erin');
    await erin.enqueue({ id: 'watched', type: 'work', admission: ADMISSION });
    await erin.enqueue({ id: 'noise', type: 'work', admission: ADMISSION });
    // Interleaved: each of watched's context writes is followed by one of noise's.
    await erin.claimTask('watched');
    await erin.claimTask('noise');
    for (let i = 0; i < 4; i++) {
      await erin.setContext('watched', `k${i}`, i);
      await erin.setContext('noise', `k${i}`, i);
    }
    const all = (await admin.events({ limit: 1000 })).events.filter((e) => e.taskId === 'watched');
    expect(all.length).toBe(6); // enqueued, claimed, four context writes

    const page = await erin.events({ taskId: 'watched', limit: 4 });
    expect(page.events).toHaveLength(4);
    expect(page.events).toEqual(all.slice(0, 4));
    expect(page.next).toBe(all[3]?.seq);
    const rest = await erin.events({ taskId: 'watched', after: page.next, limit: 4 });
    expect(rest.events).toEqual(all.slice(4));
    expect(rest.next).toBe(all[5]?.seq);
    const end = await erin.events({ taskId: 'watched', after: rest.next, limit: 4 });
    expect(end).toEqual({ events: [], next: rest.next });
    expect(await admin.events({ taskId: 'no-such-task' })).toEqual({ events: [], next: 0 });

    const bad = await call(running.url, 'GET', '/v1/events?taskId=..');
    expect([bad.status, bad.code]).toEqual([400, 'INVALID_INPUT']);
  });
});
