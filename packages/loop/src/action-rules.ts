/** The thresholds of one action-loop rule: a count that warns, and a count that is refused. */
export interface ActionThreshold {
  /** The count at which the observation carries a warning. */
  warnAt: number;
  /** The count that is refused: the call that reaches it throws. */
  blockAt: number;
}

/** The window rule's thresholds, and how many recent calls it looks at. */
export interface WindowThreshold extends ActionThreshold {
  /** How many of the task's most recent calls (the new one included) are counted. */
  size: number;
}

/** The action-loop rules, resolved: every rule either its thresholds or `false` (off). */
export interface ActionRules {
  /** The same call (tool and arguments) so many times in a row. */
  repeat: ActionThreshold | false;
  /** A cycle of two or three different calls repeated so many times. */
  pingPong: ActionThreshold | false;
  /** The same call so many times within the last `size` calls. */
  window: WindowThreshold | false;
  /** The same result so many times in a row, whatever the calls. */
  noProgress: ActionThreshold | false;
  /** Tools no rule counts (waiting or polling tools, for instance). */
  exemptTools: readonly string[];
}

/** Options of the action-loop rules: each rule's thresholds in part, or `false` to turn it off. */
export interface ActionRulesOptions {
  repeat?: Partial<ActionThreshold> | false | undefined;
  pingPong?: Partial<ActionThreshold> | false | undefined;
  window?: Partial<WindowThreshold> | false | undefined;
  noProgress?: Partial<ActionThreshold> | false | undefined;
  exemptTools?: readonly string[] | undefined;
}

/**
 * The defaults, chosen to leave real agents alone: reading a file again after editing it, running
 * the same test command after each edit, or polling a job are normal, and a call whose result has
 * changed since it was last made counts as new. What they stop is an agent that makes the very same
 * call five times running, bounces between the same two or three calls five times over, makes one
 * call eight times in twenty, or gets the same answer ten times in a row.
 */
export const DEFAULT_ACTION_RULES: ActionRules = Object.freeze({
  repeat: Object.freeze({ warnAt: 3, blockAt: 5 }),
  pingPong: Object.freeze({ warnAt: 3, blockAt: 5 }),
  window: Object.freeze({ size: 20, warnAt: 6, blockAt: 8 }),
  noProgress: Object.freeze({ warnAt: 6, blockAt: 10 }),
  exemptTools: Object.freeze([]) as readonly string[],
});

function integerAtLeast(name: string, value: unknown, min: number): number {
  if (!(typeof value === 'number' && Number.isInteger(value) && value >= min)) {
    throw new RangeError(`action rule ${name} must be an integer >= ${min}, got ${String(value)}`);
  }
  return value;
}

function threshold(
  name: string,
  given: Partial<ActionThreshold> | false | undefined,
  fallback: ActionThreshold | false,
  minBlock: number,
): ActionThreshold | false {
  if (given === false || (given === undefined && fallback === false)) return false;
  const base = fallback === false ? DEFAULT_ACTION_RULES[name as 'repeat'] : fallback;
  if (base === false) return false;
  const blockAt = integerAtLeast(`${name}.blockAt`, given?.blockAt ?? base.blockAt, minBlock);
  // A warning threshold at or past the block threshold never warns; it is allowed (it turns the
  // warning off) but not below 1.
  const warnAt = integerAtLeast(
    `${name}.warnAt`,
    given?.warnAt ?? Math.min(base.warnAt, blockAt),
    1,
  );
  return { warnAt, blockAt };
}

/**
 * Resolves action-loop options against the defaults (or `base`).
 *
 * @throws RangeError when a threshold is not a whole number in range (`blockAt` >= 2, a window of
 * at least `blockAt` and 3 calls).
 */
export function resolveActionRules(
  options: ActionRulesOptions = {},
  base: ActionRules = DEFAULT_ACTION_RULES,
): ActionRules {
  const repeat = threshold('repeat', options.repeat, base.repeat, 2);
  const pingPong = threshold('pingPong', options.pingPong, base.pingPong, 2);
  const noProgress = threshold('noProgress', options.noProgress, base.noProgress, 2);
  let window: WindowThreshold | false = false;
  const windowBase = base.window === false ? DEFAULT_ACTION_RULES.window : base.window;
  const windowThreshold = threshold('window', options.window, base.window, 2);
  if (windowThreshold !== false && windowBase !== false) {
    const given = options.window === false ? undefined : options.window;
    // Three calls at least: the ring that holds the window also serves the ping-pong rule.
    const size = integerAtLeast(
      'window.size',
      given?.size ?? Math.max(windowBase.size, windowThreshold.blockAt),
      Math.max(3, windowThreshold.blockAt),
    );
    window = { size, ...windowThreshold };
  }
  const exemptTools = [...(options.exemptTools ?? base.exemptTools)];
  for (const tool of exemptTools) {
    if (typeof tool !== 'string')
      throw new RangeError('action rule exemptTools must list tool names');
  }
  return { repeat, pingPong, window, noProgress, exemptTools };
}
