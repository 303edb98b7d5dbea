import { isValidId } from '@exec-kernel/core';

/** A JSON value, as task context holds them. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | JsonValue[]
  | { [key: string]: JsonValue };

/** The issue document that holds a task's key/value context (Paperclip keys: `[a-z0-9_-]`, ≤ 64). */
export const CONTEXT_DOCUMENT_KEY = 'exec-kernel-context';

/** A note on a task: one comment of its Paperclip issue. */
export interface TaskNote {
  /** The comment's id. */
  id: string;
  text: string;
  /** The agent (or else the user) who wrote it. */
  author: string | undefined;
  /** When it was written (ISO-8601), as Paperclip says. */
  at: string | undefined;
}

/** What {@link PaperclipAdapter.getContext} returns. */
export interface TaskContext {
  /** The UUID. */
  taskId: string;
  identifier: string | undefined;
  /** The key/value context, from the issue's `exec-kernel-context` document (`{}` without one). */
  context: Record<string, JsonValue>;
  /** The comments, oldest first. */
  notes: TaskNote[];
}

const MAX_NESTING = 64;
const FENCE = /```json\n([\s\S]*)\n```\s*$/;

/** Why `value` cannot be stored as context, or `undefined` when it can. */
export function jsonValueProblem(value: unknown): string | undefined {
  const stack: Array<[unknown, number]> = [[value, 0]];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const [node, depth] = next;
    if (depth > MAX_NESTING) return `must not nest deeper than ${MAX_NESTING} levels`;
    if (node === null || typeof node === 'string' || typeof node === 'boolean') continue;
    if (typeof node === 'number') {
      if (!Number.isFinite(node)) return 'must hold only finite numbers';
      continue;
    }
    if (Array.isArray(node)) {
      for (const item of node) stack.push([item, depth + 1]);
      continue;
    }
    if (typeof node === 'object' && Object.getPrototypeOf(node) === Object.prototype) {
      for (const item of Object.values(node)) stack.push([item, depth + 1]);
      continue;
    }
    return 'must be JSON: null, a boolean, a finite number, a string, an array or a plain object';
  }
  return undefined;
}

/** The document body for `context`: a line for people, then the JSON in a fenced block. */
export function contextBody(context: Readonly<Record<string, JsonValue>>): string {
  return [
    'Task context kept by exec-kernel (`exec-kernel context set`); edit the JSON below with care.',
    '',
    '```json',
    JSON.stringify(context, null, 2),
    '```',
    '',
  ].join('\n');
}

/**
 * The context in a document body, or `undefined` when the body holds no JSON object in a fenced
 * block. Keys that are not ids are dropped; keys go in as own properties (a `__proto__` key stays
 * a key).
 */
export function readContextBody(body: unknown): Record<string, JsonValue> | undefined {
  const match = typeof body === 'string' ? FENCE.exec(body) : null;
  if (match === null) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(match[1] as string);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  const context: Record<string, JsonValue> = {};
  for (const [key, value] of Object.entries(parsed)) {
    if (isValidId(key)) setKey(context, key, value as JsonValue);
  }
  return context;
}

/** Sets `key` as an own, enumerable property (plain assignment would run `__proto__`'s setter). */
export function setKey(context: Record<string, JsonValue>, key: string, value: JsonValue): void {
  Object.defineProperty(context, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

/** A comment as a note, or `undefined` when the item is not a comment Paperclip would send. */
export function noteOf(comment: unknown): TaskNote | undefined {
  if (typeof comment !== 'object' || comment === null) return undefined;
  const c = comment as Record<string, unknown>;
  if (!isValidId(c.id) || typeof c.body !== 'string') return undefined;
  const author = [c.authorAgentId, c.authorUserId].find((a) => isValidId(a)) as string | undefined;
  return {
    id: c.id,
    text: c.body,
    author,
    at: typeof c.createdAt === 'string' ? c.createdAt : undefined,
  };
}
