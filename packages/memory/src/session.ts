import {
  type BudgetLimitsInput,
  type BudgetStateJSON,
  BudgetTracker,
  type BudgetWarning,
} from '@exec-kernel/budget';
import {
  type Clock,
  InvalidInputError,
  isTerminalState,
  StoreError,
  systemClock,
  toIsoTime,
} from '@exec-kernel/core';
import { IdleGuard, TaskLifecycle } from '@exec-kernel/lifecycle';
import {
  ActionGuard,
  type ActionHistoryJSON,
  type ActionRulesOptions,
  LoopDetector,
  type RegisteredNode,
} from '@exec-kernel/loop';
import { actionMemoryEvent, applyEvent, type MemoryEvent } from './events.js';
import type { JsonValue, MemoryState, TaskNote, TaskRecord } from './state.js';

/** Settings for the kernels a session rebuilds (the CLI fills them from `.exec-kernel.yml`). */
export interface MemoryOptions {
  clock?: Clock | undefined;
  /** Loop detector `maxDepth`. Default: `10`. */
  maxDepth?: number | undefined;
  /** Loop detector `maxNodes`. Default: `1000`. */
  maxNodes?: number | undefined;
  /** Budget limits for tasks started without their own. Default: the budget package's defaults. */
  budgetDefaults?: BudgetLimitsInput | undefined;
  /** Budget warning threshold. Default: `0.8`. */
  warnAt?: number | undefined;
  /** Called for each budget warning. */
  onWarning?: ((warning: BudgetWarning) => void) | undefined;
  /** Sleep length when none is given. Default: `300`. */
  idleTimeoutSeconds?: number | undefined;
  /** The action-loop rules (the CLI passes `config.actions`). Default: `DEFAULT_ACTION_RULES`. */
  actionRules?: ActionRulesOptions | undefined;
  /** Action guard `maxTasks`. Default: `1000`. */
  maxActionTasks?: number | undefined;
}

/** A remembered task's budget in the tracker's JSON form. */
function budgetJSON(task: TaskRecord | undefined): BudgetStateJSON | undefined {
  const budget = task?.budget;
  if (task === undefined || budget === undefined) return undefined;
  const json: BudgetStateJSON = {
    taskId: task.taskId,
    limits: budget.limits,
    stepsTaken: budget.stepsTaken,
    tokens: budget.tokens,
    costUsd: budget.costUsd,
    elapsedSeconds: 0,
    startedAt: budget.startedAt,
  };
  if (budget.parentTaskId !== undefined) json.parentTaskId = budget.parentTaskId;
  if (budget.endedAt !== undefined) json.endedAt = budget.endedAt;
  if (budget.warned !== undefined) json.warned = budget.warned;
  return json;
}

/**
 * The kernels rebuilt from remembered state, with hooks that record every event they emit. Each
 * kernel is built on first use, so a command that only takes a step never rebuilds the loop graph.
 */
export class MemorySession {
  readonly state: MemoryState;
  readonly #options: MemoryOptions;
  readonly #clock: Clock;
  readonly #record: (event: MemoryEvent) => void;
  readonly #lifecycles = new Map<string, TaskLifecycle>();
  #loop: LoopDetector | undefined;
  #budget: BudgetTracker | undefined;
  #idle: IdleGuard | undefined;
  #actions: ActionGuard | undefined;

  /**
   * @param record - receives every event; by default it applies the event to `state`.
   */
  constructor(
    state: MemoryState,
    options: MemoryOptions = {},
    record?: (event: MemoryEvent) => void,
  ) {
    this.state = state;
    this.#options = options;
    this.#clock = options.clock ?? systemClock;
    this.#record = record ?? ((event) => applyEvent(state, event));
  }

