import {
  type ActionCallRef,
  type ActionLoopType,
  actionLoopText,
  InvalidInputError,
  type LoopDetectionDetails,
  LoopDetectionError,
} from '@exec-kernel/core';
import { callFingerprint, resultDigest } from './action-digest.js';
import { type ActionRules, DEFAULT_ACTION_RULES } from './action-rules.js';

/** One tool call of an agent, as the action-loop rules take it. */
export interface ActionCall {
  /** The tool's name. */
  tool: string;
  /** The call's arguments, any JSON value (key order does not matter). Default: `{}`. */
  args?: unknown;
  /** The call's result, when it is known (any JSON value or text); digested, never kept. */
  result?: unknown;
  /** The digest of the result, when the caller computed it; wins over `result`. */
  resultDigest?: string | undefined;
}

/** A warning an observation carries: a pattern that reached its `warnAt` but not its `blockAt`. */
export interface ActionLoopWarning {
  loopType: ActionLoopType;
  taskId: string;
  tool: string;
  /** How many times the pattern has been seen, this call included. */
  count: number;
  warnAt: number;
  blockAt: number;
  calls: ActionCallRef[];
  period?: number;
  windowSize?: number;
  resultDigest?: string;
  /** The one-line text, as a refusal would read but `warning at N`. */
  message: string;
}

/** What an allowed observation reports. */
export interface ActionCheck {
  taskId: string;
  tool: string;
  fingerprint: string;
  /** The result's digest, when the call came with one. */
  resultDigest?: string;
  /** How many calls the task has recorded, this one included (exempt tools are not counted). */
  calls: number;
  /** How many times in a row this call has been made, this one included. */
  repeats: number;
  /** How many times this call appears in the window, this one included (0 when the rule is off). */
  inWindow: number;
  /** Patterns close to being refused. */
  warnings: ActionLoopWarning[];
  /** The tool is exempt: nothing was counted. */
  exempt: boolean;
}

/** What recording a result answers: the call it was attached to, and what the rules said. */
export interface ActionResultRecord {
  taskId: string;
  /** The tool and fingerprint of the call the result belongs to (the task's newest). */
  tool: string;
  fingerprint: string;
  resultDigest: string;
  /** The task's calls so far. */
  calls: number;
  /** Patterns that reached their warning threshold with this result. */
  warnings: ActionLoopWarning[];
}

/** The plain-data form of an {@link ActionHistory}. */
export interface ActionHistoryJSON {
  taskId: string;
  /** Calls recorded so far. */
  total: number;
  /** The recent calls, oldest first: fingerprint, tool, result digest (or null) and epoch. */
  recent: [fingerprint: string, tool: string, result: string | null, epoch: number][];
  /** Per call in `recent`: the epoch it counts in, and the last result it returned. */
  known: [fingerprint: string, epoch: number, lastResult: string | null][];
  repeatRun: number;
  periodRuns: [two: number, three: number];
  sinceChange: number;
  resultRun: [digest: string | null, length: number];
  /** Whether the newest recent call has its result. */
  lastHasResult: boolean;
}

/** How many recent calls are held when the window rule is off. */
export const RECENT_CALLS_WITHOUT_WINDOW = 20;

interface KnownCall {
  tool: string;
  /** How many entries of the ring hold this call. */
  present: number;
  /** How many of those count: the ones since the call's result last changed. */
  count: number;
  epoch: number;
  lastResult: string | undefined;
}

/** Whether `count` has reached the rule's warning or block threshold. */
function reaches(rule: { warnAt: number; blockAt: number }, count: number): boolean {
  return count >= rule.warnAt || count >= rule.blockAt;
}

type Decision =
  | {
      ok: true;
      repeats: number;
      inWindow: number;
      periodTwo: number;
      periodThree: number;
      warnings: ActionLoopWarning[];
      /** The call's state, when it is held. */
      known: KnownCall | undefined;
    }
  | { ok: false; error: LoopDetectionError };

/**
 * One task's recent tool calls, and the four action-loop rules over them. Memory is bounded: a ring
 * of the last `window.size` fingerprints (20 when the window rule is off) and, for each call in it,
 * its epoch and last result. A call whose result differs from the last time it was made starts a new epoch: earlier
 * copies no longer count, so polling a job whose status moves, or re-running tests after an edit,
 * is never a loop.
 *
 * Rules, in order, first refusal wins: `repeat`, `ping_pong`, `window` (over calls), then
 * `no_progress` (over results). A refused call records nothing, so trying it again is refused again.
 */
