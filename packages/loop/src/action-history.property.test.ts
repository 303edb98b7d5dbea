import { KernelError, LoopDetectionError } from '@exec-kernel/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { callFingerprint, canonicalJson, resultDigest } from './action-digest.js';
import { ActionHistory } from './action-history.js';
import { type ActionRules, type ActionThreshold, resolveActionRules } from './action-rules.js';

/**
 * A deliberately naive reference: it keeps every call ever made, with its result and whether that
 * result was a change, and answers each question by scanning that list from the end. A call is
 * identified by its tool and canonical JSON text, a result by its canonical JSON text.
 */
interface NaiveEntry {
  key: string;
  tool: string;
  result: string | undefined;
  change: boolean;
}

type Outcome =
  | {
      ok: true;
      calls: number;
      repeats: number;
      inWindow: number;
      warnings: string[];
      exempt: boolean;
    }
  | { ok: false; loopType: string; count: number; tools: string[] }
  | { invalid: true };

class NaiveHistory {
  readonly entries: NaiveEntry[] = [];
  readonly results: string[] = [];
  readonly capacity: number;
  readonly rules: ActionRules;
  constructor(rules: ActionRules) {
    this.rules = rules;
    this.capacity = rules.window === false ? 20 : rules.window.size;
  }

  observe(tool: string, args: unknown, result: unknown): Outcome {
    if (this.rules.exemptTools.includes(tool)) {
      return {
        ok: true,
        calls: this.entries.length,
        repeats: 0,
        inWindow: 0,
        warnings: [],
        exempt: true,
      };
    }
    const key = `${tool}\u0000${canonicalJson(args ?? {})}`;
    const t = this.entries.length;
    const keys = [...this.entries.map((e) => e.key), key];
    const warnings: string[] = [];
    const judge = (type: string, rule: ActionThreshold | false, count: number, tools: string[]) => {
      if (rule === false) return undefined;
      if (count >= rule.blockAt) return { ok: false as const, loopType: type, count, tools };
      if (count >= rule.warnAt) warnings.push(`${type}:${count}`);
      return undefined;
    };

    let changeOfCall = -1;
    let changeOfAny = 0;
    this.entries.forEach((e, i) => {
      if (e.change && e.key === key) changeOfCall = i;
      if (e.change) changeOfAny = i;
    });

    let repeats = 1;
    for (let i = t - 1; i >= 0 && i >= changeOfCall && keys[i] === key; i--) repeats++;
    const r = judge('repeat', this.rules.repeat, repeats, [tool]);
    if (r) return r;

    const periodic = (p: number) => {
      let run = 0;
      for (let k = t; k - p >= 0 && k - p >= changeOfAny && keys[k] === keys[k - p]; k--) run++;
      return run;
    };
    const two = periodic(2);
    const three = periodic(3);
    let period = 0;
    let run = 0;
    if (two >= 2 && keys[t] !== keys[t - 1]) [period, run] = [2, two];
    else if (three >= 3 && !(keys[t] === keys[t - 1] && keys[t] === keys[t - 2]))
      [period, run] = [3, three];
    if (period !== 0) {
      const tools = this.entries
        .slice(t - period + 1)
        .map((e) => e.tool)
        .concat(tool);
      const p = judge('ping_pong', this.rules.pingPong, 1 + Math.floor(run / period), tools);
      if (p) return p;
    }

    let inWindow = 0;
    if (this.rules.window !== false) {
      inWindow = 1;
      for (let i = Math.max(0, t - this.rules.window.size + 1); i < t; i++) {
        if (keys[i] === key && i >= changeOfCall) inWindow++;
      }
      const w = judge('window', this.rules.window, inWindow, [tool]);
      if (w) return w;
    }

    const digest = result === undefined ? undefined : canonicalJson(result);
    if (digest !== undefined) {
      const n = this.noProgress(digest, tool, judge);
      if (n) return n;
    }
    this.entries.push({ key, tool, result: undefined, change: false });
    if (digest !== undefined) this.applyResult(digest);
    return { ok: true, calls: t + 1, repeats, inWindow, warnings, exempt: false };
  }

