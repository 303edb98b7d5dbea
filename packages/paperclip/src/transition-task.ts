import { type Clock, checkId, type TaskState, toIsoTime } from '@exec-kernel/core';
import { validateTransition } from '@exec-kernel/lifecycle';
import { checkText } from './input.js';
import type { IssuesApi } from './issues.js';
import type { TaskTransitionEvent, TransitionedTask, TransitionTaskOptions } from './task-types.js';
import type { PaperclipIssue } from './types.js';

/** What {@link transitionTask} needs of its {@link PaperclipAdapter}. */
export interface TransitionContext {
  agentId: string;
  clock: Clock;
  issues: IssuesApi;
  /** Told of the issue once it is read, so a refusal names it. */
  about: (issue: PaperclipIssue) => PaperclipIssue;
  /** The adapter's own `checkout` and `comment`, which a checkout move goes through. */
  checkout: (id: string) => Promise<PaperclipIssue>;
  comment: (id: string, body: string) => Promise<unknown>;
  /** Told of the move once it is made, before it is returned. */
  moved: (event: TaskTransitionEvent) => void;
}

/**
 * The body of {@link PaperclipAdapter.transitionTask}: the input checks, the current status read
 * and the move checked against the lifecycle table before any write, then a checkout or a PATCH.
 */
export async function transitionTask(
  ctx: TransitionContext,
  id: string,
  to: TaskState,
  options: TransitionTaskOptions,
): Promise<TransitionedTask> {
  for (const blocker of options.blockedByIssueIds ?? []) checkId(blocker, 'blocker id');
  if (options.comment !== undefined) checkText(options.comment, 'comment');
  if (options.reviewerUserId !== undefined) checkId(options.reviewerUserId, 'reviewer id');
  const current = ctx.about(await ctx.issues.get(id));
  const from = current.status;
  const reason = validateTransition(from, to, current.identifier ?? current.id);
  let issue: PaperclipIssue;
  if (from === 'todo' && to === 'in_progress') {
    issue = await ctx.checkout(current.id);
    if (options.comment !== undefined) await ctx.comment(current.id, options.comment);
  } else {
    const body: Record<string, unknown> = { status: to };
    if (options.comment !== undefined) body.comment = options.comment;
    if (to === 'blocked') {
      if (options.blockedByIssueIds !== undefined) {
        body.blockedByIssueIds = options.blockedByIssueIds;
      } else {
        // Paperclip lets an agent name only itself as the unblock owner.
        body.unblockDescriptor = options.unblockDescriptor ?? {
          owner: { agentId: ctx.agentId },
          action: options.comment ?? 'Unblock this task',
        };
      }
    }
    if (to === 'in_review' && options.reviewerUserId !== undefined) {
      body.assigneeUserId = options.reviewerUserId;
    }
    issue = await ctx.issues.move(current, body, { from, to });
  }
  const event: TaskTransitionEvent = {
    taskId: current.id,
    identifier: current.identifier,
    agentId: ctx.agentId,
    from,
    to,
    reason,
    comment: options.comment,
    at: toIsoTime(ctx.clock.now()),
  };
  ctx.moved(event);
  return { id: current.id, identifier: current.identifier, from, to, reason, issue };
}
