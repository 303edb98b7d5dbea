import type { ServerResponse } from 'node:http';
import { inspect } from 'node:util';
import {
  ConfigError,
  type ConflictError,
  InvalidInputError,
  type InvalidTransitionError,
  KernelError,
  NotFoundError,
  type TransportError,
} from '@exec-kernel/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PaperclipAdapter } from '../src/adapter.js';
import { ADMISSION } from './admission.js';
import { type FakeAgent, FakePaperclip } from './fake-paperclip.js';

// The adapter against a Paperclip that answers as an attacker's or a broken server would, and
// against callers and environments that hand it values no id or URL should be. Real HTTP on
// 127.0.0.1 throughout: what the assertions read is what went over the wire.

let fake: FakePaperclip;
let agent: FakeAgent;
let runId: string;

beforeEach(async () => {
  fake = await new FakePaperclip().start();
  agent = fake.addAgent();
  runId = fake.startRun(agent.id);
});
afterEach(() => fake.stop());

function adapterFor(extra: Partial<ConstructorParameters<typeof PaperclipAdapter>[0]> = {}) {
  return new PaperclipAdapter({
    apiUrl: fake.url,
    apiKey: agent.apiKey,
    agentId: agent.id,
    companyId: fake.companyId,
    runId,
    retries: 2,
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

function thrown<T extends KernelError>(make: () => unknown): T {
  try {
    make();
  } catch (e) {
    if (KernelError.is(e)) return e as T;
    throw e;
  }
  throw new Error('expected a throw');
}

/** Which of `secrets` show up anywhere an error can be read: message, JSON, details, inspect. */
function leaks(error: unknown, secrets: string[]): string[] {
  const texts = [
    (error as Error).message,
    String((error as Error).stack),
    JSON.stringify(error),
    JSON.stringify((error as KernelError).details),
    inspect(error, { depth: 20, showHidden: true }),
  ];
  return secrets.filter((secret) => texts.some((text) => text.includes(secret)));
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

describe('secrets in what the server says', () => {
  it('redacts the key and any bearer token a 401, 409, 422, 500 or unparsable body echoes', async () => {
    // A key with characters that URL- and JSON-escaping change, so the escaped forms are tried.
    const key = 'pcp_k3y+With/Slash="quoted"';
    const stranger = 'sk-live-0123456789abcdef';
    agent.apiKey = key;
    const adapter = adapterFor({ retries: 0 });
    const issue = fake.seedIssue({ title: 'x', status: 'todo' });
    const errors: KernelError[] = [];

    fake.fail('GET', /inbox-lite/, 401, { body: { error: `invalid key ${key}` } });
    errors.push(await refusal(adapter.inbox()));
    fake.fail('POST', /checkout$/, 409, {
      body: {
        error: `Issue checkout conflict; you sent Authorization: Bearer ${key}`,
        details: { assigneeAgentId: key, checkoutRunId: `Bearer ${stranger}` },
      },
    });
    errors.push(await refusal(adapter.checkout(issue.id)));
    fake.fail('PATCH', /\/issues\//, 422, {
      body: { error: `refused ${encodeURIComponent(key)} (Bearer ${stranger})` },
    });
    errors.push(await refusal(adapter.transitionTask(issue.id, 'blocked')));
    fake.fail('GET', /\/issues\//, 500, {
      times: 3,
      body: {
        error: `upstream said ${JSON.stringify({ authorization: key, other: `Bearer ${stranger}` })}`,
      },
    });
    errors.push(await refusal(adapter.getTask(issue.id)));
    fake.intercept('GET', /inbox-lite/, (_req, res) => {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end(`<h1>Bad gateway</h1><pre>Authorization: Bearer ${key}</pre>`);
    });
    errors.push(await refusal(adapter.inbox()));
    fake.intercept('GET', /inbox-lite/, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`{"echo": "${key}"`);
    });
    errors.push(await refusal(adapter.inbox()));

    expect(errors.map((e) => e.code)).toEqual([
      'TRANSPORT',
      'CONFLICT',
      'INVALID_TRANSITION',
      'TRANSPORT',
      'TRANSPORT',
      'TRANSPORT',
    ]);
    const secrets = [key, encodeURIComponent(key), JSON.stringify(key).slice(1, -1), stranger];
    for (const error of errors) expect(leaks(error, secrets)).toEqual([]);
    expect(errors[0]?.message).toBe(
      `GET ${fake.url}/api/agents/me/inbox-lite failed with status 401: invalid key [redacted]`,
    );
    expect(errors[1]?.message).toBe(
      `issue ${issue.id}: Issue checkout conflict; you sent Authorization: Bearer [redacted]`,
    );
    // A holder that is a key (or not an id) is no holder.
    expect((errors[1] as ConflictError).holder).toBeUndefined();
    expect((errors[2] as InvalidTransitionError).reason).toBe(
      'Paperclip refused todo -> blocked: refused [redacted] (Bearer [redacted])',
    );
    expect(errors[5]?.message).toBe(
      `GET ${fake.url}/api/agents/me/inbox-lite answered with a body that is not JSON`,
    );
  });

  it('redacts other agents’ keys and run tokens a server lets slip, keeping the rest', async () => {
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZ2VudC0yIn0.c2lnbmF0dXJlLW9mLWFnZW50LTI';
    fake.fail('GET', /inbox-lite/, 400, {
      body: { error: `token ${jwt} of agent-2 (key pcp_0ther_agents_key) is not yours` },
    });
    const error = await refusal<TransportError>(adapterFor().inbox());
    expect(error.message).toBe(
      `GET ${fake.url}/api/agents/me/inbox-lite failed with status 400: token [redacted] of agent-2 (key pcp_[redacted]) is not yours`,
    );
  });

  it('keeps what the server says to one short, printable line', async () => {
    fake.fail('GET', /inbox-lite/, 500, {
      times: 3,
      body: { error: `boom\n\u001b[31mred\u001b[0m\r\u2028\u202eevil ${'x'.repeat(5_000)}` },
    });
    const error = await refusal<TransportError>(adapterFor({ retries: 0 }).inbox());
    expect(error.message).toMatch(/failed with status 500: boom \[31mred \[0m evil x+…$/);
    expect(error.message).not.toMatch(/[\p{Cc}\u2028\u202e]/u);
    expect(error.message.length).toBeLessThan(500);
  });

  it('refuses an apiUrl with a user name, password, query or fragment, and never shows it', () => {
    const port = new URL(fake.url).port;
    for (const apiUrl of [
      `http://admin:hunter2@127.0.0.1:${port}`,
      `http://hunter2@127.0.0.1:${port}/api`,
      `${fake.url}/?token=hunter2`,
      `${fake.url}/api#hunter2`,
    ]) {
      const error = thrown<ConfigError>(
        () => new PaperclipAdapter({ apiUrl, apiKey: agent.apiKey, agentId: agent.id }),
      );
      expect(error).toBeInstanceOf(ConfigError);
      expect(error.key).toBe('apiUrl');
      expect(leaks(error, ['hunter2', agent.apiKey])).toEqual([]);
    }
    const fromEnv = thrown<ConfigError>(() =>
      PaperclipAdapter.fromEnv({
        PAPERCLIP_API_URL: `http://admin:hunter2@127.0.0.1:${port}`,
        PAPERCLIP_API_KEY: agent.apiKey,
        PAPERCLIP_AGENT_ID: agent.id,
      }),
    );
    expect(fromEnv.message).toBe(
      'Paperclip is misconfigured: PAPERCLIP_API_URL must not contain a user name or password',
    );
    expect(fake.requests).toEqual([]);
  });
});

describe('ids in paths', () => {
  it('sends every id as one encoded path segment, so no id reaches another route', async () => {
    const adapter = adapterFor();
    const ids = ['../agents/me?x=', 'a/b', 'x?y=1#z', '%2e%2e', 'KER-1\\..\\..\\agents'];
    for (const id of ids) {
      for (const call of [
        () => adapter.checkout(id),
        () => adapter.release(id),
        () => adapter.comment(id, 'hi'),
        () => adapter.getTask(id),
        () => adapter.transitionTask(id, 'done'),
        () => adapter.getContext(id),
        () => adapter.setContext(id, 'k', 1),
        () => adapter.addNote(id, 'hi'),
      ]) {
        const error = await refusal<NotFoundError>(call());
        expect(error).toBeInstanceOf(NotFoundError);
        expect(error.id).toBe(id);
      }
    }
    expect(fake.requests.map((r) => `${r.method} ${r.path}${r.search}`)).toEqual(
      ids.flatMap((id) => {
        const e = encodeURIComponent(id);
        return [
          `POST /api/issues/${e}/checkout`,
          `POST /api/issues/${e}/release`,
          `POST /api/issues/${e}/comments`,
          `GET /api/issues/${e}`,
          `GET /api/issues/${e}`,
          `GET /api/issues/${e}`,
          `GET /api/issues/${e}`,
          `POST /api/issues/${e}/comments`,
        ];
      }),
    );
  });

  it('refuses ids that are not ids, in every method, before anything is sent', async () => {
    const adapter = adapterFor();
    const notIds = [
      '..',
      '.',
      '',
      '  ',
      'a\r\nX-Injected: 1',
      '\u001b[2J',
      'x'.repeat(201),
      ' KER-1',
    ];
    for (const id of notIds) {
      for (const call of [
        () => adapter.checkout(id),
        () => adapter.release(id),
        () => adapter.comment(id, 'x'),
        () => adapter.getTask(id),
        () => adapter.transitionTask(id, 'done'),
        () => adapter.transitionTask('KER-1', 'blocked', { blockedByIssueIds: ['KER-2', id] }),
        () => adapter.transitionTask('KER-1', 'in_review', { reviewerUserId: id }),
        () => adapter.createTask('t', 'x', { admission: ADMISSION, parentTaskId: id }),
        () => adapter.createTask('t', 'x', { admission: ADMISSION, createdByTaskId: id }),
        () => adapter.createTask('t', 'x', { admission: ADMISSION, assignee: id }),
        () => adapter.listTasks({ assigneeAgentId: id }),
      ]) {
        const error = await refusal<InvalidInputError>(call());
        expect(error).toBeInstanceOf(InvalidInputError);
        expect(error.message).toMatch(
          /^Invalid (task id|blocker id|reviewer id|parent task id|creator task id|assignee): /,
        );
        expect(error.message).not.toContain('X-Injected');
      }
    }
    const status = await refusal<InvalidInputError>(
      adapter.listTasks({ status: 'todo&assigneeAgentId=someone' as never }),
    );
    expect(status.message).toBe(
      'Invalid status: must be one of backlog, todo, in_progress, in_review, blocked, done, cancelled',
    );
    // Text follows core's text rule, as the CLI and the coordination service apply it.
    const evil = 'x\u001b[2J\u0000';
    for (const [call, field] of [
      [() => adapter.createTask(evil, 'x', { admission: ADMISSION }), 'title'],
      [
        () => adapter.createTask('t', 'x', { admission: ADMISSION, description: evil }),
        'description',
      ],
      [() => adapter.createTask('t', ' x', { admission: ADMISSION }), 'task type'],
      [() => adapter.comment('KER-1', evil), 'comment'],
      [() => adapter.transitionTask('KER-1', 'done', { comment: evil }), 'comment'],
    ] as const) {
      const error = await refusal<InvalidInputError>(call());
      expect([error.code, error.field]).toEqual(['INVALID_INPUT', field]);
    }
    expect(fake.requests).toEqual([]);
  });

  it('follows no id, status or company a server or a description chose', async () => {
    const adapter = adapterFor();
    const real = fake.seedIssue({ title: 'x', status: 'todo' });
    const as = (fields: Record<string, unknown>) => (_req: unknown, res: ServerResponse) =>
      json(res, 200, { ...fake.find(real.id), ...fields });

    fake.intercept('GET', /\/issues\/KER-1$/, as({ id: '..' }));
    const byId = await refusal<TransportError>(adapter.transitionTask('KER-1', 'in_progress'));
    expect(byId.message).toBe(
      `GET ${fake.url}/api/issues/KER-1 answered with an issue without a valid id`,
    );
    // An id that is an id but names a path is sent as one segment.
    fake.intercept('GET', /\/issues\/KER-1$/, as({ id: '../agents/me', status: 'todo' }));
    expect(await refusal(adapter.transitionTask('KER-1', 'in_progress'))).toBeInstanceOf(
      NotFoundError,
    );
    expect(fake.writes().map((r) => r.path)).toEqual(['/api/issues/..%2Fagents%2Fme/checkout']);
    fake.intercept('GET', /\/issues\/KER-1$/, as({ status: '\u001b[31mowned' }));
    const byStatus = await refusal<TransportError>(adapter.transitionTask('KER-1', 'done'));
    expect(byStatus.message).toBe(
      `GET ${fake.url}/api/issues/KER-1 answered with an issue whose status is not one of ours`,
    );
    fake.intercept('GET', /\/issues\/KER-1$/, (_req, res) => json(res, 200, null));
    expect((await refusal(adapter.transitionTask('KER-1', 'done'))).message).toBe(
      `GET ${fake.url}/api/issues/KER-1 answered with no issue`,
    );
    fake.intercept('GET', /inbox-lite$/, (_req, res) => json(res, 200, { issues: [] }));
    expect((await refusal(adapter.inbox())).message).toBe(
      `GET ${fake.url}/api/agents/me/inbox-lite answered with no list of issues`,
    );

    // Anyone who edits a description can write a marker; a creator that is not an id is not read.
    const crafted = fake.seedIssue({
      title: 'crafted',
      description: '<!-- exec-kernel {"taskType":"t","createdByTaskId":".."} -->',
    });
    await adapter.createTask('new', 'v', { admission: ADMISSION, createdByTaskId: crafted.id });

    const lookup = adapterFor({ companyId: undefined });
    fake.intercept('GET', /agents\/me$/, (_req, res) =>
      json(res, 200, { id: agent.id, companyId: '..' }),
    );
    expect((await refusal(lookup.listTasks())).message).toBe(
      `GET ${fake.url}/api/agents/me answered with no valid companyId`,
    );

    expect(fake.writes().map((r) => `${r.method} ${r.path}`)).toEqual([
      'POST /api/issues/..%2Fagents%2Fme/checkout',
      `POST /api/companies/${fake.companyId}/issues`,
    ]);
    expect(fake.requests.map((r) => r.path)).not.toContain('/api/');
    expect(fake.requests.map((r) => r.path)).not.toContain('/api/health');
  });
});

describe('Retry-After', () => {
  it('waits no longer than the timeout for a Retry-After of an hour, in seconds or as a date', async () => {
    const adapter = adapterFor({ timeoutMs: 200 });
    const issue = fake.seedIssue({ title: 'x' });
    fake.fail('GET', /\/issues\//, 503, { headers: { 'retry-after': '3600' } });
    expect((await adapter.getTask(issue.id)).title).toBe('x');
    const inAnHour = new Date(Date.now() + 3_600_000).toUTCString();
    fake.fail('GET', /inbox-lite/, 429, { headers: { 'retry-after': inAnHour } });
    expect(await adapter.inbox()).toEqual([]);
    fake.fail('GET', /inbox-lite/, 503, { headers: { 'retry-after': '1e400' } });
    expect(await adapter.inbox()).toEqual([]);
    // Each answered after one retry: the waits were cut, not the retries.
    expect(fake.requests).toHaveLength(6);
  });
});

describe('headers and configuration', () => {
  it('refuses options that would put CR/LF in a header or a bad number in the client', () => {
    const cases: Array<[Partial<ConstructorParameters<typeof PaperclipAdapter>[0]>, string]> = [
      [{ runId: 'run-1\r\nX-Injected: 1' }, 'runId must not contain control characters'],
      [
        { apiKey: `${agent.apiKey}\r\nX-Injected: 1` },
        'apiKey must be printable ASCII without spaces or control characters',
      ],
      [{ agentId: 'agent\nX-Injected: 1' }, 'agentId must not contain control characters'],
      [{ companyId: '..' }, "companyId must not be '..'"],
      [{ taskId: '' }, 'taskId must not be empty'],
      [{ timeoutMs: 3_000_000_000 }, 'timeoutMs must be an integer from 1 to 2147483647'],
      [{ timeoutMs: Number.NaN }, 'timeoutMs must be an integer from 1 to 2147483647'],
      [{ retries: 1e9 }, 'retries must be an integer from 0 to 10'],
      [{ maxDepth: -1 }, 'maxDepth must be an integer from 0 to 10000'],
      [{ maxResponseBytes: 0 }, 'maxResponseBytes must be an integer of at least 1'],
    ];
    for (const [extra, problem] of cases) {
      const error = thrown<ConfigError>(() => adapterFor(extra));
      expect(error).toBeInstanceOf(ConfigError);
      expect(error.message).toBe(`Invalid PaperclipAdapter options: ${problem}`);
      expect(leaks(error, ['X-Injected', agent.apiKey])).toEqual([]);
    }
    expect(fake.requests).toEqual([]);
  });

  it('fromEnv names every bad variable at once, without quoting any', () => {
    const error = thrown<ConfigError>(() =>
      PaperclipAdapter.fromEnv(
        {
          PAPERCLIP_API_URL: 'localhost:3100',
          PAPERCLIP_API_KEY: 'pcp_has a space',
          PAPERCLIP_AGENT_ID: '..',
          PAPERCLIP_COMPANY_ID: 'c'.repeat(201),
          PAPERCLIP_RUN_ID: 'run\r\nX-Injected: 1',
          PAPERCLIP_TASK_ID: 'KER-1',
        },
        { retries: -1 },
      ),
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toBe(
      "Paperclip is misconfigured: PAPERCLIP_API_URL must be an http or https URL; PAPERCLIP_API_KEY must be printable ASCII without spaces or control characters; PAPERCLIP_AGENT_ID must not be '..'; PAPERCLIP_COMPANY_ID must be at most 200 characters, got 201; PAPERCLIP_RUN_ID must not contain control characters; retries must be an integer from 0 to 10",
    );
    expect(error.problems.map((p) => p.key)).toEqual([
      'PAPERCLIP_API_URL',
      'PAPERCLIP_API_KEY',
      'PAPERCLIP_AGENT_ID',
      'PAPERCLIP_COMPANY_ID',
      'PAPERCLIP_RUN_ID',
      'retries',
    ]);
    expect(leaks(error, ['pcp_has a space', 'X-Injected', 'ccccc'])).toEqual([]);
  });
});

describe('answers that are not what Paperclip sends', () => {
  it('follows no redirect: the key and the body stay with the server the caller named', async () => {
    const elsewhere = await new FakePaperclip().start();
    try {
      const adapter = adapterFor();
      const issue = fake.seedIssue({ title: 'x', status: 'todo' });
      fake.intercept('POST', /checkout$/, (_req, res) => {
        res.writeHead(307, { location: `${elsewhere.url}/api/issues/${issue.id}/checkout` });
        res.end();
      });
      const cross = await refusal<TransportError>(adapter.checkout(issue.id));
      fake.intercept('GET', /inbox-lite$/, (_req, res) => {
        res.writeHead(302, { location: '/api/agents/me' });
        res.end();
      });
      const same = await refusal<TransportError>(adapter.inbox());
      expect([cross.status, same.status]).toEqual([307, 302]);
      expect(cross.message).toBe(
        `POST ${fake.url}/api/issues/${issue.id}/checkout failed with status 307 (redirects are not followed)`,
      );
      expect(elsewhere.requests).toEqual([]);
      expect(fake.requests.map((r) => r.path)).not.toContain('/api/agents/me');
    } finally {
      await elsewhere.stop();
    }
  });

  it('refuses an answer larger than maxResponseBytes, whether it says so or not', async () => {
    const issue = fake.seedIssue({ title: 'x' });
    fake.intercept('GET', /\/issues\//, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      // Two writes: chunked, no length given up front.
      res.write(`{"id":"${issue.id}","status":"backlog","title":"`);
      res.end(`${'x'.repeat(2_000_000)}"}`);
    });
    const streamed = await refusal<TransportError>(
      adapterFor({ maxResponseBytes: 1_000_000 }).getTask(issue.id),
    );
    expect(streamed.message).toBe(
      `GET ${fake.url}/api/issues/${issue.id} answered with more than 1000000 bytes`,
    );
    // A declared 10 GiB is refused at the headers (default cap 16 MiB), not read while it trickles.
    fake.intercept('GET', /inbox-lite/, (_req, res) => {
      res.writeHead(200, { 'content-length': String(10 * 1024 ** 3) });
      res.write('[');
    });
    const declared = await refusal<TransportError>(adapterFor({ retries: 0 }).inbox());
    expect(declared.message).toBe(
      `GET ${fake.url}/api/agents/me/inbox-lite answered with more than 16777216 bytes`,
    );
    // Not retried: it would be as large again.
    expect(fake.requests).toHaveLength(2);
  });

  it('times out a server that sends its headers and then trickles the body', async () => {
    fake.intercept('GET', /inbox-lite/, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write('[');
      const drip = setInterval(() => res.write(' '), 20);
      res.on('close', () => clearInterval(drip));
    });
    const error = await refusal<TransportError>(adapterFor({ timeoutMs: 300, retries: 0 }).inbox());
    expect(error.message).toBe(`GET ${fake.url}/api/agents/me/inbox-lite failed: timed out`);
  });
});
