import { ConflictError, isValidId, NotFoundError, TransportError } from '@exec-kernel/core';
import ky, { HTTPError, type KyInstance, TimeoutError } from 'ky';
import { Redactor } from './redact.js';

/** What Paperclip puts in an error body: `{ error, code?, details? }`. */
export interface PaperclipErrorBody {
  error?: string;
  code?: string;
  details?: unknown;
}

/** Default of `maxResponseBytes`: 16 MiB, far above any answer Paperclip gives. */
export const DEFAULT_MAX_RESPONSE_BYTES: number = 16 * 1024 * 1024;
/** The longest wait a `Retry-After` (or rate-limit reset) header can ask for: 30 s. */
export const MAX_RETRY_AFTER_MS = 30_000;
/** Most retries `retries` accepts. */
export const MAX_RETRIES = 10;
/** Longest `timeoutMs` (what a timer can hold, ~24.8 days). */
export const MAX_TIMEOUT_MS = 2_147_483_647;

/**
 * A response Paperclip refused with a status the caller may want to read (409, 422, …). Internal:
 * the adapter turns it into a core error; it never leaves the package. Everything it holds from
 * the server's body has been redacted and made one line.
 */
export class PaperclipStatusError extends Error {
  override name = 'PaperclipStatusError';
  readonly status: number;
  readonly method: string;
  readonly url: string;
  /** Paperclip's own words (its `error` text, redacted and cut), when it gave any. */
  readonly reason: string | undefined;
  /** Who holds the resource, from a 409's `details`, when it is an id and no secret. */
  readonly holder: string | undefined;

  constructor(
    status: number,
    method: string,
    url: string,
    body: PaperclipErrorBody,
    redactor: Redactor,
  ) {
    super(`${method} ${url} failed with status ${status}`);
    this.status = status;
    this.method = method;
    this.url = url;
    this.reason = redactor.serverText(body.error);
    const details = (
      typeof body.details === 'object' && body.details !== null ? body.details : {}
    ) as Record<string, unknown>;
    const holder = [details.assigneeAgentId, details.checkoutRunId, details.executionRunId].find(
      (value) => isValidId(value),
    );
    this.holder =
      holder !== undefined && !redactor.holdsSecret(holder) ? (holder as string) : undefined;
  }

  /** The core error for callers that do not handle this status themselves. */
  toKernelError(resource: string): ConflictError | NotFoundError | TransportError {
    if (this.status === 404) {
      const [kind = 'resource', ...rest] = resource.split(' ');
      return new NotFoundError({ resource: kind, id: rest.join(' ') });
    }
    if (this.status === 409) {
      return new ConflictError(
        { resource, holder: this.holder },
        this.reason === undefined ? {} : { message: `${resource}: ${this.reason}` },
      );
    }
    const redirect = this.status >= 300 && this.status < 400 ? ' (redirects are not followed)' : '';
    const said = this.reason === undefined ? '' : `: ${this.reason}`;
    return new TransportError(
      { status: this.status, method: this.method, url: this.url },
      { message: `${this.method} ${this.url} failed with status ${this.status}${redirect}${said}` },
    );
  }
}

/** HTTP settings of the adapter. */
export interface HttpOptions {
  /** Paperclip's origin, with or without a trailing `/api`. */
  apiUrl: string;
  apiKey: string;
  runId?: string | undefined;
  /** Per attempt, from sending to the last byte of the answer. Default: `10000` ms. */
  timeoutMs?: number | undefined;
  /** Retries of idempotent calls on 408/429/5xx, network errors and timeouts. Default: `2`. */
  retries?: number | undefined;
  /** Largest answer read. Default: {@link DEFAULT_MAX_RESPONSE_BYTES}. */
  maxResponseBytes?: number | undefined;
}

const IDEMPOTENT = new Set(['get', 'head', 'put', 'delete', 'options']);
// Statuses whose Response may not carry a body.
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/** The answer was larger than `maxResponseBytes`; thrown inside the fetch, never retried. */
class ResponseTooLarge extends Error {
  override name = 'ResponseTooLarge';
}

async function readCapped(response: Response, max: number): Promise<Uint8Array | null> {
  if (response.body === null) return null;
  const length = response.headers.get('content-length');
  const declared = length === null ? Number.NaN : Number(length);
  if (declared > max) {
    void response.body.cancel().catch(() => undefined);
    throw new ResponseTooLarge();
  }
  // A declared length is enforced by fetch itself (a body longer than it is an error), so the
  // whole-body read, much cheaper than a read loop, cannot go past the cap.
  if (Number.isSafeInteger(declared) && declared >= 0) {
    return new Uint8Array(await response.arrayBuffer());
  }
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      void reader.cancel().catch(() => undefined);
      throw new ResponseTooLarge();
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
}

/**
 * The fetch under ky. It sends a request body whole (ky keeps a clone of every request for
 * retries, which turns a JSON body into a stream; sent as a stream it measured ~1 ms slower per
 * write on a live Paperclip server), follows no redirect (a 3xx is an answer: Paperclip never
 * redirects, and a redirect would carry the body, or on the same origin the key, to a route the
 * caller did not name), and reads the whole answer, at most `max` bytes, before it resolves, so
 * ky's per-attempt timeout covers a server that sends headers and then trickles the body.
 */
