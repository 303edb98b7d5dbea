import { compact, hasCode, KernelError, type KernelErrorOptions } from './errors.js';

// --- config, conflicts, transport, lookups -----------------------------------------------------

/** One problem found in a configuration file or value. */
export interface ConfigProblem {
  /** Dotted key path in the file's own spelling, e.g. `budget.max_steps`. */
  key: string;
  message: string;
  line?: number | undefined;
  column?: number | undefined;
}

/** Fields of a {@link ConfigError}. */
export interface ConfigErrorDetails {
  /** The file the problem is in, when it came from a file. */
  path?: string | undefined;
  /** 1-based line of the first problem. */
  line?: number | undefined;
  /** 1-based column of the first problem. */
  column?: number | undefined;
  /** Key path of the first problem. */
  key?: string | undefined;
  /** Every problem found, when there are several. */
  problems?: ConfigProblem[] | undefined;
}

/** A configuration file or value is malformed or invalid. The message names every problem found. */
export class ConfigError extends KernelError {
  override name = 'ConfigError' as const;
  declare readonly code: 'CONFIG_INVALID';
  readonly path: string | undefined;
  readonly line: number | undefined;
  readonly column: number | undefined;
  readonly key: string | undefined;
  readonly problems: ConfigProblem[];

  constructor(message: string, details: ConfigErrorDetails = {}, options: KernelErrorOptions = {}) {
    super('CONFIG_INVALID', options.message ?? message, compact(details), options);
    this.path = details.path;
    this.line = details.line;
    this.column = details.column;
    this.key = details.key;
    this.problems = details.problems ?? [];
  }

  static override is(value: unknown): value is ConfigError {
    return hasCode(value, 'CONFIG_INVALID');
  }
}

/** Fields of a {@link ConflictError}. */
export interface ConflictDetails {
  /** What is held, e.g. `task t1`. */
  resource: string;
  /** Who holds it (an agent or run id), when known. */
  holder?: string | undefined;
}

/** A claim or checkout is held by someone else. Never retried automatically. */
export class ConflictError extends KernelError {
  override name = 'ConflictError' as const;
  declare readonly code: 'CONFLICT';
  readonly resource: string;
  readonly holder: string | undefined;

  constructor(details: ConflictDetails, options: KernelErrorOptions = {}) {
    const message =
      options.message ??
      (details.holder === undefined
        ? `${details.resource} is held by someone else`
        : `${details.resource} is held by ${details.holder}`);
    super('CONFLICT', message, compact(details), options);
    this.resource = details.resource;
    this.holder = details.holder;
  }

  static override is(value: unknown): value is ConflictError {
    return hasCode(value, 'CONFLICT');
  }
}

/** Fields of a {@link TransportError}. Never carries headers, keys or tokens. */
export interface TransportDetails {
  /** HTTP status, or `undefined` when no response arrived (network error, timeout). */
  status?: number | undefined;
  method: string;
  /** The request URL without its query string. */
  url: string;
}

/** An HTTP call failed after its retries. The message names the method, URL and status, never a secret. */
export class TransportError extends KernelError {
  override name = 'TransportError' as const;
  declare readonly code: 'TRANSPORT';
  readonly status: number | undefined;
  readonly method: string;
  readonly url: string;

  constructor(details: TransportDetails, options: KernelErrorOptions = {}) {
    const outcome =
      details.status === undefined ? 'failed: no response' : `failed with status ${details.status}`;
    super(
      'TRANSPORT',
      options.message ?? `${details.method} ${details.url} ${outcome}`,
      compact(details),
      options,
    );
    this.status = details.status;
    this.method = details.method;
    this.url = details.url;
  }

  static override is(value: unknown): value is TransportError {
    return hasCode(value, 'TRANSPORT');
  }
}

/** Fields of a {@link NotFoundError}. */
export interface NotFoundDetails {
  /** What kind of thing was looked up, e.g. `task`. */
  resource: string;
  id: string;
}

/** A task, agent or other record that an operation needs does not exist. */
export class NotFoundError extends KernelError {
  override name = 'NotFoundError' as const;
  declare readonly code: 'NOT_FOUND';
  readonly resource: string;
  readonly id: string;

  constructor(details: NotFoundDetails, options: KernelErrorOptions = {}) {
    const label = details.resource.charAt(0).toUpperCase() + details.resource.slice(1);
    super(
      'NOT_FOUND',
      options.message ?? `${label} ${details.id} not found`,
      compact(details),
      options,
    );
    this.resource = details.resource;
    this.id = details.id;
  }

  static override is(value: unknown): value is NotFoundError {
    return hasCode(value, 'NOT_FOUND');
  }
}

/** Fields of an {@link InvalidInputError}. */
export interface InvalidInputDetails {
  /** What was given, in words: `task id`, `agent id`, `--max-steps`. */
  field: string;
  /** What is wrong with it, e.g. `must not be blank`. Never the value itself. */
  problem: string;
}

/**
 * A value a caller gave is not one exec-kernel accepts: an id that is blank, too long or holds
 * control characters, a number out of range. The message names the field and the problem, never
 * the value (it may be huge or hold terminal escapes).
 */
export class InvalidInputError extends KernelError {
  override name = 'InvalidInputError' as const;
  declare readonly code: 'INVALID_INPUT';
  readonly field: string;
  readonly problem: string;

  constructor(details: InvalidInputDetails, options: KernelErrorOptions = {}) {
    super(
      'INVALID_INPUT',
      options.message ?? `Invalid ${details.field}: ${details.problem}`,
      compact(details),
      options,
    );
    this.field = details.field;
    this.problem = details.problem;
  }

