import { type ActionRules, DEFAULT_ACTION_RULES } from '@exec-kernel/loop';

/** `lifecycle.*`: limits of the task graph the loop detector keeps. */
export interface LifecycleConfig {
  /** Deepest nesting allowed for a new task (file `max_depth`). Default: `10`. */
  maxDepth: number;
  /** Most task nodes held in memory before the oldest are evicted (file `max_heap_size`). Default: `1000`. */
  maxHeapSize: number;
}

/** `budget.*`: the limits a task gets when it is started without its own. */
export interface BudgetConfig {
  /** Default: `50`. */
  maxSteps: number;
  /** Default: `10`. */
  maxDepth: number;
  /** Wall-clock seconds since the task started. Default: `1800`. */
  maxDurationSeconds: number;
  /** Default: `null` (unlimited). */
  maxTokens: number | null;
  /** Dollars. Default: `null` (unlimited). */
  maxCostUsd: number | null;
  /** Fraction of a limit at which a warning fires, in (0, 1]. Default: `0.8`. */
  warnAt: number;
}

/** `idle.*`: how long an agent with nothing to do sleeps. */
export interface IdleConfig {
  /** Default: `300`. */
  defaultTimeoutSeconds: number;
}

/** `admission.*`: what a new task must say about itself. */
export interface AdmissionConfig {
  /**
   * Admission fields every new task must fill in, camelCase (`painPoint`), whichever spelling the
   * file used. Default: `['consumer', 'painPoint', 'expectedValue', 'validationPath']`.
   */
  required: string[];
}

/**
 * `actions.*`: the action-loop rules over a task's tool calls, resolved by `@exec-kernel/loop`'s
 * `resolveActionRules` (file `ping_pong`, `no_progress`, `exempt_tools`, `warn_at`, `block_at`).
 * Each rule is its thresholds or `false` (off). Default: `DEFAULT_ACTION_RULES` (repeat 3/5,
 * ping-pong 3/5, window 6/8 in 20, no-progress 6/10, no exempt tools).
 */
export type ActionsConfig = ActionRules;

/** `store.*`: where the CLI keeps state between calls. */
export interface StoreConfig {
  /**
   * Path of the state file as written. {@link loadConfig} also returns it resolved, as `storePath`.
   * Default: `'.exec-kernel/state.json'`.
   */
  path: string;
}

/** `coordination.*`: the shared coordination service, if any. */
export interface CoordinationConfig {
  /** Base URL of the service. Default: `null` (none). */
  url: string | null;
  /** Bearer token, read only from `EXEC_KERNEL_COORDINATION_TOKEN`, never from the file. Default: `null`. */
  token: string | null;
}

/** `paperclip.*`: the Paperclip API. The key comes only from `PAPERCLIP_API_KEY`. */
export interface PaperclipConfig {
  /** Default: `null`. */
  apiUrl: string | null;
  /** Default: `null`. */
  companyId: string | null;
}

/** The loaded configuration: defaults, then the file, then environment overrides. camelCase. */
export interface ExecKernelConfig {
  lifecycle: LifecycleConfig;
  budget: BudgetConfig;
  idle: IdleConfig;
  admission: AdmissionConfig;
  actions: ActionsConfig;
  store: StoreConfig;
  coordination: CoordinationConfig;
  paperclip: PaperclipConfig;
}

/** The name of a section of the file (the keys of {@link ExecKernelConfig}). */
export type ConfigSection = keyof ExecKernelConfig;

/** A configuration that cannot be changed at any depth. */
export type ReadonlyExecKernelConfig = {
  readonly [S in ConfigSection]: {
    readonly [K in keyof ExecKernelConfig[S]]: ExecKernelConfig[S][K] extends string[]
      ? readonly string[]
      : ExecKernelConfig[S][K];
  };
};

/**
 * What you get with no file and no environment overrides. Frozen at every depth.
 * The budget defaults match `@exec-kernel/budget`'s `DEFAULT_LIMITS`.
 */
export const DEFAULT_CONFIG: ReadonlyExecKernelConfig = deepFreeze({
  lifecycle: { maxDepth: 10, maxHeapSize: 1000 },
  budget: {
    maxSteps: 50,
    maxDepth: 10,
    maxDurationSeconds: 1800,
    maxTokens: null,
    maxCostUsd: null,
    warnAt: 0.8,
  },
  idle: { defaultTimeoutSeconds: 300 },
  admission: { required: ['consumer', 'painPoint', 'expectedValue', 'validationPath'] },
  actions: DEFAULT_ACTION_RULES,
  store: { path: '.exec-kernel/state.json' },
  coordination: { url: null, token: null },
  paperclip: { apiUrl: null, companyId: null },
});

function cloneActions(actions: ActionRules): ActionRules {
  const copy = <T extends object>(rule: T | false): T | false =>
    rule === false ? false : { ...rule };
  return {
    repeat: copy(actions.repeat),
    pingPong: copy(actions.pingPong),
    window: copy(actions.window),
    noProgress: copy(actions.noProgress),
    exemptTools: [...actions.exemptTools],
  };
}

function deepFreeze<T extends object>(value: T): T {
  for (const child of Object.values(value)) {
    if (typeof child === 'object' && child !== null) deepFreeze(child);
  }
  return Object.freeze(value);
}

/** A mutable deep copy of `config`. */
export function cloneConfig(config: ReadonlyExecKernelConfig): ExecKernelConfig {
  return {
    lifecycle: { ...config.lifecycle },
    budget: { ...config.budget },
    idle: { ...config.idle },
    admission: { required: [...config.admission.required] },
    actions: cloneActions(config.actions),
    store: { ...config.store },
    coordination: { ...config.coordination },
    paperclip: { ...config.paperclip },
  };
}
