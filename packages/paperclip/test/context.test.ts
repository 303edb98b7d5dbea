import {
  ConflictError,
  InvalidInputError,
  KernelError,
  NotFoundError,
  TransportError,
} from '@exec-kernel/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PaperclipAdapter } from '../src/adapter.js';
import { CONTEXT_DOCUMENT_KEY, contextBody, readContextBody } from '../src/task-context.js';
import { type FakeAgent, FakePaperclip } from './fake-paperclip.js';

let fake: FakePaperclip;
let agent: FakeAgent;

beforeEach(async () => {
  fake = await new FakePaperclip().start();
  agent = fake.addAgent();
});
afterEach(() => fake.stop());

function adapterFor() {
  return new PaperclipAdapter({
    apiUrl: fake.url,
    apiKey: agent.apiKey,
    agentId: agent.id,
    companyId: fake.companyId,
    runId: fake.startRun(agent.id),
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

describe('task context on Paperclip', () => {
  it('keeps key/value context in the issue document and notes as comments', async () => {
    const adapter = adapterFor();
    const issue = fake.seedIssue({ title: 'Remember me' });
    expect(await adapter.getContext(issue.identifier)).toEqual({
      taskId: issue.id,
      identifier: issue.identifier,
      context: {},
      notes: [],
    });
    await adapter.setContext(issue.identifier, 'branch', 'fix/login');
    await adapter.setContext(issue.id, 'attempt', { n: 2, flaky: ['a', null] });
    await adapter.setContext(issue.id, '__proto__', 1);
    expect(await adapter.setContext(issue.id, 'branch', undefined)).toEqual({
      attempt: { n: 2, flaky: ['a', null] },
      ['__proto__']: 1,
    });
    const note = await adapter.addNote(issue.identifier, 'tried the cache first');
    expect(note).toMatchObject({ text: 'tried the cache first', author: agent.id });

    const read = await adapter.getContext(issue.identifier);
    expect(Object.keys(read.context)).toEqual(['attempt', '__proto__']);
    expect(Object.getPrototypeOf(read.context)).toBe(Object.prototype);
    expect(read.notes.map((n) => n.text)).toEqual(['tried the cache first']);
    const doc = issue.documents.get(CONTEXT_DOCUMENT_KEY);
    expect(readContextBody(doc?.body)).toEqual(read.context);
  });

  it('loses no update when two writers race: the loser reads the new revision and retries', async () => {
    const issue = fake.seedIssue({ title: 'Shared' });
    const [a, b, c] = [adapterFor(), adapterFor(), adapterFor()];
    await Promise.all([
      a.setContext(issue.id, 'a', 1),
      b.setContext(issue.id, 'b', 2),
      c.setContext(issue.id, 'c', 3),
    ]);
    expect((await a.getContext(issue.id)).context).toEqual({ a: 1, b: 2, c: 3 });
  });

  it('gives up with a ConflictError when it keeps losing', async () => {
    const issue = fake.seedIssue({ title: 'Contended' });
    await adapterFor().setContext(issue.id, 'x', 1);
    fake.fail('PUT', /documents/, 409, { times: 5, body: { error: 'Document was updated' } });
    const error = await refusal<ConflictError>(adapterFor().setContext(issue.id, 'y', 2));
    expect(error).toBeInstanceOf(ConflictError);
    expect(fake.requests.filter((r) => r.method === 'PUT')).toHaveLength(6);
  });

  it('refuses a key that is not an id and a value that is not JSON, before anything is sent', async () => {
    const adapter = adapterFor();
    for (const [key, value, field] of [
      ['', 1, 'context key'],
      ['k', Number.NaN, 'context value'],
      ['k', new Date(), 'context value'],
      ['k', () => 1, 'context value'],
    ] as const) {
      const error = await refusal<InvalidInputError>(
        adapter.setContext('KER-1', key, value as never),
      );
      expect(error).toBeInstanceOf(InvalidInputError);
      expect(error.field).toBe(field);
    }
    const deep: unknown[] = [];
    let cursor = deep;
    for (let i = 0; i < 70; i++) cursor = cursor[cursor.push([]) - 1] as unknown[];
    expect(await refusal(adapter.setContext('KER-1', 'k', deep as never))).toBeInstanceOf(
      InvalidInputError,
    );
    expect(fake.requests).toEqual([]);
  });

  it('says so when the document holds no context, and when the issue does not exist', async () => {
    const adapter = adapterFor();
    const issue = fake.seedIssue({ title: 'Edited by hand' });
    issue.documents.set(CONTEXT_DOCUMENT_KEY, { body: 'just prose', revision: 'r1', title: null });
    const broken = await refusal<TransportError>(adapter.getContext(issue.id));
    expect(broken).toBeInstanceOf(TransportError);
    expect(broken.message).toMatch(
      /answered with no JSON object in the exec-kernel-context document$/,
    );
    expect(await refusal(adapter.getContext('KER-404'))).toBeInstanceOf(NotFoundError);
    expect(await refusal(adapter.addNote('KER-404', 'x'))).toBeInstanceOf(NotFoundError);
  });

  it('writes a body people can read and the adapter can read back', () => {
    const body = contextBody({ a: 'x\n```', b: [1] });
    expect(body).toContain('```json\n{\n  "a": "x\\n```",');
    expect(readContextBody(body)).toEqual({ a: 'x\n```', b: [1] });
    expect(readContextBody('```json\n[1]\n```')).toBeUndefined();
  });
});
