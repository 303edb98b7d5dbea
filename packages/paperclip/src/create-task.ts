import {
  type Clock,
  checkId,
  type LoopDetectionDetails,
  LoopDetectionError,
} from '@exec-kernel/core';
import {
  type AdmissionOptions,
  admitTask,
  type IdleGuard,
  type TaskCandidate,
} from '@exec-kernel/lifecycle';
import { loopOver, type StoredWorkNode } from '@exec-kernel/loop';
import { loadAncestry } from './ancestry.js';
import { checkText } from './input.js';
import type { IssuesApi } from './issues.js';
import { newIssueBody } from './new-issue.js';
import type { CreatedTask, CreateTaskOptions } from './task-types.js';
import type { PaperclipIssue } from './types.js';

/** What {@link createTask} needs of its {@link PaperclipAdapter}. */
export interface CreateContext {
  agentId: string;
  maxDepth: number;
  /** The issue this run works: the creator of a new task that names none. */
  taskId: string | undefined;
  idle: IdleGuard;
  clock: Clock;
  admission: AdmissionOptions;
  issues: IssuesApi;
  companyId: () => Promise<string>;
}

/**
 * The body of {@link PaperclipAdapter.createTask}: `admitTask` without the ancestry (idle and
 * admission, before anything is read), the input checks, then again over the ancestry read from
 * Paperclip, and the create.
 */
export async function createTask(
  ctx: CreateContext,
  title: string,
  taskType: string,
  options: CreateTaskOptions,
): Promise<CreatedTask> {
  const name = options.name ?? title;
  const candidate = {
    taskId: name,
    agentId: ctx.agentId,
    taskType,
    title,
    admission: options.admission,
    // The budget's depth limit is the adapter's, so the loop rule is the one that speaks.
    budget: { maxDepth: ctx.maxDepth },
  };
  // The same rules once without the ancestry first: idle and admission refuse before
  // anything is read, as they do on every other backend.
  admit(ctx, candidate, []);
  checkId(taskType, 'task type');
  checkText(title, 'title');
  if (options.name !== undefined) checkText(options.name, 'task name');
  if (options.description !== undefined) checkText(options.description, 'description');
  if (options.assignee !== undefined) checkId(options.assignee, 'assignee');
  const ancestry = await loadAncestry((id, field) => ctx.issues.get(id, field), {
    parentTaskId: options.parentTaskId,
    createdByTaskId: options.createdByTaskId ?? ctx.taskId,
  });
  const parentId = ancestry.parent?.id;
  const creatorId = ancestry.creator?.id;
  const { depth } = admit(
    ctx,
    { ...candidate, parentTaskId: parentId, createdByTaskId: creatorId },
    ancestry.rows,
    ancestry.seen,
  );

  const body = newIssueBody(title, taskType, options, { parentId, creatorId });
  const issue = await ctx.issues.create(await ctx.companyId(), body);
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
}

/**
 * `admitTask` over `rows`, with the agent's sleep from the guard and the clock's now; throws
 * its refusal. Issues in a loop refusal are named by identifier (the rows hold UUIDs).
 */
function admit(
  ctx: CreateContext,
  candidate: TaskCandidate,
  rows: StoredWorkNode[],
  seen: ReadonlyMap<string, PaperclipIssue> = new Map(),
): { depth: number } {
  const sleep = ctx.idle.sleepOf(ctx.agentId);
  const decision = admitTask(candidate, {
    now: ctx.clock.now(),
    sleep: sleep && { untilMs: Date.parse(sleep.until), reason: sleep.reason },
    required: ctx.admission.required,
    loop: loopOver(rows, { maxDepth: ctx.maxDepth }),
  });
  if (decision.ok) return decision;
  const error = decision.error;
  if (!LoopDetectionError.is(error) || error.chain === undefined) throw error;
  const d = error.details as unknown as LoopDetectionDetails;
  const name = (id: string) => seen.get(id)?.identifier ?? id;
  throw new LoopDetectionError({ ...d, chain: error.chain.map(name) });
}
