import type { TaskState, Unsubscribe } from '@exec-kernel/core';
import type {
  AgentRow,
  EscalationRow,
  EscalationStatus,
  EventRow,
  JsonValue,
  NewEscalationRow,
  NewEvent,
  NewTaskRow,
  TaskRow,
} from '../model.js';

/** Which tasks `listTasks` returns; always ordered by `seq`. */
export interface TaskFilter {
  state?: TaskState | undefined;
  type?: string | undefined;
  /** The enqueuing agent. */
  agentId?: string | undefined;
  leaseOwner?: string | undefined;
  /** Only tasks after this position (the list cursor). */
  afterSeq?: number | undefined;
  limit: number;
}

/** Which agents {@link Storage.listAgentsHolding} returns: by id, after the cursor. */
export interface AgentListFilter {
  /** Only agents whose id sorts after this one (the list cursor). */
  afterId?: string | undefined;
  limit: number;
  /** A lease is live when it runs until `now` or later (`leaseUntil >= now`). */
  now: number;
}

/** An agent and the tasks it holds under a live lease, ordered by id. */
export interface AgentHolding {
  agent: AgentRow;
  holding: string[];
}

/** A request for the next claimable task. */
export interface ClaimRequest {
  agentId: string;
  /** Only tasks of these types; `null` for any. */
  types: string[] | null;
  /** Claim this task only (if it is `todo`), instead of the next one. */
  taskId?: string | undefined;
  /** Pass over these tasks, even when they are next (ignored with `taskId`). */
  exceptIds?: readonly string[] | undefined;
  leaseId: string;
  leaseUntil: number;
  now: number;
  /**
   * Written, in the same transaction, when the claim takes at least one task while the claimant
   * sleeps (`sleepUntil` after `now`): the claimant is woken (its sleep fields cleared).
   */
  wake?: NewEvent | undefined;
}

/**
 * The event a claim writes for each task it takes: the engine sets `taskId` to that task and adds
 * `attempts` (the task's count, this claim included) to `data`. A template rather than a function
 * of the task, so that a SQL engine can build the events in the claim's own statement.
 */
export interface ClaimEvent {
  type: string;
  agentId: string;
  data: { [key: string]: JsonValue };
  at: number;
}

/** The event {@link ClaimEvent} describes, for `task`. */
export function claimEventFor(template: ClaimEvent, task: TaskRow): NewEvent {
  return {
    type: template.type,
    taskId: task.id,
    agentId: template.agentId,
    data: { attempts: task.attempts, ...template.data },
    at: template.at,
  };
}

/** What a compare-and-set update expects to find. `undefined` fields are not checked. */
export interface Expectation {
  state: TaskState;
  leaseOwner?: string | null | undefined;
  leaseId?: string | null | undefined;
  /** The lease still runs at this time (`leaseUntil >= leaseLiveAt`): a holder's write. */
  leaseLiveAt?: number | undefined;
  /** The lease ended before this time (`leaseUntil < leaseEndedBefore`): the reaper's write. */
  leaseEndedBefore?: number | undefined;
}

/** Fields an update may change (not the owner nor its idempotency key: a retry finds it by them). */
export type TaskChanges = Partial<
  Omit<TaskRow, 'id' | 'seq' | 'createdAt' | 'agentId' | 'idempotencyKey'>
>;

/** What is written with an update, in the same transaction. */
export interface UpdateExtras {
  events: NewEvent[];
  escalation?: NewEscalationRow | undefined;
}

/** One compare-and-set of {@link Storage.updateTasks}. */
export interface TaskUpdate {
  id: string;
  expect: Expectation;
  changes: TaskChanges;
  extras: UpdateExtras;
}

/** The claim {@link Storage.updateThenClaim} makes after its updates. */
export interface FollowingClaim {
  request: ClaimRequest;
  max: number;
  event: ClaimEvent;
}

/** Counters for spending. */
export interface SpendingDelta {
  steps: number;
  tokens: number;
  costUsd: number;
}

/** One note on a task, as {@link Storage.addNote} keeps it. */
export interface TaskNote {
  /** When it was written, in ms since the epoch. */
  at: number;
  agentId: string;
  text: string;
}

/** What {@link Storage.getContext} returns: a task's key/value context and its notes, oldest first. */
export interface TaskContext {
  context: Record<string, JsonValue>;
  notes: TaskNote[];
}

