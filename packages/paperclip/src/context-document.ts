import { checkId, InvalidInputError } from '@exec-kernel/core';
import type { IssueDocuments } from './documents.js';
import type { IssuesApi } from './issues.js';
import {
  CONTEXT_DOCUMENT_KEY,
  type JsonValue,
  jsonValueProblem,
  setKey,
  type TaskContext,
} from './task-context.js';
import type { PaperclipIssue } from './types.js';

/**
 * `issue`'s task context: the `exec-kernel-context` document (`{}` without one) and the
 * issue's comments, oldest first, as notes.
 *
 * @throws TransportError when the document holds no JSON object (say, after a hand edit).
 */
export async function readTaskContext(
  documents: IssueDocuments,
  issues: IssuesApi,
  issue: PaperclipIssue,
): Promise<TaskContext> {
  const { data: context } = await documents.read(issue, CONTEXT_DOCUMENT_KEY);
  const notes = await issues.comments(issue);
  return { taskId: issue.id, identifier: issue.identifier, context, notes };
}

/**
 * Checks a context key and value before anything is sent.
 *
 * @throws InvalidInputError for a key core's id rule refuses, or a value that is not JSON (or
 *   nests deeper than 64 levels).
 */
export function checkContextEntry(key: string, value: JsonValue | undefined): void {
  checkId(key, 'context key');
  const problem = value === undefined ? undefined : jsonValueProblem(value);
  if (problem !== undefined) throw new InvalidInputError({ field: 'context value', problem });
}

/**
 * Sets `key` in `issue`'s context document (`undefined` removes it), retried against the latest
 * revision; the whole context after.
 *
 * @throws ConflictError when other writers kept winning for 5 attempts.
 */
export async function writeContextValue(
  documents: IssueDocuments,
  issue: PaperclipIssue,
  key: string,
  value: JsonValue | undefined,
): Promise<Record<string, JsonValue>> {
  const { data } = await documents.update(
    issue,
    CONTEXT_DOCUMENT_KEY,
    'exec-kernel context',
    (context) => {
      if (value === undefined) delete context[key];
      else setKey(context, key, value);
    },
  );
  return data;
}
