import { InvalidTransitionError, isValidId, type TaskState } from '@exec-kernel/core';
import { type PaperclipHttp, PaperclipStatusError } from './http.js';
import { STATES, segment } from './input.js';
import { noteOf, type TaskNote } from './task-context.js';
import type { InboxItem, PaperclipIssue } from './types.js';

/** What makes `value` unlike an issue Paperclip sends, in our words; `undefined` when it is one. */
function issueProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'no issue';
  const issue = value as Record<string, unknown>;
  if (!isValidId(issue.id)) return 'an issue without a valid id';
  if (issue.identifier !== undefined && issue.identifier !== null && !isValidId(issue.identifier)) {
    return 'an issue without a valid identifier';
  }
  if (typeof issue.status !== 'string' || !STATES.has(issue.status)) {
    return 'an issue whose status is not one of ours';
  }
  return undefined;
}

/**
 * Paperclip's issue routes, one method each: every id goes into the path as one encoded segment
 * (after core's id rule), every answer is checked to be what Paperclip sends (its ids and status
 * go into later paths, messages and the lifecycle table), and Paperclip's refusals become core
 * errors. No exec-kernel rule lives here; the adapter applies them.
 */
export class IssuesApi {
  readonly #http: PaperclipHttp;

  constructor(http: PaperclipHttp) {
    this.#http = http;
  }

  /** The company of the agent whose key this is (`GET /agents/me`). */
  async companyOfMe(): Promise<string> {
    const me = await this.#call<{ companyId?: unknown } | undefined>(
      'agent me',
      'get',
      'agents/me',
    );
    // It goes into every company path: an answer without a valid one is refused, not used.
    if (!isValidId(me?.companyId)) {
      throw this.#http.malformed('get', 'agents/me', 'no valid companyId');
    }
    return me.companyId;
  }

  /** One issue by UUID or identifier; `field` names the id in a refusal. */
  async get(id: string, field = 'task id'): Promise<PaperclipIssue> {
    const path = `issues/${segment(id, field)}`;
    return this.#issueFrom('get', path, await this.#call<unknown>(`issue ${id}`, 'get', path));
  }

  /** `POST /companies/{id}/issues`. */
  async create(companyId: string, body: Record<string, unknown>): Promise<PaperclipIssue> {
    const path = `companies/${segment(companyId, 'company id')}/issues`;
    const answer = await this.#call<unknown>('company', 'post', path, { json: body });
    return this.#issueFrom('post', path, answer);
  }

  /** `PATCH /issues/{id}` for a move; Paperclip's 422 becomes an `InvalidTransitionError`. */
  async move(
    issue: PaperclipIssue,
    body: Record<string, unknown>,
    move: { from: TaskState; to: TaskState },
  ): Promise<PaperclipIssue> {
    const path = `issues/${segment(issue.id, 'task id')}`;
    const name = issue.identifier ?? issue.id;
    const answer = await this.#call<unknown>(`issue ${name}`, 'patch', path, { json: body }, move);
    return this.#issueFrom('patch', path, answer);
  }

  /** `POST /issues/{id}/checkout` for `agentId` (409: `ConflictError`, never retried). */
  async checkout(id: string, agentId: string): Promise<PaperclipIssue> {
    const path = `issues/${segment(id, 'task id')}/checkout`;
    const answer = await this.#call<unknown>(`issue ${id}`, 'post', path, {
      json: { agentId, expectedStatuses: ['todo', 'in_progress'] },
    });
    return this.#issueFrom('post', path, answer);
  }

  /** `POST /issues/{id}/release`. */
  async release(id: string): Promise<PaperclipIssue> {
    const path = `issues/${segment(id, 'task id')}/release`;
    return this.#issueFrom('post', path, await this.#call<unknown>(`issue ${id}`, 'post', path));
  }

  /** `POST /issues/{id}/comments`: Paperclip's comment row. */
  async comment(id: string, body: string): Promise<unknown> {
    const path = `issues/${segment(id, 'task id')}/comments`;
    return this.#call(`issue ${id}`, 'post', path, { json: { body } });
  }

  /** `POST /issues/{id}/comments`: the comment as a note. */
  async note(id: string, text: string): Promise<TaskNote> {
    const path = `issues/${segment(id, 'task id')}/comments`;
    const note = noteOf(await this.#call(`issue ${id}`, 'post', path, { json: { body: text } }));
    if (note === undefined) throw this.#http.malformed('post', path, 'no comment');
    return note;
  }

  /** The issue's comments, oldest first, as notes. */
  async comments(issue: PaperclipIssue): Promise<TaskNote[]> {
    const path = `issues/${segment(issue.id, 'task id')}/comments`;
    const answer = await this.#call<unknown>(`issue ${issue.identifier ?? issue.id}`, 'get', path, {
      searchParams: { order: 'asc' },
    });
    const notes = Array.isArray(answer) ? answer.map(noteOf) : [undefined];
    if (notes.includes(undefined)) throw this.#http.malformed('get', path, 'no list of comments');
    return notes as TaskNote[];
  }

  /** `GET /companies/{id}/issues` with Paperclip's filters. */
  async list(companyId: string, searchParams: Record<string, string>): Promise<PaperclipIssue[]> {
    const path = `companies/${segment(companyId, 'company id')}/issues`;
    const answer = await this.#call<unknown>('company', 'get', path, { searchParams });
    return this.#issuesFrom('get', path, answer);
  }

  /** `GET /agents/me/inbox-lite`. */
  async inbox(): Promise<InboxItem[]> {
    const path = 'agents/me/inbox-lite';
    return this.#issuesFrom('get', path, await this.#call<unknown>('agent me', 'get', path));
  }

  /**
   * `answer` when it is an issue as Paperclip sends one, so a server that sends anything else
   * gets a `TransportError`, not a request to a route it chose.
   */
  #issueFrom(method: string, path: string, answer: unknown): PaperclipIssue {
    const problem = issueProblem(answer);
    if (problem !== undefined) throw this.#http.malformed(method, path, problem);
    return answer as PaperclipIssue;
  }

  #issuesFrom<T extends InboxItem | PaperclipIssue>(
    method: string,
    path: string,
    answer: unknown,
  ): T[] {
    if (!Array.isArray(answer)) throw this.#http.malformed(method, path, 'no list of issues');
    for (const item of answer) {
      const problem = issueProblem(item);
      if (problem !== undefined) throw this.#http.malformed(method, path, `a list with ${problem}`);
    }
    return answer as T[];
  }

  /** One call, with Paperclip's refusals turned into core errors. */
  async #call<T>(
    resource: string,
    method: 'get' | 'post' | 'patch',
    path: string,
    options: { json?: unknown; searchParams?: Record<string, string> } = {},
    move?: { from: TaskState; to: TaskState },
  ): Promise<T> {
    try {
      return await this.#http.request<T>(method, path, options);
    } catch (error) {
      if (!(error instanceof PaperclipStatusError)) throw error;
      if (error.status === 422 && move !== undefined) {
        throw new InvalidTransitionError({
          ...move,
          taskId: resource.replace(/^issue /, ''),
          reason: `Paperclip refused ${move.from} -> ${move.to}: ${error.reason ?? 'status 422'}`,
        });
      }
      throw error.toKernelError(resource);
    }
  }
}
