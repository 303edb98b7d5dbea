import type { TaskState } from '@exec-kernel/core';
import type { TaskAdmission, WakeReason } from '@exec-kernel/lifecycle';
import type { InboxItem, IssuePriority, PaperclipIssue } from './types.js';

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

/** Options of {@link PaperclipAdapter.step}. */
export interface StepOptions {
  /** How many steps. Default: `1`. */
  count?: number | undefined;
}

/** What {@link PaperclipAdapter.step} returns: the budget after the steps. */
export interface TaskSteps {
  /** The issue's UUID. */
  taskId: string;
  identifier: string | undefined;
  stepsTaken: number;
  maxSteps: number;
  /** Steps left before the limit. */
  remaining: number;
  /** Seconds since the first step. */
  elapsedSeconds: number;
}
