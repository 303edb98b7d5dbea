import { InvalidInputError, LoopDetectionError, toViolation } from '@exec-kernel/core';
import { describe, expect, it } from 'vitest';
import { callFingerprint, canonicalJson, resultDigest } from './action-digest.js';
import { type ActionEvent, ActionGuard } from './action-guard.js';
import { type ActionCall, ActionHistory } from './action-history.js';
import { DEFAULT_ACTION_RULES, resolveActionRules } from './action-rules.js';

const only = (rule: 'repeat' | 'pingPong' | 'window' | 'noProgress', thresholds: object) =>
  resolveActionRules({
    repeat: false,
    pingPong: false,
    window: false,
    noProgress: false,
    [rule]: thresholds,
  });

function refusal(run: () => unknown): LoopDetectionError {
  try {
    run();
  } catch (error) {
    if (LoopDetectionError.is(error)) return error;
    throw error;
  }
  throw new Error('expected a LoopDetectionError');
}

const read = (path: string): ActionCall => ({ tool: 'read_file', args: { path } });

describe('call fingerprints', () => {
  it('ignore key order at every level, and whitespace of the JSON the args came from', () => {
    const a = callFingerprint('edit', {
      path: 'a.ts',
      change: { from: 1, to: [2, { y: 1, x: 0 }] },
    });
    const b = callFingerprint(
      'edit',
      JSON.parse('{ "change": {"to": [2, {"x":0,"y":1}], "from": 1}, "path": "a.ts" }'),
    );
    expect(a).toBe(b);
    expect(a).toMatch(/^[0-9a-f]{16}$/);
  });

  it('tell apart tools, values, types and array order', () => {
    const prints = new Set([
      callFingerprint('read', { path: 'a' }),
      callFingerprint('write', { path: 'a' }),
      callFingerprint('read', { path: 'b' }),
      callFingerprint('read', { path: ['a'] }),
      callFingerprint('read', { n: 1 }),
      callFingerprint('read', { n: '1' }),
      callFingerprint('read', { list: [1, 2] }),
      callFingerprint('read', { list: [2, 1] }),
      callFingerprint('read', { a: {} }),
      callFingerprint('read', { a: [] }),
      callFingerprint('read', { a: null }),
      callFingerprint('read', { ab: 'c' }),
      callFingerprint('read', { a: 'bc' }),
    ]);
    expect(prints.size).toBe(13);
  });

  it('read missing args as {} and drop undefined members, as JSON does', () => {
    expect(callFingerprint('ls', undefined)).toBe(callFingerprint('ls', {}));
    expect(callFingerprint('ls', { a: 1, b: undefined })).toBe(callFingerprint('ls', { a: 1 }));
    expect(callFingerprint('ls', { at: new Date(0) })).toBe(
      callFingerprint('ls', { at: '1970-01-01T00:00:00.000Z' }),
    );
  });

  it('refuse what JSON cannot hold with one clear error', () => {
    expect(() => callFingerprint('x', { n: 1n })).toThrow(InvalidInputError);
    let deep: unknown = 1;
    for (let i = 0; i < 300; i++) deep = [deep];
    expect(() => callFingerprint('x', deep)).toThrow(/nests deeper than 256 levels/);
  });
});

