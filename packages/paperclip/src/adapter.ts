import { type BudgetLimits, resolveLimits } from '@exec-kernel/budget';
import {
  type Clock,
  checkId,
  InvalidInputError,
  KernelError,
  ListenerSet,
  systemClock,
  type TaskState,
  toViolation,
  type Unsubscribe,
  type Violation,
} from '@exec-kernel/core';
import {
  type AdmissionOptions,
  IdleGuard,
  type SleepRecord,
  type WakeReason,
  type WakeRecord,
} from '@exec-kernel/lifecycle';
import {
  type ActionCall,
  type ActionCheck,
  type ActionResultRecord,
  type ActionRules,
  resolveActionRules,
  resultDigest,
} from '@exec-kernel/loop';
import { checkActionCall, checkDigest, observeAction, observeActionResult } from './actions.js';
import { checkContextEntry, readTaskContext, writeContextValue } from './context-document.js';
import { createTask } from './create-task.js';
import { IssueDocuments } from './documents.js';
import { PaperclipHttp } from './http.js';
import { checkText, listFilter } from './input.js';
import { IssuesApi } from './issues.js';
import { checkOptions, optionsFromEnv, type PaperclipAdapterOptions } from './options.js';
import { countSteps } from './step-budget.js';
import type { JsonValue, TaskContext, TaskNote } from './task-context.js';
import type {
  CreatedTask,
  CreateTaskOptions,
  StepOptions,
  TaskSteps,
  TaskTransitionEvent,
  TransitionedTask,
  TransitionTaskOptions,
  WaitForWorkOptions,
  WaitResult,
} from './task-types.js';
import { transitionTask } from './transition-task.js';
import type { InboxItem, PaperclipIssue } from './types.js';
import { waitForWork } from './wait-for-work.js';

interface RefusalEvent {
  violation: Violation;
  issue: PaperclipIssue | undefined;
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
  readonly #documents: IssueDocuments;
  readonly #issues: IssuesApi;
  readonly #limits: BudgetLimits;
  readonly #actionRules: ActionRules;
  readonly #admission: AdmissionOptions;
  readonly #clock: Clock;
  #companyId: string | undefined;
  readonly #transitions = new ListenerSet<TaskTransitionEvent>();
  readonly #violations = new ListenerSet<RefusalEvent>();

  /**
   * @throws ConfigError naming every option that is missing or invalid (an `apiUrl` that is not
   *   http(s) or holds a user name, password or query; an id that core's id rule refuses; a key
   *   with spaces or control characters; a number out of range). The message never quotes a value.
   */
  constructor(options: PaperclipAdapterOptions) {
    checkOptions(options);
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
    this.#documents = new IssueDocuments(this.#http);
    this.#issues = new IssuesApi(this.#http);
    this.#limits = resolveLimits(options.budget);
    this.#actionRules = resolveActionRules(options.actionRules);
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
    return new PaperclipAdapter(optionsFromEnv(env, overrides));
  }

