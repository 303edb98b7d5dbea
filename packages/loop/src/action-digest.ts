import { InvalidInputError } from '@exec-kernel/core';

// Nesting deeper than this is refused rather than walked: no real tool call nests so deep, and the
// walk is recursive.
const MAX_NESTING = 256;

// A value is digested as it is walked, with no text built on the way: each part is fed to the hash
// as 32-bit words. The word stream is prefix-free (every string length-prefixed, every container
// closed, every scalar tagged), so two values feed the same words exactly when their canonical JSON
// is the same.
const STRING = 0x5f3a0001;
const INTEGER = 0x5f3a0002;
const FLOAT = 0x5f3a0003;
const NULL = 0x5f3a0004;
const TRUE = 0x5f3a0005;
const FALSE = 0x5f3a0006;
const ARRAY = 0x5f3a0007;
const OBJECT = 0x5f3a0008;
const END = 0x5f3a0009;
const LONG_STRING = 0x5f3a000a;

// The hash's two lanes (the mixing of cyrb53). Digests are synchronous, so one pair serves all; a
// digest taken from inside a walk (by a getter or a toJSON) keeps the outer one's, see `digestOf`.
let lane1 = 0;
let lane2 = 0;

function feed(word: number): void {
  lane1 = Math.imul(lane1 ^ word, 2654435761);
  lane2 = Math.imul(lane2 ^ word, 1597334677);
}

// Below this length a string is fed code unit by code unit; from it on, as UTF-8 bytes four at a
// time, which costs a fraction once the encoder's fixed cost is paid.
const SHORT_STRING = 24;

function feedString(text: string): void {
  const length = text.length;
  // UTF-8 reads a lone surrogate as U+FFFD, so a string holding one is read by code unit.
  if (length >= SHORT_STRING && text.isWellFormed()) {
    feedLongString(text);
    return;
  }
  let h1 = Math.imul(lane1 ^ STRING, 2654435761);
  let h2 = Math.imul(lane2 ^ STRING, 1597334677);
  h1 = Math.imul(h1 ^ length, 2654435761);
  h2 = Math.imul(h2 ^ length, 1597334677);
  // Two code units to a word: half the multiplies.
  const even = length & ~1;
  for (let i = 0; i < even; i += 2) {
    const word = text.charCodeAt(i) | (text.charCodeAt(i + 1) << 16);
    h1 = Math.imul(h1 ^ word, 2654435761);
    h2 = Math.imul(h2 ^ word, 1597334677);
  }
  if (even !== length) {
    const unit = text.charCodeAt(even);
    h1 = Math.imul(h1 ^ unit, 2654435761);
    h2 = Math.imul(h2 ^ unit, 1597334677);
  }
  lane1 = h1;
  lane2 = h2;
}

const encoder = new TextEncoder();
// A scratch buffer reused across calls (digests are synchronous, so nothing else can use it at the
// same time); it grows for large strings and never shrinks.
let scratch = new Uint8Array(4096);
let words = new Int32Array(scratch.buffer);

