/**
 * The characters that must never reach a terminal or a one-line message from text a user or a
 * server gave: C0 and C1 controls (newline, NUL, the ESC of terminal escapes), line and paragraph
 * separators, and the invisible direction and byte-order marks that make text read otherwise
 * than it is. Not global, so `.test()` keeps no state; build a global copy from `.source` (with
 * the `u` flag) to replace them.
 */
export const UNPRINTABLE: RegExp =
  /[\p{Cc}\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/u;

/**
 * Half of a surrogate pair standing alone. With the `u` flag a pair is one code point, so this
 * matches only a lone half: no UTF-8 file or database can store one as it is (SQLite rewrites it,
 * PostgreSQL refuses it).
 */
export const UNPAIRED_SURROGATE: RegExp = /\p{Cs}/u;

// Every control character but tab, newline and carriage return, which free text may hold.
const TEXT_CONTROL = /(?![\t\n\r])\p{Cc}/u;

/**
 * Why `value` is not acceptable free text (a title, a comment, a note, an admission answer), or
 * `undefined` when it is: the one text rule of every exec-kernel surface. Free text may hold tabs
 * and line breaks, but no other control character (NUL, ESC) and no unpaired surrogate.
 *
 * @example
 * ```ts
 * textProblem('two\nlines'); //=> undefined
 * textProblem('\u001b[2J'); //=> 'must not contain control characters'
 * ```
 */
export function textProblem(value: string): string | undefined {
  if (TEXT_CONTROL.test(value)) return 'must not contain control characters';
  if (UNPAIRED_SURROGATE.test(value)) return 'must not contain unpaired surrogates';
  return undefined;
}