  recordResult(result: unknown): Outcome {
    const last = this.entries.at(-1);
    if (last === undefined || last.result !== undefined) return { invalid: true };
    const digest = canonicalJson(result);
    const warnings: string[] = [];
    const judge = (type: string, rule: ActionThreshold | false, count: number, tools: string[]) => {
      if (rule === false) return undefined;
      if (count >= rule.blockAt) return { ok: false as const, loopType: type, count, tools };
      if (count >= rule.warnAt) warnings.push(`${type}:${count}`);
      return undefined;
    };
    const n = this.noProgress(digest, last.tool, judge);
    if (n) return n;
    this.applyResult(digest);
    return { ok: true, calls: 0, repeats: 0, inWindow: 0, warnings, exempt: false };
  }

  noProgress(
    digest: string,
    tool: string,
    judge: (
      type: string,
      rule: ActionThreshold | false,
      count: number,
      tools: string[],
    ) => Outcome | undefined,
  ): Outcome | undefined {
    let run = 1;
    for (let i = this.results.length - 1; i >= 0 && this.results[i] === digest; i--) run++;
    return judge('no_progress', this.rules.noProgress, run, [tool]);
  }

  applyResult(digest: string): void {
    const t = this.entries.length - 1;
    const entry = this.entries[t] as NaiveEntry;
    // The previous result of the same call, as long as the call never left the recent calls.
    let previous: string | undefined;
    let later = t;
    for (let j = t - 1; j >= 0; j--) {
      const e = this.entries[j] as NaiveEntry;
      if (e.key !== entry.key) continue;
      if (later - j >= this.capacity) break;
      if (e.result !== undefined) {
        previous = e.result;
        break;
      }
      later = j;
    }
    entry.change = previous !== undefined && previous !== digest;
    entry.result = digest;
    this.results.push(digest);
  }
}

function outcomeOf(
  run: () => {
    calls?: number;
    repeats?: number;
    inWindow?: number;
    warnings: { loopType: string; count: number }[];
    exempt?: boolean;
  },
): Outcome {
  try {
    const check = run();
    return {
      ok: true,
      calls: check.calls ?? 0,
      repeats: check.repeats ?? 0,
      inWindow: check.inWindow ?? 0,
      warnings: check.warnings.map((w) => `${w.loopType}:${w.count}`),
      exempt: check.exempt ?? false,
    };
  } catch (error) {
    if (LoopDetectionError.is(error)) {
      const tools = (error.calls ?? []).map((c) => c.tool);
      return {
        ok: false,
        loopType: error.loopType,
        count: error.count as number,
        // The reference names only the refused call of a no-progress run (the unit tests check the rest).
        tools: error.loopType === 'no_progress' ? tools.slice(-1) : tools,
      };
    }
    if (KernelError.is(error) && error.code === 'INVALID_INPUT') return { invalid: true };
    throw error;
  }
}

const threshold = (maxBlock: number) =>
  fc.oneof(
    { weight: 1, arbitrary: fc.constant(false as const) },
    {
      weight: 5,
      arbitrary: fc.record({
        warnAt: fc.integer({ min: 1, max: maxBlock + 1 }),
        blockAt: fc.integer({ min: 2, max: maxBlock }),
      }),
    },
  );

const mixedRules = fc
  .record({
    repeat: threshold(5),
    pingPong: threshold(4),
    noProgress: threshold(5),
    window: fc.oneof(
      fc.constant(false as const),
      fc
        .record({
          size: fc.integer({ min: 3, max: 7 }),
          warnAt: fc.integer({ min: 1, max: 6 }),
          blockAt: fc.integer({ min: 2, max: 7 }),
        })
        .map((w) => ({ ...w, size: Math.max(w.size, w.blockAt) })),
    ),
    exempt: fc.boolean(),
  })
  .map(({ exempt, ...rules }) =>
    resolveActionRules({ ...rules, exemptTools: exempt ? ['wait'] : [] }),
  );

