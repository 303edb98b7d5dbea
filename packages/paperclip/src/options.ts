import { type BudgetLimitsInput, LIMIT_MAXIMUMS, resolveLimits } from '@exec-kernel/budget';
import { type Clock, ConfigError, type ConfigProblem, idProblem } from '@exec-kernel/core';
import type { IdleGuard } from '@exec-kernel/lifecycle';
import { type ActionRulesOptions, resolveActionRules } from '@exec-kernel/loop';
import { apiUrlProblem, MAX_RETRIES, MAX_TIMEOUT_MS } from './http.js';

/** Options of {@link PaperclipAdapter}. */
export interface PaperclipAdapterOptions {
  /** Paperclip's origin (`PAPERCLIP_API_URL`), with or without a trailing `/api`. */
  apiUrl: string;
  /** An agent API key or a run JWT (`PAPERCLIP_API_KEY`). Never shown in errors or `toJSON()`. */
  apiKey: string;
  /** The agent the adapter acts as (`PAPERCLIP_AGENT_ID`). */
  agentId: string;
  /** The agent's company (`PAPERCLIP_COMPANY_ID`). Default: read from `GET /agents/me`. */
  companyId?: string | undefined;
  /** The heartbeat run (`PAPERCLIP_RUN_ID`), sent as `X-Paperclip-Run-Id`. Needed for writes. */
  runId?: string | undefined;
  /**
   * The task the agent is working on (`PAPERCLIP_TASK_ID`): the default `createdByTaskId` of tasks
   * it creates, so the loop rules see self-generated work.
   */
  taskId?: string | undefined;
  /** Deepest allowed nesting along `parentId` (config `lifecycle.max_depth`). Default: `10`. */
  maxDepth?: number | undefined;
  /** Admission fields required of new tasks (config `admission.required`). Default: all four. */
  admissionRequired?: readonly string[] | undefined;
  /**
   * Limits of each task's budget for `step` (config `budget`). Default: the budget package's
   * (50 steps, 1800 s).
   */
  budget?: BudgetLimitsInput | undefined;
  /**
   * The action-loop rules of `recordAction`: each rule's thresholds in
   * part, or `false` to turn it off. Default: the loop package's `DEFAULT_ACTION_RULES`.
   */
  actionRules?: ActionRulesOptions | undefined;
  /** Sleep state; pass one restored from memory to share it with other processes. Default: new. */
  idle?: IdleGuard | undefined;
  clock?: Clock | undefined;
  /**
   * Per HTTP attempt, from sending the request to the last byte of the answer, at most
   * 2147483647. Also the longest wait a `Retry-After` can ask for before a retry (never more than
   * 30 s). Default: `10000` ms.
   */
  timeoutMs?: number | undefined;
  /**
   * Retries of idempotent calls on 408, 429, 5xx, network errors and timeouts, at most 10.
   * Default: `2`.
   */
  retries?: number | undefined;
  /** Largest answer read; a larger one is a `TransportError`. Default: 16 MiB. */
  maxResponseBytes?: number | undefined;
}

// A bearer token: printable ASCII without spaces (a CR/LF would be a header of its own).
const TOKEN = /^[\x21-\x7e]+$/;
const MAX_KEY_LENGTH = 16_384;

/**
 * What is wrong with each option, in words that never quote a value (one may be the key).
 * Required strings: `apiUrl`, `apiKey`, `agentId`.
 */