  /** The loop detector over every remembered task, oldest first; terminal tasks count as finished. */
  get loop(): LoopDetector {
    if (this.#loop === undefined) {
      const nodes: RegisteredNode[] = [];
      for (const t of this.state.tasks.values()) {
        if (t.agentId === undefined || t.taskType === undefined) continue;
        const node: RegisteredNode = {
          taskId: t.taskId,
          agentId: t.agentId,
          taskType: t.taskType,
          depth: t.depth ?? 0,
          finished: isTerminalState(t.state),
        };
        if (t.title !== undefined) node.title = t.title;
        if (t.parentTaskId !== undefined) node.parentTaskId = t.parentTaskId;
        if (t.createdByTaskId !== undefined) node.createdByTaskId = t.createdByTaskId;
        nodes.push(node);
      }
      const maxDepth = this.#options.maxDepth ?? 10;
      const maxNodes = this.#options.maxNodes ?? 1000;
      const loop = LoopDetector.fromJSON({ maxDepth, maxNodes, nodes });
      loop.onRegister((event) => this.#record({ type: 'register', event, at: this.#now() }));
      this.#loop = loop;
    }
    return this.#loop;
  }

  /**
   * The budget tracker over every remembered task with a budget. Budgets are loaded as they are
   * asked for (a task and its ancestors), so a step on one task of thousands reads one chain.
   */
  get budget(): BudgetTracker {
    if (this.#budget === undefined) {
      const budget = new BudgetTracker({
        clock: this.#clock,
        defaults: this.#options.budgetDefaults,
        warnAt: this.#options.warnAt,
        onWarning: this.#options.onWarning,
        load: (taskId) => budgetJSON(this.state.tasks.get(taskId)),
      });
      budget.onRecord((event) => this.#record({ type: 'budget', event }));
      this.#budget = budget;
    }
    return this.#budget;
  }

  /** The idle guard with every remembered sleep that has not timed out. */
  get idle(): IdleGuard {
    if (this.#idle === undefined) {
      const sleeping = [];
      for (const agent of this.state.agents.values()) if (agent.sleep) sleeping.push(agent.sleep);
      const idle = IdleGuard.fromJSON(
        { sleeping },
        { clock: this.#clock, defaultTimeoutSeconds: this.#options.idleTimeoutSeconds },
      );
      idle.onChange((event) => this.#record({ type: 'idle', event }));
      this.#idle = idle;
    }
    return this.#idle;
  }

  /**
   * The action guard over every remembered task's tool calls, oldest first, with a hook that
   * records each observation, result and refusal (and the history after it) in the task's record.
   * Reads every task record; for one task's call, {@link actionsOf} reads only that one.
   *
   * @throws StoreError `corrupt` when a remembered history cannot be read.
   */
  get actions(): ActionGuard {
    if (this.#actions === undefined) {
      const histories: ActionHistoryJSON[] = [];
      for (const task of this.state.tasks.values()) {
        if (task.actions !== undefined) histories.push(task.actions.history);
      }
      this.#actions = this.#actionGuard(histories);
    }
    return this.#actions;
  }

  /**
   * An action guard holding only `taskId`'s remembered history (or none yet), hooked like
   * {@link actions}: what a command that observes one call of one task needs.
   *
   * @throws StoreError `corrupt` when the remembered history cannot be read.
   */
  actionsOf(taskId: string): ActionGuard {
    if (this.#actions !== undefined) return this.#actions;
    const history = this.state.tasks.get(taskId)?.actions?.history;
    this.#actions = this.#actionGuard(history === undefined ? [] : [history]);
    return this.#actions;
  }

  #actionGuard(tasks: ActionHistoryJSON[]): ActionGuard {
    const options = { ...this.#options.actionRules, maxTasks: this.#options.maxActionTasks };
    let guard: ActionGuard;
    try {
      guard = ActionGuard.fromJSON({ maxTasks: options.maxTasks ?? 1000, tasks }, options);
    } catch (error) {
      if (!InvalidInputError.is(error)) throw error;
      throw new StoreError({ path: this.state.location, problem: 'corrupt' }, { cause: error });
    }
    guard.onObserve((event) => {
      const recorded = actionMemoryEvent(guard, event, this.#now());
      if (recorded !== undefined) this.#record(recorded);
    });
    return guard;
  }

  /**
   * The task's lifecycle, rebuilt from its remembered state and history, or `undefined` for an
   * unknown task. Reaching `done` or `cancelled` also marks the task finished in the loop detector.
   */
  lifecycle(taskId: string): TaskLifecycle | undefined {
    const cached = this.#lifecycles.get(taskId);
    if (cached !== undefined) return cached;
    const task = this.state.tasks.get(taskId);
    if (task === undefined) return undefined;
    const lifecycle = TaskLifecycle.fromJSON(
      { taskId, state: task.state, history: task.history },
      { clock: this.#clock },
    );
    lifecycle.onTransition((event) => {
      this.#record({ type: 'transition', event });
      if (isTerminalState(event.to)) this.#loop?.markFinished(taskId);
    });
    this.#lifecycles.set(taskId, lifecycle);
    return lifecycle;
  }

  /** The task's remembered record. */
  task(taskId: string): TaskRecord | undefined {
    return this.state.tasks.get(taskId);
  }

  /** Every remembered task, oldest first. */
  tasks(): TaskRecord[] {
    return [...this.state.tasks.values()];
  }

  /** Appends a note to a task (creating its record if needed). */
  note(taskId: string, text: string, author?: string): TaskNote {
    const note: TaskNote = { at: this.#now(), text };
    if (author !== undefined) note.author = author;
    this.#record({ type: 'note', taskId, note });
    return note;
  }

  /** Sets a context value on a task; `undefined` removes the key. */
  setContext(taskId: string, key: string, value: JsonValue | undefined): void {
    this.#record({ type: 'context', taskId, key, value, at: this.#now() });
  }

  /** Records the admission case a task was created with. */
  setAdmission(taskId: string, admission: Record<string, string>): void {
    this.#record({ type: 'admission', taskId, admission, at: this.#now() });
  }

  #now(): string {
    return toIsoTime(this.#clock.now());
  }
}