describe('result digests', () => {
  it('are stable across versions: saved histories depend on them', () => {
    // Changing the digest would make every saved history see new calls; these values pin it.
    expect(resultDigest('File not found')).toBe(resultDigest('File not found'));
    expect([
      resultDigest('ok'),
      resultDigest({ rows: [] }),
      callFingerprint('read_file', { path: 'a.ts' }),
    ]).toEqual([PINNED.ok, PINNED.rows, PINNED.read]);
  });

  it('read every character of large and non-ASCII values', () => {
    const big = 'x'.repeat(200_000);
    expect(resultDigest(big)).toBe(resultDigest('x'.repeat(200_000)));
    expect(resultDigest(big)).not.toBe(resultDigest(`${'x'.repeat(199_999)}y`));
    expect(resultDigest(`${big}a`)).not.toBe(resultDigest(`${big}b`));
    expect(resultDigest('héllo wörld ✓')).not.toBe(resultDigest('hello world ✓'));
    expect(callFingerprint('read', { p: '日本' })).not.toBe(
      callFingerprint('read', { p: '日本語' }),
    );
  });

  it('read every character of strings of every length, in every position', () => {
    // Short strings are read a code unit at a time, long ones four UTF-8 bytes at a time over
    // four lanes: a change anywhere, in any lane or in the tail, changes the digest.
    for (let length = 1; length <= 70; length++) {
      const base = 'a'.repeat(length);
      const seen = new Set([resultDigest(base)]);
      for (let at = 0; at < length; at++) {
        seen.add(resultDigest(`${base.slice(0, at)}b${base.slice(at + 1)}`));
      }
      expect(seen.size, `length ${length}`).toBe(length + 1);
      expect(resultDigest(base)).not.toBe(resultDigest(`${base}\u0000`));
    }
  });

  it('tell lone surrogates apart in strings of any length, as JSON does', () => {
    for (const pad of ['', 'x'.repeat(40)]) {
      const digests = ['\uD800', '\uDC00', '\uFFFD'].map((tail) => resultDigest(pad + tail));
      expect(new Set(digests).size, `${pad.length + 1} characters`).toBe(3);
    }
  });

  it('read numbers as JSON does', () => {
    expect(resultDigest(-0)).toBe(resultDigest(0));
    expect(resultDigest(Number.NaN)).toBe(resultDigest(null));
    expect(resultDigest(Number.POSITIVE_INFINITY)).toBe(resultDigest(null));
    expect(resultDigest(0.1 + 0.2)).not.toBe(resultDigest(0.3));
    expect(resultDigest(2 ** 40)).not.toBe(resultDigest(2 ** 40 + 1));
    expect(resultDigest(2 ** 31)).not.toBe(resultDigest(-(2 ** 31)));
    expect(resultDigest(1.5)).not.toBe(resultDigest('1.5'));
  });

  it('hold when a getter or toJSON takes a digest in the middle of one', () => {
    const plain = { a: 'x'.repeat(30), b: { c: 1 }, d: 'y' };
    const nosy = {
      a: 'x'.repeat(30),
      get b() {
        resultDigest({ other: ['value', 'z'.repeat(40)] });
        return { c: 1 };
      },
      d: { toJSON: () => (callFingerprint('t', [1, 2]) ? 'y' : 'n') },
    };
    expect(resultDigest(nosy)).toBe(resultDigest(plain));
  });

  it('call toJSON once, as JSON.stringify does', () => {
    const selfish = { toJSON: () => selfish, a: 1 };
    expect(resultDigest(selfish)).toBe(resultDigest({ a: 1 }));
    expect(resultDigest({ at: { toJSON: () => 'x' } })).toBe(resultDigest({ at: 'x' }));
  });

  it('agree exactly when the canonical JSON agrees', () => {
    expect(resultDigest({ b: 1, a: [true, null] })).toBe(resultDigest({ a: [true, null], b: 1 }));
    expect(canonicalJson({ b: 1, a: [true, null] })).toBe('{"a":[true,null],"b":1}');
    expect(resultDigest('1')).not.toBe(resultDigest(1));
    expect(resultDigest([1, [2]])).not.toBe(resultDigest([[1], 2]));
  });
});

// Computed once with this implementation; see the test above.
const PINNED = { ok: 'f09512cc1834a4e9', rows: '02be588ff8ee2253', read: 'ef42938a8d5a52f3' };

describe('repeat', () => {
  it('warns at warnAt and refuses the call that reaches blockAt, naming the call', () => {
    const history = new ActionHistory('task-1');
    const checks = [1, 2, 3, 4].map(() => history.observe(read('a.ts')));
    expect(checks.map((c) => [c.repeats, c.warnings.map((w) => w.loopType)])).toEqual([
      [1, []],
      [2, []],
      [3, ['repeat']],
      [4, ['repeat']],
    ]);
    expect(checks[2]?.warnings[0]?.message).toBe(
      'Task task-1 called read_file with the same arguments 3 times in a row (warning at 3, blocked at 5)',
    );
    const error = refusal(() => history.observe(read('a.ts')));
    expect(error.message).toBe(
      'Task task-1 called read_file with the same arguments 5 times in a row (blocked at 5)',
    );
    expect([error.loopType, error.tool, error.count, error.calls]).toEqual([
      'repeat',
      'read_file',
      5,
      [{ tool: 'read_file', fingerprint: callFingerprint('read_file', { path: 'a.ts' }) }],
    ]);
    expect(toViolation(error, 0)).toMatchObject({
      kind: 'loop_repeat',
      code: 'LOOP_DETECTED',
      taskId: 'task-1',
      limit: 4,
      observed: 5,
      details: { blockAt: 5, tool: 'read_file' },
    });
  });

  it('records nothing when it refuses, so the same call is refused again until another is made', () => {
    const history = new ActionHistory('t', only('repeat', { warnAt: 9, blockAt: 3 }));
    history.observe(read('a'));
    history.observe(read('a'));
    expect(refusal(() => history.observe(read('a'))).count).toBe(3);
    expect(refusal(() => history.observe(read('a'))).count).toBe(3);
    expect(history.total).toBe(2);
    expect(history.observe(read('b')).repeats).toBe(1);
    expect(history.observe(read('a')).repeats).toBe(1);
  });

  it('counts a call whose result changed as new: polling a moving job is not a loop', () => {
    const history = new ActionHistory('t');
    for (let i = 0; i < 50; i++) {
      history.observe({ tool: 'job_status', args: { id: 7 }, result: { progress: i } });
    }
    const stuck = new ActionHistory('t');
    for (let i = 0; i < 4; i++)
      stuck.observe({ tool: 'job_status', args: { id: 7 }, result: 'running' });
    expect(refusal(() => stuck.observe({ tool: 'job_status', args: { id: 7 } })).loopType).toBe(
      'repeat',
    );
  });
});

