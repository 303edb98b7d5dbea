import {
  ConfigError,
  InvalidInputError,
  KernelError,
  LoopDetectionError,
  ManualClock,
  TransportError,
  type Violation,
} from '@exec-kernel/core';
import { ActionHistory, type ActionHistoryJSON, resultDigest } from '@exec-kernel/loop';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ACTIONS_DOCUMENT_KEY } from '../src/actions.js';
import { PaperclipAdapter } from '../src/adapter.js';
import {
  callbackSink,
  type Escalation,
  EscalationHook,
  issueCommentSink,
} from '../src/escalation.js';
import * as published from '../src/index.js';
import { readContextBody } from '../src/task-context.js';
import { type FakeAgent, type FakeIssue, FakePaperclip } from './fake-paperclip.js';

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

/** The action history as the issue's document holds it. */
function stored(issue: FakeIssue): ActionHistoryJSON | undefined {
  const doc = issue.documents.get(ACTIONS_DOCUMENT_KEY);
  return doc === undefined
    ? undefined
    : (readContextBody(doc.body) as unknown as ActionHistoryJSON);
}

const READ = { tool: 'read_file', args: { path: 'src/a.ts' } };

describe('recordAction on Paperclip', () => {
  it('allows, warns at warnAt and refuses at blockAt, keeping the history in the issue', async () => {
    const issue = fake.seedIssue({ title: 'Work', status: 'in_progress' });
    const adapter = adapterFor();
    const first = await adapter.recordAction(issue.identifier, READ);
    expect(first).toMatchObject({
      taskId: issue.identifier,
      tool: 'read_file',
      calls: 1,
      repeats: 1,
      warnings: [],
      exempt: false,
    });
    expect(stored(issue)?.total).toBe(1);
    await adapter.recordAction(issue.id, READ);
    const third = await adapter.recordAction(issue.id, READ);
    expect(third.repeats).toBe(3);
    expect(third.warnings.map((w) => [w.loopType, w.count, w.warnAt, w.blockAt])).toEqual([
      ['repeat', 3, 3, 5],
    ]);
    await adapter.recordAction(issue.id, READ);
    const writesBefore = fake.writes().length;
    const revisionBefore = issue.documents.get(ACTIONS_DOCUMENT_KEY)?.revision;
    const error = await refusal<LoopDetectionError>(adapter.recordAction(issue.id, READ));
    expect(error).toBeInstanceOf(LoopDetectionError);
    expect([error.loopType, error.tool, error.count, error.taskId]).toEqual([
      'repeat',
      'read_file',
      5,
      issue.identifier,
    ]);
    expect(error.message).toBe(
      `Task ${issue.identifier} called read_file with the same arguments 5 times in a row (blocked at 5)`,
    );
    // A refused call records nothing: no write, the same revision, still four calls.
    expect(fake.writes().length).toBe(writesBefore);
    expect(issue.documents.get(ACTIONS_DOCUMENT_KEY)?.revision).toBe(revisionBefore);
    expect(stored(issue)?.total).toBe(4);
    // Something else is still allowed, and the stored history is the kernel's own.
    const other = await adapter.recordAction(issue.id, { tool: 'edit_file', args: { path: 'a' } });
    expect(other.calls).toBe(5);
    const history = ActionHistory.fromJSON(stored(issue));
    expect(history.total).toBe(5);
  });

  it('shares the history across adapters: a new session of the agent picks it up', async () => {
    const issue = fake.seedIssue({ title: 'Ping pong', status: 'in_progress' });
    const a = { tool: 'run_tests', args: {} };
    const b = { tool: 'read_file', args: { path: 'log.txt' } };
    const first = adapterFor();
    for (const call of [a, b, a, b]) await first.recordAction(issue.id, call);
    // A second process, with its own run: same issue, same history.
    const second = adapterFor();
    expect((await second.recordAction(issue.id, a)).calls).toBe(5);
    await second.recordAction(issue.id, b);
    await second.recordAction(issue.id, a);
    expect((await second.recordAction(issue.id, b)).warnings[0]).toMatchObject({
      loopType: 'ping_pong',
      count: 4,
    });
    await second.recordAction(issue.id, a);
    const error = await refusal<LoopDetectionError>(second.recordAction(issue.id, b));
    expect([error.loopType, error.details.period, error.message]).toEqual([
      'ping_pong',
      2,
      `Task ${issue.identifier} repeated the cycle run_tests -> read_file 5 times (blocked at 5)`,
    ]);
    // The first adapter is refused the same call too: the refusal is the issue's, not the process's.
    expect((await refusal<LoopDetectionError>(first.recordAction(issue.id, b))).loopType).toBe(
      'ping_pong',
    );
  });

  it('records results later and refuses the same result past the no-progress limit', async () => {
    const issue = fake.seedIssue({ title: 'Stuck', status: 'in_progress' });
    const adapter = adapterFor({ actionRules: { noProgress: { warnAt: 2, blockAt: 3 } } });
    const first = await adapter.recordAction(issue.id, { tool: 'status', args: { job: 1 } });
    // The answer names the call the result was attached to.
    expect(await adapter.recordActionResult(issue.id, 'pending')).toEqual({
      taskId: issue.identifier,
      tool: 'status',
      fingerprint: first.fingerprint,
      resultDigest: resultDigest('pending'),
      calls: 1,
      warnings: [],
    });
    await adapter.recordAction(issue.id, { tool: 'status', args: { job: 2 } });
    const { warnings } = await adapter.recordActionResult(issue.id, 'pending');
    expect(warnings.map((w) => [w.loopType, w.count])).toEqual([['no_progress', 2]]);
    // Twice for the same call: the kernel's rule, through the document.
    const twice = await refusal<InvalidInputError>(adapter.recordActionResult(issue.id, 'x'));
    expect(twice).toBeInstanceOf(InvalidInputError);
    expect(twice.message).toBe('Invalid result: the newest call already has one');
    await adapter.recordAction(issue.id, { tool: 'status', args: { job: 3 } });
    const error = await refusal<LoopDetectionError>(
      adapter.recordActionResult(issue.id, 'pending'),
    );
    expect([error.loopType, error.count]).toEqual(['no_progress', 3]);
    // Refused: the newest call still has no result, so a different one is taken.
    expect((await adapter.recordActionResult(issue.id, 'done')).warnings).toEqual([]);
    // A result given with the call is checked in the same go.
    expect(
      (await adapter.recordAction(issue.id, { tool: 'ls', result: 'done', resultDigest: 'd1' }))
        .resultDigest,
    ).toBe('d1');
  });

  it('does not lose a call recorded by another writer in between (revision race)', async () => {
    const issue = fake.seedIssue({ title: 'Race', status: 'in_progress' });
    const adapter = adapterFor();
    const other = adapterFor();
    await adapter.recordAction(issue.id, READ);
    // The other writer records its call just after our read: our first PUT names a stale
    // revision, Paperclip answers 409, and the adapter reads again and counts both.
    let raced = false;
    fake.intercept('PUT', /documents\/exec-kernel-actions$/, async (req, res) => {
      raced = true;
      await other.recordAction(issue.id, { tool: 'grep', args: { q: 'x' } });
      res.writeHead(409, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'Document was updated by someone else' }));
      req.resume();
    });
    const check = await adapter.recordAction(issue.id, READ);
    expect(raced).toBe(true);
    expect(check.calls).toBe(3);
    expect(stored(issue)?.total).toBe(3);
  });

  it('refuses a corrupt document with a clear error and leaves it as it is', async () => {
    const issue = fake.seedIssue({ title: 'Hand edited', status: 'in_progress' });
    const adapter = adapterFor();
    await adapter.recordAction(issue.id, READ);
    const doc = issue.documents.get(ACTIONS_DOCUMENT_KEY);
    if (doc === undefined) throw new Error('no document');
    const body = doc.body.replace('"recent": [', '"recent": 7, "was": [');
    issue.documents.set(ACTIONS_DOCUMENT_KEY, { ...doc, body });
    const error = await refusal<TransportError>(adapter.recordAction(issue.id, READ));
    expect(error).toBeInstanceOf(TransportError);
    expect(error.message).toBe(
      `GET ${fake.url}/api/issues/${issue.id}/documents/${ACTIONS_DOCUMENT_KEY} answered with no action history in the ${ACTIONS_DOCUMENT_KEY} document (recent must list [fingerprint, tool, result, epoch] entries)`,
    );
    expect(issue.documents.get(ACTIONS_DOCUMENT_KEY)?.body).toBe(body);
    // Not JSON at all: the same kind of error, and still nothing written.
    issue.documents.set(ACTIONS_DOCUMENT_KEY, { ...doc, body: 'notes by hand' });
    expect(await refusal(adapter.recordActionResult(issue.id, 'x'))).toBeInstanceOf(TransportError);
    expect(issue.documents.get(ACTIONS_DOCUMENT_KEY)?.body).toBe('notes by hand');
  });

  it('refuses bad calls and rules before anything is sent', async () => {
    const issue = fake.seedIssue({ title: 'Input', status: 'in_progress' });
    const adapter = adapterFor();
    const before = fake.requests.length;
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    for (const call of [
      { tool: '' },
      // A name core's id rule refuses: its refusal line could not be posted as a comment.
      { tool: 'read\nfile' },
      { tool: ' read' },
      { tool: 'read', args: { big: 1n } },
      { tool: 'read', args: cyclic },
      { tool: 'read', resultDigest: '' },
    ]) {
      expect(await refusal(adapter.recordAction(issue.id, call))).toBeInstanceOf(InvalidInputError);
    }
    expect(await refusal(adapter.recordAction('..', READ))).toBeInstanceOf(InvalidInputError);
    expect((await refusal(adapter.recordAction(issue.id, { tool: 'a\u001bb' }))).message).toBe(
      'Invalid tool name: must not contain control characters',
    );
    expect(await refusal(adapter.recordActionResult(issue.id, 1n))).toBeInstanceOf(
      InvalidInputError,
    );
    expect(fake.requests.length).toBe(before);
    expect(() => adapterFor({ actionRules: { repeat: { blockAt: 1 } } })).toThrow(ConfigError);
    // A rule turned off is off.
    const lenient = adapterFor({ actionRules: { repeat: false, window: false } });
    for (let i = 0; i < 6; i++) await lenient.recordAction(issue.id, READ);
    expect(stored(issue)?.total).toBe(6);
  });
});

