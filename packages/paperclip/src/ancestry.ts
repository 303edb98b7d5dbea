import type { StoredWorkNode } from '@exec-kernel/loop';
import { readMarker } from './marker.js';
import type { PaperclipIssue } from './types.js';

// Issues not created through the adapter have no type; this one matches no other.
const UNTYPED = '\u0000untyped';
const MAX_CREATOR_HOPS = 64;

/** What the loop rules need to know about a new issue's place among the existing ones. */
export interface Ancestry {
  /** The parent and the creator chain as rows for `loopOver`, keyed by Paperclip's UUIDs. */
  rows: StoredWorkNode[];
  parent: PaperclipIssue | undefined;
  creator: PaperclipIssue | undefined;
  /** Every issue read, by each name it was asked for, its UUID and its identifier. */
  seen: Map<string, PaperclipIssue>;
}

/** Reads one issue by id or identifier; `field` names it in a refusal of that id. */
export type IssueReader = (id: string, field: string) => Promise<PaperclipIssue>;

function rowOf(issue: PaperclipIssue, depth?: number): StoredWorkNode {
  const marker = readMarker(issue.description);
  return {
    taskId: issue.id,
    agentId: issue.createdByAgentId ?? issue.assigneeAgentId ?? UNTYPED,
    taskType: marker.taskType ?? UNTYPED,
    title: issue.title,
    parentTaskId: issue.parentId ?? undefined,
    createdByTaskId: marker.createdByTaskId,
    depth,
  };
}

/**
 * Loads a new issue's ancestry from Paperclip: its parent (whose depth is the length of the
 * `ancestors` Paperclip returns with it) and the creator chain recorded in the issues' markers,
 * followed until it ends, repeats (the rows then hold the loop, and the rules refuse it) or runs
 * 64 hops.
 */
export async function loadAncestry(
  read: IssueReader,
  links: { parentTaskId: string | undefined; createdByTaskId: string | undefined },
): Promise<Ancestry> {
  const rows: StoredWorkNode[] = [];
  const seen = new Map<string, PaperclipIssue>();
  const load = async (id: string, field: string): Promise<PaperclipIssue> => {
    const cached = seen.get(id);
    if (cached !== undefined) return cached;
    const issue = await read(id, field);
    seen.set(id, issue).set(issue.id, issue);
    if (issue.identifier !== undefined) seen.set(issue.identifier, issue);
    return issue;
  };

  let parent: PaperclipIssue | undefined;
  if (links.parentTaskId !== undefined) {
    parent = await load(links.parentTaskId, 'parent task id');
    rows.push(rowOf(parent, parent.ancestors?.length ?? 0));
  }
  let creator: PaperclipIssue | undefined;
  let next = links.createdByTaskId;
  for (let hop = 0; next !== undefined && hop < MAX_CREATOR_HOPS; hop++) {
    const issue = await load(next, 'creator task id');
    if (hop === 0) creator = issue;
    if (!rows.some((r) => r.taskId === issue.id)) rows.push(rowOf(issue));
    const following = readMarker(issue.description).createdByTaskId;
    const known = following === undefined ? undefined : seen.get(following);
    next = known !== undefined && rows.some((r) => r.taskId === known.id) ? undefined : following;
  }
  return { rows, parent, creator, seen };
}