describe('ping-pong', () => {
  it('refuses a cycle of two calls repeated blockAt times, listing the cycle oldest first', () => {
    const history = new ActionHistory('t', only('pingPong', { warnAt: 2, blockAt: 3 }));
    const calls = [read('a'), read('b'), read('a'), read('b'), read('a')];
    const warned = calls.map((call) => history.observe(call).warnings.map((w) => w.count));
    expect(warned).toEqual([[], [], [], [2], [2]]);
    const error = refusal(() => history.observe(read('b')));
    expect([error.loopType, error.count, error.details.period]).toEqual(['ping_pong', 3, 2]);
    expect(error.calls?.map((c) => c.fingerprint)).toEqual([
      callFingerprint('read_file', { path: 'a' }),
      callFingerprint('read_file', { path: 'b' }),
    ]);
    expect(error.message).toBe(
      'Task t repeated the cycle read_file -> read_file 3 times (blocked at 3)',
    );
  });

  it('refuses a cycle of three calls', () => {
    const history = new ActionHistory('t', only('pingPong', { warnAt: 9, blockAt: 2 }));
    history.observe({ tool: 'plan' });
    history.observe({ tool: 'search' });
    history.observe({ tool: 'edit' });
    history.observe({ tool: 'plan' });
    history.observe({ tool: 'search' });
    const error = refusal(() => history.observe({ tool: 'edit' }));
    expect([error.loopType, error.count, error.details.period]).toEqual(['ping_pong', 2, 3]);
    expect(error.message).toBe(
      'Task t repeated the cycle plan -> search -> edit 2 times (blocked at 2)',
    );
  });

  it('leaves repeats of a single call to the repeat rule', () => {
    const history = new ActionHistory('t', only('pingPong', { warnAt: 2, blockAt: 2 }));
    for (let i = 0; i < 10; i++) history.observe(read('a'));
    expect(history.total).toBe(10);
  });

  it('starts the count over when a call in the cycle returns something new', () => {
    const history = new ActionHistory('t', only('pingPong', { warnAt: 2, blockAt: 9 }));
    history.observe({ tool: 'a', result: 1 });
    history.observe({ tool: 'b' });
    history.observe({ tool: 'a', result: 2 });
    // Without the change this would be the second cycle (a b a b).
    expect(history.observe({ tool: 'b' }).warnings).toEqual([]);
    expect(history.observe({ tool: 'a' }).warnings).toEqual([]);
    expect(history.observe({ tool: 'b' }).warnings.map((w) => w.count)).toEqual([2]);

    const three = new ActionHistory('t', only('pingPong', { warnAt: 2, blockAt: 9 }));
    three.observe({ tool: 'a', result: 'old' });
    three.observe({ tool: 'b' });
    three.observe({ tool: 'c' });
    three.observe({ tool: 'a', result: 'new' });
    three.observe({ tool: 'b' });
    expect(three.observe({ tool: 'c' }).warnings).toEqual([]);
    expect(three.observe({ tool: 'a' }).warnings).toEqual([]);
  });
});

