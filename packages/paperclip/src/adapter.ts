import { setTimeout as delay } from 'node:timers/promises';
import {
  type Clock,
  ConfigError,
  type ConfigProblem,
  checkId,
  InvalidInputError,
  InvalidTransitionError,
  idProblem,
  isValidId,
  KernelError,
  ListenerSet,
  type LoopDetectionDetails,
  LoopDetectionError,
  systemClock,
  TASK_STATES,
  type TaskState,
  textProblem,
  toIsoTime,
  toViolation,
  type Unsubscribe,
  type Violation,
} from '@exec-kernel/core';
import {
  type AdmissionOptions,
  admitTask,
  IdleGuard,
  type SleepRecord,
  type TaskAdmission,
  type TaskCandidate,
  validateTransition,
  type WakeReason,
  type WakeRecord,
} from '@exec-kernel/lifecycle';
import { loopOver, type StoredWorkNode } from '@exec-kernel/loop';
import { loadAncestry } from './ancestry.js';
import {
  apiUrlProblem,
  MAX_RETRIES,
  MAX_TIMEOUT_MS,
  PaperclipHttp,
  PaperclipStatusError,
} from './http.js';
import { withMarker } from './marker.js';
import {
  CONTEXT_DOCUMENT_KEY,
  contextBody,
  type JsonValue,
  jsonValueProblem,
  noteOf,
  readContextBody,
  setKey,
  type TaskContext,
  type TaskNote,
} from './task-context.js';
import type { InboxItem, IssuePriority, PaperclipIssue } from './types.js';

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

/** Options of {@link PaperclipAdapter.createTask}. */
export interface CreateTaskOptions {
  /** Why the task should exist. Every required field must be present and non-blank. */
  admission: Partial<TaskAdmission> & Record<string, unknown>;
  /** The Paperclip issue this one decomposes (id or identifier such as `KER-12`). */
  parentTaskId?: string | undefined;
  /** The issue whose work produced this one. Default: the adapter's `taskId`. */
  createdByTaskId?: string | undefined;
  description?: string | undefined;
  priority?: IssuePriority | undefined;
  /** Agent to assign (Paperclip wakes it unless the status is `backlog`). */
  assignee?: string | undefined;
  /**
   * The new issue's status. Default: `todo`, where a task starts on every exec-kernel backend
   * (Paperclip's own default without an assignee would be `backlog`).
   */
  status?: 'backlog' | 'todo' | undefined;
  /**
   * How refusals name the task before Paperclip gives it an identifier, e.g. the id the caller
   * uses for it elsewhere. Default: the title.
   */
  name?: string | undefined;
  /** Paperclip's de-duplication key (same key within 7 days returns the existing issue). */
  idempotencyKey?: string | undefined;
  /** Skips Paperclip's same-title de-duplication. */
  allowDuplicate?: boolean | undefined;
}

/** What {@link PaperclipAdapter.createTask} returns. */
export interface CreatedTask {
  id: string;
  identifier: string | undefined;
  title: string;
  status: TaskState;
  /** Depth along `parentId` (0 for a root). */
  depth: number;
  /**
   * True when Paperclip returned an existing issue instead of creating one (same idempotency key,
   * or an open issue with the same title under the same parent in the last 48 hours).
   */
  deduplicated: boolean;
  deduplicationReason: string | undefined;
  issue: PaperclipIssue;
}

/** Options of {@link PaperclipAdapter.transitionTask}. */
export interface TransitionTaskOptions {
  /** Posted as a comment with the change. */
  comment?: string | undefined;
  /** For `blocked`: the issues blocking this one. */
  blockedByIssueIds?: string[] | undefined;
  /**
   * For `blocked` without blockers: who must act. Default: this agent, with the comment as the
   * action (Paperclip needs one before an issue enters `blocked`, and lets an agent name only
   * itself as the owner).
   */
  unblockDescriptor?:
    | { owner: { agentId: string } | { userId: string } | 'board'; action: string }
    | undefined;
  /** For `in_review`: the human who reviews (Paperclip wants a review path from agents). */
  reviewerUserId?: string | undefined;
}

