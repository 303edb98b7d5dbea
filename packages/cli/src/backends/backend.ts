import type { TaskState } from '@exec-kernel/core';
import type { WakeReason } from '@exec-kernel/lifecycle';
import type { ActionCheck, ActionResultRecord } from '@exec-kernel/loop';
import type { JsonValue, TaskNote } from '@exec-kernel/memory';
import { UsageError } from '../context.js';

/** Where task commands act: the local file store, a Paperclip server, or a coordination service. */
export type BackendName = 'local' | 'paperclip' | 'coordination';

/** The `--backend` option task commands take. */
export const BACKEND_OPTION = { backend: { type: 'string' } } as const;

/** A task asked for by `task create`. */
export interface CreateInput {
  taskId: string;
  /** The creating agent; a service that knows its caller may use that instead. */
  agentId: string | undefined;
  taskType: string;
  title: string | undefined;
  parentTaskId: string | undefined;
  createdByTaskId: string | undefined;
  admission: Record<string, string>;
}

/** A move asked for by `task transition`. */
export interface TransitionInput {
  taskId: string;
  to: TaskState;
  comment: string | undefined;
  agentId: string | undefined;
  /** Paperclip: issues blocking this one, for `blocked`. */
  blockedBy: string[] | undefined;
  /** Paperclip: the human reviewing, for `in_review`. */
  reviewer: string | undefined;
}

/** What a backend answers: the fields its one line shows, and its own record as `data`. */
interface Answer {
  /** The task as the backend names it (Paperclip: `KER-12`). */
  name: string;
  data: unknown;
}

export interface Created extends Answer {
  state: string;
  depth: number;
  /** Said after the line when the task already existed (deduplicated). */
  note: string;
}

export interface Moved extends Answer {
  from: string;
  to: string;
  reason: string;
}

/** A task's or a list's lines, in the backend's own layout. */
export interface Described {
  lines: string[];
  data: unknown;
}

export interface Stepped extends Answer {
  stepsTaken: number;
  maxSteps: number;
  left: number;
}

export interface Held extends Answer {
  state: string;
  /** The lease a coordination service gave, if any. */
  lease?: { id: string; until: string } | undefined;
}

export interface ClaimedTask {
  taskId: string;
  type: string;
  lease: { id: string; until: string };
  data: unknown;
}

/** An agent's sleep as every backend reports it. */
export interface SleepView {
  agentId: string;
  reason: string;
  since: string;
  until: string;
}

/** A sleep in force: its record, and the wait for its end. */
export interface Asleep {
  sleep: SleepView;
  /** Resolves with why the sleep ended: timeout, a wake from elsewhere, or `signal`. */
  wait(signal: AbortSignal | undefined): Promise<WakeReason | 'interrupted'>;
}

export interface Woken {
  /** Whether the agent was asleep. */
  woken: boolean;
  data: Record<string, unknown>;
}

export interface SleepInput {
  agentId: string;
  timeoutSeconds: number;
  reason: string;
}

/**
 * What the task commands need from where tasks live. Each command parses its arguments, calls one
 * method and renders the answer; a backend that cannot do something throws the refusal that says
 * so (a `UsageError` or a `KernelError`), so no command asks which backend it has.
 */
export interface TaskBackend {
  readonly name: BackendName;
  create(input: CreateInput): Promise<Created>;
  transition(input: TransitionInput): Promise<Moved>;
  show(taskId: string): Promise<Described>;
  list(filter: { state: TaskState | undefined; agentId: string | undefined }): Promise<Described>;
  step(taskId: string, count: number): Promise<Stepped>;
  checkout(
    taskId: string,
    options: { agentId?: string | undefined; leaseSeconds?: number | undefined },
  ): Promise<Held>;
  release(taskId: string, options: { agentId?: string | undefined }): Promise<Held>;
  claim(options: {
    waitSeconds: number;
    leaseSeconds: number | undefined;
    types: string[] | undefined;
  }): Promise<ClaimedTask | undefined>;
  sleep(input: SleepInput): Promise<Asleep>;
  wake(agentId: string, reason: WakeReason): Promise<Woken>;
  getContext(taskId: string): Promise<Record<string, JsonValue>>;
  setContext(taskId: string, key: string, value: JsonValue): Promise<void>;
  addNote(taskId: string, text: string, author: string | undefined): Promise<TaskNote>;
  /**
   * Checks a tool call of a task against the action-loop rules and records it.
   * @throws LoopDetectionError when it is refused.
   */
  recordAction(input: ActionInput): Promise<ActionAnswer>;
  /**
   * Attaches a result (its digest) to the task's newest call.
   * @throws LoopDetectionError (`no_progress`) when it is refused.
   */
  recordActionResult(taskId: string, resultDigest: string): Promise<ActionResultAnswer>;
}

/** A tool call to observe, as `action` asks for it (the result, when given, already digested). */
export interface ActionInput {
  taskId: string;
  tool: string;
  args: unknown;
  resultDigest: string | undefined;
}

/** What `action` answers: the loop package's `ActionCheck` (and its warnings). */
export interface ActionAnswer {
  check: ActionCheck;
}

/** What `action-result` answers: the loop package's `ActionResultRecord` (the call it attached to). */
export type ActionResultAnswer = ActionResultRecord;

/** The refusal of a task command that only a task service can do. */
export function needsService(verb: string): UsageError {
  return new UsageError(
    `task ${verb} needs a task service: run inside a Paperclip heartbeat (PAPERCLIP_API_URL and PAPERCLIP_API_KEY), set EXEC_KERNEL_COORDINATION_URL, or pass --backend`,
  );
}