describe('window', () => {
  it('refuses the same call made blockAt times within the last size calls', () => {
    const history = new ActionHistory('t', only('window', { size: 6, warnAt: 2, blockAt: 3 }));
    history.observe({ tool: 'test' });
    history.observe({ tool: 'edit', args: { n: 1 } });
    expect(history.observe({ tool: 'test' }).inWindow).toBe(2);
    history.observe({ tool: 'edit', args: { n: 2 } });
    const error = refusal(() => history.observe({ tool: 'test' }));
    expect([error.loopType, error.count, error.details.windowSize]).toEqual(['window', 3, 6]);
    expect(error.message).toBe(
      'Task t called test with the same arguments 3 times in its last 6 calls (blocked at 3)',
    );
  });

  it('forgets calls that left the window', () => {
    const history = new ActionHistory('t', only('window', { size: 3, warnAt: 9, blockAt: 2 }));
    history.observe({ tool: 'test' });
    history.observe({ tool: 'a' });
    history.observe({ tool: 'b' });
    expect(history.observe({ tool: 'test' }).inWindow).toBe(1);
  });

  it('does not count copies from before the result changed: re-running tests after edits is fine', () => {
    const history = new ActionHistory('t');
    for (let i = 0; i < 40; i++) {
      history.observe({ tool: 'edit', args: { line: i } });
      history.observe({
        tool: 'run_tests',
        args: { cmd: 'npm test' },
        result: `${40 - i} failing`,
      });
    }
    expect(history.total).toBe(80);
  });
});

describe('no progress', () => {
  it('refuses the same result blockAt times in a row, whatever the calls, naming them', () => {
    const history = new ActionHistory('t', only('noProgress', { warnAt: 2, blockAt: 3 }));
    history.observe({ tool: 'search', args: { q: 'foo' }, result: { hits: [] } });
    const second = history.observe({
      tool: 'search',
      args: { q: 'foo bar' },
      result: { hits: [] },
    });
    expect(second.warnings.map((w) => [w.loopType, w.count])).toEqual([['no_progress', 2]]);
    const error = refusal(() =>
      history.observe({ tool: 'grep', args: { q: 'foo' }, result: { hits: [] } }),
    );
    expect([error.loopType, error.count, error.details.resultDigest]).toEqual([
      'no_progress',
      3,
      resultDigest({ hits: [] }),
    ]);
    expect(error.calls?.map((c) => c.tool)).toEqual(['search', 'search', 'grep']);
    expect(error.message).toBe(
      'Task t got the same result 3 times in a row, no progress (blocked at 3)',
    );
  });

  it('takes results recorded after the call, and refuses the one that reaches blockAt', () => {
    const history = new ActionHistory('t', only('noProgress', { warnAt: 9, blockAt: 2 }));
    const first = history.observe({ tool: 'a' });
    expect(history.recordResult('denied')).toEqual({
      taskId: 't',
      tool: 'a',
      fingerprint: first.fingerprint,
      resultDigest: resultDigest('denied'),
      calls: 1,
      warnings: [],
    });
    history.observe({ tool: 'b' });
    expect(refusal(() => history.recordResult('denied')).loopType).toBe('no_progress');
    // The refused result left the call open: another one is attached to it, call 2 of b.
    expect(history.recordResult('other')).toMatchObject({ tool: 'b', calls: 2, warnings: [] });
  });

  it('refuses a result with no call, or a second result for the same call', () => {
    const history = new ActionHistory('t');
    expect(() => history.recordResult('x')).toThrow(
      'Invalid result: there is no call to attach it to',
    );
    history.observe({ tool: 'a' });
    history.recordResult('x');
    expect(() => history.recordResult('y')).toThrow(
      'Invalid result: the newest call already has one',
    );
  });
});