/** What {@link PaperclipAdapter.transitionTask} returns. */
export interface TransitionedTask {
  id: string;
  identifier: string | undefined;
  from: TaskState;
  to: TaskState;
  /** The lifecycle table's reason text for the move. */
  reason: string;
  issue: PaperclipIssue;
}

/** What `onTransition` listeners receive. */
export interface TaskTransitionEvent {
  taskId: string;
  identifier: string | undefined;
  agentId: string;
  from: TaskState;
  to: TaskState;
  reason: string;
  comment: string | undefined;
  at: string;
}

/** Options of {@link PaperclipAdapter.waitForWork}. */
export interface WaitForWorkOptions {
  /**
   * How often to look at the inbox, from `10` to `3600000` ms (anything else throws
   * `InvalidInputError`: `0` would poll the server without pause). Default: `5000` ms.
   */
  pollIntervalMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

/** How a wait for work ended; `tasks` is the inbox when work arrived. */
export interface WaitResult {
  reason: WakeReason;
  tasks: InboxItem[];
}

// Tries of a context update that loses its revision race to another writer.
const MAX_CONTEXT_ATTEMPTS = 5;

const STATES: ReadonlySet<string> = new Set<string>(TASK_STATES);
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
  add('maxDepth', integer(options.maxDepth, 0));
  add('timeoutMs', integer(options.timeoutMs, 1, MAX_TIMEOUT_MS));
  add('retries', integer(options.retries, 0, MAX_RETRIES));
  add('maxResponseBytes', integer(options.maxResponseBytes, 1));
  return problems;
}

/** What makes `value` unlike an issue Paperclip sends, in our words; `undefined` when it is one. */
function issueProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'no issue';
  const issue = value as Record<string, unknown>;
  if (!isValidId(issue.id)) return 'an issue without a valid id';
  if (issue.identifier !== undefined && issue.identifier !== null && !isValidId(issue.identifier)) {
    return 'an issue without a valid identifier';
  }
  if (typeof issue.status !== 'string' || !STATES.has(issue.status)) {
    return 'an issue whose status is not one of ours';
  }
  return undefined;
}

/** Throws `InvalidInputError` when core's text rule refuses `value` (ESC, NUL, a lone surrogate). */
function checkText(value: string, field: string): void {
  const problem = textProblem(value);
  if (problem !== undefined) throw new InvalidInputError({ field, problem });
}

/** `id` checked by core's id rule and encoded as one path segment. */
function segment(id: unknown, field: string): string {
  return encodeURIComponent(checkId(id, field));
}

function admissionBlock(admission: Record<string, unknown>): string {
  const labels: Record<string, string> = {
    consumer: 'Consumer',
    painPoint: 'Pain point',
    expectedValue: 'Expected value',
    validationPath: 'Validation',
  };
  return Object.entries(admission)
    .filter(([, v]) => typeof v === 'string' && v.trim() !== '')
    .map(([k, v]) => `- **${labels[k] ?? k}:** ${v as string}`)
    .join('\n');
}

/**
 * Works Paperclip's issues the exec-kernel way. Paperclip has the same seven statuses but enforces
 * no transition table (it lets `done` be reopened), no loop rules, no idle rule and no admission:
 * the adapter checks all of them before anything is sent, so a refusal writes nothing.
 *
 * @example
 * ```ts
 * const adapter = PaperclipAdapter.fromEnv(); // inside a Paperclip heartbeat
 * const task = await adapter.createTask('Optimize login', 'performance', {
 *   admission: {
 *     consumer: 'end-user',
 *     painPoint: 'login page is slow',
 *     expectedValue: 'reduce load time by 40%',
 *     validationPath: 'benchmark test suite',
 *   },
 * });
 * await adapter.transitionTask(task.id, 'in_progress'); // a checkout
 * await adapter.transitionTask(task.id, 'done', { comment: 'p95 down 45%' });
 * ```
 */