function feedLongString(text: string): void {
  const room = text.length * 3 + 4;
  if (room > scratch.length) {
    scratch = new Uint8Array(room + (room >>> 1));
    words = new Int32Array(scratch.buffer, 0, scratch.length >>> 2);
  }
  const { written } = encoder.encodeInto(text, scratch);
  scratch[written] = 0;
  scratch[written + 1] = 0;
  scratch[written + 2] = 0;
  const count = (written + 3) >>> 2;
  // Four lanes over interleaved words: four short chains of multiplies instead of one long one.
  let a = 0x9e3779b9 | 0;
  let b = 0x85ebca6b | 0;
  let c = 0xc2b2ae35 | 0;
  let d = 0x27d4eb2f;
  let i = 0;
  if (littleEndian) {
    for (; i + 4 <= count; i += 4) {
      a = Math.imul(a ^ (words[i] as number), 2654435761);
      b = Math.imul(b ^ (words[i + 1] as number), 1597334677);
      c = Math.imul(c ^ (words[i + 2] as number), 2246822507);
      d = Math.imul(d ^ (words[i + 3] as number), 3266489909);
    }
  }
  for (; i < count; i++) {
    const word = littleEndian ? (words[i] as number) : wordAt(i);
    if ((i & 3) === 0) a = Math.imul(a ^ word, 2654435761);
    else if ((i & 3) === 1) b = Math.imul(b ^ word, 1597334677);
    else if ((i & 3) === 2) c = Math.imul(c ^ word, 2246822507);
    else d = Math.imul(d ^ word, 3266489909);
  }
  feed(LONG_STRING);
  feed(written);
  feed(a ^ (a >>> 15));
  feed(b ^ (b >>> 15));
  feed(c ^ (c >>> 15));
  feed(d ^ (d >>> 15));
}

// Words are read little-endian everywhere, so digests saved on one machine hold on another.
const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function wordAt(index: number): number {
  const at = index * 4;
  return (
    (scratch[at] as number) |
    ((scratch[at + 1] as number) << 8) |
    ((scratch[at + 2] as number) << 16) |
    ((scratch[at + 3] as number) << 24)
  );
}

// A float's 64 bits, read as two words in the same order on every machine.
const float = new Float64Array(1);
const floatWords = new Int32Array(float.buffer);
const low = littleEndian ? 0 : 1;

function feedNumber(value: number): void {
  if ((value | 0) === value) {
    // Integers in 32 bits, -0 included (JSON writes it as 0), need no float bits.
    feed(INTEGER);
    feed(value | 0);
  } else if (Number.isFinite(value)) {
    float[0] = value;
    feed(FLOAT);
    feed(floatWords[low] as number);
    feed(floatWords[1 - low] as number);
  } else {
    // JSON writes NaN and the infinities as null.
    feed(NULL);
  }
}

function feedValue(value: unknown, field: string, depth: number): void {
  // As JSON.stringify does: a value's toJSON is called once, and its answer is written as it is.
  if (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as { toJSON?: unknown }).toJSON === 'function'
  ) {
    value = (value as { toJSON(): unknown }).toJSON();
  }
  feedPlain(value, field, depth);
}

function feedPlain(value: unknown, field: string, depth: number): void {
  switch (typeof value) {
    case 'string':
      feedString(value);
      return;
    case 'number':
      feedNumber(value);
      return;
    case 'boolean':
      feed(value ? TRUE : FALSE);
      return;
    case 'bigint':
      throw unsupported(field, 'holds a BigInt, which JSON cannot represent');
    case 'object':
      break;
    default:
      // undefined, functions and symbols, which JSON.stringify writes as null inside arrays.
      feed(NULL);
      return;
  }
  if (value === null) {
    feed(NULL);
    return;
  }
  if (depth >= MAX_NESTING) throw unsupported(field, `nests deeper than ${MAX_NESTING} levels`);
  if (Array.isArray(value)) {
    feed(ARRAY);
    for (let i = 0; i < value.length; i++) feedValue(value[i], field, depth + 1);
    feed(END);
    return;
  }
  const record = value as Record<string, unknown>;
  const keys = sortedKeys(Object.keys(record));
  feed(OBJECT);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    const item = record[key];
    if (item === undefined || typeof item === 'function' || typeof item === 'symbol') continue;
    feedString(key);
    feedValue(item, field, depth + 1);
  }
  feed(END);
}

// Insertion sort: tool arguments have a handful of keys, often already in order, and for those
// this beats Array.prototype.sort several times over.
function sortedKeys(keys: string[]): string[] {
  for (let i = 1; i < keys.length; i++) {
    const key = keys[i] as string;
    let j = i - 1;
    if ((keys[j] as string) <= key) continue;
    while (j >= 0 && (keys[j] as string) > key) {
      keys[j + 1] = keys[j] as string;
      j--;
    }
    keys[j + 1] = key;
  }
  return keys;
}

