import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An in-process stand-in for Paperclip that follows `shared/paperclip-contract.md` closely enough
 * for the adapter's fast tests: statuses without a transition table, the run-id rule, checkout
 * conflicts, the 422 guards, de-duplication, ancestors and the inbox. It also injects faults
 * (error statuses, Retry-After, delays) and records every request.
 */

const STATUSES = ['backlog', 'todo', 'in_progress', 'in_review', 'done', 'blocked', 'cancelled'];
const OPEN = new Set(['backlog', 'todo', 'in_progress', 'in_review', 'blocked']);

export interface FakeIssue {
  id: string;
  identifier: string;
  companyId: string;
  title: string;
  description: string | null;
  status: string;
  priority: string;
  parentId: string | null;
  assigneeAgentId: string | null;
  assigneeUserId: string | null;
  createdByAgentId: string | null;
  originRunId: string | null;
  checkoutRunId: string | null;
  executionRunId: string | null;
  idempotencyKey: string | null;
  blockedByIssueIds: string[];
  unblockDescriptor: unknown;
  comments: string[];
  /** The comments as Paperclip lists them (`GET /issues/{id}/comments`). */
  commentLog: Array<{ id: string; body: string; authorAgentId: string | null; createdAt: string }>;
  /** Issue documents by key, with Paperclip's revision rule (an update names the latest). */
  documents: Map<string, { body: string; revision: string; title: string | null }>;
  createdAt: number;
}

export interface FakeAgent {
  id: string;
  apiKey: string;
  companyId: string;
  status: string;
}

/** Answers a request the way a hostile or broken server would; gets the raw response. */
export type InterceptHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

interface Intercept {
  method: string;
  path: RegExp;
  handler: InterceptHandler;
  times: number;
}

interface Fault {
  method: string;
  path: RegExp;
  status: number;
  times: number;
  headers: Record<string, string>;
  body: unknown;
  delayMs: number;
}

export interface RecordedRequest {
  method: string;
  /** As received: percent-encoding kept, the query apart. */
  path: string;
  search: string;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

export class FakePaperclip {
  readonly companyId: string = randomUUID();
  readonly agents: FakeAgent[] = [];
  readonly issues: FakeIssue[] = [];
  readonly runs: Map<string, string> = new Map(); // run id -> agent id
  readonly requests: RecordedRequest[] = [];
  #faults: Fault[] = [];
  #intercepts: Intercept[] = [];
  #server: Server | undefined;
  url = '';

  addAgent(): FakeAgent {
    const agent = {
      id: randomUUID(),
      apiKey: `pcp_${randomUUID()}`,
      companyId: this.companyId,
      status: 'idle',
    };
    this.agents.push(agent);
    return agent;
  }

  /** A live run of `agentId`, as a wakeup would start. */
  startRun(agentId: string): string {
    const id = randomUUID();
    this.runs.set(id, agentId);
    return id;
  }

  /** Adds an issue as the board would (no checks). */
  seedIssue(fields: Partial<FakeIssue> & { title: string }): FakeIssue {
    const issue = this.#newIssue(fields);
    this.issues.push(issue);
    return issue;
  }