/**
 * One step of a task's action history, run by {@link Storage.recordAction} under the task's lock:
 * given the history as saved (`undefined` when there is none), it returns the history to save,
 * the events to write with it and what the caller gets back. It must be synchronous and may
 * throw, in which case nothing is written.
 */
export type ActionStep<T> = (saved: JsonValue | undefined) => {
  history: JsonValue;
  events: NewEvent[];
  value: T;
};

/** What changed, for wake-ups: a task may have become claimable, or events were appended. */
export type ChangeSignal = 'task' | 'event';

/**
 * A storage engine for the coordination service. Every method is one atomic operation: the
 * events (and escalation) it is given are written in the same transaction as the change, so the
 * log never disagrees with the tasks. Rules live in the service, not here: engines store, claim
 * and compare-and-set. Every engine passes the same conformance suite.
 */
export interface Storage {
  readonly engine: 'memory' | 'sqlite' | 'postgres';
  /** Where the data lives, safe to print (no password): `memory`, `sqlite:/path`, `postgres://host/db`. */
  readonly location: string;

  /** Creates or migrates the schema; takes whatever lock the engine needs to be the only writer. */
  open(): Promise<void>;
  close(): Promise<void>;
  /** Resolves when the storage answers; throws otherwise. */
  ping(): Promise<void>;

  /**
   * Inserts a task and its `task.enqueued` event. A task with the same `idempotencyKey` from the
   * same agent is returned instead (`created: false`, nothing written).
   *
   * @throws ConflictError when a task with the same id exists.
   */
  insertTask(task: NewTaskRow, event: NewEvent): Promise<{ task: TaskRow; created: boolean }>;
  getTask(id: string): Promise<TaskRow | undefined>;
  /** The tasks with these ids that exist, in no particular order; one read for all of them. */
  getTasks(ids: readonly string[]): Promise<TaskRow[]>;
  listTasks(filter: TaskFilter): Promise<TaskRow[]>;
  /** The tasks with these ids and every ancestor along `parentId` and `createdById`, once each. */
  lineage(ids: readonly string[]): Promise<TaskRow[]>;
  /** How many tasks are in each state. */
  countTasks(): Promise<Record<TaskState, number>>;

  /**
   * Claims the next `todo` task (highest priority, then oldest), or the one named: sets it
   * `in_progress` with the lease, counts an attempt, sets `startedAt` on the first claim, writes
   * the task's {@link ClaimEvent} and wakes a sleeping claimant (`request.wake`). Concurrent
   * claims never return the same task.
   */
  claim(request: ClaimRequest, event: ClaimEvent): Promise<TaskRow | undefined>;

  /**
   * Claims up to `max` of the next `todo` tasks, in claim order, in one transaction, all under the
   * request's lease (`request.taskId` is ignored). Concurrent claims never return the same task.
   */
  claimMany(request: ClaimRequest, max: number, event: ClaimEvent): Promise<TaskRow[]>;

  /**
   * Compare-and-set: applies `changes` (and writes `extras`) only if the task still matches
   * `expect`. Returns the updated task, or `undefined` when it did not match.
   */
  updateTask(
    id: string,
    expect: Expectation,
    changes: TaskChanges,
    extras: UpdateExtras,
  ): Promise<TaskRow | undefined>;

  /**
   * Several compare-and-sets in one transaction: each applies (its row in the result) or not
   * (`undefined`) on its own, as {@link updateTask} would.
   */
  updateTasks(updates: readonly TaskUpdate[]): Promise<Array<TaskRow | undefined>>;

  /**
   * {@link updateTasks}, then, in the same transaction and only when at least one update applied,
   * {@link claimMany} (`claim.request.taskId` is ignored): a worker finishing its work and taking
   * the next in one commit. The claim never takes a task named in `updates` (nor one of
   * `claim.request.exceptIds`). `claimed` is `undefined` when no update applied, so no claim was
   * made.
   */
  updateThenClaim(
    updates: readonly TaskUpdate[],
    claim: FollowingClaim,
  ): Promise<{ tasks: Array<TaskRow | undefined>; claimed: TaskRow[] | undefined }>;

