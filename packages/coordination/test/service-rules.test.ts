import {
  BudgetExceededError,
  ForbiddenError,
  InvalidInputError,
  KernelError,
  TaskAdmissionError,
} from '@exec-kernel/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ESCALATED_CODES } from '../src/errors.js';
import { createApp } from '../src/http/app.js';
import { type Caller, CoordinationService } from '../src/service.js';
import { MemoryStorage } from '../src/storage/memory.js';

const ADMIN_TOKEN = 'admin-token-for-rule-tests';
const ADMIN: Caller = { kind: 'admin' };
const WORKER: Caller = { kind: 'agent', agentId: 'worker' };
const ADMISSION = {
  consumer: 'users',
  painPoint: 'slow login',
  expectedValue: 'fast login',
  validationPath: 'bench',
};

let service: CoordinationService;
let app: ReturnType<typeof createApp>;

beforeEach(async () => {
  service = new CoordinationService({ storage: new MemoryStorage(), adminToken: ADMIN_TOKEN });
  await service.start();
  app = createApp(service, { maxBodyBytes: 64 * 1024 });
  await service.registerAgent(ADMIN, 'worker');
});
afterEach(() => service.stop());

async function refusal(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a refusal');
}

const post = async (path: string, body: unknown) => {
  const response = await app.request(path, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as { error?: unknown } };
};

describe('enqueue runs admitTask', () => {
  it('refuses an admission value that is not text with 422 TASK_ADMISSION, writing no task', async () => {
    const answer = await post('/v1/tasks', {
      id: 'numbered',
      type: 'x',
      admission: { ...ADMISSION, priorityScore: 7 },
    });
    expect(answer.status).toBe(422);
    expect(answer.body.error).toMatchObject({
      code: 'TASK_ADMISSION',
      violation: { kind: 'admission', taskId: 'numbered' },
    });
    expect(await service.storage.getTask('numbered')).toBeUndefined();
    const enqueued = await service.storage.readEvents(0, 100);
    expect(enqueued.filter((e) => e.type === 'task.enqueued')).toEqual([]);
  });

  it('refuses invalid budget limits as INVALID_INPUT with the budget rule message, unescalated', async () => {
    const error = await refusal(
      service.enqueue(ADMIN, {
        id: 'b',
        type: 'x',
        admission: ADMISSION,
        budget: { maxSteps: -1 },
      }),
    );
    expect(error).toBeInstanceOf(InvalidInputError);
    expect(error).toMatchObject({
      code: 'INVALID_INPUT',
      message: 'Budget limit maxSteps must be a non-negative integer, got -1',
    });
    expect(await service.listEscalations({ limit: 10 })).toEqual([]);
    expect(await service.storage.getTask('b')).toBeUndefined();
  });

  it('refuses a child nested past its own depth budget, and escalates it', async () => {
    await service.enqueue(ADMIN, { id: 'root', type: 'plan', admission: ADMISSION });
    const error = await refusal(
      service.enqueue(ADMIN, {
        id: 'deep',
        type: 'build',
        parentId: 'root',
        admission: ADMISSION,
        budget: { maxDepth: 0 },
      }),
    );
    expect(error).toBeInstanceOf(BudgetExceededError);
    expect(service.violationOf(error)).toMatchObject({ kind: 'budget_depth', taskId: 'deep' });
  });
});

describe('refusals carry codes, and escalation follows ESCALATED_CODES', () => {
  it('escalates exactly the rule violations', () => {
    expect([...ESCALATED_CODES].sort()).toEqual([
      'BUDGET_EXCEEDED',
      'IDLE_ENFORCED',
      'INVALID_TRANSITION',
      'LOOP_DETECTED',
      'TASK_ADMISSION',
    ]);
  });

  it('keeps the Violation it escalated beside the error, not patched onto it', async () => {
    const error = await refusal(service.enqueue(WORKER, { id: 'v', type: 'x', admission: {} }));
    expect(error).toBeInstanceOf(TaskAdmissionError);
    expect(Object.hasOwn(error as object, 'violation')).toBe(false);
    const [escalation] = await service.listEscalations({ limit: 10 });
    expect(service.violationOf(error)).toEqual(escalation?.violation);
    expect(service.violationOf(new Error('other'))).toBeUndefined();
  });

  it('refuses what a caller may not do with ForbiddenError, unescalated', async () => {
    const error = await refusal(service.registerAgent(WORKER, 'someone'));
    expect(error).toBeInstanceOf(ForbiddenError);
    expect(KernelError.is(error) && error.message).toBe('Only the admin may register agents');
    const asOther = await refusal(
      service.enqueue(WORKER, { type: 'x', admission: ADMISSION, agentId: 'other' }),
    );
    expect(asOther).toMatchObject({
      code: 'FORBIDDEN',
      message: 'Agent worker may not enqueue as other',
    });
    expect(await service.listEscalations({ limit: 10 })).toEqual([]);
  });

  it('refuses a lease length out of range as VALIDATION (400 through HTTP)', async () => {
    const error = await refusal(service.claim(WORKER, { leaseSeconds: 0 }));
    expect(error).toMatchObject({
      code: 'VALIDATION',
      message: 'leaseSeconds must be in (0, 3600], got 0',
    });
  });
});

describe('counters', () => {
  it('counts the move to blocked of a budget overrun among the transitions', async () => {
    await service.enqueue(ADMIN, {
      id: 'small',
      type: 'x',
      admission: ADMISSION,
      budget: { maxSteps: 1 },
    });
    const claimed = await service.claim(WORKER, {});
    const leaseId = claimed?.lease.id;
    await service.spend(WORKER, 'small', { steps: 1, leaseId });
    expect(await refusal(service.spend(WORKER, 'small', { steps: 1, leaseId }))).toBeInstanceOf(
      BudgetExceededError,
    );
    expect((await service.getTask('small')).state).toBe('blocked');
    expect(service.counters.transitions).toEqual({ blocked: 1 });
    const metrics = await (
      await app.request('/metrics', { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
    ).text();
    expect(metrics).toMatch(/transitions_total\{to="blocked"\} 1/);
  });

  it('returns from a spend the task as written, warnings recorded', async () => {
    await service.enqueue(ADMIN, {
      id: 'warm',
      type: 'x',
      admission: ADMISSION,
      budget: { maxSteps: 10 },
    });
    const claimed = await service.claim(WORKER, {});
    const { task, warnings } = await service.spend(WORKER, 'warm', {
      steps: 8,
      leaseId: claimed?.lease.id,
    });
    expect(warnings).toEqual([{ taskId: 'warm', budgetType: 'steps', fraction: 0.8 }]);
    expect(task).toMatchObject({ stepsTaken: 8, warned: ['steps'], state: 'in_progress' });
    expect(await service.getTask('warm')).toEqual(task);
  });
});