function fetchWhole(max: number) {
  return async (input: Request | string | URL, init?: RequestInit): Promise<Response> => {
    let response: Response;
    if (input instanceof Request) {
      response = await fetch(input.url, {
        method: input.method,
        headers: input.headers,
        body: input.body === null ? null : await input.arrayBuffer(),
        signal: input.signal,
        ...init,
        redirect: 'manual',
      });
    } else {
      response = await fetch(input, { ...init, redirect: 'manual' });
    }
    const bytes = await readCapped(response, max);
    return new Response(NULL_BODY.has(response.status) ? null : bytes, {
      status: response.status,
      headers: response.headers,
    });
  };
}

/** Paperclip's `/api` base, from an origin that may or may not already end in `/api`. */
export function apiBase(apiUrl: string): string {
  return `${apiUrl.replace(/\/+$/, '').replace(/\/api$/, '')}/api/`;
}

/**
 * Why `apiUrl` cannot be Paperclip's origin, or `undefined` when it can: it must be an absolute
 * `http:` or `https:` URL without a user name, password, query or fragment (those would be sent
 * or shown where a secret does not belong). Never quotes the value.
 */
export function apiUrlProblem(apiUrl: string): string | undefined {
  let url: URL;
  try {
    url = new URL(apiUrl);
  } catch {
    return 'must be an absolute http or https URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return 'must be an http or https URL';
  }
  if (url.username !== '' || url.password !== '') {
    return 'must not contain a user name or password';
  }
  if (url.search !== '' || url.hash !== '' || /[?#]/.test(apiUrl)) {
    return 'must not have a query or fragment';
  }
  return undefined;
}

/**
 * A thin JSON client over ky. Every failure becomes a core error whose message and details carry
 * the method, the URL without its query and the status, never a header: ky's own errors hold the
 * request (and its Authorization header), so they are never passed on, not even as `cause`. Text
 * from the server's answer is redacted (the key, anything shaped like a credential) before it
 * goes into a message.
 */
export class PaperclipHttp {
  readonly base: string;
  /** Removes the key (and anything shaped like a credential) from text that leaves the adapter. */
  readonly redactor: Redactor;
  readonly maxResponseBytes: number;
  readonly #ky: KyInstance;

  constructor(options: HttpOptions) {
    // Normalised (dot segments resolved, host lower-cased), so the URL an error names is the one
    // that was requested.
    this.base = apiBase(new URL(options.apiUrl).href);
    this.redactor = new Redactor([options.apiKey]);
    this.maxResponseBytes = options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    const timeout = options.timeoutMs ?? 10_000;
    const headers: Record<string, string> = {
      authorization: `Bearer ${options.apiKey}`,
      accept: 'application/json',
    };
    if (options.runId !== undefined) headers['x-paperclip-run-id'] = options.runId;
    this.#ky = ky.create({
      prefixUrl: this.base,
      headers,
      fetch: fetchWhole(this.maxResponseBytes),
      timeout,
      retry: {
        limit: options.retries ?? 2,
        methods: [...IDEMPOTENT],
        statusCodes: [408, 429, 500, 502, 503, 504],
        afterStatusCodes: [413, 429, 503],
        backoffLimit: 5_000,
        // A server asking for an hour (as seconds or as a date) must not hold the caller longer
        // than one attempt may take, nor than the cap.
        maxRetryAfter: Math.min(timeout, MAX_RETRY_AFTER_MS),
        retryOnTimeout: true,
        // Only idempotent calls are ever retried; a 409 (a checkout conflict) never is, and an
        // answer too large to read would be as large again.
        shouldRetry: ({ error }) =>
          error instanceof ResponseTooLarge ||
          (error instanceof HTTPError && error.response.status === 409)
            ? false
            : undefined,
      },
    });
  }

  /** A `TransportError` for an answer that is not what Paperclip sends (`problem`, our words). */
  malformed(method: string, path: string, problem: string): TransportError {
    const label = method.toUpperCase();
    const url = this.redactor.text(`${this.base}${path}`);
    return new TransportError(
      { method: label, url },
      { message: `${label} ${url} answered with ${problem}` },
    );
  }

  /**
   * Sends a request and returns the parsed JSON body.
   *
   * @throws PaperclipStatusError for a response with an error status (after retries, if any).
   * @throws TransportError when no response arrived (network error, timeout), or the answer was
   *   larger than `maxResponseBytes` or not JSON.
   */
  async request<T>(
    method: 'get' | 'post' | 'patch' | 'put' | 'delete',
    path: string,
    options: { json?: unknown; searchParams?: Record<string, string> } = {},
  ): Promise<T> {
    // The path's ids are the caller's; should one hold the key, it still stays out of errors.
    const url = this.redactor.text(`${this.base}${path}`);
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
        throw new PaperclipStatusError(error.response.status, label, url, body, this.redactor);
      }
      if (error instanceof ResponseTooLarge) {
        throw this.malformed(method, path, `more than ${this.maxResponseBytes} bytes`);
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
      throw this.malformed(method, path, 'a body that is not JSON');
    }
  }
}
