import { TaskAdmissionError } from '@exec-kernel/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ADMISSION_FIELDS, findAdmissionProblems, validateAdmission } from './admission.js';

const complete = {
  consumer: 'end-user',
  painPoint: 'login page is slow',
  expectedValue: 'reduce load time by 40%',
  validationPath: 'benchmark test suite',
};

function caught(fn: () => void): TaskAdmissionError {
  try {
    fn();
  } catch (e) {
    if (TaskAdmissionError.is(e)) return e;
    throw e;
  }
  throw new Error('expected a throw');
}

describe('validateAdmission', () => {
  it('accepts a complete admission', () => {
    expect(() => validateAdmission(complete)).not.toThrow();
  });

  it('reports every missing or blank field at once, in order', () => {
    const e = caught(() =>
      validateAdmission({ consumer: 'end-user', expectedValue: '   \n' }, { taskId: 't1' }),
    );
    expect(e.missing).toEqual(['painPoint', 'expectedValue', 'validationPath']);
    expect(e.invalid).toEqual([]);
    expect(e.taskId).toBe('t1');
    expect(e.message).toBe(
      'Task t1 refused: admission incomplete: missing painPoint, expectedValue, validationPath',
    );
  });

  it('reports fields of the wrong kind separately from missing ones', () => {
    const e = caught(() => validateAdmission({ ...complete, consumer: 42, painPoint: null }));
    expect(e.missing).toEqual(['painPoint']);
    expect(e.invalid).toEqual([{ field: 'consumer', problem: 'must be a string, got number' }]);
  });

  it('treats a non-object as missing everything', () => {
    for (const input of [undefined, null, 'text', 7]) {
      expect(caught(() => validateAdmission(input)).missing).toEqual([...ADMISSION_FIELDS]);
    }
  });

  it('requires only the configured fields', () => {
    expect(() => validateAdmission({ consumer: 'ops' }, { required: ['consumer'] })).not.toThrow();
    expect(caught(() => validateAdmission({}, { required: ['ticket'] })).missing).toEqual([
      'ticket',
    ]);
    expect(() => validateAdmission({}, { required: [] })).not.toThrow();
  });

  it('ignores inherited properties', () => {
    const inherited = Object.create(complete);
    expect(caught(() => validateAdmission(inherited)).missing).toEqual([...ADMISSION_FIELDS]);
  });

  it('property: missing is exactly the required fields without a non-blank string', () => {
    const value = fc.oneof(
      fc.constant(undefined),
      fc.constant(null),
      fc.constantFrom('', ' ', '\t\n'),
      fc.string({ minLength: 1 }),
      fc.integer(),
    );
    fc.assert(
      fc.property(
        fc.record({
          consumer: value,
          painPoint: value,
          expectedValue: value,
          validationPath: value,
        }),
        (input) => {
          const { missing, invalid } = findAdmissionProblems(input);
          for (const field of ADMISSION_FIELDS) {
            const v = input[field];
            const isMissing =
              v === undefined || v === null || (typeof v === 'string' && v.trim() === '');
            const isInvalid = v !== undefined && v !== null && typeof v !== 'string';
            expect(missing.includes(field)).toBe(isMissing);
            expect(invalid.some((i) => i.field === field)).toBe(isInvalid);
          }
        },
      ),
    );
  });
});
