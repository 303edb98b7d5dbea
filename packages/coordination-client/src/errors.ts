import { KernelError, reviveKernelError, TransportError } from '@exec-kernel/core';
import { HTTPError, TimeoutError } from 'ky';
import { STATUS_OF_CODE } from './protocol/status.js';
import type { ErrorPayload } from './protocol/types.js';
import { attachViolation } from './violation.js';

/** Whether the service did not answer (no response, 408, 429, 5xx): trying again later may work. */
export function isUnavailable(error: unknown): error is TransportError {
  if (!TransportError.is(error)) return false;
  const status = error.status;
  return status === undefined || status === 408 || status === 429 || status >= 500;
}

/**
 * A service error body as a core error: a refusal with a core code comes back as its class
 * (`LoopDetectionError`, `ConflictError`, `ForbiddenError`, `ValidationError`, …, a rule
 * violation with the service's record as `error.violation`); the service's own codes (no or a
 * wrong token, a body too large, the service failing) as a `TransportError` with the status.
 * Never carries a header or the token.
 */
export function rebuildError(
  e: Partial<ErrorPayload> | undefined,
  method: string,
  url: string,
  status?: number,
): Error {
  if (e?.code !== undefined && e.message !== undefined) {
    const rebuilt = reviveKernelError({ code: e.code, message: e.message, details: e.details });
    // A plain KernelError is a code core has no class for: the service's own (`UNAUTHENTICATED`).
    if (KernelError.is(rebuilt) && rebuilt.constructor !== KernelError) {
      if (e.violation !== undefined) attachViolation(rebuilt, e.violation);
      return rebuilt;
    }
  }
  const known =
    status ??
    (e?.code === undefined || !Object.hasOwn(STATUS_OF_CODE, e.code)
      ? undefined
      : STATUS_OF_CODE[e.code]);
  const said = e?.message === undefined ? '' : `: ${e.message}`;
  return new TransportError(
    { status: known, method, url },
    {
      message:
        known === undefined
          ? `${method} ${url} failed${said}`
          : `${method} ${url} failed with status ${known}${said}`,
    },
  );
}

/**
 * What a failed request rejects with: the server's `{ error: { code, message, … } }` as a core
 * error ({@link rebuildError}), a `TransportError` when no answer came, or the caller's own abort.
 * `text` is the body when it was read already (the client's own fetch hands it over). Never a
 * header or the token.
 */
export async function rebuildFailure(
  error: unknown,
  method: string,
  url: string,
  text: string | undefined,
): Promise<unknown> {
  if (error instanceof HTTPError) {
    let body: { error?: ErrorPayload } = {};
    try {
      body = (text === undefined ? await error.response.json() : JSON.parse(text)) as typeof body;
    } catch {
      // Not our JSON (a proxy's page): the status says it all.
    }
    return rebuildError(body.error, method, url, error.response.status);
  }
  if (error instanceof Error && error.name === 'AbortError') return error;
  const reason = error instanceof TimeoutError ? 'timed out' : 'no response';
  return new TransportError({ method, url }, { message: `${method} ${url} failed: ${reason}` });
}