  static override is(value: unknown): value is InvalidInputError {
    return hasCode(value, 'INVALID_INPUT');
  }
}

/** Why a state store refused to read or write. */
export type StoreProblem =
  | 'newer_version'
  | 'corrupt'
  | 'locked'
  | 'lock_lost'
  | 'permission'
  | 'io'
  | 'unavailable';

/** Fields of a {@link StoreError}. */
export interface StoreErrorDetails {
  /** Where the state lives: a file path, or `memory`. */
  path: string;
  problem: StoreProblem;
  /** For `newer_version`: the format version found in the file. */
  version?: number | undefined;
  /** For `permission` and `io`: whether reading or writing failed. */
  access?: 'read' | 'write' | undefined;
  /** For `permission` and `io`: the system error code, e.g. `EACCES` or `ENOSPC`. */
  reason?: string | undefined;
  /** For `permission`: the folder or file the user may not write to (or read). */
  target?: string | undefined;
  /** For `unavailable`: the storage engine, e.g. `sqlite` or `postgres`. */
  engine?: string | undefined;
  /** For `lock_lost`: after how long a lock counts as stale, in ms. */
  staleLockMs?: number | undefined;
}

function storeMessage(d: StoreErrorDetails): string {
  const reason = d.reason === undefined ? '' : ` (${d.reason})`;
  switch (d.problem) {
    case 'newer_version':
      return `State file ${d.path} has format version ${d.version}, newer than this exec-kernel reads; upgrade @exec-kernel/memory to use it`;
    case 'corrupt':
      return `State file ${d.path} is not a valid exec-kernel state file`;
    case 'locked':
      return `State file ${d.path} stayed locked by another process; try again`;
    case 'lock_lost':
      return `State file ${d.path} was not written: this process stalled past the ${d.staleLockMs ?? '?'} ms stale-lock limit and another process took over its lock; nothing was lost, run the command again`;
    case 'permission':
      return d.access === 'read'
        ? `State file ${d.path} cannot be read: permission denied on ${d.target ?? d.path}${reason}`
        : `State file ${d.path} cannot be written: permission denied on ${d.target ?? d.path}${reason}`;
    case 'unavailable':
      return `Database ${d.path} is unavailable${reason}; try again`;
    case 'io':
      return d.access === undefined
        ? `State file ${d.path} could not be read or written${reason}`
        : `State file ${d.path} could not be ${d.access === 'read' ? 'read' : 'written'}${reason}`;
  }
}

/**
 * A state store could not be read or written: a newer format, a damaged file, a lock that never
 * freed, a lock lost while stalled, a folder the user may not write to, a database that cannot be
 * reached or is busy (`unavailable`), or another system error.
 */
export class StoreError extends KernelError {
  override name = 'StoreError' as const;
  declare readonly code: 'STORE';
  readonly path: string;
  readonly problem: StoreProblem;

  constructor(details: StoreErrorDetails, options: KernelErrorOptions = {}) {
    super('STORE', options.message ?? storeMessage(details), compact(details), options);
    this.path = details.path;
    this.problem = details.problem;
  }

  static override is(value: unknown): value is StoreError {
    return hasCode(value, 'STORE');
  }
}

/** Fields of a {@link ForbiddenError}. */
export interface ForbiddenDetails {
  /** Who asked (an agent id, or `admin`). */
  agentId?: string | undefined;
  /** What was refused, in words: `enqueue as agent-2`, `acknowledge escalations`. */
  action: string;
  taskId?: string | undefined;
}

/**
 * A caller asked for something its identity does not allow: an agent acting as another agent, or
 * doing what only the admin may. Not a rule violation of the task, and never escalated.
 */
export class ForbiddenError extends KernelError {
  override name = 'ForbiddenError' as const;
  declare readonly code: 'FORBIDDEN';
  readonly agentId: string | undefined;
  readonly action: string;

  constructor(details: ForbiddenDetails, options: KernelErrorOptions = {}) {
    const who = details.agentId === undefined ? 'The caller' : `Agent ${details.agentId}`;
    super(
      'FORBIDDEN',
      options.message ?? `${who} may not ${details.action}`,
      compact(details),
      options,
    );
    this.agentId = details.agentId;
    this.action = details.action;
  }

  static override is(value: unknown): value is ForbiddenError {
    return hasCode(value, 'FORBIDDEN');
  }
}

/** One problem with a request, as a schema check reports it. */
export interface ValidationIssue {
  /** Where in the request: `body.title`, `query.limit`, `path.id`. */
  path: string;
  message: string;
}

/** Fields of a {@link ValidationError}. */
export interface ValidationDetails {
  issues: ValidationIssue[];
}

/**
 * A request did not match its schema (a missing field, a wrong type, an unknown query parameter).
 * The message lists every issue; `issues` holds them as data.
 */
export class ValidationError extends KernelError {
  override name = 'ValidationError' as const;
  declare readonly code: 'VALIDATION';
  readonly issues: ValidationIssue[];

  constructor(details: ValidationDetails, options: KernelErrorOptions = {}) {
    const issues = details.issues ?? [];
    const listed = issues.map((i) => (i.path === '' ? i.message : `${i.path}: ${i.message}`));
    super(
      'VALIDATION',
      options.message ?? `Invalid request: ${listed.join('; ') || 'does not match its schema'}`,
      { issues },
      options,
    );
    this.issues = issues;
  }

  static override is(value: unknown): value is ValidationError {
    return hasCode(value, 'VALIDATION');
  }
}
