// Proves the live harness and pins down the real Paperclip 2026.916.1 behaviours the adapter
// relies on. Everything here talks to the server with plain `fetch` (no adapter code): the board
// through `server.board`, the agents with their API key plus `X-Paperclip-Run-Id`.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Json,
  type PaperclipAgent,
  type PaperclipServer,
  startPaperclip,
} from './paperclip-server.js';

const ISSUE_STATES = [
  'backlog',
  'todo',
  'in_progress',
  'in_review',
  'done',
  'blocked',
  'cancelled',
];

describe('real Paperclip server (live harness)', { timeout: 60_000 }, () => {
  let server: PaperclipServer;
  let alpha: PaperclipAgent;
  let bravo: PaperclipAgent;
  let seq = 0;

  beforeAll(async () => {
    // The first run may also install Paperclip (~1-4 min). PAPERCLIP_LIVE_LOG=1 shows its output.
    const log = process.env.PAPERCLIP_LIVE_LOG ? (line: string) => console.warn(line) : undefined;
    server = await startPaperclip(log === undefined ? {} : { log });
    [alpha, bravo] = server.agents as [PaperclipAgent, PaperclipAgent];
  }, 600_000);

  afterAll(async () => {
    await server?.stop();
  }, 60_000);

  /** A call as `agent` (its API key), with the run header when `runId` is given. */
  async function asAgent(
    agent: PaperclipAgent,
    method: string,
    path: string,
    body?: unknown,
    runId?: string,
  ): Promise<{ status: number; body: Json }> {
    const headers: Record<string, string> = { authorization: `Bearer ${agent.apiKey}` };
    if (runId !== undefined) headers['x-paperclip-run-id'] = runId;
    const init: RequestInit = { method, headers };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const response = await fetch(`${server.url}/api${path}`, init);
    const text = await response.text();
    return { status: response.status, body: text === '' ? null : JSON.parse(text) };
  }

  /** Creates an issue as the board, with a unique title unless one is given. */
  async function createIssue(fields: Record<string, unknown>): Promise<Json> {
    seq += 1;
    const { status, body } = await server.board('POST', `/companies/${server.companyId}/issues`, {
      title: `live issue ${seq}`,
      ...fields,
    });
    expect(status).toBe(201);
    return body;
  }

  async function getIssue(id: string): Promise<Json> {
    const { status, body } = await server.board('GET', `/issues/${id}`);
    expect(status).toBe(200);
    return body;
  }

  const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

  it('runs a healthy 2026.916.1 server in local_trusted mode with two keyed agents', async () => {
    const health = await fetch(`${server.url}/api/health`).then((r) => r.json());
    expect(health).toMatchObject({
      status: 'ok',
      version: '2026.916.1',
      deploymentMode: 'local_trusted',
    });
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(server.startupMs).toBeLessThan(60_000);
    expect(server.agents).toHaveLength(2);
    for (const agent of server.agents) {
      expect(agent.apiKey).toMatch(/^pcp_/);
      const me = await asAgent(agent, 'GET', '/agents/me');
      expect(me.status).toBe(200);
      expect(me.body).toMatchObject({
        id: agent.id,
        companyId: server.companyId,
        name: agent.name,
        adapterType: 'process',
        status: 'idle',
        runtimeConfig: { heartbeat: { enabled: false, wakeOnDemand: false } },
      });
    }
  });

  it('leaves a todo issue assigned to an agent alone (wakeOnDemand is off between runs)', async () => {
    const issue = await createIssue({ status: 'todo', assigneeAgentId: alpha.id });
    await sleep(1500);
    expect(await getIssue(issue.id)).toMatchObject({
      status: 'todo',
      assigneeAgentId: alpha.id,
      checkoutRunId: null,
      executionRunId: null,
    });
  });

  it('issueRun locks the issue for the run without claiming it; checkout, done and reopen work', async () => {
    const issue = await createIssue({ status: 'backlog', assigneeAgentId: alpha.id });
    const runId = await server.issueRun(alpha.id, issue.id);

    const run = (await server.board('GET', `/heartbeat-runs/${runId}`)).body;
    expect(run).toMatchObject({ id: runId, agentId: alpha.id, status: 'running' });
    expect(run.invocationSource).toBe('on_demand');
    expect(run.contextSnapshot).toMatchObject({ issueId: issue.id, taskId: issue.id });

    // Right after issueRun: status unchanged, execution lock held by the run, NOT checked out.
    const locked = await getIssue(issue.id);
    expect(locked).toMatchObject({
      status: 'backlog',
      assigneeAgentId: alpha.id,
      checkoutRunId: null,
      executionRunId: runId,
      startedAt: null,
    });
    expect(locked.executionLockedAt).toEqual(expect.any(String));

    // Checkout as the agent with the run header.
    const checkout = await asAgent(
      alpha,
      'POST',
      `/issues/${issue.id}/checkout`,
      { agentId: alpha.id, expectedStatuses: ['backlog', 'todo'] },
      runId,
    );
    expect(checkout.status).toBe(200);
    expect(checkout.body).toMatchObject({
      status: 'in_progress',
      assigneeAgentId: alpha.id,
      assigneeUserId: null,
      checkoutRunId: runId,
      executionRunId: runId,
    });
    expect(checkout.body.startedAt).toEqual(expect.any(String));

    // Checking out again with the same run is idempotent, whatever expectedStatuses says.
    const again = await asAgent(
      alpha,
      'POST',
      `/issues/${issue.id}/checkout`,
      { agentId: alpha.id, expectedStatuses: ['todo'] },
      runId,
    );
    expect(again.status).toBe(200);

    // PATCH to done with a comment, same run.
    const done = await asAgent(
      alpha,
      'PATCH',
      `/issues/${issue.id}`,
      { status: 'done', comment: 'finished by the live test' },
      runId,
    );
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({
      status: 'done',
      checkoutRunId: null,
      executionRunId: null,
      changes: { status: { from: 'in_progress', to: 'done' } },
      comment: {
        body: 'finished by the live test',
        authorType: 'agent',
        authorAgentId: alpha.id,
        createdByRunId: runId,
      },
    });
    expect(done.body.completedAt).toEqual(expect.any(String));

    // Paperclip enforces no transition table: reopening done -> todo is accepted.
    const reopened = await asAgent(
      alpha,
      'PATCH',
      `/issues/${issue.id}`,
      { status: 'todo' },
      runId,
    );
    expect(reopened.status).toBe(200);
    expect(reopened.body).toMatchObject({
      status: 'todo',
      completedAt: null,
      changes: { status: { from: 'done', to: 'todo' } },
    });
    // With wakeOnDemand off nothing picks the reopened issue up.
    await sleep(1000);
    expect(await getIssue(issue.id)).toMatchObject({
      status: 'todo',
      checkoutRunId: null,
      executionRunId: null,
    });

    // A run is not bound to its source issue: it can check out and finish another issue
    // of its agent (counted as cross-issue influence, capped at 20 writes per run).
    const other = await createIssue({ status: 'todo', assigneeAgentId: alpha.id });
    const otherCheckout = await asAgent(
      alpha,
      'POST',
      `/issues/${other.id}/checkout`,
      { agentId: alpha.id, expectedStatuses: ['todo'] },
      runId,
    );
    expect(otherCheckout.status).toBe(200);
    expect(otherCheckout.body).toMatchObject({ status: 'in_progress', checkoutRunId: runId });
    const otherDone = await asAgent(
      alpha,
      'PATCH',
      `/issues/${other.id}`,
      { status: 'done' },
      runId,
    );
    expect(otherDone.status).toBe(200);

    await server.cancelRun(runId);
    expect((await server.board('GET', `/heartbeat-runs/${runId}`)).body.status).toBe('cancelled');
  });

  it('rejects another agent (409), a missing run header (401) and blocked without blockers (422)', async () => {
    const mine = await createIssue({ status: 'todo', assigneeAgentId: alpha.id });
    const runA = await server.issueRun(alpha.id, mine.id);
    const claimed = await asAgent(
      alpha,
      'POST',
      `/issues/${mine.id}/checkout`,
      { agentId: alpha.id, expectedStatuses: ['todo'] },
      runA,
    );
    expect(claimed.status).toBe(200);

    const theirs = await createIssue({ status: 'backlog', assigneeAgentId: bravo.id });
    const runB = await server.issueRun(bravo.id, theirs.id);

    // Agent B checking out agent A's in_progress issue.
    const conflict = await asAgent(
      bravo,
      'POST',
      `/issues/${mine.id}/checkout`,
      { agentId: bravo.id, expectedStatuses: ['todo', 'in_progress'] },
      runB,
    );
    expect(conflict.status).toBe(409);
    expect(conflict.body).toEqual({
      error: 'Issue checkout conflict',
      details: {
        issueId: mine.id,
        status: 'in_progress',
        assigneeAgentId: alpha.id,
        checkoutRunId: runA,
        executionRunId: runA,
      },
    });

    // Agent B patching it: 409 too (not 403), with the code only inside `details`.
    const patch = await asAgent(bravo, 'PATCH', `/issues/${mine.id}`, { status: 'done' }, runB);
    expect(patch.status).toBe(409);
    expect(Object.keys(patch.body).sort()).toEqual(['details', 'error']);
    expect(patch.body.details).toMatchObject({
      code: 'issue_write_assignee_run_lock',
      boundary: 'Run checkout lock',
      issueId: mine.id,
      assigneeAgentId: alpha.id,
      actorAgentId: bravo.id,
    });

    // Agent B checking out as someone else.
    const impersonate = await asAgent(
      bravo,
      'POST',
      `/issues/${mine.id}/checkout`,
      { agentId: alpha.id, expectedStatuses: ['in_progress'] },
      runB,
    );
    expect(impersonate.status).toBe(403);
    expect(impersonate.body).toEqual({ error: 'Agent can only checkout as itself' });

    // No run header.
    const noRun = await asAgent(alpha, 'POST', `/issues/${mine.id}/checkout`, {
      agentId: alpha.id,
      expectedStatuses: ['in_progress'],
    });
    expect(noRun.status).toBe(401);
    expect(noRun.body).toEqual({ error: 'Agent run id required' });
    const noRunPatch = await asAgent(alpha, 'PATCH', `/issues/${mine.id}`, { status: 'done' });
    expect(noRunPatch.status).toBe(401);

    // Entering blocked without blockers.
    const blocked = await asAgent(
      alpha,
      'PATCH',
      `/issues/${mine.id}`,
      { status: 'blocked' },
      runA,
    );
    expect(blocked.status).toBe(422);
    expect(blocked.body).toEqual({
      error:
        'Entering blocked requires unresolved blockers, a pending interaction/approval, or unblockDescriptor',
    });
    // ...and with a first-class blocker it is accepted.
    const blocker = await createIssue({ status: 'todo' });
    const blockedOk = await asAgent(
      alpha,
      'PATCH',
      `/issues/${mine.id}`,
      { status: 'blocked', blockedByIssueIds: [blocker.id] },
      runA,
    );
    expect(blockedOk.status).toBe(200);
    expect(blockedOk.body).toMatchObject({ status: 'blocked', checkoutRunId: null });

    // An unknown status is a zod 400 listing the seven statuses.
    const unknown = await asAgent(alpha, 'PATCH', `/issues/${mine.id}`, { status: 'asleep' }, runA);
    expect(unknown.status).toBe(400);
    expect(unknown.body.error).toBe('Validation error');
    expect(unknown.body.details[0].values).toEqual(ISSUE_STATES);

    await server.cancelRun(runA);
    await server.cancelRun(runB);
  });

  it('with wakeOnDemand on, the server itself claims a todo issue on assignment (autoWake)', async () => {
    const agent = (await server.board('GET', `/agents/${bravo.id}`)).body;
    const heartbeat = agent.runtimeConfig.heartbeat;
    const setWake = (on: boolean) =>
      server.board('PATCH', `/agents/${bravo.id}`, {
        runtimeConfig: { ...agent.runtimeConfig, heartbeat: { ...heartbeat, wakeOnDemand: on } },
      });
    expect((await setWake(true)).status).toBe(200);
    let runId = '';
    try {
      const issue = await createIssue({ status: 'todo', assigneeAgentId: bravo.id });
      expect(issue).toMatchObject({ status: 'todo', executionRunId: null });
      let view = await getIssue(issue.id);
      for (let i = 0; i < 50 && view.status !== 'in_progress'; i += 1) {
        await sleep(100);
        view = await getIssue(issue.id);
      }
      // Claimed by a run the server started on its own: in_progress, checked out by that run.
      expect(view).toMatchObject({ status: 'in_progress', assigneeAgentId: bravo.id });
      expect(view.checkoutRunId).toEqual(expect.any(String));
      expect(view.executionRunId).toBe(view.checkoutRunId);
      const run = (await server.board('GET', `/heartbeat-runs/${view.checkoutRunId}`)).body;
      expect(run).toMatchObject({ agentId: bravo.id, invocationSource: 'assignment' });
      expect(run.contextSnapshot.issueId).toBe(issue.id);

      // issueRun on such an issue hands back the run that already owns it.
      runId = await server.issueRun(bravo.id, issue.id);
      expect(runId).toBe(view.checkoutRunId);
      const done = await asAgent(bravo, 'PATCH', `/issues/${issue.id}`, { status: 'done' }, runId);
      expect(done.status).toBe(200);
    } finally {
      expect((await setWake(false)).status).toBe(200);
      if (runId !== '') await server.cancelRun(runId);
    }
  });

  it('a cancelled run that still held an open issue blocks new wakes on it until the board moves it', async () => {
    const issue = await createIssue({ status: 'todo', assigneeAgentId: alpha.id });
    const first = await server.issueRun(alpha.id, issue.id);
    await server.cancelRun(first);
    // The lock is gone but Paperclip recorded a recovery action for the issue.
    expect(await getIssue(issue.id)).toMatchObject({
      status: 'todo',
      checkoutRunId: null,
      executionRunId: null,
    });
    const recovery = (await server.board('GET', `/issues/${issue.id}/recovery-actions`)).body;
    expect(recovery.active).toMatchObject({
      status: 'active',
      cause: 'legacy_execution_requires_reconciliation',
      evidence: { runId: first },
    });
    await expect(server.issueRun(alpha.id, issue.id)).rejects.toThrow(
      /execution_reconciliation_required/,
    );

    // Any real status change by the board clears it.
    expect((await server.board('PATCH', `/issues/${issue.id}`, { status: 'backlog' })).status).toBe(
      200,
    );
    expect((await server.board('PATCH', `/issues/${issue.id}`, { status: 'todo' })).status).toBe(
      200,
    );
    const second = await server.issueRun(alpha.id, issue.id);
    expect(second).not.toBe(first);
    // Finishing the issue before cancelling leaves nothing behind.
    const checkout = await asAgent(
      alpha,
      'POST',
      `/issues/${issue.id}/checkout`,
      { agentId: alpha.id, expectedStatuses: ['todo'] },
      second,
    );
    expect(checkout.status).toBe(200);
    expect(
      (await asAgent(alpha, 'PATCH', `/issues/${issue.id}`, { status: 'done' }, second)).status,
    ).toBe(200);
    await server.cancelRun(second);
    expect((await server.board('GET', `/issues/${issue.id}/recovery-actions`)).body.active).toBe(
      null,
    );
  });

  it('deduplicates a second open issue with the same title', async () => {
    const title = `Dedupe Me ${Date.now()}`;
    const first = await server.board('POST', `/companies/${server.companyId}/issues`, { title });
    expect(first.status).toBe(201);
    expect(first.body.deduplicated).toBeUndefined();

    // Same title after lower-casing and collapsing whitespace.
    const second = await server.board('POST', `/companies/${server.companyId}/issues`, {
      title: `  ${title.toLowerCase().replace(' ', '   ')} `,
    });
    expect(second.status).toBe(200);
    expect(second.body).toMatchObject({
      id: first.body.id,
      identifier: first.body.identifier,
      deduplicated: true,
      deduplicationReason: 'recent_open_title',
    });

    // As an agent (API key, no run needed for create): same answer.
    const byAgent = await asAgent(alpha, 'POST', `/companies/${server.companyId}/issues`, {
      title,
    });
    expect(byAgent.status).toBe(200);
    expect(byAgent.body).toMatchObject({ id: first.body.id, deduplicated: true });

    const forced = await server.board('POST', `/companies/${server.companyId}/issues`, {
      title,
      allowDuplicate: true,
    });
    expect(forced.status).toBe(201);
    expect(forced.body.id).not.toBe(first.body.id);
  });

  it('inbox-lite lists only the agent’s todo, in_progress and blocked issues', async () => {
    const statuses = ['backlog', 'todo', 'in_review', 'blocked', 'done', 'cancelled'];
    const byStatus = new Map<string, Json>();
    for (const status of statuses) {
      const issue = await createIssue({ status, assigneeAgentId: bravo.id });
      expect(issue.status).toBe(status);
      byStatus.set(status, issue);
    }
    const inProgress = await createIssue({ status: 'todo', assigneeAgentId: bravo.id });
    const runB = await server.issueRun(bravo.id, inProgress.id);
    const checkout = await asAgent(
      bravo,
      'POST',
      `/issues/${inProgress.id}/checkout`,
      { agentId: bravo.id, expectedStatuses: ['todo'] },
      runB,
    );
    expect(checkout.status).toBe(200);
    byStatus.set('in_progress', inProgress);

    const inbox = await asAgent(bravo, 'GET', '/agents/me/inbox-lite');
    expect(inbox.status).toBe(200);
    expect(Array.isArray(inbox.body)).toBe(true);
    const listed = new Map<string, Json>(inbox.body.map((entry: Json) => [entry.id, entry]));
    const seen = Object.fromEntries(
      [...byStatus].map(([status, issue]) => [status, listed.has(issue.id)]),
    );
    expect(seen).toEqual({
      backlog: false,
      todo: true,
      in_progress: true,
      in_review: false, // the server filters on status=todo,in_progress,blocked
      blocked: true,
      done: false,
      cancelled: false,
    });

    const entry = listed.get(inProgress.id);
    expect(Object.keys(entry).sort()).toEqual(
      [
        'activeRecoveryAction',
        'activeRun',
        'dependencyReady',
        'goalId',
        'id',
        'identifier',
        'parentId',
        'priority',
        'projectId',
        'status',
        'title',
        'unresolvedBlockerCount',
        'unresolvedBlockerIssueIds',
        'updatedAt',
      ].sort(),
    );
    expect(entry).toMatchObject({
      identifier: inProgress.identifier,
      status: 'in_progress',
      priority: 'medium',
      activeRun: { id: runB, status: 'running', agentId: bravo.id, invocationSource: 'on_demand' },
      activeRecoveryAction: null,
      dependencyReady: true,
      unresolvedBlockerCount: 0,
      unresolvedBlockerIssueIds: [],
    });
    expect(listed.get(byStatus.get('todo').id)).toMatchObject({ status: 'todo', activeRun: null });

    await server.cancelRun(runB);
  });

  it('GET /issues/{id} returns ancestors, nearest first, in a fixed compact shape', async () => {
    const parent = await createIssue({ description: 'the parent' });
    const child = await createIssue({
      parentId: parent.id,
      status: 'backlog',
      assigneeAgentId: alpha.id,
    });
    const grandchild = await createIssue({ parentId: child.id });

    const childView = await getIssue(child.id);
    expect(childView.parentId).toBe(parent.id);
    expect(childView.ancestors).toEqual([
      {
        id: parent.id,
        identifier: parent.identifier,
        title: parent.title,
        description: 'the parent',
        status: 'backlog',
        priority: 'medium',
        assigneeAgentId: null,
        projectId: null,
        goalId: null,
        project: null,
        goal: null,
      },
    ]);

    const view = await getIssue(grandchild.id);
    expect(view.ancestors.map((a: Json) => a.id)).toEqual([child.id, parent.id]);
    expect(view.ancestors[0]).toMatchObject({
      identifier: child.identifier,
      status: 'backlog',
      assigneeAgentId: alpha.id,
    });
    expect((await getIssue(parent.id)).ancestors).toEqual([]);
  });
});
