const BRAND: unique symbol = Symbol.for('@exec-kernel/core/KernelError') as never;

/** Every code an exec-kernel package may throw. Append-only: codes are part of the wire format. */
export type KernelErrorCode =
  | 'INVALID_TRANSITION'
  | 'LOOP_DETECTED'
  | 'BUDGET_EXCEEDED'
  | 'IDLE_ENFORCED'
  | 'TASK_ADMISSION'
  | 'CONFIG_INVALID'
  | 'CONFLICT'
  | 'TRANSPORT'
  | 'NOT_FOUND'
  | 'STORE'
  | 'INVALID_INPUT'
  | 'FORBIDDEN'
  | 'VALIDATION';

/** Options every kernel error accepts. */
export interface KernelErrorOptions {
  /** The underlying error, kept as the standard `cause` (its text is never pasted into ours). */
  readonly cause?: unknown;
  /** Replaces the standard message built from the error's fields. */
  readonly message?: string;
}

/** The plain-data form of a kernel error: what `toJSON()` returns and `reviveKernelError` reads. */
export interface KernelErrorJSON {
  name: string;
  code: KernelErrorCode;
  message: string;
  details: Record<string, unknown>;
}

/**
 * Base class of every exec-kernel error. `code` is a stable SCREAMING_SNAKE string, `details` the
 * error's fields as plain data (safe to log and serialise: never a secret). Check with
 * `KernelError.is(x)` or `LoopDetectionError.is(x)`: unlike `instanceof`, those work when two
 * copies of `@exec-kernel/core` are installed side by side.
 */
export class KernelError extends Error {
  override name: string = 'KernelError';
  /** Stable machine-readable code. */
  readonly code: KernelErrorCode;
  /** The error's fields as plain data. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: KernelErrorCode,
    message: string,
    details: Readonly<Record<string, unknown>> = {},
    options: Pick<KernelErrorOptions, 'cause'> = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = details;
    Object.defineProperty(this, BRAND, { value: true });
  }

  /** Whether `value` is an exec-kernel error from any installed copy of this package. */
  static is(value: unknown): value is KernelError {
    return (
      typeof value === 'object' &&
      value !== null &&
      (value as Record<symbol, unknown>)[BRAND] === true
    );
  }

  /** The error as plain data; `reviveKernelError` turns it back into the right class. */
  toJSON(): KernelErrorJSON {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      details: { ...this.details },
    };
  }
}

/** Whether `value` is a kernel error with this code (works across duplicate installs). @internal */
export function hasCode(value: unknown, code: KernelErrorCode): boolean {
  return KernelError.is(value) && value.code === code;
}

/** Drops keys whose value is `undefined`, so `details` round-trips through JSON unchanged. @internal */
export function compact(fields: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) if (value !== undefined) out[key] = value;
  return out;
}

// --- lifecycle ---------------------------------------------------------------------------------

/** Fields of an {@link InvalidTransitionError}. */
export interface InvalidTransitionDetails {
  /** The state the task was in (or the unknown string given). */
  from: string;
  /** The state asked for (or the unknown string given). */
  to: string;
  /** Why the move was refused, e.g. `No valid transition from todo to done`. */
  reason: string;
  taskId?: string | undefined;
}

/** A task was asked to move along an edge the lifecycle table does not have, or out of a terminal state. */
export class InvalidTransitionError extends KernelError {
  override name = 'InvalidTransitionError' as const;
  declare readonly code: 'INVALID_TRANSITION';
  readonly from: string;
  readonly to: string;
  readonly reason: string;
  readonly taskId: string | undefined;

  constructor(details: InvalidTransitionDetails, options: KernelErrorOptions = {}) {
    super('INVALID_TRANSITION', options.message ?? details.reason, compact(details), options);
    this.from = details.from;
    this.to = details.to;
    this.reason = details.reason;
    this.taskId = details.taskId;
  }

  static override is(value: unknown): value is InvalidTransitionError {
    return hasCode(value, 'INVALID_TRANSITION');
  }
}

/** Fields of a {@link TaskAdmissionError}. */
export interface TaskAdmissionDetails {
  /** Required fields that are absent or blank, in the order they are required. */
  missing: string[];
  /** Fields present with a value of the wrong kind. */
  invalid: Array<{ field: string; problem: string }>;
  taskId?: string | undefined;
}

/** A new task lacks part of its admission case (who it is for, what hurts, what it is worth, how to check). */
export class TaskAdmissionError extends KernelError {
  override name = 'TaskAdmissionError' as const;
  declare readonly code: 'TASK_ADMISSION';
  readonly missing: string[];
  readonly invalid: Array<{ field: string; problem: string }>;
  readonly taskId: string | undefined;

