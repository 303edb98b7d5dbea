import { describe, expect, it } from 'vitest';
import { textProblem, UNPAIRED_SURROGATE, UNPRINTABLE } from './text.js';

describe('the text rule', () => {
  it('takes words, line breaks, tabs, emoji and right-to-left text', () => {
    for (const text of ['', 'plain', 'two\nlines', 'a\ttab', 'crlf\r\n', 'a🚀b', 'שלום עולם'])
      expect([text, textProblem(text)]).toEqual([text, undefined]);
  });

  it.each([
    ['NUL', 'a\u0000b', 'must not contain control characters'],
    ['an ANSI escape', '\u001b[2J', 'must not contain control characters'],
    ['DEL', 'a\u007fb', 'must not contain control characters'],
    ['a C1 control (CSI)', 'a\u009bb', 'must not contain control characters'],
    ['an unpaired surrogate', 'a\ud800b', 'must not contain unpaired surrogates'],
  ])('refuses %s', (_, text, problem) => {
    expect(textProblem(text)).toBe(problem);
  });

  it('names what never reaches a terminal, and keeps no state between tests', () => {
    for (const char of ['\n', '\u001b', '\u0085', '\u2028', '\u202e', '\u2066', '\ufeff'])
      expect(UNPRINTABLE.test(`x${char}y`)).toBe(true);
    for (const text of ['plain', 'a🚀b', 'שלום', 'tab\u00a0nbsp'])
      expect(UNPRINTABLE.test(text)).toBe(false);
    expect(UNPAIRED_SURROGATE.test('🚀')).toBe(false);
    expect(UNPAIRED_SURROGATE.test('\udc00')).toBe(true);
    expect(UNPRINTABLE.global || UNPAIRED_SURROGATE.global).toBe(false);
  });
});