describe('action-loop refusals through the EscalationHook', () => {
  it('forwards the refusal with its issue, posts it as a comment, and still throws it', async () => {
    const issue = fake.seedIssue({ title: 'Looping', status: 'in_progress' });
    const adapter = adapterFor({ actionRules: { repeat: { warnAt: 2, blockAt: 3 } } });
    const received: Escalation[] = [];
    const violations: Array<[Violation, string | undefined]> = [];
    adapter.onViolation((violation, about) => violations.push([violation, about?.id]));
    const hook = new EscalationHook(callbackSink((e) => void received.push(e)));
    hook.attach(adapter);
    const comments = new EscalationHook(issueCommentSink(adapter));
    comments.attach(adapter);
    await adapter.recordAction(issue.id, READ);
    await adapter.recordAction(issue.id, READ); // a warning is not a violation
    const error = await refusal<LoopDetectionError>(adapter.recordAction(issue.id, READ));
    expect(error).toBeInstanceOf(LoopDetectionError);
    await hook.flush();
    await comments.flush();
    expect(received.map((e) => [e.kind, e.taskId, e.issueId, e.violation?.kind])).toEqual([
      ['violation', issue.identifier, issue.id, 'loop_repeat'],
    ]);
    expect(received[0]?.violation).toMatchObject({
      agentId: agent.id,
      limit: 2,
      observed: 3,
      message: error.message,
    });
    expect(violations.map(([v, id]) => [v.kind, id])).toEqual([['loop_repeat', issue.id]]);
    expect(issue.comments).toEqual([
      `DENIED: [loop_repeat] Task ${issue.identifier} called read_file with the same arguments 3 times in a row (blocked at 3)`,
    ]);
    // Whatever else other violations get, this one gets too: nothing more (the issue stays put).
    expect(issue.status).toBe('in_progress');
  });

  it('comments only on refusals about an issue, and a failing comment hides nothing', async () => {
    const issue = fake.seedIssue({ title: 'Done', status: 'done' });
    const adapter = adapterFor({ actionRules: { repeat: { blockAt: 2 } } });
    const failures: unknown[] = [];
    const comments = new EscalationHook(issueCommentSink(adapter), {
      onError: (e) => failures.push(e),
    });
    comments.attach(adapter);
    // A refusal before any issue is read: forwarded elsewhere, but not commented.
    await refusal(adapter.createTask('Vague', 'x', { admission: {} }));
    // A transition refusal is about its issue, like an action loop.
    await refusal(adapter.transitionTask(issue.id, 'todo'));
    await comments.flush();
    expect(issue.comments).toEqual([
      'DENIED: [invalid_transition] Cannot transition from terminal state done',
    ]);
    // Paperclip refuses the comment: the caller still gets the loop error, the sink its failure.
    await adapter.recordAction(issue.id, READ);
    fake.fail('POST', /\/comments$/, 403);
    const error = await refusal(adapter.recordAction(issue.id, READ));
    expect(error).toBeInstanceOf(LoopDetectionError);
    await comments.flush();
    expect(failures).toHaveLength(1);
    expect(issue.comments).toHaveLength(1);
  });
});

