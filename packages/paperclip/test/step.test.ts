import {
  BudgetExceededError,
  ConfigError,
  InvalidInputError,
  KernelError,
  ManualClock,
  type NotFoundError,
} from '@exec-kernel/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PaperclipAdapter } from '../src/adapter.js';
import { type FakeAgent, FakePaperclip } from './fake-paperclip.js';

let fake: FakePaperclip;
let agent: FakeAgent;
const clock = new ManualClock(1_000_000);

beforeEach(async () => {
  fake = await new FakePaperclip().start();
  agent = fake.addAgent();
});
afterEach(() => fake.stop());

function adapterFor(extra: Partial<ConstructorParameters<typeof PaperclipAdapter>[0]> = {}) {
  return new PaperclipAdapter({
    apiUrl: fake.url,
    apiKey: agent.apiKey,
    agentId: agent.id,
    companyId: fake.companyId,
    runId: fake.startRun(agent.id),
    clock,
    ...extra,
  });
}

async function refusal<T extends KernelError>(promise: Promise<unknown>): Promise<T> {
  try {
    await promise;
  } catch (e) {
    if (KernelError.is(e)) return e as T;
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('step budgets on Paperclip', () => {
  it('counts steps in the issue, shared by every adapter, and refuses the one past the limit', async () => {
    const issue = fake.seedIssue({ title: 'Work', status: 'in_progress' });
    expect(await adapterFor().step(issue.identifier, { count: 49 })).toMatchObject({
      taskId: issue.id,
      stepsTaken: 49,
      maxSteps: 50,
      remaining: 1,
    });
    // Another process (another adapter) sees the same count.
    expect((await adapterFor().step(issue.id)).stepsTaken).toBe(50);
    const error = await refusal<BudgetExceededError>(adapterFor().step(issue.identifier));
    expect(error).toBeInstanceOf(BudgetExceededError);
    expect(error.message).toBe(
      `Task ${issue.identifier} exceeded step budget: 51 steps taken, max 50`,
    );
    // Counted all the same: the count tells the truth.
    const refusedAgain = await refusal<BudgetExceededError>(adapterFor().step(issue.id));
    expect(refusedAgain.observed).toBe(52);
  });

  it('checks the duration from the first step, with the limits it was given', async () => {
    const issue = fake.seedIssue({ title: 'Slow', status: 'in_progress' });
    const adapter = adapterFor({ budget: { maxSteps: 5, maxDurationSeconds: 60 } });
    expect((await adapter.step(issue.id)).remaining).toBe(4);
    clock.advance(61_000);
    const error = await refusal<BudgetExceededError>(adapter.step(issue.id));
    expect([error.budgetType, error.observed, error.limit]).toEqual(['duration', 61, 60]);
  });

  it('keeps closed budgets closed and refuses bad counts and limits before anything is sent', async () => {
    const done = fake.seedIssue({ title: 'Finished', status: 'done' });
    const closed = await refusal<NotFoundError>(adapterFor().step(done.identifier));
    expect(closed.message).toBe(`Task ${done.identifier} is done; its budget is closed`);
    const before = fake.requests.length;
    for (const count of [0, 1.5, -1, Number.NaN]) {
      expect(await refusal(adapterFor().step(done.id, { count }))).toBeInstanceOf(
        InvalidInputError,
      );
    }
    expect(fake.requests.length).toBe(before);
    expect(() => adapterFor({ budget: { maxSteps: -1 } })).toThrow(ConfigError);
  });
});
