import {
  ForbiddenError,
  KernelError,
  LoopDetectionError,
  TransportError,
  ValidationError,
} from '@exec-kernel/core';
import { describe, expect, it } from 'vitest';
import { rebuildError } from './errors.js';
import { statusOfCode } from './protocol/status.js';
import { violationOf } from './violation.js';

const URL = 'http://127.0.0.1:1/v1/tasks/t1/transition';

describe('rebuildError', () => {
  it('gives a FORBIDDEN refusal its typed error, not a transport error', () => {
    const error = rebuildError(
      {
        code: 'FORBIDDEN',
        message: 'Task t1 is leased by b, not a',
        details: { holder: 'b' },
      },
      'POST',
      URL,
      403,
    );
    expect(ForbiddenError.is(error)).toBe(true);
    expect(error).toBeInstanceOf(ForbiddenError);
    expect(error.message).toBe('Task t1 is leased by b, not a');
    expect(TransportError.is(error)).toBe(false);
  });

  it('gives a VALIDATION refusal its typed error with the issues', () => {
    const issues = [{ path: 'limit', message: 'Too big' }];
    const error = rebuildError(
      { code: 'VALIDATION', message: 'limit: Too big', details: { issues } },
      'GET',
      URL,
      400,
    );
    expect(ValidationError.is(error)).toBe(true);
    expect((error as ValidationError).issues).toEqual(issues);
    expect(error.message).toBe('limit: Too big');
  });

  it('keeps the violation record of a rule violation as error.violation', () => {
    const violation = {
      kind: 'loop_cycle' as const,
      code: 'LOOP_DETECTED' as const,
      message: 'cycle',
      at: '2026-01-01T00:00:00.000Z',
      details: {},
    };
    const error = rebuildError(
      { code: 'LOOP_DETECTED', message: 'cycle', details: { loopType: 'cycle' }, violation },
      'POST',
      URL,
      422,
    );
    expect(error).toBeInstanceOf(LoopDetectionError);
    expect(violationOf(error)).toEqual(violation);
    expect(Object.keys(error)).toContain('violation');
  });

  it("answers the service's own codes (no token, too large) with a transport error and its status", () => {
    const unauthenticated = rebuildError(
      { code: 'UNAUTHENTICATED', message: 'A bearer token is required' },
      'GET',
      URL,
      401,
    );
    expect(unauthenticated).toBeInstanceOf(TransportError);
    expect((unauthenticated as TransportError).status).toBe(401);
    expect(unauthenticated.message).toBe(
      `GET ${URL} failed with status 401: A bearer token is required`,
    );
    // A batch item comes without a status: the protocol's table gives it.
    const item = rebuildError({ code: 'PAYLOAD_TOO_LARGE', message: 'big' }, 'POST', URL);
    expect((item as TransportError).status).toBe(413);
    expect(KernelError.is(rebuildError({ code: 'FORBIDDEN', message: 'no' }, 'POST', URL))).toBe(
      true,
    );
  });

  it('names no status when neither the response nor the table has one', () => {
    const error = rebuildError(undefined, 'GET', URL, undefined);
    expect(error.message).toBe(`GET ${URL} failed`);
  });
});

describe('statusOfCode', () => {
  it('maps every code the service answers to one status, and unknown codes to 500', () => {
    expect(statusOfCode('FORBIDDEN')).toBe(403);
    expect(statusOfCode('VALIDATION')).toBe(400);
    expect(statusOfCode('INVALID_INPUT')).toBe(400);
    expect(statusOfCode('NOT_FOUND')).toBe(404);
    expect(statusOfCode('CONFLICT')).toBe(409);
    expect(statusOfCode('STORE')).toBe(503);
    expect(statusOfCode('LOOP_DETECTED')).toBe(422);
    expect(statusOfCode('SOMETHING_NEW')).toBe(500);
    expect(statusOfCode('toString')).toBe(500);
  });
});
