import type { AgentRow, NewEvent, TaskRow } from '../model.js';
import type { ClaimRequest, Expectation } from './storage.js';

const copy = <T>(value: T): T => structuredClone(value);

/** Whether a task matches a compare-and-set expectation. */
export function matches(task: TaskRow, expect: Expectation): boolean {
  return (
    task.state === expect.state &&
    (expect.leaseOwner === undefined || task.leaseOwner === expect.leaseOwner) &&
    (expect.leaseId === undefined || task.leaseId === expect.leaseId) &&
    (expect.leaseLiveAt === undefined ||
      (task.leaseUntil !== null && task.leaseUntil >= expect.leaseLiveAt)) &&
    (expect.leaseEndedBefore === undefined ||
      (task.leaseUntil !== null && task.leaseUntil < expect.leaseEndedBefore))
  );
}

/** Claim order: higher priority first, then older (lower seq). */
export function claimOrder(a: TaskRow, b: TaskRow): number {
  return b.priority - a.priority || a.seq - b.seq;
}

/**
 * The stored task a claim takes, for {@link MemoryStorage}: the named one if it is `todo`, else
 * the first `todo` task of the requested types in claim order, skipping `except`.
 */
export function nextClaimable(
  tasks: ReadonlyMap<string, TaskRow>,
  request: ClaimRequest,
  except?: ReadonlySet<string>,
): TaskRow | undefined {
  let next: TaskRow | undefined;
  if (request.taskId !== undefined) {
    const task = tasks.get(request.taskId);
    if (task?.state === 'todo') next = task;
  } else {
    for (const task of tasks.values()) {
      if (task.state !== 'todo' || except?.has(task.id)) continue;
      if (request.types !== null && !request.types.includes(task.type)) continue;
      if (next === undefined || claimOrder(task, next) < 0) next = task;
    }
  }
  return next;
}

/** Leases a stored task to the claimant, in place. */
export function takeLease(task: TaskRow, request: ClaimRequest): void {
  task.state = 'in_progress';
  task.leaseOwner = request.agentId;
  task.leaseId = request.leaseId;
  task.leaseUntil = request.leaseUntil;
  task.attempts += 1;
  task.startedAt ??= request.now;
  task.updatedAt = request.now;
}

/**
 * After a claim took work: wakes the claimant, in place, if it sleeps and the request carries a
 * `wake` event; that event to append, or `undefined` when nothing woke.
 */
export function wakeClaimant(
  agent: AgentRow | undefined,
  request: ClaimRequest,
): NewEvent | undefined {
  if (request.wake === undefined || agent?.sleepUntil == null) return undefined;
  if (agent.sleepUntil <= request.now) return undefined;
  agent.sleepUntil = null;
  agent.sleepReason = null;
  agent.sleepSince = null;
  return request.wake;
}

/** Copies of the in-progress tasks whose lease ended before `now`, earliest first, at most `limit`. */
export function expiredLeases(tasks: Iterable<TaskRow>, now: number, limit: number): TaskRow[] {
  return [...tasks]
    .filter((t) => t.state === 'in_progress' && t.leaseUntil !== null && t.leaseUntil < now)
    .sort((a, b) => (a.leaseUntil as number) - (b.leaseUntil as number))
    .slice(0, limit)
    .map(copy);
}
