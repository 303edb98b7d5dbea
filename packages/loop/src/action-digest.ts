import { InvalidInputError } from '@exec-kernel/core';

// Nesting deeper than this is refused rather than walked: no real tool call nests so deep, and the
// walk is recursive.
const MAX_NESTING = 256;

// The text a value is digested as: injective (every string is length-prefixed, every container
// closed), so two values share it exactly when their canonical JSON is the same. Building it with
// string concatenation and hashing its UTF-8 bytes four at a time costs a fraction of hashing
// character by character in JavaScript.
function canonicalText(value: unknown, field: string, depth: number): string {
  if (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as { toJSON?: unknown }).toJSON === 'function'
  ) {
    value = (value as { toJSON(): unknown }).toJSON();
  }
  switch (typeof value) {
    case 'string':
      return `s${value.length}:${value}`;
    case 'number':
      return Number.isFinite(value) ? `#${value};` : 'n';
    case 'boolean':
      return value ? 't' : 'f';
    case 'bigint':
      throw unsupported(field, 'holds a BigInt, which JSON cannot represent');
    case 'object':
      break;
    default:
      // undefined, functions and symbols, which JSON.stringify writes as null inside arrays.
      return 'n';
  }
  if (value === null) return 'n';
  if (depth >= MAX_NESTING) throw unsupported(field, `nests deeper than ${MAX_NESTING} levels`);
  if (Array.isArray(value)) {
    let text = '[';
    for (let i = 0; i < value.length; i++) text += canonicalText(value[i], field, depth + 1);
    return `${text}]`;
  }
  const record = value as Record<string, unknown>;
  const keys = sortedKeys(Object.keys(record));
  let text = '{';
  for (const key of keys) {
    const item = record[key];
    if (item === undefined || typeof item === 'function' || typeof item === 'symbol') continue;
    text += `${key.length}:${key}${canonicalText(item, field, depth + 1)}`;
  }
  return `${text}}`;
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

const encoder = new TextEncoder();
// A scratch buffer reused across calls (the digest is synchronous, so nothing else can use it at
// the same time); it grows for large values and never shrinks below its first size.
let scratch = new Uint8Array(4096);
let words = new Int32Array(scratch.buffer);
// Words are read little-endian everywhere, so digests saved on one machine hold on another.
const littleEndian = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * A 64-bit digest (two 32-bit lanes, the mixing of cyrb53) of the UTF-8 bytes of `text`, as 16 hex
 * digits. Not cryptographic: fingerprints only tell one agent's calls apart, and must be cheap.
 */
function digestText(text: string): string {
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
  let h1 = 0xdeadbeef ^ written;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < count; i++) {
    const word = littleEndian ? (words[i] as number) : wordAt(i);
    h1 = Math.imul(h1 ^ word, 2654435761);
    h2 = Math.imul(h2 ^ word, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return hex8(h2 >>> 0) + hex8(h1 >>> 0);
}

function wordAt(index: number): number {
  const at = index * 4;
  return (
    (scratch[at] as number) |
    ((scratch[at + 1] as number) << 8) |
    ((scratch[at + 2] as number) << 16) |
    ((scratch[at + 3] as number) << 24)
  );
}

// Number#toString(16) costs hundreds of nanoseconds; four table lookups cost a few.
const HEX_BYTES = Array.from({ length: 256 }, (_, byte) => byte.toString(16).padStart(2, '0'));

function hex8(value: number): string {
  return (
    (HEX_BYTES[value >>> 24] as string) +
    (HEX_BYTES[(value >>> 16) & 0xff] as string) +
    (HEX_BYTES[(value >>> 8) & 0xff] as string) +
    (HEX_BYTES[value & 0xff] as string)
  );
}

function unsupported(field: string, what: string): InvalidInputError {
  return new InvalidInputError({ field, problem: what });
}

/**
 * The fingerprint of a tool call: a 16-hex-digit digest of the tool name and the canonical JSON of
 * its arguments. Key order, whitespace and the difference between a missing argument object and
 * `{}` do not matter. (Text is digested as UTF-8, so a lone surrogate reads as U+FFFD.)
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
  return digestText(
    `${tool.length}:${tool}${canonicalText(args === undefined ? {} : args, 'args', 0)}`,
  );
}

/**
 * The digest of a tool's result, as the no-progress rule compares them: the same digest for values
 * whose canonical JSON is the same. A string is digested as the string it is.
 *
 * @throws InvalidInputError when the result holds a BigInt or nests deeper than 256 levels.
 */
export function resultDigest(result: unknown): string {
  return digestText(canonicalText(result, 'result', 0));
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