function optionProblems(
  options: PaperclipAdapterOptions,
): Array<{ option: string; message: string }> {
  const problems: Array<{ option: string; message: string }> = [];
  const add = (option: string, message: string | undefined) => {
    if (message !== undefined) problems.push({ option, message });
  };
  const required = (value: unknown) =>
    typeof value !== 'string' || value.trim() === '' ? 'is not set' : undefined;

  add('apiUrl', required(options.apiUrl) ?? apiUrlProblem(options.apiUrl));
  add(
    'apiKey',
    required(options.apiKey) ??
      (options.apiKey.length > MAX_KEY_LENGTH
        ? `must be at most ${MAX_KEY_LENGTH} characters`
        : TOKEN.test(options.apiKey)
          ? undefined
          : 'must be printable ASCII without spaces or control characters'),
  );
  add('agentId', required(options.agentId) ?? idProblem(options.agentId));
  for (const option of ['companyId', 'runId', 'taskId'] as const) {
    if (options[option] !== undefined) add(option, idProblem(options[option]));
  }
  const integer = (value: number | undefined, min: number, max?: number) =>
    value === undefined ||
    (Number.isSafeInteger(value) && value >= min && (max === undefined || value <= max))
      ? undefined
      : max === undefined
        ? `must be an integer of at least ${min}`
        : `must be an integer from ${min} to ${max}`;
  add('maxDepth', integer(options.maxDepth, 0, LIMIT_MAXIMUMS.maxDepth));
  add('timeoutMs', integer(options.timeoutMs, 1, MAX_TIMEOUT_MS));
  add('retries', integer(options.retries, 0, MAX_RETRIES));
  add('maxResponseBytes', integer(options.maxResponseBytes, 1));
  if (options.budget !== undefined) {
    try {
      resolveLimits(options.budget);
    } catch (error) {
      add('budget', (error as Error).message);
    }
  }
  if (options.actionRules !== undefined) {
    try {
      resolveActionRules(options.actionRules);
    } catch (error) {
      add('actionRules', (error as Error).message);
    }
  }
  return problems;
}

/**
 * Throws unless every option is valid.
 *
 * @throws ConfigError naming every option that is missing or invalid, without quoting a value.
 */
export function checkOptions(options: PaperclipAdapterOptions): void {
  const problems = optionProblems(options);
  if (problems.length > 0) {
    throw new ConfigError(
      `Invalid PaperclipAdapter options: ${problems.map((p) => `${p.option} ${p.message}`).join('; ')}`,
      {
        key: problems[0]?.option,
        problems: problems.map((p) => ({ key: p.option, message: p.message })),
      },
    );
  }
}

/**
 * The options in the heartbeat's variables, `overrides` winning; checked.
 *
 * @throws ConfigError naming every missing variable, or else every invalid one.
 */
export function optionsFromEnv(
  env: Readonly<Record<string, string | undefined>>,
  overrides: Partial<PaperclipAdapterOptions>,
): PaperclipAdapterOptions {
  const variables = {
    apiUrl: 'PAPERCLIP_API_URL',
    apiKey: 'PAPERCLIP_API_KEY',
    agentId: 'PAPERCLIP_AGENT_ID',
    companyId: 'PAPERCLIP_COMPANY_ID',
    runId: 'PAPERCLIP_RUN_ID',
    taskId: 'PAPERCLIP_TASK_ID',
  } as const;
  const read = (name: string) => {
    const value = env[name];
    return value === undefined || value.trim() === '' ? undefined : value;
  };
  const options: PaperclipAdapterOptions = {
    apiUrl: read(variables.apiUrl) ?? '',
    apiKey: read(variables.apiKey) ?? '',
    agentId: read(variables.agentId) ?? '',
    companyId: read(variables.companyId),
    runId: read(variables.runId),
    taskId: read(variables.taskId),
    ...overrides,
  };
  const missing = (['apiUrl', 'apiKey', 'agentId'] as const)
    .filter((option) => options[option] === '')
    .map((option) => variables[option]);
  if (missing.length > 0) {
    throw new ConfigError(`Paperclip is not configured: set ${missing.join(', ')}`, {
      path: 'env',
      key: missing[0],
      problems: missing.map((key) => ({ key, message: 'is not set' })),
    });
  }
  const problems: ConfigProblem[] = optionProblems(options).map(({ option, message }) => ({
    key:
      option in variables && !(option in overrides)
        ? variables[option as keyof typeof variables]
        : option,
    message,
  }));
  if (problems.length > 0) {
    throw new ConfigError(
      `Paperclip is misconfigured: ${problems.map((p) => `${p.key} ${p.message}`).join('; ')}`,
      { path: 'env', key: problems[0]?.key, problems },
    );
  }
  return options;
}
