import { ConfigError, type ConfigProblem } from '@exec-kernel/core';

/** A 1-based place in a file. */
export interface SourcePosition {
  line: number;
  column: number;
}

/** Where a key and its value are written. */
export interface NodePosition {
  key?: SourcePosition | undefined;
  value?: SourcePosition | undefined;
}

/**
 * Where each key of a parsed file is written, by key path in the file's spelling:
 * `''` for the top level, `budget.max_steps`, `admission.required[1]`.
 */
export type ConfigPositions = ReadonlyMap<string, NodePosition>;

/** The `path` of a {@link ConfigError} raised for an environment variable. */
export const ENV_SOURCE = 'env';

/**
 * The position of `key`: its value's (or, for `target: 'key'`, the key's own), else the nearest
 * enclosing key's. Values that are not written (`max_steps:` with nothing after) point at the key.
 */
export function locate(
  positions: ConfigPositions | undefined,
  key: string,
  target: 'key' | 'value',
): SourcePosition | undefined {
  if (positions === undefined) return undefined;
  for (let path: string | undefined = key; path !== undefined; path = parentPath(path)) {
    const node = positions.get(path);
    const found = target === 'key' && path === key ? node?.key : (node?.value ?? node?.key);
    if (found !== undefined) return found;
  }
  return undefined;
}

function parentPath(path: string): string | undefined {
  if (path === '') return undefined;
  const cut = Math.max(path.lastIndexOf('.'), path.lastIndexOf('['));
  return cut === -1 ? '' : path.slice(0, cut);
}

/** A problem at `key`, placed with `positions`. */
export function problemAt(
  positions: ConfigPositions | undefined,
  key: string,
  message: string,
  target: 'key' | 'value' = 'value',
): ConfigProblem {
  const at = locate(positions, key, target);
  return at === undefined ? { key, message } : { key, message, line: at.line, column: at.column };
}

function formatProblem(problem: ConfigProblem): string {
  const where = problem.line === undefined ? '' : ` (${problem.line}:${problem.column})`;
  return `${problem.key === '' ? 'the top level' : problem.key}${where} ${problem.message}`;
}

/**
 * One {@link ConfigError} for every problem found, in file order. The message is one line:
 * `Invalid config <file>: <key> (<line>:<column>) <message>; …`. Its `line`, `column` and `key`
 * are the first problem's.
 */
export function configError(path: string | undefined, found: ConfigProblem[]): ConfigError {
  const problems = [...found].sort(
    (a, b) =>
      (a.line ?? Number.POSITIVE_INFINITY) - (b.line ?? Number.POSITIVE_INFINITY) ||
      (a.column ?? 0) - (b.column ?? 0),
  );
  const source =
    path === undefined ? '' : path === ENV_SOURCE ? ' from the environment' : ` ${path}`;
  const first = problems[0];
  return new ConfigError(`Invalid config${source}: ${problems.map(formatProblem).join('; ')}`, {
    path,
    line: first?.line,
    column: first?.column,
    key: first?.key === '' ? undefined : first?.key,
    problems,
  });
}