/** Starts a digest: the lanes at their seeds. */
function begin(): void {
  lane1 = 0xdeadbeef | 0;
  lane2 = 0x41c6ce57;
}

/**
 * Ends a digest: the final mixing of cyrb53 over both lanes, as 16 hex digits. Not cryptographic:
 * fingerprints only tell one agent's calls apart, and must be cheap.
 */
function finish(): string {
  let h1 = lane1;
  let h2 = lane2;
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  // One call building all 16 digits costs half of concatenating them.
  const x = HEX_DIGITS;
  return String.fromCharCode(
    x[h2 >>> 28] as number,
    x[(h2 >>> 24) & 15] as number,
    x[(h2 >>> 20) & 15] as number,
    x[(h2 >>> 16) & 15] as number,
    x[(h2 >>> 12) & 15] as number,
    x[(h2 >>> 8) & 15] as number,
    x[(h2 >>> 4) & 15] as number,
    x[h2 & 15] as number,
    x[h1 >>> 28] as number,
    x[(h1 >>> 24) & 15] as number,
    x[(h1 >>> 20) & 15] as number,
    x[(h1 >>> 16) & 15] as number,
    x[(h1 >>> 12) & 15] as number,
    x[(h1 >>> 8) & 15] as number,
    x[(h1 >>> 4) & 15] as number,
    x[h1 & 15] as number,
  );
}

const HEX_DIGITS = Array.from('0123456789abcdef', (digit) => digit.charCodeAt(0));

function unsupported(field: string, what: string): InvalidInputError {
  return new InvalidInputError({ field, problem: what });
}

/**
 * The fingerprint of a tool call: a 16-hex-digit digest of the tool name and the canonical JSON of
 * its arguments. Key order, whitespace and the difference between a missing argument object and
 * `{}` do not matter.
 *
 * @throws InvalidInputError when the arguments hold a BigInt or nest deeper than 256 levels.
 *
 * @example
 * ```ts
 * callFingerprint('read_file', { path: 'a.ts', limit: 10 }) ===
 *   callFingerprint('read_file', { limit: 10, path: 'a.ts' }); // true
 * ```
 */
export function callFingerprint(tool: string, args: unknown): string {
  return digestOf(tool, args === undefined ? EMPTY : args, 'args');
}

const EMPTY = Object.freeze({});

/**
 * The digest of a tool's result, as the no-progress rule compares them: the same digest for values
 * whose canonical JSON is the same. A string is digested as the string it is.
 *
 * @throws InvalidInputError when the result holds a BigInt or nests deeper than 256 levels.
 */
export function resultDigest(result: unknown): string {
  return digestOf(undefined, result, 'result');
}

/** Digests `value` (after `tool`, when given), leaving the lanes as it found them. */
function digestOf(tool: string | undefined, value: unknown, field: string): string {
  const outer1 = lane1;
  const outer2 = lane2;
  try {
    begin();
    if (tool !== undefined) feedString(tool);
    feedValue(value, field, 0);
    return finish();
  } finally {
    lane1 = outer1;
    lane2 = outer2;
  }
}

/**
 * The canonical JSON of a value: object keys sorted, no whitespace. Two values get the same
 * {@link resultDigest} exactly when this text is the same.
 */
export function canonicalJson(value: unknown): string {
  return (
    JSON.stringify(value, (_key, item: unknown) => {
      if (item === null || typeof item !== 'object' || Array.isArray(item)) return item;
      // A prototype-less object keeps an own `__proto__` key an ordinary key.
      const sorted: Record<string, unknown> = Object.create(null);
      for (const key of Object.keys(item).sort())
        sorted[key] = (item as Record<string, unknown>)[key];
      return sorted;
    }) ?? 'null'
  );
}