describe('the README example', () => {
  it('prints what the README shows and leaves the comment it shows', async () => {
    fake.seedIssue({ title: 'Login', identifier: 'KER-12', status: 'in_progress' });
    const env = {
      PAPERCLIP_API_URL: fake.url,
      PAPERCLIP_API_KEY: agent.apiKey,
      PAPERCLIP_AGENT_ID: agent.id,
      PAPERCLIP_RUN_ID: fake.startRun(agent.id),
    };
    const lines: unknown[][] = [];
    const console = { log: (...values: unknown[]) => void lines.push(values) };
    const { EscalationHook, issueCommentSink, PaperclipAdapter } = published;
    // From here as in the README (process.env → env).
    const adapter = PaperclipAdapter.fromEnv(env, {
      actionRules: { repeat: { warnAt: 2, blockAt: 3 } },
    });
    const hook = new EscalationHook(issueCommentSink(adapter));
    hook.attach(adapter);

    const call = { tool: 'read_file', args: { path: 'src/login.ts' } };
    console.log((await adapter.recordAction('KER-12', call)).calls); // 1
    console.log((await adapter.recordAction('KER-12', call)).warnings[0]?.message);
    try {
      await adapter.recordAction('KER-12', call);
    } catch (e) {
      if (LoopDetectionError.is(e)) console.log(e.loopType, e.count); // repeat 3
    }
    await hook.flush();
    expect(lines).toEqual([
      [1],
      [
        'Task KER-12 called read_file with the same arguments 2 times in a row (warning at 2, blocked at 3)',
      ],
      ['repeat', 3],
    ]);
    expect(fake.find('KER-12')?.comments).toEqual([
      'DENIED: [loop_repeat] Task KER-12 called read_file with the same arguments 3 times in a row (blocked at 3)',
    ]);
  });
});