  /** The next `times` requests matching `method` and `path` get `status` (or are delayed). */
  fail(
    method: string,
    path: RegExp,
    status: number,
    options: {
      times?: number;
      headers?: Record<string, string>;
      body?: unknown;
      delayMs?: number;
    } = {},
  ): void {
    this.#faults.push({
      method: method.toUpperCase(),
      path,
      status,
      times: options.times ?? 1,
      headers: options.headers ?? {},
      body: options.body ?? { error: `injected ${status}` },
      delayMs: options.delayMs ?? 0,
    });
  }

  /**
   * The next `times` requests matching `method` and `path` are answered by `handler` (raw
   * headers and body: redirects, endless or huge bodies, bodies that are not JSON).
   */
  intercept(method: string, path: RegExp, handler: InterceptHandler, times = 1): void {
    this.#intercepts.push({ method: method.toUpperCase(), path, handler, times });
  }

  /** Requests other than reads. */
  writes(): RecordedRequest[] {
    return this.requests.filter((r) => r.method !== 'GET');
  }

  find(id: string): FakeIssue | undefined {
    return this.issues.find((i) => i.id === id || i.identifier === id);
  }

  async start(): Promise<this> {
    this.#server = createServer((req, res) => {
      void this.#handle(req, res);
    });
    await new Promise<void>((resolve) => this.#server?.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    this.#server?.closeAllConnections();
    await new Promise<void>((resolve) => this.#server?.close(() => resolve()));
  }

  #newIssue(fields: Partial<FakeIssue> & { title: string }): FakeIssue {
    const number = this.issues.length + 1;
    return {
      id: randomUUID(),
      identifier: `KER-${number}`,
      companyId: this.companyId,
      description: null,
      status: fields.assigneeAgentId ? 'todo' : 'backlog',
      priority: 'medium',
      parentId: null,
      assigneeAgentId: null,
      assigneeUserId: null,
      createdByAgentId: null,
      originRunId: null,
      checkoutRunId: null,
      executionRunId: null,
      idempotencyKey: null,
      blockedByIssueIds: [],
      unblockDescriptor: null,
      comments: [],
      commentLog: [],
      documents: new Map(),
      createdAt: Date.now(),
      ...fields,
    };
  }

  #view(issue: FakeIssue): Record<string, unknown> {
    const { comments: _c, commentLog: _l, documents: _d, idempotencyKey: _k, ...rest } = issue;
    return rest;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString();
    const body = text === '' ? undefined : (JSON.parse(text) as Record<string, unknown>);
    const url = new URL(req.url ?? '/', 'http://x');
    const method = req.method ?? 'GET';
    this.requests.push({
      method,
      path: url.pathname,
      search: url.search,
      headers: req.headers,
      body,
    });

    const intercept = this.#intercepts.find(
      (i) => i.method === method && i.path.test(url.pathname) && i.times > 0,
    );
    if (intercept !== undefined) {
      intercept.times--;
      await intercept.handler(req, res);
      return;
    }

    const send = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(payload === undefined ? '' : JSON.stringify(payload));
    };

    const fault = this.#faults.find(
      (f) => f.method === method && f.path.test(url.pathname) && f.times > 0,
    );
    if (fault !== undefined) {
      fault.times--;
      if (fault.delayMs > 0) await new Promise((r) => setTimeout(r, fault.delayMs));
      if (fault.status > 0) {
        send(fault.status, fault.body, fault.headers);
        return;
      }
    }

    // Auth: a bearer key is an agent; no header is the board (local_trusted).
    const auth = req.headers.authorization;
    let agent: FakeAgent | undefined;
    if (auth !== undefined) {
      agent = this.agents.find((a) => `Bearer ${a.apiKey}` === auth);
      if (agent === undefined) {
        send(401, { error: 'Agent token did not verify; obtain fresh credentials and retry' });
        return;
      }
    }
    const runHeader = req.headers['x-paperclip-run-id'];
    const runId = typeof runHeader === 'string' ? runHeader : undefined;
    const needRun = (): boolean => {
      if (agent === undefined) return true;
      if (runId === undefined) {
        send(401, { error: 'Agent run id required' });
        return false;
      }
      if (this.runs.get(runId) !== agent.id) {
        send(500, { error: 'Internal server error' });
        return false;
      }
      return true;
    };

    const path = url.pathname.replace(/^\/api/, '');
    const match = (verb: string, pattern: RegExp) => (method === verb ? pattern.exec(path) : null);
    let m: RegExpExecArray | null;

    if (method === 'GET' && path === '/health') return send(200, { status: 'ok' });
    if (method === 'GET' && path === '/agents/me') {
      if (agent === undefined) return send(401, { error: 'Agent authentication required' });
      return send(200, { ...agent, apiKey: undefined });
    }
    if (method === 'GET' && path === '/agents/me/inbox-lite') {
      if (agent === undefined) return send(401, { error: 'Agent authentication required' });
      const inbox = this.issues
        .filter(
          (i) =>
            i.assigneeAgentId === agent?.id &&
            ['todo', 'in_progress', 'blocked'].includes(i.status),
        )
        .map((i) => ({
          id: i.id,
          identifier: i.identifier,
          title: i.title,
          status: i.status,
          priority: i.priority,
          parentId: i.parentId,
        }));
      return send(200, inbox);
    }

    m = match('POST', /^\/companies\/([^/]+)\/issues$/);
    if (m) {
      if (m[1] !== this.companyId || (agent !== undefined && agent.companyId !== m[1])) {
        return send(404, { error: 'Company not found' });
      }
      const b = body ?? {};
      if (typeof b.title !== 'string' || b.title.trim() === '') {
        return send(400, {
          error: 'Validation error',
          details: [{ path: ['title'], message: 'Required' }],
        });
      }
      if (b.status !== undefined && !STATUSES.includes(b.status as string)) {
        return send(400, {
          error: 'Validation error',
          details: [{ path: ['status'], values: STATUSES }],
        });
      }
      const norm = (t: string) => t.trim().replace(/\s+/g, ' ').toLowerCase();
      const parentId =
        (b.parentId as string | undefined) === undefined
          ? null
          : (this.find(b.parentId as string)?.id ?? null);
      if (typeof b.idempotencyKey === 'string') {
        const same = this.issues.find((i) => i.idempotencyKey === b.idempotencyKey);
        if (same)
          return send(200, {
            ...this.#view(same),
            deduplicated: true,
            deduplicationReason: 'idempotency_key',
          });
      }
      if (b.allowDuplicate !== true) {
        const same = this.issues.find(
          (i) =>
            OPEN.has(i.status) &&
            i.parentId === parentId &&
            norm(i.title) === norm(b.title as string),
        );
        if (same)
          return send(200, {
            ...this.#view(same),
            deduplicated: true,
            deduplicationReason: 'recent_open_title',
          });
      }
      const issue = this.#newIssue({
        title: b.title,
        description: (b.description as string | undefined) ?? null,
        priority: (b.priority as string | undefined) ?? 'medium',
        parentId,
        assigneeAgentId: (b.assigneeAgentId as string | undefined) ?? null,
        createdByAgentId: agent?.id ?? null,
        originRunId: runId ?? null,
        idempotencyKey: (b.idempotencyKey as string | undefined) ?? null,
        ...(b.status === undefined ? {} : { status: b.status as string }),
      });
      this.issues.push(issue);
      return send(201, this.#view(issue));
    }

    m = match('GET', /^\/companies\/([^/]+)\/issues$/);
    if (m) {
      if (m[1] !== this.companyId) return send(404, { error: 'Company not found' });
      const statuses = url.searchParams.get('status')?.split(',');
      const assignee = url.searchParams.get('assigneeAgentId');
      return send(
        200,
        this.issues
          .filter(
            (i) =>
              (statuses === undefined || statuses.includes(i.status)) &&
              (assignee === null || i.assigneeAgentId === assignee),
          )
          .map((i) => this.#view(i)),
      );
    }

    m = match('GET', /^\/issues\/([^/]+)$/);
    if (m) {
      const issue = this.find(decodeURIComponent(m[1] as string));
      if (issue === undefined) return send(404, { error: 'Issue not found' });
      const ancestors = [];
      for (let p = issue.parentId; p !== null; ) {
        const parent = this.find(p);
        if (parent === undefined) break;
        ancestors.push({
          id: parent.id,
          identifier: parent.identifier,
          title: parent.title,
          status: parent.status,
        });
        p = parent.parentId;
      }
      return send(200, { ...this.#view(issue), ancestors });
    }

    m = match('PATCH', /^\/issues\/([^/]+)$/);
    if (m) {
      if (!needRun()) return;
      const issue = this.find(decodeURIComponent(m[1] as string));
      if (issue === undefined) return send(404, { error: 'Issue not found' });
      const b = body ?? {};
      const to = b.status as string | undefined;
      if (to !== undefined && !STATUSES.includes(to)) {
        return send(400, {
          error: 'Validation error',
          details: [{ path: ['status'], values: STATUSES }],
        });
      }
      // As observed live: another agent's in_progress issue is a run lock; the same agent from
      // another run is an ownership conflict. Both 409, no top-level code.
      if (
        agent !== undefined &&
        issue.status === 'in_progress' &&
        issue.assigneeAgentId !== agent.id
      ) {
        return send(409, {
          error: "Another agent's run owns this task (Run checkout lock).",
          details: {
            code: 'issue_write_assignee_run_lock',
            issueId: issue.id,
            assigneeAgentId: issue.assigneeAgentId,
            actorAgentId: agent.id,
          },
        });
      }
      if (agent !== undefined && issue.status === 'in_progress' && issue.checkoutRunId !== runId) {
        return send(409, {
          error: 'Issue run ownership conflict',
          details: {
            issueId: issue.id,
            checkoutRunId: issue.checkoutRunId,
            assigneeAgentId: issue.assigneeAgentId,
          },
        });
      }
      if (to === 'in_progress' && (b.assigneeAgentId ?? issue.assigneeAgentId) === null) {
        return send(422, { error: 'in_progress issues require an assignee' });
      }
      if (
        to === 'blocked' &&
        b.blockedByIssueIds === undefined &&
        b.unblockDescriptor === undefined &&
        issue.blockedByIssueIds.length === 0 &&
        issue.unblockDescriptor === null
      ) {
        return send(422, {
          error:
            'Entering blocked requires unresolved blockers, a pending interaction/approval, or unblockDescriptor',
        });
      }
      if (
        agent !== undefined &&
        to === 'in_review' &&
        b.assigneeUserId === undefined &&
        issue.assigneeUserId === null
      ) {
        return send(422, {
          error: 'Agent cannot move issue to in_review without a review path',
          code: 'invalid_issue_disposition',
          details: {
            code: 'invalid_issue_disposition',
            validReviewPaths: ['human_assignee_user_id'],
          },
        });
      }
      const owner = (b.unblockDescriptor as { owner?: { agentId?: string } } | undefined)?.owner;
      if (agent !== undefined && owner !== undefined && owner.agentId !== agent.id) {
        return send(403, { error: 'Agents may only name themselves as an unblock owner' });
      }
      const changes: Record<string, { from: unknown; to: unknown }> = {};
      if (to !== undefined && to !== issue.status) {
        changes.status = { from: issue.status, to };
        if (issue.status === 'in_progress') {
          issue.checkoutRunId = null;
          issue.executionRunId = null;
        }
        issue.status = to;
      }
      if (Array.isArray(b.blockedByIssueIds))
        issue.blockedByIssueIds = b.blockedByIssueIds as string[];
      if (b.unblockDescriptor !== undefined) issue.unblockDescriptor = b.unblockDescriptor;
      if (typeof b.assigneeUserId === 'string') {
        issue.assigneeUserId = b.assigneeUserId;
        issue.assigneeAgentId = null;
      }
      if (typeof b.comment === 'string') issue.comments.push(b.comment);
      return send(200, { ...this.#view(issue), changes, comment: b.comment ?? null });
    }

    m = match('POST', /^\/issues\/([^/]+)\/checkout$/);
    if (m) {
      if (!needRun()) return;
      const issue = this.find(decodeURIComponent(m[1] as string));
      if (issue === undefined) return send(404, { error: 'Issue not found' });
      const b = body ?? {};
      if (!Array.isArray(b.expectedStatuses) || b.expectedStatuses.length === 0) {
        return send(400, { error: 'Validation error' });
      }
      if (agent !== undefined && b.agentId !== agent.id) {
        return send(403, { error: 'Agent can only checkout as itself' });
      }
      const conflict = () =>
        send(409, {
          error: 'Issue checkout conflict',
          details: {
            issueId: issue.id,
            status: issue.status,
            assigneeAgentId: issue.assigneeAgentId,
            checkoutRunId: issue.checkoutRunId,
            executionRunId: issue.executionRunId,
          },
        });
      const sameHolder =
        issue.assigneeAgentId === b.agentId && issue.checkoutRunId === (runId ?? null);
      if (sameHolder && issue.status === 'in_progress') return send(200, this.#view(issue));
      if (!(b.expectedStatuses as string[]).includes(issue.status)) return conflict();
      if (issue.assigneeAgentId !== null && issue.assigneeAgentId !== b.agentId) return conflict();
      if (
        issue.checkoutRunId !== null &&
        issue.checkoutRunId !== runId &&
        this.runs.has(issue.checkoutRunId)
      ) {
        return conflict();
      }
      issue.status = 'in_progress';
      issue.assigneeAgentId = b.agentId as string;
      issue.assigneeUserId = null;
      issue.checkoutRunId = runId ?? null;
      issue.executionRunId = runId ?? null;
      return send(200, this.#view(issue));
    }

    m = match('POST', /^\/issues\/([^/]+)\/release$/);
    if (m) {
      if (!needRun()) return;
      const issue = this.find(decodeURIComponent(m[1] as string));
      if (issue === undefined) return send(404, { error: 'Issue not found' });
      if (agent !== undefined && issue.assigneeAgentId !== agent.id) {
        return send(409, { error: 'Only assignee can release issue' });
      }
      if (issue.status === 'in_progress') issue.status = 'todo';
      issue.assigneeAgentId = null;
      issue.checkoutRunId = null;
      issue.executionRunId = null;
      return send(200, this.#view(issue));
    }

    m = match('POST', /^\/issues\/([^/]+)\/comments$/);
    if (m) {
      if (!needRun()) return;
      const issue = this.find(decodeURIComponent(m[1] as string));
      if (issue === undefined) return send(404, { error: 'Issue not found' });
      issue.comments.push(String(body?.body));
      const comment = {
        id: randomUUID(),
        body: String(body?.body),
        authorAgentId: agent?.id ?? null,
        createdAt: new Date().toISOString(),
      };
      issue.commentLog.push(comment);
      return send(201, { ...comment, issueId: issue.id });
    }

    m = match('GET', /^\/issues\/([^/]+)\/comments$/);
    if (m) {
      const issue = this.find(decodeURIComponent(m[1] as string));
      if (issue === undefined) return send(404, { error: 'Issue not found' });
      return send(200, issue.commentLog);
    }

    // Documents, as the live server showed them (see the package README).
    m = /^\/issues\/([^/]+)\/documents\/([^/]+)$/.exec(path);
    if (m && (method === 'GET' || method === 'PUT')) {
      const issue = this.find(decodeURIComponent(m[1] as string));
      if (issue === undefined) return send(404, { error: 'Issue not found' });
      const key = decodeURIComponent(m[2] as string);
      if (!/^[a-z0-9][a-z0-9_-]*$/.test(key) || key.length > 64) {
        return send(400, { error: 'Invalid document key' });
      }
      const doc = issue.documents.get(key);
      const view = (d: { body: string; revision: string; title: string | null }) => ({
        issueId: issue.id,
        key,
        title: d.title,
        format: 'markdown',
        body: d.body,
        latestRevisionId: d.revision,
      });
      if (method === 'GET') {
        return doc === undefined
          ? send(404, { error: 'Document not found' })
          : send(200, view(doc));
      }
      const b = body ?? {};
      if (b.format !== 'markdown' || typeof b.body !== 'string') {
        return send(400, { error: 'Validation error' });
      }
      if (doc !== undefined && b.baseRevisionId !== doc.revision) {
        return send(409, {
          error:
            b.baseRevisionId === undefined
              ? 'Document update requires baseRevisionId.'
              : 'Document was updated by someone else',
          details: { currentRevisionId: doc.revision },
        });
      }
      const next = {
        body: b.body,
        revision: randomUUID(),
        title: typeof b.title === 'string' ? b.title : null,
      };
      issue.documents.set(key, next);
      return send(doc === undefined ? 201 : 200, view(next));
    }

    send(404, { error: 'API route not found' });
  }
}
