/** The longest message (one line of JSON-RPC) the server reads; past it the line is skipped. */
export const MAX_MESSAGE_BYTES: number = 4 * 1024 * 1024;
/** Stands for a line that was too long to read. */
export const TOO_LONG: unique symbol = Symbol('too long');

/**
 * The lines of `input`, without their `\n` (and a `\r` before it). A line longer than `maxBytes`
 * is dropped as it arrives, never held whole, and stands as {@link TOO_LONG}: readline would buffer
 * a client's endless line until the process runs out of memory.
 */
export async function* readLines(
  input: NodeJS.ReadableStream,
  maxBytes: number,
  signal: AbortSignal,
): AsyncGenerator<string | typeof TOO_LONG> {
  let parts: Buffer[] = [];
  let size = 0;
  let skipping = false;
  const lineOf = (tail: Buffer): string => {
    const line = Buffer.concat([...parts, tail]).toString('utf8');
    parts = [];
    size = 0;
    return line.endsWith('\r') ? line.slice(0, -1) : line;
  };
  const chunks = input[Symbol.asyncIterator]();
  const aborted = new Promise<IteratorResult<never>>((resolve) => {
    if (signal.aborted) resolve({ done: true, value: undefined as never });
    signal.addEventListener('abort', () => resolve({ done: true, value: undefined as never }), {
      once: true,
    });
  });
  try {
    yield* splitLines();
  } finally {
    // Stops reading stdin, so an abort ends the process as the end of input does.
    await chunks.return?.();
  }

  async function* splitLines(): AsyncGenerator<string | typeof TOO_LONG> {
    for (;;) {
      const next = (await Promise.race([chunks.next(), aborted])) as IteratorResult<
        Buffer | string
      >;
      if (next.done) break;
      let chunk = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
      for (let end = chunk.indexOf(10); end >= 0; end = chunk.indexOf(10)) {
        const head = chunk.subarray(0, end);
        chunk = chunk.subarray(end + 1);
        if (skipping || size + head.length > maxBytes) {
          parts = [];
          size = 0;
          skipping = false;
          yield TOO_LONG;
        } else {
          yield lineOf(head);
        }
      }
      if (skipping) continue;
      if (size + chunk.length > maxBytes) {
        parts = [];
        size = 0;
        skipping = true;
      } else if (chunk.length > 0) {
        parts.push(chunk);
        size += chunk.length;
      }
    }
    if (skipping) yield TOO_LONG;
    else if (size > 0) yield lineOf(Buffer.alloc(0));
  }
}