  /** The agent's company: the option, else `GET /agents/me` (read once). */
  async companyId(): Promise<string> {
    this.#companyId ??= await this.#issues.companyOfMe();
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
    return this.#refusing(async () =>
      createTask(
        {
          agentId: this.agentId,
          maxDepth: this.maxDepth,
          taskId: this.taskId,
          idle: this.idle,
          clock: this.#clock,
          admission: this.#admission,
          issues: this.#issues,
          companyId: () => this.companyId(),
        },
        title,
        taskType,
        options,
      ),
    );
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
    return this.#refusing(async (about) =>
      transitionTask(
        {
          agentId: this.agentId,
          clock: this.#clock,
          issues: this.#issues,
          about,
          checkout: (issueId) => this.checkout(issueId),
          comment: (issueId, body) => this.comment(issueId, body),
          moved: (event) => this.#transitions.emit(event),
        },
        id,
        to,
        options,
      ),
    );
  }

  /**
   * Checks an issue out to this agent for this run (`todo` or a stale `in_progress` of the same
   * agent), which moves it to `in_progress`.
   *
   * @throws ConflictError (409) naming the holder when another agent or run has it; never retried.
   * @throws InvalidInputError for an id core's id rule refuses, before anything is sent.
   */
  async checkout(id: string): Promise<PaperclipIssue> {
    return this.#issues.checkout(id, this.agentId);
  }

  /**
   * Gives an issue back: an `in_progress` issue returns to `todo`, unassigned.
   *
   * @throws InvalidInputError for an id core's id rule refuses, before anything is sent.
   */
  async release(id: string): Promise<PaperclipIssue> {
    return this.#issues.release(id);
  }

  /**
   * Adds a comment to an issue.
   *
   * @throws InvalidInputError for an id core's id rule refuses, or a body its text rule refuses,
   *   before anything is sent.
   */
  async comment(id: string, body: string): Promise<unknown> {
    checkText(body, 'comment');
    return this.#issues.comment(id, body);
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
    return readTaskContext(this.#documents, this.#issues, await this.#issue(id));
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
    checkContextEntry(key, value);
    return writeContextValue(this.#documents, await this.#issue(id), key, value);
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
    return this.#issues.note(id, text);
  }

  /**
   * Records steps on a task's budget and checks its step and duration limits (the adapter's
   * `budget`), as the CLI's `step` does on every backend. The count lives in the issue's
   * `exec-kernel-budget` document, so every process working the issue shares it; the clock
   * starts at the first step. A step past the limit is still counted, then refused, so the
   * count tells the truth.
   *
   * @throws BudgetExceededError for the first limit exceeded (steps, then duration).
   * @throws NotFoundError when there is no such issue, or it is done or cancelled (its budget is
   *   closed).
   * @throws InvalidInputError for an id core's id rule refuses or a `count` that is not a whole
   *   number from 1, before anything is sent.
   */
  async step(id: string, options: StepOptions = {}): Promise<TaskSteps> {
    return this.#refusing(async (about) => {
      const count = options.count ?? 1;
      if (!Number.isSafeInteger(count) || count < 1) {
        throw new InvalidInputError({ field: 'count', problem: 'must be a whole number from 1' });
      }
      const issue = about(await this.#issue(id));
      return countSteps(this.#documents, issue, count, this.#clock.now(), this.#limits);
    });
  }

  /**
   * Records one tool call of the agent working an issue and checks it with the action-loop rules
   * of `@exec-kernel/loop` (`ActionHistory`, under the adapter's `actionRules`): the same call over
   * and over, a ping-pong between two or three calls, one call too often in the window, the same
   * result too many times. The history lives in the issue's `exec-kernel-actions` document, so
   * every process and session working the issue shares it; concurrent writers are read again,
   * never lost. Pass `result` (or `resultDigest`) when the result is known, or record it later
   * with {@link recordActionResult}.
   *
   * A refused call records nothing and is reported to `onViolation` listeners (an
   * `EscalationHook`, say) before it is thrown.
   *
   * @returns The kernel's `ActionCheck`; `warnings` lists patterns close to being refused.
   * @throws LoopDetectionError (`loopType` `repeat`, `ping_pong`, `window` or `no_progress`) when
   *   the call reaches a rule's `blockAt`; nothing is written.
   * @throws InvalidInputError for an id core's id rule refuses, or a call the kernel cannot read
   *   (no tool name, arguments or result that are not JSON), before anything is sent.
   * @throws NotFoundError when there is no such issue.
   * @throws TransportError when the issue's `exec-kernel-actions` document holds no action history
   *   (say, after a hand edit); it is left as it is.
   * @throws ConflictError when other writers kept winning for 5 attempts.
   */
  async recordAction(id: string, call: ActionCall): Promise<ActionCheck> {
    return this.#refusing(async (about) => {
      checkActionCall(checkId(id, 'task id'), call, this.#actionRules);
      const issue = about(await this.#issue(id));
      return observeAction(this.#documents, issue, call, this.#actionRules);
    });
  }

  /**
   * Attaches the result of the issue's newest recorded call (for a call recorded before the tool
   * ran) and checks the no-progress rule.
   *
   * @returns The kernel's `ActionResultRecord`: the call it was attached to (`tool`,
   *   `fingerprint`, `calls`, `resultDigest`) and any `warnings`.
   *
   * @throws LoopDetectionError (`no_progress`) when the result reaches the rule's `blockAt`;
   *   nothing is written.
   * @throws InvalidInputError for an id core's id rule refuses or a result that is not JSON
   *   (before anything is sent), or when the issue has no recorded call or its newest call
   *   already has a result.
   * @throws NotFoundError when there is no such issue.
   * @throws TransportError when the issue's `exec-kernel-actions` document holds no action history.
   * @throws ConflictError when other writers kept winning for 5 attempts.
   */
  async recordActionResult(
    id: string,
    result: unknown,
    digest?: string,
  ): Promise<ActionResultRecord> {
    return this.#refusing(async (about) => {
      checkId(id, 'task id');
      checkDigest(digest);
      if (digest === undefined) resultDigest(result);
      const issue = about(await this.#issue(id));
      return observeActionResult(this.#documents, issue, result, digest, this.#actionRules);
    });
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
    const assignee = filter.assigneeAgentId === undefined ? this.agentId : filter.assigneeAgentId;
    const searchParams = listFilter(filter.status, assignee);
    return this.#issues.list(await this.companyId(), searchParams);
  }

  /** The agent's open assignments (`GET /agents/me/inbox-lite`). */
  async inbox(): Promise<InboxItem[]> {
    return this.#issues.inbox();
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
    return waitForWork(this.idle, this.agentId, this.#clock, () => this.inbox(), options);
  }

  /** Calls `listener` after every move `transitionTask` makes (for escalation). */
  onTransition(listener: (event: TaskTransitionEvent) => void): Unsubscribe {
    return this.#transitions.add(listener);
  }

  /**
   * Calls `listener` with the `Violation` of every refusal the adapter makes, and the issue it
   * concerns when the adapter had read it (`step`, `recordAction`, `recordActionResult`,
   * `transitionTask`).
   */
  onViolation(
    listener: (violation: Violation, issue: PaperclipIssue | undefined) => void,
  ): Unsubscribe {
    return this.#violations.add((event) => listener(event.violation, event.issue));
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

  // `work` names the issue a refusal concerns by passing it through `about` once it is read.
  async #refusing<T>(
    work: (about: (issue: PaperclipIssue) => PaperclipIssue) => Promise<T>,
  ): Promise<T> {
    let concerned: PaperclipIssue | undefined;
    try {
      return await work((issue) => {
        concerned = issue;
        return issue;
      });
    } catch (error) {
      if (KernelError.is(error) && error.code !== 'TRANSPORT' && !this.#violations.isEmpty) {
        const violation = toViolation(error, this.#clock.now());
        violation.agentId ??= this.agentId;
        this.#violations.emit({ violation, issue: concerned });
      }
      throw error;
    }
  }

  #issue(id: string, field = 'task id'): Promise<PaperclipIssue> {
    return this.#issues.get(id, field);
  }
}
