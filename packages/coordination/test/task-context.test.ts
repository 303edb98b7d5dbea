import { CoordinationClient } from '@exec-kernel/coordination-client';
import { ForbiddenError, InvalidInputError, NotFoundError } from '@exec-kernel/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, ADMISSION, type Engine, startServer, type TestServer } from './http-helpers.js';

// A task's shared context and notes, over real HTTP on both SQL engines: what `exec-kernel
// context get|set|note` does against a coordination service.
describe.each<Engine>(['sqlite', 'postgres'])('task context on %s', (engine) => {
  let service: TestServer;
  let admin: CoordinationClient;
  let owner: CoordinationClient;
  let other: CoordinationClient;

  beforeAll(async () => {
    service = await startServer(engine);
    admin = new CoordinationClient({ url: service.url, token: ADMIN });
    const a = await admin.registerAgent('owner');
    const b = await admin.registerAgent('other');
    owner = new CoordinationClient({ url: service.url, token: a.token });
    other = new CoordinationClient({ url: service.url, token: b.token });
    await owner.enqueue({ id: 'ctx-1', type: 'build', admission: ADMISSION });
  });
  afterAll(async () => {
    await service?.stop();
  });

  it('keeps keys and notes that every agent reads, and records who wrote each note', async () => {
    expect(await owner.getContext('ctx-1')).toEqual({ context: {}, notes: [] });
    expect(await owner.setContext('ctx-1', 'branch', 'fix/login')).toEqual({ branch: 'fix/login' });
    await owner.setContext('ctx-1', 'attempt', { n: 2, files: ['a.ts'] });
    const note = await other.addNote('ctx-1', 'the cache is cold on Mondays\nsee logs');
    expect(note).toMatchObject({
      agentId: 'other',
      text: 'the cache is cold on Mondays\nsee logs',
    });
    await owner.addNote('ctx-1', 'second');

    const seen = await other.getContext('ctx-1');
    expect(seen.context).toEqual({ attempt: { n: 2, files: ['a.ts'] }, branch: 'fix/login' });
    expect(seen.notes.map((n) => [n.agentId, n.text])).toEqual([
      ['other', 'the cache is cold on Mondays\nsee logs'],
      ['owner', 'second'],
    ]);
    expect(Date.parse(seen.notes[0]?.at ?? '')).not.toBeNaN();

    expect(await owner.setContext('ctx-1', 'attempt', undefined)).toEqual({ branch: 'fix/login' });
    const { events } = await admin.events({ after: 0, limit: 1000 });
    const types = events.filter((e) => e.taskId === 'ctx-1').map((e) => e.type);
    expect(types.filter((t) => t === 'task.context')).toHaveLength(3);
    expect(types.filter((t) => t === 'task.note')).toHaveLength(2);
  });

  it('refuses a change by an agent that neither owns nor holds the task, and writes nothing', async () => {
    const refused = await other.setContext('ctx-1', 'branch', 'theirs').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ForbiddenError);
    expect((refused as ForbiddenError).message).toMatch(/^Agent other may not change the context/);
    expect((await owner.getContext('ctx-1')).context.branch).toBe('fix/login');
    // The admin may.
    await admin.setContext('ctx-1', 'reviewed', true);
  });

  it('answers an unknown task with NOT_FOUND and bad input with one clear error', async () => {
    await expect(owner.getContext('nope')).rejects.toBeInstanceOf(NotFoundError);
    await expect(owner.addNote('nope', 'x')).rejects.toBeInstanceOf(NotFoundError);
    const blank = await owner.addNote('ctx-1', '   ').catch((e: unknown) => e);
    expect(blank).toBeInstanceOf(InvalidInputError);
    expect((blank as InvalidInputError).message).toBe('Invalid note: must not be blank');
    const deep = await owner
      .setContext('ctx-1', 'deep', JSON.parse(`${'['.repeat(70)}${']'.repeat(70)}`))
      .catch((e: unknown) => e);
    expect(deep).toBeInstanceOf(InvalidInputError);
    const bell = await owner.addNote('ctx-1', 'ring \u0007').catch((e: unknown) => e);
    expect(codeOf(bell)).toMatch(/^(INVALID_INPUT|VALIDATION)$/);
  });

  it('holds at most 100 keys per task', async () => {
    await owner.enqueue({ id: 'ctx-many', type: 'build', admission: ADMISSION });
    for (let i = 0; i < 100; i++) await owner.setContext('ctx-many', `k${i}`, i);
    const over = await owner.setContext('ctx-many', 'k100', 100).catch((e: unknown) => e);
    expect(over).toBeInstanceOf(InvalidInputError);
    // Changing a key it already has is still fine.
    expect((await owner.setContext('ctx-many', 'k5', 'five')).k5).toBe('five');
  });
});

function codeOf(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null && 'code' in error
    ? String(error.code)
    : undefined;
}
