import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';

/** Options of {@link createNodeFetch}. */
export interface NodeFetchOptions {
  /** Agent for `http:` URLs; by default a keep-alive agent of this fetch's own. */
  httpAgent?: http.Agent | undefined;
  /** Agent for `https:` URLs; by default a keep-alive agent of this fetch's own. */
  httpsAgent?: https.Agent | undefined;
}

/**
 * The `init` key of a {@link Handover}. ky passes `fetch` every option it does not know, by
 * reference, which is how the client's own requests carry one.
 */
export const HANDOVER = 'execKernelHandover';

/**
 * A request body and the response's text passed between the coordination client and
 * {@link createNodeFetch} beside the `Request` and `Response`, which then carry no body. Each body
 * costs a web stream (and a request body a tee and a cancel when ky clones and finishes it): more
 * CPU per request than the request itself, measured here. Internal: fetches of other callers
 * never see one.
 */
export class Handover {
  /** The request body, serialized (the client sets its content type). */
  readonly body: string | undefined;
  /** The response body as text, once the response has ended; not set for an event stream. */
  text: string | undefined;

  constructor(body: string | undefined) {
    this.body = body;
  }
}

/** Statuses whose responses have no body, whatever the server sends. */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/**
 * A `fetch` for the client's requests, made on `node:http` instead of Node's built-in fetch. The
 * built-in one wraps every request and response in web streams: measured here, it costs a caller
 * about 0.6 ms of CPU per request against 0.15 ms for the same request on `node:http`, which is
 * most of what an agent's claim costs it. Bodies are read whole, except a `text/event-stream`
 * response's, which streams. Network failures reject with a `TypeError` (as fetch's do) whose
 * `cause` is the socket error; an aborted signal rejects with the signal's reason.
 *
 * Not a general fetch: no redirects, cookies, caches or content decoding, which the service's
 * API never needs.
 */
export function createNodeFetch(options: NodeFetchOptions = {}): typeof fetch {
  // An idle connection is dropped after 4 s, before a Node server's default 5 s keep-alive ends
  // it: reusing one the server is closing fails the request. (The timeout only ends idle sockets.)
  const httpAgent = options.httpAgent ?? new http.Agent({ keepAlive: true, timeout: 4_000 });
  const httpsAgent = options.httpsAgent ?? new https.Agent({ keepAlive: true, timeout: 4_000 });

  return async function fetchOverNodeHttp(input, init) {
    const handover = (init as Record<string, unknown> | undefined)?.[HANDOVER];
    const handed = handover instanceof Handover ? handover : undefined;
    // ky hands over a Request, and in init only the handover: rebuilding it would cost a body stream.
    const bare = init === undefined || Object.keys(init).every((key) => key === HANDOVER);
    const request = input instanceof Request && bare ? input : new Request(input, init);
    const { signal } = request;
    signal.throwIfAborted();
    const url = new URL(request.url);
    const secure = url.protocol === 'https:';
    if (!secure && url.protocol !== 'http:') {
      throw new TypeError(`fetch failed: ${url.protocol} URLs are not supported`);
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of request.headers) headers[name] = value;
    const body =
      handed?.body !== undefined
        ? Buffer.from(handed.body)
        : request.body === null
          ? undefined
          : Buffer.from(await request.arrayBuffer());
    if (body !== undefined) headers['content-length'] = String(body.byteLength);

    return await new Promise<Response>((resolve, reject) => {
      const onAbort = () => outgoing.destroy(signal.reason);
      const outgoing = (secure ? https : http).request(
        url,
        { method: request.method, headers, agent: secure ? httpsAgent : httpAgent },
        (incoming) => {
          const status = incoming.statusCode ?? 0;
          const responseHeaders = new Headers();
          const raw = incoming.rawHeaders;
          for (let i = 0; i + 1 < raw.length; i += 2) {
            responseHeaders.append(raw[i] as string, raw[i + 1] as string);
          }
          const init = {
            status,
            statusText: incoming.statusMessage ?? '',
            headers: responseHeaders,
          };
          if (NULL_BODY.has(status) || request.method === 'HEAD') {
            incoming.resume();
            signal.removeEventListener('abort', onAbort);
            resolve(new Response(null, init));
            return;
          }
          if (responseHeaders.get('content-type')?.startsWith('text/event-stream')) {
            incoming.once('close', () => signal.removeEventListener('abort', onAbort));
            resolve(new Response(Readable.toWeb(incoming) as ReadableStream, init));
            return;
          }
          const chunks: Buffer[] = [];
          incoming.on('data', (chunk: Buffer) => chunks.push(chunk));
          incoming.once('end', () => {
            signal.removeEventListener('abort', onAbort);
            const whole = Buffer.concat(chunks);
            if (handed === undefined) {
              resolve(new Response(whole, init));
              return;
            }
            handed.text = whole.toString('utf8');
            resolve(new Response(null, init));
          });
          incoming.once('error', fail);
          incoming.once('close', () => {
            if (!incoming.complete)
              fail(new Error('the connection closed before the response ended'));
          });
        },
      );
      const fail = (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(signal.aborted ? signal.reason : new TypeError('fetch failed', { cause: error }));
      };
      outgoing.once('error', fail);
      signal.addEventListener('abort', onAbort, { once: true });
      outgoing.end(body);
    });
  };
}
