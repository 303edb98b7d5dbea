import { isValidId, type TransportError } from '@exec-kernel/core';
import { type PaperclipHttp, PaperclipStatusError } from './http.js';
import { contextBody, type JsonValue, readContextBody } from './task-context.js';
import type { PaperclipIssue } from './types.js';

/** A JSON object kept in one issue document, with the revision it was read at. */
export interface JsonDocument {
  data: Record<string, JsonValue>;
  /** `undefined` when the issue has no such document yet. */
  revision: string | undefined;
}

// Tries of an update that loses its revision race to another writer.
const MAX_ATTEMPTS = 5;

/**
 * JSON objects kept in Paperclip issue documents (`/issues/{id}/documents/{key}`, markdown
 * bodies with the JSON in a fenced block). Paperclip refuses an update that does not name the
 * latest revision (409), so an update is a read-modify-write retried against the new revision:
 * no concurrent update is lost.
 */
export class IssueDocuments {
  readonly #http: PaperclipHttp;

  constructor(http: PaperclipHttp) {
    this.#http = http;
  }

  /**
   * The document `key` of `issue`; `{}` when the issue has none.
   *
   * @throws TransportError when the document holds no JSON object (say, after a hand edit).
   */
  async read(issue: PaperclipIssue, key: string): Promise<JsonDocument> {
    const path = documentPath(issue, key);
    let answer: unknown;
    try {
      answer = await this.#http.request<unknown>('get', path);
    } catch (error) {
      if (!(error instanceof PaperclipStatusError)) throw error;
      if (error.status === 404) return { data: {}, revision: undefined };
      throw error.toKernelError(`issue ${issue.identifier ?? issue.id}`);
    }
    const doc = (typeof answer === 'object' && answer !== null ? answer : {}) as Record<
      string,
      unknown
    >;
    const data = readContextBody(doc.body);
    if (data === undefined || !isValidId(doc.latestRevisionId)) {
      throw this.#http.malformed('get', path, `no JSON object in the ${key} document`);
    }
    return { data, revision: doc.latestRevisionId };
  }

  /**
   * The error for a document `key` of `issue` that holds JSON, but not what the adapter keeps
   * there (`problem` says what is wrong), named by its path: the document is left as it is.
   */
  corrupt(issue: PaperclipIssue, key: string, problem: string): TransportError {
    return this.#http.malformed('get', documentPath(issue, key), problem);
  }

  /**
   * Applies `change` to the document's object and writes it against the revision read,
   * reading again when another writer got in first. Returns what `change` returned for the
   * write that won.
   *
   * @throws ConflictError when other writers kept winning for 5 attempts.
   */
  async update<T>(
    issue: PaperclipIssue,
    key: string,
    title: string,
    change: (data: Record<string, JsonValue>) => T,
  ): Promise<{ data: Record<string, JsonValue>; result: T }> {
    const path = documentPath(issue, key);
    for (let attempt = 1; ; attempt++) {
      const { data, revision } = await this.read(issue, key);
      const result = change(data);
      const body: Record<string, unknown> = { title, format: 'markdown', body: contextBody(data) };
      if (revision !== undefined) body.baseRevisionId = revision;
      try {
        await this.#http.request('put', path, { json: body });
        return { data, result };
      } catch (error) {
        if (!(error instanceof PaperclipStatusError)) throw error;
        if (error.status !== 409 || attempt >= MAX_ATTEMPTS) {
          throw error.toKernelError(`issue ${issue.identifier ?? issue.id}`);
        }
      }
    }
  }
}

function documentPath(issue: PaperclipIssue, key: string): string {
  // Both are ids the adapter checked (the issue's UUID as Paperclip sent it, a constant key).
  return `issues/${encodeURIComponent(issue.id)}/documents/${encodeURIComponent(key)}`;
}