  /**
   * Adds spending to each task (a task and its budget ancestors, once each, unknown ids skipped)
   * and writes `event`. With `expect`, a compare-and-set on the first task (the one spent on, as
   * {@link updateTask} checks it): when it does not match, nothing at all is written and the
   * result is `undefined`. So a lease that lapsed (`leaseLiveAt`) or was taken over cannot spend.
   */
  addSpending(
    ids: readonly string[],
    delta: SpendingDelta,
    now: number,
    event: NewEvent,
    expect?: Expectation | undefined,
  ): Promise<TaskRow[] | undefined>;

  /**
   * A task's key/value context (keys sorted) and its notes (oldest first), in two
   * indexed reads; `undefined` for an unknown task. Bounds on keys and notes are the service's.
   */
  getContext(taskId: string): Promise<TaskContext | undefined>;

  /**
   * Sets one key of a task's context (`value` `undefined` deletes it) and writes `event`, in one
   * transaction. Returns the context after the write, or `undefined` (nothing written) for an
   * unknown task.
   */
  setContext(
    taskId: string,
    key: string,
    value: JsonValue | undefined,
    event: NewEvent,
  ): Promise<Record<string, JsonValue> | undefined>;

  /**
   * Appends a note to a task and writes `event`, in one transaction. Returns the note, or
   * `undefined` (nothing written) for an unknown task.
   */
  addNote(taskId: string, note: TaskNote, event: NewEvent): Promise<TaskNote | undefined>;

  /**
   * Runs `step` on a task's saved action history and saves what it returns, with its events, in
   * one transaction that holds the task's row (PostgreSQL: `FOR UPDATE`), so concurrent steps on
   * one task apply one after the other and none is lost. Only when the task matches `expect` (as
   * {@link updateTask} checks it); otherwise nothing is run or written and the result is
   * `undefined`. An error `step` throws is rethrown, nothing written. A task's history is dropped
   * in the transaction that moves it to `done` or `cancelled`.
   */
  recordAction<T>(
    taskId: string,
    expect: Expectation,
    step: ActionStep<T>,
  ): Promise<{ value: T } | undefined>;

  /** A task's saved action history, `undefined` when it has none. */
  getActions(taskId: string): Promise<JsonValue | undefined>;

  /** `in_progress` tasks whose lease ended before `now`, oldest lease first. */
  listExpiredLeases(now: number, limit: number): Promise<TaskRow[]>;

  /** Creates or replaces an agent. */
  putAgent(agent: AgentRow): Promise<void>;
  getAgent(id: string): Promise<AgentRow | undefined>;
  findAgentByTokenHash(tokenHash: string): Promise<AgentRow | undefined>;
  listAgents(): Promise<AgentRow[]>;
  /**
   * Agents ordered by id (by code point, as UTF-8 bytes sort, whatever the database's collation), each with the ids of
   * the `in_progress` tasks it holds under a lease live at `filter.now`, ordered the same way. Two
   * reads: the page of agents, then their leased tasks in one query.
   */
  listAgentsHolding(filter: AgentListFilter): Promise<AgentHolding[]>;
  updateAgent(
    id: string,
    changes: Partial<Omit<AgentRow, 'id' | 'createdAt'>>,
    event: NewEvent | undefined,
  ): Promise<AgentRow | undefined>;

  insertEscalation(escalation: NewEscalationRow, event: NewEvent): Promise<EscalationRow>;
  getEscalation(id: string): Promise<EscalationRow | undefined>;
  listEscalations(filter: {
    status?: EscalationStatus | undefined;
    afterSeq?: number | undefined;
    limit: number;
  }): Promise<EscalationRow[]>;
  /** Compare-and-set on the escalation's status. */
  updateEscalation(
    id: string,
    expectStatuses: readonly EscalationStatus[],
    changes: Partial<Omit<EscalationRow, 'id' | 'seq' | 'createdAt'>>,
    event: NewEvent,
  ): Promise<EscalationRow | undefined>;
  countOpenEscalations(): Promise<number>;

  /** Appends an event on its own (a refusal that changed nothing else). */
  appendEvent(event: NewEvent): Promise<EventRow>;
  /**
   * Events after `afterSeq`, oldest first; with `taskId`, only that task's (a full page of them,
   * however many other events lie between).
   */
  readEvents(afterSeq: number, limit: number, taskId?: string | undefined): Promise<EventRow[]>;

  /**
   * Calls `listener` after a write that may make a task claimable (`task`) or appends events
   * (`event`), in this process and (for PostgreSQL) in every other service instance.
   */
  onChange(listener: (signal: ChangeSignal) => void): Unsubscribe;
}