describe('ActionHistory', () => {
  it('counts nothing for exempt tools', () => {
    const history = new ActionHistory('t', resolveActionRules({ exemptTools: ['wait'] }));
    for (let i = 0; i < 20; i++)
      expect(history.observe({ tool: 'wait', args: { s: 5 } }).exempt).toBe(true);
    expect(history.total).toBe(0);
  });

  it('check() answers without recording', () => {
    const history = new ActionHistory('t', only('repeat', { warnAt: 9, blockAt: 2 }));
    history.observe(read('a'));
    expect(refusal(() => history.check(read('a'))).loopType).toBe('repeat');
    expect(history.check(read('b')).calls).toBe(2);
    expect(history.total).toBe(1);
  });

  it('survives a JSON round trip mid-pattern', () => {
    const history = new ActionHistory('t');
    for (let i = 0; i < 4; i++) history.observe(read('a'));
    const saved = JSON.parse(JSON.stringify(history.toJSON()));
    const restored = ActionHistory.fromJSON(saved);
    expect(restored.total).toBe(4);
    expect(refusal(() => restored.observe(read('a'))).count).toBe(5);
    expect(restored.toJSON()).toEqual(saved);
  });

  it('keeps the newest calls when restored under a smaller window', () => {
    const history = new ActionHistory('t');
    for (let i = 0; i < 20; i++)
      history.observe({ tool: i % 2 === 0 ? 'test' : 'edit', args: { i: i % 4 } });
    const restored = ActionHistory.fromJSON(
      history.toJSON(),
      resolveActionRules({ window: { size: 4, warnAt: 9, blockAt: 4 } }),
    );
    expect(restored.toJSON().recent).toHaveLength(4);
    // The window now holds edit{1}, test{2}, edit{3} and the new call.
    expect(restored.check({ tool: 'test', args: { i: 2 } }).inWindow).toBe(2);
    expect(restored.check({ tool: 'test', args: { i: 0 } }).inWindow).toBe(1);
  });

  it('refuses a corrupt saved history with one clear error', () => {
    const good = new ActionHistory('t').toJSON();
    for (const bad of [
      null,
      'x',
      { ...good, total: -1 },
      { ...good, recent: [['x']] },
      { ...good, taskId: '' },
    ]) {
      expect(() => ActionHistory.fromJSON(bad)).toThrow(InvalidInputError);
    }
    expect(() => ActionHistory.fromJSON({ ...good, recent: 3 })).toThrow(
      'Invalid action history: recent must list [fingerprint, tool, result, epoch] entries',
    );
  });

  it('refuses an empty tool name', () => {
    expect(() => new ActionHistory('t').observe({ tool: '' })).toThrow(
      'Invalid tool: must be a non-empty string',
    );
  });
});

describe('resolveActionRules', () => {
  it('fills in the defaults and turns rules off with false', () => {
    expect(resolveActionRules()).toEqual(DEFAULT_ACTION_RULES);
    const rules = resolveActionRules({ repeat: { blockAt: 2 }, window: false });
    expect(rules.repeat).toEqual({ warnAt: 2, blockAt: 2 });
    expect(rules.window).toBe(false);
    expect(resolveActionRules({}, rules).window).toBe(false);
  });

  it('refuses thresholds out of range', () => {
    expect(() => resolveActionRules({ repeat: { blockAt: 1 } })).toThrow(RangeError);
    expect(() => resolveActionRules({ window: { size: 4, blockAt: 5 } })).toThrow(
      'action rule window.size must be an integer >= 5, got 4',
    );
    expect(() => resolveActionRules({ noProgress: { warnAt: 0 } })).toThrow(RangeError);
  });
});

describe('ActionGuard', () => {
  it('keeps tasks apart, forgets ended ones and evicts the oldest past maxTasks', () => {
    const guard = new ActionGuard({ repeat: { warnAt: 9, blockAt: 2 }, maxTasks: 2 });
    guard.observe({ taskId: 'a', ...read('x') });
    guard.observe({ taskId: 'b', ...read('x') });
    expect(refusal(() => guard.observe({ taskId: 'a', ...read('x') })).taskId).toBe('a');
    guard.observe({ taskId: 'c', ...read('x') });
    expect([guard.has('a'), guard.has('b'), guard.has('c'), guard.size]).toEqual([
      false,
      true,
      true,
      2,
    ]);
    expect(guard.end('b')).toBe(true);
    expect(guard.observe({ taskId: 'b', ...read('x') }).repeats).toBe(1);
  });

  it('tells listeners of every observation, result and refusal', () => {
    const guard = new ActionGuard({ repeat: { warnAt: 9, blockAt: 2 } });
    const events: ActionEvent['outcome'][] = [];
    const stop = guard.onObserve((event) => events.push(event.outcome));
    guard.observe({ taskId: 't', ...read('x') });
    guard.recordResult('t', 'ok');
    expect(() => guard.observe({ taskId: 't', ...read('x') })).toThrow(LoopDetectionError);
    stop();
    guard.observe({ taskId: 't', ...read('y') });
    expect(events).toEqual(['recorded', 'result', 'refused']);
  });

  it('round-trips through JSON', () => {
    const guard = new ActionGuard({ maxTasks: 5 });
    for (let i = 0; i < 4; i++) guard.observe({ taskId: 't', ...read('x') });
    const restored = ActionGuard.fromJSON(JSON.parse(JSON.stringify(guard)));
    expect(restored.maxTasks).toBe(5);
    expect(refusal(() => restored.observe({ taskId: 't', ...read('x') })).loopType).toBe('repeat');
  });
});
