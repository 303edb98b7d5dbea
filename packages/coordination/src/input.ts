import { checkId, InvalidInputError, textProblem, UNPAIRED_SURROGATE } from '@exec-kernel/core';

/** Deepest nesting of arrays and objects accepted in a request body (and a task payload). */
export const MAX_JSON_DEPTH = 64;

/**
 * Why a string inside JSON data (a payload, event data) cannot be stored alike by every engine,
 * or `undefined`: a NUL or a lone surrogate.
 */
export function dataStringProblem(value: string): string | undefined {
  // PostgreSQL stores NUL in neither text nor jsonb; SQLite rewrites a lone surrogate.
  if (value.includes('\u0000')) return 'must not contain NUL characters';
  if (UNPAIRED_SURROGATE.test(value)) return 'must not contain unpaired surrogates';
  return undefined;
}

/**
 * The first problem of a parsed JSON value, with where it is (`payload.items.3`; `path` names the
 * value itself, `''` for a whole request body): nesting deeper than `maxDepth`, or a key or string
 * {@link dataStringProblem} refuses. `undefined` when none. The walk never goes deeper than
 * `maxDepth`, so a hostile value cannot exhaust the stack.
 */
export function jsonProblem(
  value: unknown,
  path: string,
  maxDepth: number = MAX_JSON_DEPTH,
): { field: string; problem: string } | undefined {
  return walk(value, path, maxDepth, maxDepth);
}

const fieldName = (path: string): string => (path === '' ? 'request body' : path);
// A key is named in the path only when it is plain (a message never repeats odd text), and a
// path stops growing at 100 characters.
const child = (path: string, key: string | number): string => {
  if (path.length > 100) return path.endsWith('…') ? path : `${path}…`;
  const shown = typeof key === 'number' || /^[\w$-]{1,64}$/.test(key) ? String(key) : '*';
  return path === '' ? shown : `${path}.${shown}`;
};
/** The top-level field of a path: what a depth refusal names. */
const topField = (path: string): string => fieldName(path.split('.')[0] ?? '');

function walk(
  value: unknown,
  path: string,
  left: number,
  maxDepth: number,
): { field: string; problem: string } | undefined {
  if (typeof value === 'string') {
    const problem = dataStringProblem(value);
    return problem === undefined ? undefined : { field: fieldName(path), problem };
  }
  if (typeof value !== 'object' || value === null) return undefined;
  if (left <= 0)
    return { field: topField(path), problem: `must not nest deeper than ${maxDepth} levels` };
  const entries: Array<[string | number, unknown]> = Array.isArray(value)
    ? value.map((item, i) => [i, item])
    : Object.entries(value);
  for (const [key, item] of entries) {
    if (typeof key === 'string') {
      const problem = dataStringProblem(key);
      if (problem !== undefined) return { field: fieldName(path), problem: `keys ${problem}` };
    }
    const found = walk(item, child(path, key), left - 1, maxDepth);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * {@link jsonProblem} for a whole request body: each of its fields may nest `maxDepth` levels
 * (so a payload nests as deep through HTTP as through the service's own API).
 */
export function bodyProblem(
  body: unknown,
  maxDepth: number = MAX_JSON_DEPTH,
): { field: string; problem: string } | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    return jsonProblem(body, '', maxDepth);
  return walk(body, '', maxDepth + 1, maxDepth);
}

/** Throws {@link InvalidInputError} when {@link jsonProblem} finds one. */
export function checkJson(value: unknown, field: string): void {
  const found = jsonProblem(value, field);
  if (found !== undefined) throw new InvalidInputError(found);
}

/** Throws {@link InvalidInputError} when core's `textProblem` refuses `value`; passes `undefined`. */
export function checkText(value: string | null | undefined, field: string): void {
  if (value === undefined || value === null) return;
  const problem = textProblem(value);
  if (problem !== undefined) throw new InvalidInputError({ field, problem });
}

/** {@link checkId} for an optional id. */
export function checkOptionalId(value: string | null | undefined, field: string): void {
  if (value !== undefined && value !== null) checkId(value, field);
}

/**
 * Checks what an enqueue stores, as the HTTP layer does for its requests, so a program that calls
 * the service directly gets the same refusals on every engine: ids and the type under core's id
 * rule, the title and idempotency key as free text, admission answers and the payload as data.
 *
 * @throws InvalidInputError naming the first field refused.
 */
export function checkEnqueueInput(input: {
  id?: string | undefined;
  type: string;
  title?: string | undefined;
  parentId?: string | undefined;
  createdById?: string | undefined;
  agentId?: string | undefined;
  idempotencyKey?: string | undefined;
  admission?: Record<string, unknown> | undefined;
  payload?: unknown;
}): void {
  checkOptionalId(input.id, 'task id');
  checkId(input.type, 'task type');
  checkOptionalId(input.parentId, 'parent task id');
  checkOptionalId(input.createdById, 'creator task id');
  checkOptionalId(input.agentId, 'agent id');
  checkText(input.title, 'title');
  checkText(input.idempotencyKey, 'idempotency key');
  checkJson(input.admission, 'admission');
  checkJson(input.payload, 'payload');
}

/** Checks what an escalation raised by hand stores (see {@link checkEnqueueInput}). */
export function checkEscalationInput(input: {
  taskId?: string | undefined;
  comment?: string | undefined;
  violation?: unknown;
}): void {
  checkOptionalId(input.taskId, 'task id');
  checkText(input.comment, 'comment');
  checkJson(input.violation, 'violation');
}
