import { InvalidInputError } from '@exec-kernel/core';

// Nesting deeper than this is refused rather than walked: no real tool call nests so deep, and the
// walk is recursive.
const MAX_NESTING = 256;

/**
 * A 64-bit digest state (two 32-bit lanes, the mixing of cyrb53). Not cryptographic: fingerprints
 * only tell an agent's own calls apart, and must cost well under a microsecond.
 */
class Digest {
  h1 = 0xdeadbeef;
  h2 = 0x41c6ce57;

  char(code: number): void {
    this.h1 = Math.imul(this.h1 ^ code, 2654435761);
    this.h2 = Math.imul(this.h2 ^ code, 1597334677);
  }

  text(value: string): void {
    // The length first, so that no two sequences of strings feed the same characters.
    this.char(value.length & 0xffff);
    this.char(value.length >>> 16);
    for (let i = 0; i < value.length; i++) this.char(value.charCodeAt(i));
  }

  finish(): string {
    let h1 = this.h1;
    let h2 = this.h2;
    h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
    h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
    return hex8(h2 >>> 0) + hex8(h1 >>> 0);
  }
}

function hex8(value: number): string {
  return value.toString(16).padStart(8, '0');
}

// One character per JSON type, fed before each value, keeps `"1"` and `1` (and `[]` and `{}`) apart.
const TAG_NULL = 0x6e; // n
const TAG_TRUE = 0x74; // t
const TAG_FALSE = 0x66; // f
const TAG_NUMBER = 0x23; // #
const TAG_STRING = 0x73; // s
const TAG_ARRAY = 0x5b; // [
const TAG_ARRAY_END = 0x5d; // ]
const TAG_OBJECT = 0x7b; // {
const TAG_OBJECT_END = 0x7d; // }

function unsupported(field: string, what: string): InvalidInputError {
  return new InvalidInputError({ field, problem: what });
}

/**
 * Feeds `value` as its canonical JSON would read: object keys sorted, `undefined` and functions
 * dropped from objects (`null` in arrays), non-finite numbers as `null`, `toJSON()` honoured.
 */
function feed(digest: Digest, value: unknown, field: string, depth: number): void {
  if (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as { toJSON?: unknown }).toJSON === 'function'
  ) {
    value = (value as { toJSON(): unknown }).toJSON();
  }
  switch (typeof value) {
    case 'string':
      digest.char(TAG_STRING);
      digest.text(value);
      return;
    case 'number':
      if (Number.isFinite(value)) {
        digest.char(TAG_NUMBER);
        digest.text(String(value));
      } else {
        digest.char(TAG_NULL);
      }
      return;
    case 'boolean':
      digest.char(value ? TAG_TRUE : TAG_FALSE);
      return;
    case 'bigint':
      throw unsupported(field, 'holds a BigInt, which JSON cannot represent');
    case 'object':
      break;
    default:
      // undefined, functions and symbols, which JSON.stringify writes as null inside arrays.
      digest.char(TAG_NULL);
      return;
  }
  if (value === null) {
    digest.char(TAG_NULL);
    return;
  }
  if (depth >= MAX_NESTING) throw unsupported(field, `nests deeper than ${MAX_NESTING} levels`);
  if (Array.isArray(value)) {
    digest.char(TAG_ARRAY);
    for (let i = 0; i < value.length; i++) feed(digest, value[i], field, depth + 1);
    digest.char(TAG_ARRAY_END);
    return;
  }
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  if (keys.length > 1) keys.sort();
  digest.char(TAG_OBJECT);
  for (const key of keys) {
    const item = record[key];
    if (item === undefined || typeof item === 'function' || typeof item === 'symbol') continue;
    digest.text(key);
    feed(digest, item, field, depth + 1);
  }
  digest.char(TAG_OBJECT_END);
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
  const digest = new Digest();
  digest.text(tool);
  feed(digest, args === undefined ? {} : args, 'args', 0);
  return digest.finish();
}

/**
 * The digest of a tool's result, as the no-progress rule compares them: the same digest for values
 * whose canonical JSON is the same. A string is digested as the string it is.
 *
 * @throws InvalidInputError when the result holds a BigInt or nests deeper than 256 levels.
 */
export function resultDigest(result: unknown): string {
  const digest = new Digest();
  feed(digest, result, 'result', 0);
  return digest.finish();
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
