import { isValidId } from '@exec-kernel/core';

/**
 * What the adapter records about a task Paperclip has no field for: its type and the task whose
 * work produced it (the loop rules need both). Kept at the end of the description as an
 * HTML comment, which Paperclip's markdown view does not show.
 */
export interface TaskMarker {
  taskType?: string;
  createdByTaskId?: string;
}

const MARKER = /\n*<!-- exec-kernel (\{[^\n]*?\}) -->\s*$/;

/** Reads the marker from a description, if it has one; a `createdByTaskId` must be a valid id. */
export function readMarker(description: string | null | undefined): TaskMarker {
  const match = description ? MARKER.exec(description) : null;
  if (match === null) return {};
  try {
    const parsed = JSON.parse(match[1] as string) as Record<string, unknown>;
    const marker: TaskMarker = {};
    if (typeof parsed.taskType === 'string') marker.taskType = parsed.taskType;
    // Anyone who can edit a description can write a marker: a creator that is not an id (`..`,
    // a newline) is not followed.
    if (isValidId(parsed.createdByTaskId)) marker.createdByTaskId = parsed.createdByTaskId;
    return marker;
  } catch {
    return {};
  }
}

/** Appends the marker to a description (replacing an old one). */
export function withMarker(description: string, marker: TaskMarker): string {
  const body = description.replace(MARKER, '');
  // `-->` inside a value would end the comment early.
  const json = JSON.stringify(marker).replaceAll('-->', '--\\u003e');
  return `${body}${body === '' ? '' : '\n\n'}<!-- exec-kernel ${json} -->`;
}
