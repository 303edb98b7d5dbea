import { ForbiddenError } from '@exec-kernel/core';
import { describe, expect, it } from 'vitest';
import { CoordinationClient } from '../src/client.js';
import type { TaskView } from '../src/protocol/types.js';

// The worker against a scripted service (a fetch that answers by route): what it does when a
// call on its lease is refused because another agent holds the task now.

const TASK: TaskView = {
  id: 't1',
  seq: 1,
  type: 'x',
  title: null,
  state: 'in_progress',
  priority: 0,
  agentId: 'a',
  parentId: null,
  createdById: null,
  depth: 0,
  admission: null,
  payload: null,
  idempotencyKey: null,
  attempts: 1,
  maxAttempts: 3,
  leaseOwner: 'a',
  leaseUntil: '2099-01-01T00:00:00.000Z',
  limits: {
    maxSteps: 50,
    maxDepth: 10,
    maxDurationSeconds: 1800,
    maxTokens: null,
    maxCostUsd: null,
  },
  stepsTaken: 0,
  tokens: 0,
  costUsd: 0,
  startedAt: null,
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
};

const FORBIDDEN = {
  error: { code: 'FORBIDDEN', message: 'Task t1 is leased by b, not a', details: { holder: 'b' } },
};

/** A service that hands out `t1` once and answers `refuse` (a route suffix) with FORBIDDEN. */
function scripted(refuse: string): { fetch: typeof fetch; calls: string[] } {
  const calls: string[] = [];
  let claimed = false;
  const reply = (status: number, body?: unknown) =>
    new Response(body === undefined ? null : JSON.stringify(body), {
      status,
      headers: { 'content-type': 'application/json' },
    });
  const fetch = async (input: string | URL | Request, init?: RequestInit) => {
    const request = new Request(input, init);
    const path = new URL(request.url).pathname;
    calls.push(`${request.method} ${path}`);
    if (path === '/v1/tasks/claim') {
      if (claimed) return reply(204);
      claimed = true;
      return reply(200, { task: TASK, lease: { id: 'l1', until: TASK.leaseUntil } });
    }
    if (path.endsWith(refuse)) return reply(403, FORBIDDEN);
    if (path.endsWith('/heartbeat'))
      return reply(200, { task: TASK, lease: { id: 'l1', until: TASK.leaseUntil } });
    if (path.endsWith('/steps')) return reply(200, { task: TASK, warnings: [] });
    return reply(200, { task: TASK, from: 'in_progress', to: 'done', reason: 'ok' });
  };
  return { fetch, calls };
}

describe('the worker and a task another agent holds now', () => {
  it('aborts the job with the ForbiddenError when a heartbeat is refused, and reports nothing', async () => {
    const service = scripted('/heartbeat');
    const client = new CoordinationClient({ url: 'http://svc', token: 'a', fetch: service.fetch });
    let reason: unknown;
    const handled = await client.work(
      (job) =>
        new Promise<undefined>((resolve) => {
          job.signal.addEventListener('abort', () => {
            reason = job.signal.reason;
            resolve(undefined);
          });
        }),
      { leaseSeconds: 0.03, untilIdle: true, waitSeconds: 0 },
    );
    expect(handled).toBe(1);
    expect(ForbiddenError.is(reason)).toBe(true);
    expect((reason as ForbiddenError).message).toBe('Task t1 is leased by b, not a');
    expect(service.calls.filter((c) => c.endsWith('/transition'))).toEqual([]);
  });

  it('does not try to block a task whose step was refused as no longer its own', async () => {
    const service = scripted('/steps');
    const client = new CoordinationClient({ url: 'http://svc', token: 'a', fetch: service.fetch });
    const errors: unknown[] = [];
    await client.work(
      async (job) => {
        await job.step();
        return 'done';
      },
      { untilIdle: true, waitSeconds: 0, onError: (error) => errors.push(error) },
    );
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(ForbiddenError);
    // The lease is lost: neither the outcome nor a block is sent for a task that is not ours.
    expect(service.calls.filter((c) => c.endsWith('/transition'))).toEqual([]);
  });
});
