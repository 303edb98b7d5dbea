import { checkId, InvalidInputError } from '@exec-kernel/core';
import {
  type ActionCall,
  type ActionCheck,
  ActionHistory,
  type ActionResultRecord,
  type ActionRules,
} from '@exec-kernel/loop';
import type { IssueDocuments } from './documents.js';
import type { JsonValue } from './task-context.js';
import type { PaperclipIssue } from './types.js';

/** The issue document that holds a task's action history (`ActionHistoryJSON`). */
export const ACTIONS_DOCUMENT_KEY = 'exec-kernel-actions';

const TITLE = 'exec-kernel actions';

/**
 * Checks `call` the way {@link recordAction} will, on an empty history: the kernel's own input
 * rules (JSON arguments and result), and core's id rule for the tool name, as the service and
 * the CLI apply it (a refusal names the tool, and its line is posted as a comment), so a bad call
 * is refused before anything is sent. An empty history never refuses a call (every `blockAt` is
 * at least 2).
 *
 * @throws InvalidInputError for a call the kernel cannot read.
 */
export function checkActionCall(name: string, call: ActionCall, rules: ActionRules): void {
  checkId(call.tool, 'tool name');
  checkDigest(call.resultDigest);
  new ActionHistory(name, rules).check(call);
}

/**
 * A caller's result digest is kept in the document as it is, so it must be one the kernel can
 * read back (a non-empty string).
 *
 * @throws InvalidInputError otherwise.
 */
export function checkDigest(digest: unknown): void {
  if (digest !== undefined && (typeof digest !== 'string' || digest === '')) {
    throw new InvalidInputError({ field: 'result digest', problem: 'must be a non-empty string' });
  }
}

/**
 * Observes `call` in `issue`'s action history, kept in its `exec-kernel-actions` document, with
 * `ActionHistory` from `@exec-kernel/loop`. A read-modify-write against the revision read (a
 * concurrent writer's call is read again and counted), written only when the call is allowed:
 * a refused call records nothing, in the document as in the kernel.
 *
 * @throws LoopDetectionError when the call reaches a rule's `blockAt`; nothing is written.
 * @throws TransportError when the document holds no action history (nothing is written).
 */
export async function observeAction(
  documents: IssueDocuments,
  issue: PaperclipIssue,
  call: ActionCall,
  rules: ActionRules,
): Promise<ActionCheck> {
  const { result } = await documents.update(issue, ACTIONS_DOCUMENT_KEY, TITLE, (data) => {
    const history = load(documents, issue, data, rules);
    const check = history.observe(call);
    save(data, history);
    return check;
  });
  return result;
}

/**
 * Attaches `result` to the newest call of `issue`'s action history, as
 * `ActionHistory.recordResult` does, and writes it back. Returns the kernel's answer: the call it was
 * attached to, with any warnings.
 *
 * @throws LoopDetectionError (`no_progress`) when the result reaches the rule's `blockAt`;
 *   nothing is written.
 * @throws InvalidInputError when the history has no call, or its newest call has a result.
 * @throws TransportError when the document holds no action history (nothing is written).
 */
export async function observeActionResult(
  documents: IssueDocuments,
  issue: PaperclipIssue,
  value: unknown,
  digest: string | undefined,
  rules: ActionRules,
): Promise<ActionResultRecord> {
  const { result } = await documents.update(issue, ACTIONS_DOCUMENT_KEY, TITLE, (data) => {
    const history = load(documents, issue, data, rules);
    const record = history.recordResult(value, digest);
    save(data, history);
    return record;
  });
  return result;
}

function load(
  documents: IssueDocuments,
  issue: PaperclipIssue,
  data: Record<string, JsonValue>,
  rules: ActionRules,
): ActionHistory {
  if (Object.keys(data).length === 0) return new ActionHistory(issue.identifier ?? issue.id, rules);
  try {
    return ActionHistory.fromJSON(data, rules);
  } catch (error) {
    if (!(error instanceof InvalidInputError)) throw error;
    // The caller's input is fine; the stored record is not: say which record, and leave it be.
    throw documents.corrupt(
      issue,
      ACTIONS_DOCUMENT_KEY,
      `no action history in the ${ACTIONS_DOCUMENT_KEY} document (${error.problem})`,
    );
  }
}

function save(data: Record<string, JsonValue>, history: ActionHistory): void {
  for (const key of Object.keys(data)) delete data[key];
  Object.assign(data, history.toJSON());
}
