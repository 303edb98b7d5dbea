import { withMarker } from './marker.js';
import type { CreateTaskOptions } from './task-types.js';

/** The admission case as a markdown list for the issue description. */
export function admissionBlock(admission: Record<string, unknown>): string {
  const labels: Record<string, string> = {
    consumer: 'Consumer',
    painPoint: 'Pain point',
    expectedValue: 'Expected value',
    validationPath: 'Validation',
  };
  return Object.entries(admission)
    .filter(([, v]) => typeof v === 'string' && v.trim() !== '')
    .map(([k, v]) => `- **${labels[k] ?? k}:** ${v as string}`)
    .join('\n');
}

/**
 * The body of `POST /companies/{id}/issues` for a task the rules admitted: its description for
 * people (the caller's, then the admission case) ending in the marker of type and creator, and
 * `todo` unless the caller asks for `backlog`.
 */
export function newIssueBody(
  title: string,
  taskType: string,
  options: CreateTaskOptions,
  links: { parentId: string | undefined; creatorId: string | undefined },
): Record<string, unknown> {
  const marker = {
    taskType,
    ...(links.creatorId === undefined ? {} : { createdByTaskId: links.creatorId }),
  };
  const human = [options.description ?? '', admissionBlock(options.admission)].filter(
    (s) => s !== '',
  );
  const body: Record<string, unknown> = {
    title,
    description: withMarker(human.join('\n\n'), marker),
    status: options.status ?? 'todo',
  };
  if (links.parentId !== undefined) body.parentId = links.parentId;
  if (options.priority !== undefined) body.priority = options.priority;
  if (options.assignee !== undefined) body.assigneeAgentId = options.assignee;
  if (options.idempotencyKey !== undefined) body.idempotencyKey = options.idempotencyKey;
  if (options.allowDuplicate !== undefined) body.allowDuplicate = options.allowDuplicate;
  return body;
}