  constructor(details: TaskAdmissionDetails, options: KernelErrorOptions = {}) {
    const parts: string[] = [];
    if (details.missing.length > 0) parts.push(`missing ${details.missing.join(', ')}`);
    if (details.invalid.length > 0) {
      parts.push(`invalid ${details.invalid.map((i) => `${i.field} (${i.problem})`).join(', ')}`);
    }
    const subject = details.taskId === undefined ? 'Task' : `Task ${details.taskId}`;
    const message =
      options.message ?? `${subject} refused: admission incomplete: ${parts.join('; ')}`;
    super('TASK_ADMISSION', message, compact(details), options);
    this.missing = details.missing;
    this.invalid = details.invalid;
    this.taskId = details.taskId;
  }

  static override is(value: unknown): value is TaskAdmissionError {
    return hasCode(value, 'TASK_ADMISSION');
  }
}

/** Fields of an {@link IdleEnforcementError}. */
export interface IdleEnforcementDetails {
  agentId: string;
  /** When the agent's sleep ends at the latest (ISO-8601). */
  until: string;
  /** Why the agent went to sleep, e.g. `no_tasks`. */
  sleepReason?: string | undefined;
  taskId?: string | undefined;
}

/** A sleeping agent tried to create a task: with nothing assigned, it may not invent work. */
export class IdleEnforcementError extends KernelError {
  override name = 'IdleEnforcementError' as const;
  declare readonly code: 'IDLE_ENFORCED';
  readonly agentId: string;
  readonly until: string;
  readonly taskId: string | undefined;

  constructor(details: IdleEnforcementDetails, options: KernelErrorOptions = {}) {
    const message =
      options.message ??
      `Agent ${details.agentId} is idle until ${details.until}: it may not create tasks while asleep`;
    super('IDLE_ENFORCED', message, compact(details), options);
    this.agentId = details.agentId;
    this.until = details.until;
    this.taskId = details.taskId;
  }

  static override is(value: unknown): value is IdleEnforcementError {
    return hasCode(value, 'IDLE_ENFORCED');
  }
}

// --- loop --------------------------------------------------------------------------------------

/** Which loop rule refused a task (`cycle`, `identity`, `depth`) or an action (the rest). */
export type LoopType = TaskLoopType | ActionLoopType;

/** The loop rules over the task-creation graph. */
export type TaskLoopType = 'cycle' | 'identity' | 'depth';

/**
 * The loop rules over one task's tool calls: the same call again and again (`repeat`), a cycle of
 * two or three calls (`ping_pong`), the same call too often in the recent calls (`window`), the
 * same result whatever the call (`no_progress`).
 */
export type ActionLoopType = 'repeat' | 'ping_pong' | 'window' | 'no_progress';

/** One tool call as an action-loop error names it: the tool and the call's fingerprint. */
export interface ActionCallRef {
  tool: string;
  /** Digest of the tool name and the canonical JSON of the arguments. */
  fingerprint: string;
}

/** Fields of a {@link LoopDetectionError}. */
export interface LoopDetectionDetails {
  loopType: LoopType;
  /** The task that was refused, or whose action was refused. */
  taskId: string;
  agentId?: string | undefined;
  taskType?: string | undefined;
  /** For `depth`: the depth the task would have had. */
  depth?: number | undefined;
  /** For `depth`: the configured maximum. */
  maxDepth?: number | undefined;
  /**
   * For `cycle` and `identity`: the offending chain of task ids, starting with the refused task and
   * ending with the task it collides with.
   */
  chain?: string[] | undefined;
  /** For action loops: the tool of the refused call. */
  tool?: string | undefined;
  /** For action loops: how many times the pattern has been seen, the refused call included. */
  count?: number | undefined;
  /** For action loops: the count that is refused (the rule's `blockAt`). */
  blockAt?: number | undefined;
  /** For action loops: the calls that make up the pattern, oldest first (one for `repeat`/`window`). */
  calls?: ActionCallRef[] | undefined;
  /** For `ping_pong`: the length of the repeated cycle (2 or 3). */
  period?: number | undefined;
  /** For `window`: how many recent calls the rule looks at. */
  windowSize?: number | undefined;
  /** For `no_progress`: the digest of the result that keeps coming back. */
  resultDigest?: string | undefined;
}

/** The one-line text of an action-loop refusal or warning (`at` is `blocked at N` or `warning at N`). */
export function actionLoopText(d: LoopDetectionDetails, at: string): string {
  const tool = d.tool ?? '?';
  switch (d.loopType) {
    case 'repeat':
      return `Task ${d.taskId} called ${tool} with the same arguments ${d.count} times in a row (${at})`;
    case 'ping_pong': {
      const cycle = (d.calls ?? []).map((call) => call.tool).join(' -> ');
      return `Task ${d.taskId} repeated the cycle ${cycle} ${d.count} times (${at})`;
    }
    case 'window':
      return `Task ${d.taskId} called ${tool} with the same arguments ${d.count} times in its last ${d.windowSize} calls (${at})`;
    case 'no_progress':
      return `Task ${d.taskId} got the same result ${d.count} times in a row, no progress (${at})`;
    default:
      return `Task ${d.taskId} loops`;
  }
}

