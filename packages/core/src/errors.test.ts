import { describe, expect, it } from 'vitest';
import {
  BudgetExceededError,
  ConfigError,
  ConflictError,
  ForbiddenError,
  formatAmount,
  IdleEnforcementError,
  InvalidInputError,
  InvalidTransitionError,
  KernelError,
  LoopDetectionError,
  NotFoundError,
  reviveKernelError,
  StoreError,
  TaskAdmissionError,
  TransportError,
  toViolation,
  ValidationError,
} from './index.js';

const samples: KernelError[] = [
  new InvalidTransitionError({
    from: 'todo',
    to: 'done',
    reason: 'No valid transition from todo to done',
  }),
  new LoopDetectionError({ loopType: 'depth', taskId: 't', depth: 11, maxDepth: 10 }),
  new BudgetExceededError({ budgetType: 'steps', taskId: 't', limit: 10, observed: 15 }),
  new IdleEnforcementError({ agentId: 'a', until: '2026-01-01T00:00:30.000Z' }),
  new TaskAdmissionError({ missing: ['consumer'], invalid: [] }),
  new ConfigError('bad', {
    path: '/x/.exec-kernel.yml',
    line: 2,
    column: 3,
    key: 'budget.max_steps',
  }),
  new ConflictError({ resource: 'task t1', holder: 'agent-2' }),
  new TransportError({ method: 'GET', url: 'http://127.0.0.1/api/x', status: 503 }),
  new NotFoundError({ resource: 'task', id: 't9' }),
  new StoreError({ path: '/s/state.json', problem: 'newer_version', version: 2 }),
  new InvalidInputError({ field: 'task id', problem: 'must not be blank' }),
];

describe('KernelError', () => {
  it('gives each subclass its code and name, and keeps instanceof working', () => {
    expect(samples.map((e) => [e.name, e.code])).toEqual([
      ['InvalidTransitionError', 'INVALID_TRANSITION'],
      ['LoopDetectionError', 'LOOP_DETECTED'],
      ['BudgetExceededError', 'BUDGET_EXCEEDED'],
      ['IdleEnforcementError', 'IDLE_ENFORCED'],
      ['TaskAdmissionError', 'TASK_ADMISSION'],
      ['ConfigError', 'CONFIG_INVALID'],
      ['ConflictError', 'CONFLICT'],
      ['TransportError', 'TRANSPORT'],
      ['NotFoundError', 'NOT_FOUND'],
      ['StoreError', 'STORE'],
      ['InvalidInputError', 'INVALID_INPUT'],
    ]);
    for (const e of samples) {
      expect(e).toBeInstanceOf(KernelError);
      expect(e).toBeInstanceOf(Error);
      expect(KernelError.is(e)).toBe(true);
      expect(String(e.stack)).toContain(e.name);
    }
  });

  it('recognises errors from another copy of the package by brand, not by prototype', () => {
    // What a duplicate install produces: an object carrying the shared symbol brand.
    const foreign = Object.assign(new Error('x'), { code: 'LOOP_DETECTED' });
    Object.defineProperty(foreign, Symbol.for('@exec-kernel/core/KernelError'), { value: true });
    expect(KernelError.is(foreign)).toBe(true);
    expect(LoopDetectionError.is(foreign)).toBe(true);
    expect(BudgetExceededError.is(foreign)).toBe(false);
    expect(KernelError.is(new Error('plain'))).toBe(false);
    expect(KernelError.is(null)).toBe(false);
    expect(KernelError.is({ code: 'LOOP_DETECTED' })).toBe(false);
  });

  it('subclass is() only accepts its own code', () => {
    const loop = samples[1];
    expect(LoopDetectionError.is(loop)).toBe(true);
    expect(InvalidTransitionError.is(loop)).toBe(false);
  });

  it('keeps the cause as the standard cause, not in the message', () => {
    const cause = new TypeError('socket hang up');
    const e = new TransportError({ method: 'POST', url: 'http://h/api' }, { cause });
    expect(e.cause).toBe(cause);
    expect(e.message).toBe('POST http://h/api failed: no response');
  });

  it('round-trips every error through JSON into the same class with the same fields', () => {
    for (const e of samples) {
      const json = JSON.parse(JSON.stringify(e));
      expect(json).toEqual({
        name: e.name,
        code: e.code,
        message: e.message,
        details: { ...e.details },
      });
      const revived = reviveKernelError(json);
      expect(revived.constructor).toBe(e.constructor);
      expect(revived.message).toBe(e.message);
      expect(revived.details).toEqual(e.details);
    }
    const unknown = reviveKernelError({ code: 'SOMETHING_NEW', message: 'm', details: { a: 1 } });
    expect(unknown.constructor).toBe(KernelError);
    expect(unknown.code).toBe('SOMETHING_NEW');
  });

  it('exposes the fields the seed names', () => {
    const t = samples[0] as InvalidTransitionError;
    expect([t.from, t.to, t.reason]).toEqual([
      'todo',
      'done',
      'No valid transition from todo to done',
    ]);
    const l = samples[1] as LoopDetectionError;
    expect([l.loopType, l.taskId, l.depth, l.maxDepth]).toEqual(['depth', 't', 11, 10]);
    const b = samples[2] as BudgetExceededError;
    expect([b.budgetType, b.taskId, b.limit, b.observed]).toEqual(['steps', 't', 10, 15]);
    const i = samples[3] as IdleEnforcementError;
    expect([i.agentId, i.until]).toEqual(['a', '2026-01-01T00:00:30.000Z']);
    const c = samples[5] as ConfigError;
    expect([c.path, c.line, c.column, c.key]).toEqual([
      '/x/.exec-kernel.yml',
      2,
      3,
      'budget.max_steps',
    ]);
    const k = samples[6] as ConflictError;
    expect([k.resource, k.holder]).toEqual(['task t1', 'agent-2']);
    const tr = samples[7] as TransportError;
    expect([tr.status, tr.method, tr.url]).toEqual([503, 'GET', 'http://127.0.0.1/api/x']);
  });
});

