import { ConflictError, NotFoundError, TransportError } from '@exec-kernel/core';
import ky, { HTTPError, type KyInstance, TimeoutError } from 'ky';

/** What Paperclip puts in an error body: `{ error, code?, details? }`. */
export interface PaperclipErrorBody {
  error?: string;
  code?: string;
  details?: unknown;
}

/**
 * A response Paperclip refused with a status the caller may want to read (409, 422, …). Internal:
 * the adapter turns it into a core error; it never leaves the package.
 */
export class PaperclipStatusError extends Error {
  override name = 'PaperclipStatusError';
  readonly status: number;
  readonly method: string;
  readonly url: string;
  readonly body: PaperclipErrorBody;

  constructor(status: number, method: string, url: string, body: PaperclipErrorBody) {
    super(`${method} ${url} failed with status ${status}`);
    this.status = status;
    this.method = method;
    this.url = url;
    this.body = body;
  }

  /** Paperclip's own words, when it gave any. */
  get reason(): string {
    return this.body.error ?? `status ${this.status}`;
  }

  /** The core error for callers that do not handle this status themselves. */
  toKernelError(resource: string): ConflictError | NotFoundError | TransportError {
    if (this.status === 404) {
      const [kind = 'resource', ...rest] = resource.split(' ');
      return new NotFoundError({ resource: kind, id: rest.join(' ') });
    }
    if (this.status === 409) {
      const details = (this.body.details ?? {}) as Record<string, unknown>;
      const holder = details.assigneeAgentId ?? details.checkoutRunId ?? details.executionRunId;
      return new ConflictError(
        { resource, holder: typeof holder === 'string' ? holder : undefined },
        { message: `${resource}: ${this.reason}` },
      );
    }
    return new TransportError(
      { status: this.status, method: this.method, url: this.url },
      { message: `${this.method} ${this.url} failed with status ${this.status}: ${this.reason}` },
    );
  }
}

/** HTTP settings of the adapter. */
export interface HttpOptions {
  /** Paperclip's origin, with or without a trailing `/api`. */
  apiUrl: string;
  apiKey: string;
  runId?: string | undefined;
  /** Per attempt. Default: `10000` ms. */
  timeoutMs?: number | undefined;
  /** Retries of idempotent calls on 408/429/5xx, network errors and timeouts. Default: `2`. */
  retries?: number | undefined;
}

const IDEMPOTENT = new Set(['get', 'head', 'put', 'delete', 'options']);

/**
 * ky keeps a clone of every request for retries, which turns a JSON body into a stream; sent as a
 * stream it measured ~1 ms slower per write on a live Paperclip server than the same bytes sent
 * whole. This sends the bytes whole.
 */
async function sendBuffered(input: Request | string | URL, init?: RequestInit): Promise<Response> {
  if (!(input instanceof Request) || input.body === null) return fetch(input, init);
  const body = await input.arrayBuffer();
  return fetch(input.url, {
    method: input.method,
    headers: input.headers,
    body,
    signal: input.signal,
    ...init,
  });
}

/** Paperclip's `/api` base, from an origin that may or may not already end in `/api`. */
export function apiBase(apiUrl: string): string {
  return `${apiUrl.replace(/\/+$/, '').replace(/\/api$/, '')}/api/`;
}

/**
 * A thin JSON client over ky. Every failure becomes a core error whose message and details carry
 * the method, the URL without its query and the status, never a header: ky's own errors hold the
 * request (and its Authorization header), so they are never passed on, not even as `cause`.
 */
export class PaperclipHttp {
  readonly base: string;
  readonly #ky: KyInstance;

  constructor(options: HttpOptions) {
    this.base = apiBase(options.apiUrl);
    const headers: Record<string, string> = {
      authorization: `Bearer ${options.apiKey}`,
      accept: 'application/json',
    };
    if (options.runId !== undefined) headers['x-paperclip-run-id'] = options.runId;
    this.#ky = ky.create({
      prefixUrl: this.base,
      headers,
      fetch: sendBuffered,
      timeout: options.timeoutMs ?? 10_000,
      retry: {
        limit: options.retries ?? 2,
        methods: [...IDEMPOTENT],
        statusCodes: [408, 429, 500, 502, 503, 504],
        afterStatusCodes: [413, 429, 503],
        backoffLimit: 5_000,
        retryOnTimeout: true,
        // Only idempotent calls are ever retried; a 409 (a checkout conflict) never is.
        shouldRetry: ({ error }) =>
          error instanceof HTTPError && error.response.status === 409 ? false : undefined,
      },
    });
  }

  /**
   * Sends a request and returns the parsed JSON body.
   *
   * @throws PaperclipStatusError for a response with an error status (after retries, if any).
   * @throws TransportError when no response arrived (network error, timeout).
   */
  async request<T>(
    method: 'get' | 'post' | 'patch' | 'put' | 'delete',
    path: string,
    options: { json?: unknown; searchParams?: Record<string, string> } = {},
  ): Promise<T> {
    const url = `${this.base}${path}`;
    const label = method.toUpperCase();
    let text: string;
    try {
      const response = await this.#ky(path, {
        method,
        ...(options.json === undefined ? {} : { json: options.json }),
        ...(options.searchParams === undefined ? {} : { searchParams: options.searchParams }),
        ...(IDEMPOTENT.has(method) ? {} : { retry: { limit: 0 } }),
      });
      text = await response.text();
    } catch (error) {
      if (error instanceof HTTPError) {
        let body: PaperclipErrorBody = {};
        try {
          const parsed = (await error.response.json()) as unknown;
          if (typeof parsed === 'object' && parsed !== null) body = parsed as PaperclipErrorBody;
        } catch {
          // A body that is not JSON says nothing more than the status.
        }
        throw new PaperclipStatusError(error.response.status, label, url, body);
      }
      const reason = error instanceof TimeoutError ? 'timed out' : 'no response';
      throw new TransportError(
        { method: label, url },
        { message: `${label} ${url} failed: ${reason}` },
      );
    }
    try {
      return (text === '' ? undefined : JSON.parse(text)) as T;
    } catch {
      throw new TransportError(
        { method: label, url },
        { message: `${label} ${url} answered with a body that is not JSON` },
      );
    }
  }
}