function loopMessage(d: LoopDetectionDetails): string {
  switch (d.loopType) {
    case 'cycle':
      return `Task ${d.taskId} would create a cycle: ${(d.chain ?? [d.taskId]).join(' -> ')}`;
    case 'identity': {
      const match = d.chain?.at(-1) ?? '?';
      return `Task ${d.taskId} re-creates task ${match}: same agent ${d.agentId ?? '?'} and type ${d.taskType ?? '?'} on its creator chain ${(d.chain ?? []).join(' -> ')}`;
    }
    case 'depth':
      return `Task ${d.taskId} exceeds max depth: depth ${d.depth}, max ${d.maxDepth}`;
    default:
      return actionLoopText(d, `blocked at ${d.blockAt}`);
  }
}

/** Spawning the task would loop: a cycle in its ancestry, an agent re-creating its own work, or nesting too deep. */
export class LoopDetectionError extends KernelError {
  override name = 'LoopDetectionError' as const;
  declare readonly code: 'LOOP_DETECTED';
  readonly loopType: LoopType;
  readonly taskId: string;
  readonly agentId: string | undefined;
  readonly depth: number | undefined;
  readonly maxDepth: number | undefined;
  readonly chain: string[] | undefined;
  /** For action loops: the tool of the refused call. */
  readonly tool: string | undefined;
  /** For action loops: how many times the pattern has been seen, the refused call included. */
  readonly count: number | undefined;
  /** For action loops: the calls that make up the pattern. */
  readonly calls: ActionCallRef[] | undefined;

  constructor(details: LoopDetectionDetails, options: KernelErrorOptions = {}) {
    super('LOOP_DETECTED', options.message ?? loopMessage(details), compact(details), options);
    this.loopType = details.loopType;
    this.taskId = details.taskId;
    this.agentId = details.agentId;
    this.depth = details.depth;
    this.maxDepth = details.maxDepth;
    this.chain = details.chain;
    this.tool = details.tool;
    this.count = details.count;
    this.calls = details.calls;
  }

  static override is(value: unknown): value is LoopDetectionError {
    return hasCode(value, 'LOOP_DETECTED');
  }
}

// --- budget ------------------------------------------------------------------------------------

/** Which budget a task ran past. */
export type BudgetType = 'steps' | 'depth' | 'duration' | 'tokens' | 'cost';

/** Fields of a {@link BudgetExceededError}. */
export interface BudgetExceededDetails {
  budgetType: BudgetType;
  /** The task whose budget was exceeded (an ancestor, when a child's spending exceeded a tree budget). */
  taskId: string;
  /** The amount allowed. */
  limit: number;
  /** The amount observed; always greater than `limit`. */
  observed: number;
}

/** Formats a number for a message: integers as they are, fractions to at most 6 decimals. */
export function formatAmount(value: number): string {
  return Number.isInteger(value) ? String(value) : String(Math.round(value * 1e6) / 1e6);
}

function budgetMessage({ budgetType, taskId, limit, observed }: BudgetExceededDetails): string {
  const o = formatAmount(observed);
  const l = formatAmount(limit);
  switch (budgetType) {
    case 'steps':
      return `Task ${taskId} exceeded step budget: ${o} steps taken, max ${l}`;
    case 'duration':
      return `Task ${taskId} exceeded duration budget: ${o}s elapsed, max ${l}s`;
    case 'depth':
      return `Task ${taskId} exceeded depth budget: depth ${o}, max ${l}`;
    case 'tokens':
      return `Task ${taskId} exceeded token budget: ${o} tokens used, max ${l}`;
    case 'cost':
      return `Task ${taskId} exceeded cost budget: $${o} spent, max $${l}`;
  }
}

/** A task went past one of its budgets (`observed > limit`). */
export class BudgetExceededError extends KernelError {
  override name = 'BudgetExceededError' as const;
  declare readonly code: 'BUDGET_EXCEEDED';
  readonly budgetType: BudgetType;
  readonly taskId: string;
  readonly limit: number;
  readonly observed: number;

  constructor(details: BudgetExceededDetails, options: KernelErrorOptions = {}) {
    super('BUDGET_EXCEEDED', options.message ?? budgetMessage(details), compact(details), options);
    this.budgetType = details.budgetType;
    this.taskId = details.taskId;
    this.limit = details.limit;
    this.observed = details.observed;
  }

  static override is(value: unknown): value is BudgetExceededError {
    return hasCode(value, 'BUDGET_EXCEEDED');
  }
}