export class ActionHistory {
  readonly taskId: string;
  readonly rules: ActionRules;
  readonly #capacity: number;
  readonly #windowSize: number;
  // The ring: parallel arrays indexed by position modulo capacity.
  readonly #fingerprints: string[];
  readonly #tools: string[];
  readonly #results: (string | undefined)[];
  readonly #epochs: number[];
  #length = 0;
  #next = 0;
  #total = 0;
  readonly #known = new Map<string, KnownCall>();
  #repeatRun = 0;
  #periodTwo = 0;
  #periodThree = 0;
  // Entries since the latest result change, that entry included; the ping-pong rule's horizon.
  #sinceChange = 0;
  #resultRunDigest: string | undefined;
  #resultRun = 0;
  #lastHasResult = false;
  readonly #exempt: ReadonlySet<string>;

  constructor(taskId: string, rules: ActionRules = DEFAULT_ACTION_RULES) {
    this.taskId = taskId;
    this.rules = rules;
    this.#windowSize = rules.window === false ? 0 : rules.window.size;
    // Without the window rule the ring still remembers enough calls to see a result change.
    this.#capacity = Math.max(
      3,
      this.#windowSize === 0 ? RECENT_CALLS_WITHOUT_WINDOW : this.#windowSize,
    );
    this.#fingerprints = new Array<string>(this.#capacity);
    this.#tools = new Array<string>(this.#capacity);
    this.#results = new Array<string | undefined>(this.#capacity);
    this.#epochs = new Array<number>(this.#capacity);
    this.#exempt = new Set(rules.exemptTools);
  }

  /** Calls recorded so far. */
  get total(): number {
    return this.#total;
  }

  /**
   * Checks a call against the rules and records it (with its result, when given).
   *
   * @throws LoopDetectionError (`loopType` `repeat`, `ping_pong`, `window` or `no_progress`) when
   * the call reaches a rule's `blockAt`; nothing is recorded.
   * @throws InvalidInputError when the tool is not a non-empty string or the arguments or result
   * cannot be read as JSON.
   */
  observe(call: ActionCall): ActionCheck {
    return this.#observe(call, true);
  }

  /** The same check as {@link observe}, without recording anything. */
  check(call: ActionCall): ActionCheck {
    return this.#observe(call, false);
  }

  /**
   * Records the result of the newest call (for callers who check before the tool runs and learn the
   * result after).
   *
   * @returns The call it was attached to, with any warnings.
   * @throws LoopDetectionError (`no_progress`) when the result makes the rule's `blockAt`; nothing
   * is recorded.
   * @throws InvalidInputError when there is no call yet or the newest call already has a result.
   */
  recordResult(result: unknown, digest?: string): ActionResultRecord {
    if (this.#length === 0) {
      throw new InvalidInputError({ field: 'result', problem: 'there is no call to attach it to' });
    }
    if (this.#lastHasResult) {
      throw new InvalidInputError({ field: 'result', problem: 'the newest call already has one' });
    }
    const last = this.#position(this.#length - 1);
    const fingerprint = this.#fingerprints[last] as string;
    const tool = this.#tools[last] as string;
    const resultKey = digest ?? resultDigest(result);
    const warnings: ActionLoopWarning[] = [];
    const refusal = this.#noProgress(tool, fingerprint, resultKey, warnings);
    if (refusal !== undefined) throw refusal;
    this.#applyResult(last, fingerprint, resultKey);
    return {
      taskId: this.taskId,
      tool,
      fingerprint,
      resultDigest: resultKey,
      calls: this.#total,
      warnings,
    };
  }

  #observe(call: ActionCall, record: boolean): ActionCheck {
    const tool = call.tool;
    if (typeof tool !== 'string' || tool === '') {
      throw new InvalidInputError({ field: 'tool', problem: 'must be a non-empty string' });
    }
    const fingerprint = callFingerprint(tool, call.args);
    const resultKey =
      call.resultDigest ?? (call.result === undefined ? undefined : resultDigest(call.result));
    if (this.#exempt.size !== 0 && this.#exempt.has(tool)) {
      const check: ActionCheck = {
        taskId: this.taskId,
        tool,
        fingerprint,
        calls: this.#total,
        repeats: 0,
        inWindow: 0,
        warnings: [],
        exempt: true,
      };
      if (resultKey !== undefined) check.resultDigest = resultKey;
      return check;
    }
    const decision = this.#decide(tool, fingerprint);
    if (!decision.ok) throw decision.error;
    if (resultKey !== undefined) {
      const refusal = this.#noProgress(tool, fingerprint, resultKey, decision.warnings);
      if (refusal !== undefined) throw refusal;
    }
    const check: ActionCheck = {
      taskId: this.taskId,
      tool,
      fingerprint,
      calls: this.#total + 1,
      repeats: decision.repeats,
      inWindow: decision.inWindow,
      warnings: decision.warnings,
      exempt: false,
    };
    if (resultKey !== undefined) check.resultDigest = resultKey;
    if (record) {
      this.#push(tool, fingerprint, decision);
      if (resultKey !== undefined) {
        this.#applyResult(this.#position(this.#length - 1), fingerprint, resultKey);
      }
    }
    return check;
  }

  #position(index: number): number {
    // index 0 is the oldest entry held. A conditional add instead of `%`, which costs more.
    const position = this.#next - this.#length + index;
    return position < 0 ? position + this.#capacity : position;
  }

  #fromEnd(back: number): string | undefined {
    return back > this.#length
      ? undefined
      : this.#fingerprints[this.#position(this.#length - back)];
  }

  #decide(tool: string, fingerprint: string): Decision {
    const { repeat, pingPong, window } = this.rules;
    const warnings: ActionLoopWarning[] = [];
    const known = this.#known.get(fingerprint);
    const last = this.#fromEnd(1);
    const repeats = (last === fingerprint ? this.#repeatRun : 0) + 1;
    // The calls and details of a pattern are only built once it reaches a threshold.
    if (repeat !== false && reaches(repeat, repeats)) {
      const calls = [{ tool, fingerprint }];
      const refusal = this.#judge('repeat', repeat, repeats, tool, calls, {}, warnings);
      if (refusal !== undefined) return { ok: false, error: refusal };
    }

    const back2 = this.#fromEnd(2);
    const back3 = this.#fromEnd(3);
    const periodTwo = back2 === fingerprint && this.#sinceChange >= 2 ? this.#periodTwo + 1 : 0;
    const periodThree = back3 === fingerprint && this.#sinceChange >= 3 ? this.#periodThree + 1 : 0;
    if (pingPong !== false) {
      // A periodic run of constant calls is a repeat, not a cycle.
      let period = 0;
      let run = 0;
      if (periodTwo >= 2 && last !== fingerprint) {
        period = 2;
        run = periodTwo;
      } else if (periodThree >= 3 && !(last === fingerprint && back2 === fingerprint)) {
        period = 3;
        run = periodThree;
      }
      const cycles = period === 0 ? 0 : 1 + Math.floor(run / period);
      if (cycles !== 0 && reaches(pingPong, cycles)) {
        const refusal = this.#judge(
          'ping_pong',
          pingPong,
          cycles,
          tool,
          this.#cycleCalls(period, { tool, fingerprint }),
          { period },
          warnings,
        );
        if (refusal !== undefined) return { ok: false, error: refusal };
      }
    }

    let inWindow = 0;
    if (window !== false) {
      inWindow = (known?.count ?? 0) + 1;
      if (this.#length >= this.#windowSize) {
        // The oldest entry leaves the window as this one enters.
        const oldest = this.#position(0);
        if (
          this.#fingerprints[oldest] === fingerprint &&
          known !== undefined &&
          this.#epochs[oldest] === known.epoch
        ) {
          inWindow -= 1;
        }
      }
      if (reaches(window, inWindow)) {
        const refusal = this.#judge(
          'window',
          window,
          inWindow,
          tool,
          [{ tool, fingerprint }],
          { windowSize: window.size },
          warnings,
        );
        if (refusal !== undefined) return { ok: false, error: refusal };
      }
    }
    return { ok: true, repeats, inWindow, periodTwo, periodThree, warnings, known };
  }

  #cycleCalls(period: number, self: ActionCallRef): ActionCallRef[] {
    const calls: ActionCallRef[] = [];
    for (let back = period - 1; back >= 1; back--) {
      const position = this.#position(this.#length - back);
      calls.push({
        tool: this.#tools[position] as string,
        fingerprint: this.#fingerprints[position] as string,
      });
    }
    calls.push(self);
    return calls;
  }

  #noProgress(
    tool: string,
    fingerprint: string,
    digest: string,
    warnings: ActionLoopWarning[],
  ): LoopDetectionError | undefined {
    const rule = this.rules.noProgress;
    if (rule === false) return undefined;
    const run = (this.#resultRunDigest === digest ? this.#resultRun : 0) + 1;
    if (run < rule.warnAt && run < rule.blockAt) return undefined;
    return this.#judge(
      'no_progress',
      rule,
      run,
      tool,
      this.#sameResultCalls(digest, run, { tool, fingerprint }),
      { resultDigest: digest },
      warnings,
    );
  }

  // The distinct calls, oldest first, among the held entries of the current run of `digest`.
  #sameResultCalls(digest: string, run: number, self: ActionCallRef): ActionCallRef[] {
    const seen = new Map<string, ActionCallRef>();
    let wanted = run - 1;
    for (let back = 1; back <= this.#length && wanted > 0; back++) {
      const position = this.#position(this.#length - back);
      const result = this.#results[position];
      if (result === undefined) continue;
      if (result !== digest) break;
      wanted -= 1;
      const fingerprint = this.#fingerprints[position] as string;
      seen.set(fingerprint, { tool: this.#tools[position] as string, fingerprint });
    }
    seen.delete(self.fingerprint);
    return [...seen.values()].reverse().concat(self);
  }

  #judge(
    loopType: ActionLoopType,
    rule: { warnAt: number; blockAt: number },
    count: number,
    tool: string,
    calls: ActionCallRef[],
    extra: Partial<LoopDetectionDetails>,
    warnings: ActionLoopWarning[],
  ): LoopDetectionError | undefined {
    if (count >= rule.blockAt) {
      return new LoopDetectionError({
        loopType,
        taskId: this.taskId,
        tool,
        count,
        blockAt: rule.blockAt,
        calls,
        ...extra,
      });
    }
    if (count >= rule.warnAt) {
      const details: LoopDetectionDetails = {
        loopType,
        taskId: this.taskId,
        tool,
        count,
        calls,
        ...extra,
      };
      warnings.push({
        loopType,
        taskId: this.taskId,
        tool,
        count,
        warnAt: rule.warnAt,
        blockAt: rule.blockAt,
        calls,
        ...extra,
        message: actionLoopText(details, `warning at ${rule.warnAt}, blocked at ${rule.blockAt}`),
      } as ActionLoopWarning);
    }
    return undefined;
  }

  #push(tool: string, fingerprint: string, decision: Decision & { ok: true }): void {
    if (this.#length === this.#capacity) {
      const oldest = this.#position(0);
      const gone = this.#fingerprints[oldest] as string;
      const state = this.#known.get(gone) as KnownCall;
      state.present -= 1;
      if (this.#epochs[oldest] === state.epoch) state.count -= 1;
      if (state.present === 0) this.#known.delete(gone);
      this.#length -= 1;
    }
    // The state the decision read, unless evicting the oldest entry just dropped it.
    let state = decision.known;
    if (state === undefined || state.present === 0) {
      state = { tool, present: 0, count: 0, epoch: 0, lastResult: undefined };
      this.#known.set(fingerprint, state);
    }
    state.present += 1;
    state.count += 1;
    const position = this.#next;
    this.#fingerprints[position] = fingerprint;
    this.#tools[position] = tool;
    this.#results[position] = undefined;
    this.#epochs[position] = state.epoch;
    this.#next = position + 1 === this.#capacity ? 0 : position + 1;
    this.#length += 1;
    this.#total += 1;
    this.#repeatRun = decision.repeats;
    this.#periodTwo = decision.periodTwo;
    this.#periodThree = decision.periodThree;
    this.#sinceChange += 1;
    this.#lastHasResult = false;
  }

  #applyResult(position: number, fingerprint: string, digest: string): void {
    const state = this.#known.get(fingerprint) as KnownCall;
    if (state.lastResult !== undefined && state.lastResult !== digest) {
      // The call returned something new: it starts over, and so does any cycle through it.
      state.epoch += 1;
      state.count = 1;
      this.#epochs[position] = state.epoch;
      this.#repeatRun = 1;
      this.#periodTwo = 0;
      this.#periodThree = 0;
      this.#sinceChange = 1;
    }
    state.lastResult = digest;
    this.#results[position] = digest;
    this.#resultRun = this.#resultRunDigest === digest ? this.#resultRun + 1 : 1;
    this.#resultRunDigest = digest;
    this.#lastHasResult = true;
  }

  toJSON(): ActionHistoryJSON {
    const recent: ActionHistoryJSON['recent'] = [];
    for (let index = 0; index < this.#length; index++) {
      const position = this.#position(index);
      recent.push([
        this.#fingerprints[position] as string,
        this.#tools[position] as string,
        this.#results[position] ?? null,
        this.#epochs[position] as number,
      ]);
    }
    return {
      taskId: this.taskId,
      total: this.#total,
      recent,
      known: [...this.#known].map(([fingerprint, state]) => [
        fingerprint,
        state.epoch,
        state.lastResult ?? null,
      ]),
      repeatRun: this.#repeatRun,
      periodRuns: [this.#periodTwo, this.#periodThree],
      sinceChange: this.#sinceChange,
      resultRun: [this.#resultRunDigest ?? null, this.#resultRun],
      lastHasResult: this.#lastHasResult,
    };
  }

  /**
   * Rebuilds a history from `toJSON()` output, under `rules` (which may differ from the ones it was
   * saved under: with a smaller window, only the newest calls are kept).
   *
   * @throws InvalidInputError when `json` is not a saved history.
   */
  static fromJSON(json: unknown, rules: ActionRules = DEFAULT_ACTION_RULES): ActionHistory {
    const data = readHistoryJSON(json);
    const history = new ActionHistory(data.taskId, rules);
    const epochs = new Map<string, { epoch: number; lastResult: string | undefined }>();
    for (const [fingerprint, epoch, lastResult] of data.known) {
      epochs.set(fingerprint, { epoch, lastResult: lastResult ?? undefined });
    }
    const kept = data.recent.slice(Math.max(0, data.recent.length - history.#capacity));
    for (const [fingerprint, tool, result, epoch] of kept) {
      let state = history.#known.get(fingerprint);
      if (state === undefined) {
        const saved = epochs.get(fingerprint);
        state = {
          tool,
          present: 0,
          count: 0,
          epoch: saved?.epoch ?? epoch,
          lastResult: saved?.lastResult,
        };
        history.#known.set(fingerprint, state);
      }
      state.present += 1;
      if (epoch === state.epoch) state.count += 1;
      const position = history.#next;
      history.#fingerprints[position] = fingerprint;
      history.#tools[position] = tool;
      history.#results[position] = result ?? undefined;
      history.#epochs[position] = epoch;
      history.#next = position + 1 === history.#capacity ? 0 : position + 1;
      history.#length += 1;
    }
    history.#total = Math.max(data.total, history.#length);
    history.#repeatRun = data.repeatRun;
    [history.#periodTwo, history.#periodThree] = data.periodRuns;
    history.#sinceChange = data.sinceChange;
    history.#resultRunDigest = data.resultRun[0] ?? undefined;
    history.#resultRun = data.resultRun[1];
    history.#lastHasResult = data.lastHasResult && history.#length > 0;
    return history;
  }
}

function invalidHistory(problem: string): InvalidInputError {
  return new InvalidInputError({ field: 'action history', problem });
}

const isCount = (value: unknown): value is number =>
  typeof value === 'number' && Number.isInteger(value) && value >= 0;
const isDigest = (value: unknown): value is string => typeof value === 'string' && value !== '';
const isOptionalDigest = (value: unknown): value is string | null =>
  value === null || isDigest(value);

function readHistoryJSON(json: unknown): ActionHistoryJSON {
  if (json === null || typeof json !== 'object') throw invalidHistory('is not an object');
  const data = json as Partial<Record<keyof ActionHistoryJSON, unknown>>;
  if (typeof data.taskId !== 'string' || data.taskId === '') throw invalidHistory('has no taskId');
  if (!isCount(data.total)) throw invalidHistory('total must be a whole number');
  for (const key of ['repeatRun', 'sinceChange'] as const) {
    if (!isCount(data[key])) throw invalidHistory(`${key} must be a whole number`);
  }
  const runs = data.periodRuns;
  if (!(Array.isArray(runs) && runs.length === 2 && runs.every(isCount))) {
    throw invalidHistory('periodRuns must be two whole numbers');
  }
  const resultRun = data.resultRun;
  if (
    !(
      Array.isArray(resultRun) &&
      resultRun.length === 2 &&
      isOptionalDigest(resultRun[0]) &&
      isCount(resultRun[1])
    )
  ) {
    throw invalidHistory('resultRun must be a digest (or null) and a whole number');
  }
  if (typeof data.lastHasResult !== 'boolean')
    throw invalidHistory('lastHasResult must be a boolean');
  if (
    !(
      Array.isArray(data.recent) &&
      data.recent.every(
        (entry) =>
          Array.isArray(entry) &&
          entry.length === 4 &&
          isDigest(entry[0]) &&
          isDigest(entry[1]) &&
          isOptionalDigest(entry[2]) &&
          isCount(entry[3]),
      )
    )
  ) {
    throw invalidHistory('recent must list [fingerprint, tool, result, epoch] entries');
  }
  if (
    !(
      Array.isArray(data.known) &&
      data.known.every(
        (entry) =>
          Array.isArray(entry) &&
          entry.length === 3 &&
          isDigest(entry[0]) &&
          isCount(entry[1]) &&
          isOptionalDigest(entry[2]),
      )
    )
  ) {
    throw invalidHistory('known must list [fingerprint, epoch, lastResult] entries');
  }
  return data as ActionHistoryJSON;
}