describe('messages', () => {
  it('formats every budget type with the seed pattern', () => {
    const message = (
      budgetType: BudgetExceededError['budgetType'],
      limit: number,
      observed: number,
    ) => new BudgetExceededError({ budgetType, taskId: 'task-1', limit, observed }).message;
    expect(message('steps', 10, 15)).toBe(
      'Task task-1 exceeded step budget: 15 steps taken, max 10',
    );
    expect(message('duration', 1800, 1900)).toBe(
      'Task task-1 exceeded duration budget: 1900s elapsed, max 1800s',
    );
    expect(message('depth', 10, 15)).toBe('Task task-1 exceeded depth budget: depth 15, max 10');
    expect(message('tokens', 1000, 1200)).toBe(
      'Task task-1 exceeded token budget: 1200 tokens used, max 1000',
    );
    expect(message('cost', 1, 1.25)).toBe('Task task-1 exceeded cost budget: $1.25 spent, max $1');
  });

  it('formats loop messages with the offending chain', () => {
    expect(
      new LoopDetectionError({ loopType: 'cycle', taskId: 'a', chain: ['a', 'b', 'a'] }).message,
    ).toBe('Task a would create a cycle: a -> b -> a');
    expect(
      new LoopDetectionError({
        loopType: 'identity',
        taskId: 'deep-task',
        agentId: 'agent-1',
        taskType: 'research',
        chain: ['deep-task', 'parent-1'],
      }).message,
    ).toBe(
      'Task deep-task re-creates task parent-1: same agent agent-1 and type research on its creator chain deep-task -> parent-1',
    );
  });

  it('names every missing and invalid admission field', () => {
    const e = new TaskAdmissionError({
      taskId: 't1',
      missing: ['consumer', 'painPoint'],
      invalid: [{ field: 'expectedValue', problem: 'must be a string, got number' }],
    });
    expect(e.message).toBe(
      'Task t1 refused: admission incomplete: missing consumer, painPoint; invalid expectedValue (must be a string, got number)',
    );
  });

  it('formats fractional amounts without float noise', () => {
    expect(formatAmount(0.1 + 0.2)).toBe('0.3');
    expect(formatAmount(1800.0004)).toBe('1800.0004');
    expect(formatAmount(42)).toBe('42');
  });

  it('accepts a caller message in place of the standard one', () => {
    expect(new NotFoundError({ resource: 'task', id: 'x' }).message).toBe('Task x not found');
    expect(new NotFoundError({ resource: 'task', id: 'x' }, { message: 'gone' }).message).toBe(
      'gone',
    );
  });
});

describe('request errors', () => {
  it('round-trip ForbiddenError and ValidationError through their JSON form', () => {
    const forbidden = new ForbiddenError({ agentId: 'agent-1', action: 'enqueue as agent-2' });
    expect(forbidden.message).toBe('Agent agent-1 may not enqueue as agent-2');
    const revived = reviveKernelError(JSON.parse(JSON.stringify(forbidden)));
    expect(ForbiddenError.is(revived)).toBe(true);
    expect(revived).toBeInstanceOf(ForbiddenError);
    expect((revived as ForbiddenError).action).toBe('enqueue as agent-2');

    const invalid = new ValidationError({
      issues: [
        { path: 'body.title', message: 'expected string' },
        { path: 'query.limit', message: 'too big' },
      ],
    });
    expect(invalid.message).toBe(
      'Invalid request: body.title: expected string; query.limit: too big',
    );
    const back = reviveKernelError(JSON.parse(JSON.stringify(invalid)));
    expect(back).toBeInstanceOf(ValidationError);
    expect((back as ValidationError).issues).toHaveLength(2);
    expect(toViolation(back).kind).toBe('validation');
  });

  it('names the database and the system code when storage is unavailable', () => {
    const error = new StoreError({
      path: 'postgres://db.internal/app',
      problem: 'unavailable',
      engine: 'postgres',
      reason: 'ECONNREFUSED',
    });
    expect(error.message).toBe(
      'Database postgres://db.internal/app is unavailable (ECONNREFUSED); try again',
    );
  });
});