// One rule at a time, with low thresholds, so that no other rule refuses first and hides it.
const singleRule = fc
  .record({
    rule: fc.constantFrom('repeat', 'pingPong', 'window', 'noProgress'),
    warnAt: fc.integer({ min: 1, max: 3 }),
    blockAt: fc.integer({ min: 3, max: 6 }),
    size: fc.integer({ min: 3, max: 8 }),
  })
  .map(({ rule, warnAt, blockAt, size }) =>
    resolveActionRules({
      repeat: false,
      pingPong: false,
      noProgress: false,
      window:
        rule === 'window'
          ? { warnAt, blockAt, size: Math.max(size, blockAt) }
          : { size, warnAt: 99, blockAt: size },
      [rule]: rule === 'window' ? undefined : { warnAt, blockAt },
    }),
  );

const rulesArb = fc.oneof(mixedRules, singleRule);

// Few distinct calls and results, so that repeats, cycles and result changes all happen often.
const tool = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('read', 'edit', 'test') },
  { weight: 1, arbitrary: fc.constant('wait') },
);
const args = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  {
    weight: 1,
    arbitrary: fc.record({ path: fc.constantFrom('a', 'b'), n: fc.constantFrom(1, 2) }),
  },
);
const result = fc.oneof(
  { weight: 2, arbitrary: fc.constant(undefined) },
  { weight: 3, arbitrary: fc.constantFrom('ok', 'fail') },
  { weight: 1, arbitrary: fc.constant({ rows: 0 }) },
);
const op = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.record({ kind: fc.constant('observe' as const), tool, args, result }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('result' as const),
      result: fc.constantFrom('ok', 'fail', 'x'),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reload' as const) }) },
);

// Shuffles an object's keys: the history must not see the order.
function reorder(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  return Object.fromEntries(Object.entries(value).reverse());
}

describe('ActionHistory against a naive reference', () => {
  it('agrees on every observation, warning, refusal and result over random call streams', () => {
    fc.assert(
      fc.property(rulesArb, fc.array(op, { maxLength: 120 }), (rules, ops) => {
        let history = new ActionHistory('t', rules);
        const naive = new NaiveHistory(rules);
        for (const step of ops) {
          if (step.kind === 'reload') {
            history = ActionHistory.fromJSON(JSON.parse(JSON.stringify(history.toJSON())), rules);
            continue;
          }
          if (step.kind === 'result') {
            const expected = naive.recordResult(step.result);
            const actual = outcomeOf(() => ({
              warnings: history.recordResult(step.result).warnings,
            }));
            expect(actual).toEqual(expected);
            continue;
          }
          const expected = naive.observe(step.tool, step.args, step.result);
          const actual = outcomeOf(() =>
            history.observe({
              tool: step.tool,
              args: reorder(step.args),
              result: reorder(step.result),
            }),
          );
          expect(actual).toEqual(expected);
        }
      }),
      { numRuns: 5000 },
    );
  });
});

describe('digests, against canonical JSON', () => {
  // Any JSON value, with strings of any code units (lone surrogates included) and of any length,
  // short and long, so both ways of reading a string are exercised.
  const text = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 60 }),
    fc.string({ unit: 'grapheme', minLength: 20, maxLength: 80 }),
  );
  const json = fc.letrec((tie) => ({
    value: fc.oneof(
      { depthSize: 'small' },
      text,
      fc.double(),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.array(tie('value'), { maxLength: 4 }),
      fc.dictionary(text, tie('value'), { maxKeys: 4 }),
    ),
  })).value;

  it('agree exactly when the canonical JSON text does', () => {
    fc.assert(
      fc.property(json, json, (a, b) => {
        const same = canonicalJson(a) === canonicalJson(b);
        expect(resultDigest(a) === resultDigest(b)).toBe(same);
        expect(callFingerprint('t', a) === callFingerprint('t', b)).toBe(same);
      }),
      { numRuns: 3000 },
    );
  });

  it('do not depend on key order', () => {
    fc.assert(
      fc.property(fc.dictionary(text, json, { maxKeys: 8 }), (record) => {
        const reversed = Object.fromEntries(Object.entries(record).reverse());
        expect(resultDigest(reversed)).toBe(resultDigest(record));
      }),
      { numRuns: 1000 },
    );
  });

  it('tell a value from the same value one step changed', () => {
    fc.assert(
      fc.property(json, (value) => {
        expect(resultDigest([value])).not.toBe(resultDigest(value));
        expect(resultDigest({ k: value })).not.toBe(resultDigest({ k: [value] }));
      }),
      { numRuns: 1000 },
    );
  });
});
