import { KernelError, LoopDetectionError, TransportError } from '@exec-kernel/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTIONS_DOCUMENT_KEY } from '../../src/actions.js';
import { PaperclipAdapter } from '../../src/adapter.js';
import {
  callbackSink,
  type Escalation,
  EscalationHook,
  issueCommentSink,
} from '../../src/escalation.js';
import { type Json, type PaperclipServer, startPaperclip } from './paperclip-server.js';

// Action loops on a real Paperclip 2026.916.1 server (see paperclip-server.ts): the history in the
// issue's exec-kernel-actions document, the refusal thrown and posted on the issue as a comment.

let server: PaperclipServer;
let issue: Json;
let runId: string;

async function refusal<T extends KernelError>(promise: Promise<unknown>): Promise<T> {
  try {
    await promise;
  } catch (e) {
    if (KernelError.is(e)) return e as T;
    throw e;
  }
  throw new Error('expected a refusal');
}

function adapter(): PaperclipAdapter {
  const agent = server.agents[0] as (typeof server.agents)[0];
  return new PaperclipAdapter({
    apiUrl: server.url,
    apiKey: agent.apiKey,
    agentId: agent.id,
    companyId: server.companyId,
    runId,
  });
}

async function actionsDocument(): Promise<{ status: number; body: Json }> {
  return server.board('GET', `/issues/${issue.id}/documents/${ACTIONS_DOCUMENT_KEY}`);
}

beforeAll(async () => {
  server = await startPaperclip();
  const agent = server.agents[0] as (typeof server.agents)[0];
  const created = await server.board('POST', `/companies/${server.companyId}/issues`, {
    title: 'Alpha reads the same file over and over',
    status: 'todo',
    assigneeAgentId: agent.id,
  });
  expect(created.status).toBe(201);
  issue = created.body;
  runId = await server.issueRun(agent.id, issue.id);
}, 600_000);

afterAll(async () => {
  await server?.stop();
});

describe('recordAction against a live Paperclip server', () => {
  it('records calls until the repeat rule refuses one, and posts the refusal on the issue', async () => {
    const first = adapter();
    const call = { tool: 'read_file', args: { path: 'src/login.ts' } };
    expect(await first.recordAction(issue.identifier, call)).toMatchObject({
      taskId: issue.identifier,
      calls: 1,
      warnings: [],
    });
    await first.recordAction(issue.id, call);
    const third = await first.recordAction(issue.id, call);
    expect(third.warnings.map((w) => [w.loopType, w.count])).toEqual([['repeat', 3]]);

    // A new session of the agent (another adapter) picks the history up from the issue.
    const second = adapter();
    const received: Escalation[] = [];
    const hook = new EscalationHook(callbackSink((e) => void received.push(e)));
    hook.attach(second);
    const failures: unknown[] = [];
    const comments = new EscalationHook(issueCommentSink(second), {
      onError: (e) => failures.push(e),
    });
    comments.attach(second);
    expect((await second.recordAction(issue.id, call)).calls).toBe(4);
    const before = await actionsDocument();
    expect(before.status).toBe(200);
    expect(before.body).toMatchObject({ key: ACTIONS_DOCUMENT_KEY, latestRevisionNumber: 4 });

    const error = await refusal<LoopDetectionError>(second.recordAction(issue.id, call));
    expect(error).toBeInstanceOf(LoopDetectionError);
    const line = `Task ${issue.identifier} called read_file with the same arguments 5 times in a row (blocked at 5)`;
    expect([error.loopType, error.count, error.message]).toEqual(['repeat', 5, line]);
    await hook.flush();
    await comments.flush();
    expect(failures).toEqual([]);
    expect(received.map((e) => [e.kind, e.taskId, e.issueId, e.violation?.kind])).toEqual([
      ['violation', issue.identifier, issue.id, 'loop_repeat'],
    ]);

    // Nothing recorded for the refused call: the document is at the revision it was.
    const after = await actionsDocument();
    expect(after.body.latestRevisionId).toBe(before.body.latestRevisionId);
    expect(after.body.body).toContain('"total": 4');

    const { body: thread } = await server.board('GET', `/issues/${issue.id}/comments`);
    expect(thread.map((c: Json) => [c.body, c.authorAgentId])).toEqual([
      [`DENIED: [loop_repeat] ${line}`, server.agents[0]?.id],
    ]);
    // The issue itself is left as it was: an escalation, not a move.
    const { body: now } = await server.board('GET', `/issues/${issue.id}`);
    expect(now.status).toBe(issue.status);
  });

  it('refuses a hand-edited document with a clear error and leaves it as it is', async () => {
    const { body: doc } = await actionsDocument();
    const edited = await server.board(
      'PUT',
      `/issues/${issue.id}/documents/${ACTIONS_DOCUMENT_KEY}`,
      {
        format: 'markdown',
        body: doc.body.replace('"total": 4', '"total": "four"'),
        baseRevisionId: doc.latestRevisionId,
      },
    );
    expect(edited.status).toBe(200);
    const error = await refusal<TransportError>(
      adapter().recordAction(issue.id, { tool: 'ls', args: {} }),
    );
    expect(error).toBeInstanceOf(TransportError);
    expect(error.message).toContain(
      `/documents/${ACTIONS_DOCUMENT_KEY} answered with no action history in the ${ACTIONS_DOCUMENT_KEY} document (total must be a whole number)`,
    );
    const { body: kept } = await actionsDocument();
    expect(kept.latestRevisionId).toBe(edited.body.latestRevisionId);
    expect(kept.body).toContain('"total": "four"');
  });
});
