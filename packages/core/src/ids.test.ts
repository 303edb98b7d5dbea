import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkId, idProblem, isValidId, MAX_ID_LENGTH } from './ids.js';
import { InvalidInputError } from './request-errors.js';
import { toViolation } from './violation.js';

describe('the id rule', () => {
  it('accepts the ids people write', () => {
    for (const id of [
      't1',
      'task-1',
      'PAP-12',
      'proj/task 1',
      'tâche-é',
      '任务',
      'a🚀b',
      'x'.repeat(200),
    ])
      expect([id, idProblem(id)]).toEqual([id, undefined]);
  });

  it.each([
    ['', 'must not be empty'],
    ['   ', 'must not be blank'],
    ['\t\n', 'must not be blank'],
    ['x'.repeat(MAX_ID_LENGTH + 1), 'must be at most 200 characters, got 201'],
    ['a\nb', 'must not contain control characters'],
    ['a\rb', 'must not contain control characters'],
    ['a\u0000b', 'must not contain control characters'],
    ['\u001b[31mred', 'must not contain control characters'],
    ['a\u0085b', 'must not contain control characters'],
    ['a\u2028b', 'must not contain control characters'],
    ['evil\u202etxt.exe', 'must not contain control characters'],
    ['a\ud800b', 'must not contain unpaired surrogates'],
    ['\udfff', 'must not contain unpaired surrogates'],
    [' t1', 'must not start or end with whitespace'],
    ['t1 ', 'must not start or end with whitespace'],
    ['.', "must not be '.'"],
    ['..', "must not be '..'"],
  ])('refuses %j: %s', (id, problem) => {
    expect(idProblem(id)).toBe(problem);
    expect(isValidId(id)).toBe(false);
    expect(() => checkId(id, 'task id')).toThrow(`Invalid task id: ${problem}`);
  });

  it('refuses what is not a string, and names the field in the error and its violation', () => {
    for (const value of [undefined, null, 1, {}, ['t1']])
      expect(idProblem(value)).toBe('must be a string');
    let caught: unknown;
    try {
      checkId('a\nb', 'agent id');
    } catch (error) {
      caught = error;
    }
    expect(InvalidInputError.is(caught)).toBe(true);
    const error = caught as InvalidInputError;
    expect([error.field, error.problem]).toEqual([
      'agent id',
      'must not contain control characters',
    ]);
    expect(toViolation(error, 0)).toMatchObject({ kind: 'invalid_input', code: 'INVALID_INPUT' });
    expect(checkId('t1')).toBe('t1');
  });

  it('never lets a line break, an escape or an unpaired surrogate through', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (s) => {
        if (!isValidId(s)) return;
        expect(s).not.toMatch(/\p{Cc}/u);
        expect(s.length).toBeGreaterThan(0);
        expect(s.trim()).toBe(s);
        // A valid id survives a round trip through UTF-8, as a database or a file stores it.
        expect(Buffer.from(s, 'utf8').toString('utf8')).toBe(s);
      }),
    );
  });
});