export class PaperclipAdapter {
  readonly apiUrl: string;
  readonly agentId: string;
  readonly runId: string | undefined;
  readonly taskId: string | undefined;
  readonly maxDepth: number;
  readonly idle: IdleGuard;
  readonly #http: PaperclipHttp;
  readonly #admission: AdmissionOptions;
  readonly #clock: Clock;
  #companyId: string | undefined;
  readonly #transitions = new ListenerSet<TaskTransitionEvent>();
  readonly #violations = new ListenerSet<Violation>();

  /**
   * @throws ConfigError naming every option that is missing or invalid (an `apiUrl` that is not
   *   http(s) or holds a user name, password or query; an id that core's id rule refuses; a key
   *   with spaces or control characters; a number out of range). The message never quotes a value.
   */
  constructor(options: PaperclipAdapterOptions) {
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
    this.apiUrl = options.apiUrl;
    this.agentId = options.agentId;
    this.#http = new PaperclipHttp({
      apiUrl: options.apiUrl,
      apiKey: options.apiKey,
      runId: options.runId,
      timeoutMs: options.timeoutMs,
      retries: options.retries,
      maxResponseBytes: options.maxResponseBytes,
    });
    this.#companyId = options.companyId;
    this.runId = options.runId;
    this.taskId = options.taskId;
    this.maxDepth = options.maxDepth ?? 10;
    this.#admission = { required: options.admissionRequired };
    this.#clock = options.clock ?? systemClock;
    this.idle = options.idle ?? new IdleGuard({ clock: this.#clock });
  }

  /**
   * An adapter from the variables Paperclip sets in every heartbeat: `PAPERCLIP_API_URL`,
   * `PAPERCLIP_API_KEY`, `PAPERCLIP_AGENT_ID`, and when present `PAPERCLIP_COMPANY_ID`,
   * `PAPERCLIP_RUN_ID` and `PAPERCLIP_TASK_ID` (an empty one counts as unset). `overrides` win
   * over the environment.
   *
   * @throws ConfigError naming every missing variable, or else every invalid one (by its
   *   variable name, or by option name for an override), without quoting a value.
   */
  static fromEnv(
    env: Readonly<Record<string, string | undefined>> = process.env,
    overrides: Partial<PaperclipAdapterOptions> = {},
  ): PaperclipAdapter {
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
    return new PaperclipAdapter(options);
  }

  /** The agent's company: the option, else `GET /agents/me` (read once). */
  async companyId(): Promise<string> {
    if (this.#companyId === undefined) {
      const me = await this.#call<{ companyId?: unknown } | undefined>(
        'agent me',
        'get',
        'agents/me',
      );
      // It goes into every company path: an answer without a valid one is refused, not used.
      if (!isValidId(me?.companyId)) {
        throw this.#http.malformed('get', 'agents/me', 'no valid companyId');
      }
      this.#companyId = me.companyId;
    }
    return this.#companyId;
  }

  /**
   * Creates a Paperclip issue (in `todo` unless `status` says otherwise) after `admitTask` from
   * `@exec-kernel/lifecycle` allows it: the agent is not asleep, the admission case is complete
   * (every missing field at once), and the loop rules pass over the issue's `parentId` chain and
   * creator links read from Paperclip. Sleep and admission are decided before anything is read.
   *
   * @throws IdleEnforcementError, TaskAdmissionError or LoopDetectionError; nothing is created.
   * @throws InvalidInputError for a `taskType`, `parentTaskId`, `createdByTaskId` or `assignee`
   *   that core's id rule refuses, or a title, name or description its text rule refuses (control
   *   characters other than tabs and line breaks), before anything is sent.
   */
  async createTask(
    title: string,
    taskType: string,
    options: CreateTaskOptions,
  ): Promise<CreatedTask> {
    return this.#refusing(async () => {
      const name = options.name ?? title;
      const candidate = {
        taskId: name,
        agentId: this.agentId,
        taskType,
        title,
        admission: options.admission,
        // The budget's depth limit is the adapter's, so the loop rule is the one that speaks.
        budget: { maxDepth: this.maxDepth },
      };
      // The same rules once without the ancestry first: idle and admission refuse before
      // anything is read, as they do on every other backend.
      this.#admit(candidate, []);
      checkId(taskType, 'task type');
      checkText(title, 'title');
      if (options.name !== undefined) checkText(options.name, 'task name');
      if (options.description !== undefined) checkText(options.description, 'description');
      if (options.assignee !== undefined) checkId(options.assignee, 'assignee');
      const ancestry = await loadAncestry((id, field) => this.#issue(id, field), {
        parentTaskId: options.parentTaskId,
        createdByTaskId: options.createdByTaskId ?? this.taskId,
      });
      const parentId = ancestry.parent?.id;
      const creatorId = ancestry.creator?.id;
      const { depth } = this.#admit(
        { ...candidate, parentTaskId: parentId, createdByTaskId: creatorId },
        ancestry.rows,
        ancestry.seen,
      );

      const marker = {
        taskType,
        ...(creatorId === undefined ? {} : { createdByTaskId: creatorId }),
      };
      const human = [options.description ?? '', admissionBlock(options.admission)].filter(
        (s) => s !== '',
      );
      const body: Record<string, unknown> = {
        title,
        description: withMarker(human.join('\n\n'), marker),
      };
      if (parentId !== undefined) body.parentId = parentId;
      if (options.priority !== undefined) body.priority = options.priority;
      if (options.assignee !== undefined) body.assigneeAgentId = options.assignee;
      body.status = options.status ?? 'todo';
      if (options.idempotencyKey !== undefined) body.idempotencyKey = options.idempotencyKey;
      if (options.allowDuplicate !== undefined) body.allowDuplicate = options.allowDuplicate;

      const companyId = await this.companyId();
      const path = `companies/${segment(companyId, 'company id')}/issues`;
      const issue = this.#issueFrom(
        'post',
        path,
        await this.#call<unknown>('company', 'post', path, { json: body }),
      );
      return {
        id: issue.id,
        identifier: issue.identifier,
        title: issue.title,
        status: issue.status,
        depth,
        deduplicated: issue.deduplicated === true,
        deduplicationReason: issue.deduplicationReason,
        issue,
      };
    });
  }

  /**
   * Moves an issue along the lifecycle table. Reads the current status and checks the move before
   * any write (Paperclip itself would let `done` be reopened). `todo → in_progress` is a checkout;
   * other moves are a PATCH carrying what Paperclip needs for the edge: blockers or an unblock
   * descriptor for `blocked`, a reviewer for `in_review`.
   *
   * @throws InvalidTransitionError for a move the table refuses (nothing is written), or one
   *   Paperclip refuses with a 422 (its reason in the message).
   * @throws ConflictError when the issue is held by another agent or run (409).
   * @throws InvalidInputError for an id (also a blocker or reviewer) that core's id rule refuses,
   *   or a comment its text rule refuses, before anything is sent.
   */
  async transitionTask(
    id: string,
    to: TaskState,
    options: TransitionTaskOptions = {},
  ): Promise<TransitionedTask> {
    return this.#refusing(async () => {
      for (const blocker of options.blockedByIssueIds ?? []) checkId(blocker, 'blocker id');
      if (options.comment !== undefined) checkText(options.comment, 'comment');
      if (options.reviewerUserId !== undefined) checkId(options.reviewerUserId, 'reviewer id');
      const current = await this.#issue(id);
      const from = current.status;
      const reason = validateTransition(from, to, current.identifier ?? current.id);
      let issue: PaperclipIssue;
      if (from === 'todo' && to === 'in_progress') {
        issue = await this.checkout(current.id);
        if (options.comment !== undefined) await this.comment(current.id, options.comment);
      } else {
        const body: Record<string, unknown> = { status: to };
        if (options.comment !== undefined) body.comment = options.comment;
        if (to === 'blocked') {
          if (options.blockedByIssueIds !== undefined) {
            body.blockedByIssueIds = options.blockedByIssueIds;
          } else {
            // Paperclip lets an agent name only itself as the unblock owner.
            body.unblockDescriptor = options.unblockDescriptor ?? {
              owner: { agentId: this.agentId },
              action: options.comment ?? 'Unblock this task',
            };
          }
        }
        if (to === 'in_review' && options.reviewerUserId !== undefined) {
          body.assigneeUserId = options.reviewerUserId;
        }
        const path = `issues/${segment(current.id, 'task id')}`;
        issue = this.#issueFrom(
          'patch',
          path,
          await this.#call<unknown>(
            `issue ${current.identifier ?? current.id}`,
            'patch',
            path,
            { json: body },
            { from, to },
          ),
        );
      }
      const event: TaskTransitionEvent = {
        taskId: current.id,
        identifier: current.identifier,
        agentId: this.agentId,
        from,
        to,
        reason,
        comment: options.comment,
        at: toIsoTime(this.#clock.now()),
      };
      this.#transitions.emit(event);
      return { id: current.id, identifier: current.identifier, from, to, reason, issue };
    });
  }

  /**
   * Checks an issue out to this agent for this run (`todo` or a stale `in_progress` of the same
   * agent), which moves it to `in_progress`.
   *
   * @throws ConflictError (409) naming the holder when another agent or run has it; never retried.
   * @throws InvalidInputError for an id core's id rule refuses, before anything is sent.
   */
  async checkout(id: string): Promise<PaperclipIssue> {
    const path = `issues/${segment(id, 'task id')}/checkout`;
    const answer = await this.#call<unknown>(`issue ${id}`, 'post', path, {
      json: { agentId: this.agentId, expectedStatuses: ['todo', 'in_progress'] },
    });
    return this.#issueFrom('post', path, answer);
  }

  /**
   * Gives an issue back: an `in_progress` issue returns to `todo`, unassigned.
   *
   * @throws InvalidInputError for an id core's id rule refuses, before anything is sent.
   */
  async release(id: string): Promise<PaperclipIssue> {
    const path = `issues/${segment(id, 'task id')}/release`;
    return this.#issueFrom('post', path, await this.#call<unknown>(`issue ${id}`, 'post', path));
  }

  /**
   * Adds a comment to an issue.
   *
   * @throws InvalidInputError for an id core's id rule refuses, or a body its text rule refuses,
   *   before anything is sent.
   */
  async comment(id: string, body: string): Promise<unknown> {
    checkText(body, 'comment');
    const path = `issues/${segment(id, 'task id')}/comments`;
    return this.#call(`issue ${id}`, 'post', path, { json: { body } });
  }

  /**
   * A task's context: its key/value context (the issue's `exec-kernel-context` document; `{}`
   * when it has none) and its notes (the issue's comments, oldest first).
   *
   * @throws NotFoundError when there is no such issue.
   * @throws InvalidInputError for an id core's id rule refuses, before anything is sent.
   * @throws TransportError when the document holds no JSON object (say, after a hand edit).
   */
  async getContext(id: string): Promise<TaskContext> {
    const issue = await this.#issue(id);
    const { context } = await this.#contextDocument(issue);
    const path = `issues/${segment(issue.id, 'task id')}/comments`;
    const answer = await this.#call<unknown>(`issue ${id}`, 'get', path, {
      searchParams: { order: 'asc' },
    });
    const notes = Array.isArray(answer) ? answer.map(noteOf) : [undefined];
    if (notes.includes(undefined)) throw this.#http.malformed('get', path, 'no list of comments');
    return {
      taskId: issue.id,
      identifier: issue.identifier,
      context,
      notes: notes as TaskNote[],
    };
  }

  /**
   * Sets one context value of a task (`undefined` removes the key) and returns the whole context.
   * A read-modify-write of the issue's document against its latest revision: when another writer
   * got in between (Paperclip's 409), it reads again and retries, so no concurrent update is lost.
   *
   * @throws InvalidInputError for an id or key core's id rule refuses, or a value that is not
   *   JSON (or nests deeper than 64 levels), before anything is sent.
   * @throws NotFoundError when there is no such issue.
   * @throws ConflictError when other writers kept winning for 5 attempts.
   */
  async setContext(
    id: string,
    key: string,
    value: JsonValue | undefined,
  ): Promise<Record<string, JsonValue>> {
    checkId(key, 'context key');
    const problem = value === undefined ? undefined : jsonValueProblem(value);
    if (problem !== undefined) throw new InvalidInputError({ field: 'context value', problem });
    const issue = await this.#issue(id);
    const path = `issues/${segment(issue.id, 'task id')}/documents/${CONTEXT_DOCUMENT_KEY}`;
    for (let attempt = 1; ; attempt++) {
      const { context, revision } = await this.#contextDocument(issue);
      if (value === undefined) delete context[key];
      else setKey(context, key, value);
      const body: Record<string, unknown> = {
        title: 'exec-kernel context',
        format: 'markdown',
        body: contextBody(context),
      };
      if (revision !== undefined) body.baseRevisionId = revision;
      try {
        await this.#http.request('put', path, { json: body });
        return context;
      } catch (error) {
        if (!(error instanceof PaperclipStatusError)) throw error;
        if (error.status !== 409 || attempt >= MAX_CONTEXT_ATTEMPTS) {
          throw error.toKernelError(`issue ${id}`);
        }
      }
    }
  }

  /**
   * Adds a note to a task: a comment on its issue.
   *
   * @throws InvalidInputError for an id core's id rule refuses, or a text its text rule refuses,
   *   before anything is sent.
   * @throws NotFoundError when there is no such issue.
   */
  async addNote(id: string, text: string): Promise<TaskNote> {
    checkText(text, 'note');
    const path = `issues/${segment(id, 'task id')}/comments`;
    const answer = await this.#call<unknown>(`issue ${id}`, 'post', path, { json: { body: text } });
    const note = noteOf(answer);
    if (note === undefined) throw this.#http.malformed('post', path, 'no comment');
    return note;
  }

  /**
   * Issues of the agent's company, filtered by status and assignee (`GET /companies/{id}/issues`,
   * sorted by Paperclip by priority). Default assignee: this agent; `null` for any.
   *
   * @throws InvalidInputError for an assignee core's id rule refuses, or a status not one of ours.
   */
  async listTasks(
    filter: { status?: TaskState | TaskState[]; assigneeAgentId?: string | null } = {},
  ): Promise<PaperclipIssue[]> {
    const searchParams: Record<string, string> = {};
    const assignee = filter.assigneeAgentId === undefined ? this.agentId : filter.assigneeAgentId;
    if (assignee !== null) searchParams.assigneeAgentId = checkId(assignee, 'assignee');
    if (filter.status !== undefined) {
      const statuses: unknown[] = Array.isArray(filter.status) ? filter.status : [filter.status];
      for (const status of statuses) {
        if (typeof status !== 'string' || !STATES.has(status)) {
          throw new InvalidInputError({
            field: 'status',
            problem: `must be one of ${[...STATES].join(', ')}`,
          });
        }
      }
      searchParams.status = statuses.join(',');
    }
    const companyId = await this.companyId();
    const path = `companies/${segment(companyId, 'company id')}/issues`;
    return this.#issuesFrom(
      'get',
      path,
      await this.#call<unknown>('company', 'get', path, { searchParams }),
    );
  }

  /** The agent's open assignments (`GET /agents/me/inbox-lite`). */
  async inbox(): Promise<InboxItem[]> {
    const path = 'agents/me/inbox-lite';
    return this.#issuesFrom('get', path, await this.#call<unknown>('agent me', 'get', path));
  }

  /**
   * An issue as Paperclip has it now.
   *
   * @throws InvalidInputError for an id core's id rule refuses, before anything is sent.
   */
  async getTask(id: string): Promise<PaperclipIssue> {
    return this.#issue(id);
  }

  /**
   * Puts the agent to sleep: until `wake()` or the timeout, `createTask` refuses. Paperclip has
   * no such gate (its `idle` status means "awake, no run"), so this is the adapter's own state.
   */
  sleep(options: { timeoutSeconds?: number; reason?: string } = {}): SleepRecord {
    return this.idle.sleep({ agentId: this.agentId, ...options });
  }

  /** Ends the agent's sleep; `undefined` when it was awake. */
  wake(reason: WakeReason = 'woken'): WakeRecord | undefined {
    return this.idle.wake(this.agentId, reason);
  }

  /**
   * While asleep, polls the inbox and returns as soon as work is assigned (waking the agent with
   * `task_available`), or when the sleep times out or `wake()` is called.
   *
   * @throws InvalidInputError for a `pollIntervalMs` outside 10 ms to 1 hour.
   */
  async waitForWork(options: WaitForWorkOptions = {}): Promise<WaitResult> {
    const interval = options.pollIntervalMs ?? 5_000;
    if (!(interval >= 10 && interval <= 3_600_000)) {
      throw new InvalidInputError({
        field: 'pollIntervalMs',
        problem: 'must be a number of milliseconds from 10 to 3600000',
      });
    }
    const sleep = this.idle.sleepOf(this.agentId);
    if (sleep === undefined) return { reason: 'woken', tasks: [] };
    const until = Date.parse(sleep.until);
    while (true) {
      if (!this.idle.isAsleep(this.agentId)) {
        return { reason: this.#clock.now() >= until ? 'timeout' : 'woken', tasks: [] };
      }
      const tasks = await this.inbox();
      if (tasks.length > 0) {
        this.idle.wake(this.agentId, 'task_available');
        return { reason: 'task_available', tasks };
      }
      const left = until - this.#clock.now();
      if (left <= 0) return { reason: 'timeout', tasks: [] };
      await delay(
        Math.min(interval, left),
        undefined,
        options.signal ? { signal: options.signal } : {},
      );
    }
  }

  /** Calls `listener` after every move `transitionTask` makes (for escalation). */
  onTransition(listener: (event: TaskTransitionEvent) => void): Unsubscribe {
    return this.#transitions.add(listener);
  }

  /** Calls `listener` with the `Violation` of every refusal the adapter makes. */
  onViolation(listener: (violation: Violation) => void): Unsubscribe {
    return this.#violations.add(listener);
  }

  /** Settings for logs; the API key is never included. */
  toJSON(): {
    apiUrl: string;
    agentId: string;
    companyId: string | undefined;
    runId: string | undefined;
  } {
    return {
      apiUrl: this.apiUrl,
      agentId: this.agentId,
      companyId: this.#companyId,
      runId: this.runId,
    };
  }

  async #refusing<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (KernelError.is(error) && error.code !== 'TRANSPORT' && !this.#violations.isEmpty) {
        const violation = toViolation(error, this.#clock.now());
        violation.agentId ??= this.agentId;
        this.#violations.emit(violation);
      }
      throw error;
    }
  }

  /**
   * `admitTask` over `rows`, with the agent's sleep from the guard and the clock's now; throws
   * its refusal. Issues in a loop refusal are named by identifier (the rows hold UUIDs).
   */
  #admit(
    candidate: TaskCandidate,
    rows: StoredWorkNode[],
    seen: ReadonlyMap<string, PaperclipIssue> = new Map(),
  ): { depth: number } {
    const sleep = this.idle.sleepOf(this.agentId);
    const decision = admitTask(candidate, {
      now: this.#clock.now(),
      sleep: sleep && { untilMs: Date.parse(sleep.until), reason: sleep.reason },
      required: this.#admission.required,
      loop: loopOver(rows, { maxDepth: this.maxDepth }),
    });
    if (decision.ok) return decision;
    const error = decision.error;
    if (!LoopDetectionError.is(error) || error.chain === undefined) throw error;
    const d = error.details as unknown as LoopDetectionDetails;
    const name = (id: string) => seen.get(id)?.identifier ?? id;
    throw new LoopDetectionError({ ...d, chain: error.chain.map(name) });
  }

  /** The issue's context document: its context and revision, or `{}` when it has none. */
  async #contextDocument(
    issue: PaperclipIssue,
  ): Promise<{ context: Record<string, JsonValue>; revision: string | undefined }> {
    const path = `issues/${segment(issue.id, 'task id')}/documents/${CONTEXT_DOCUMENT_KEY}`;
    let answer: unknown;
    try {
      answer = await this.#http.request<unknown>('get', path);
    } catch (error) {
      if (error instanceof PaperclipStatusError && error.status === 404) {
        return { context: {}, revision: undefined };
      }
      throw error instanceof PaperclipStatusError
        ? error.toKernelError(`issue ${issue.identifier ?? issue.id}`)
        : error;
    }
    const doc = (typeof answer === 'object' && answer !== null ? answer : {}) as Record<
      string,
      unknown
    >;
    const context = readContextBody(doc.body);
    if (context === undefined || !isValidId(doc.latestRevisionId)) {
      throw this.#http.malformed('get', path, 'no exec-kernel context document');
    }
    return { context, revision: doc.latestRevisionId };
  }

  async #issue(id: string, field = 'task id'): Promise<PaperclipIssue> {
    const path = `issues/${segment(id, field)}`;
    return this.#issueFrom('get', path, await this.#call<unknown>(`issue ${id}`, 'get', path));
  }

  /**
   * `answer` when it is an issue as Paperclip sends one: its id and identifier go into later
   * paths and messages, its status into the lifecycle table, so a server that sends anything else
   * gets a `TransportError`, not a request to a route it chose.
   */
  #issueFrom(method: string, path: string, answer: unknown): PaperclipIssue {
    const problem = issueProblem(answer);
    if (problem !== undefined) throw this.#http.malformed(method, path, problem);
    return answer as PaperclipIssue;
  }

  #issuesFrom<T extends InboxItem | PaperclipIssue>(
    method: string,
    path: string,
    answer: unknown,
  ): T[] {
    if (!Array.isArray(answer)) throw this.#http.malformed(method, path, 'no list of issues');
    for (const item of answer) {
      const problem = issueProblem(item);
      if (problem !== undefined) throw this.#http.malformed(method, path, `a list with ${problem}`);
    }
    return answer as T[];
  }

  /** One call, with Paperclip's refusals turned into core errors. */
  async #call<T>(
    resource: string,
    method: 'get' | 'post' | 'patch',
    path: string,
    options: { json?: unknown; searchParams?: Record<string, string> } = {},
    move?: { from: TaskState; to: TaskState },
  ): Promise<T> {
    try {
      return await this.#http.request<T>(method, path, options);
    } catch (error) {
      if (!(error instanceof PaperclipStatusError)) throw error;
      if (error.status === 422 && move !== undefined) {
        throw new InvalidTransitionError({
          ...move,
          taskId: resource.replace(/^issue /, ''),
          reason: `Paperclip refused ${move.from} -> ${move.to}: ${error.reason ?? 'status 422'}`,
        });
      }
      throw error.toKernelError(resource);
    }
  }
}
