import {
  ConflictError,
  isTerminalState,
  ListenerSet,
  TASK_STATES,
  type TaskState,
  type Unsubscribe,
} from '@exec-kernel/core';
import type {
  AgentRow,
  EscalationRow,
  EscalationStatus,
  EventRow,
  JsonValue,
  NewEscalationRow,
  NewEvent,
  NewTaskRow,
  TaskRow,
} from '../model.js';
import { expiredLeases, matches, nextClaimable, takeLease, wakeClaimant } from './memory-claim.js';
import { MemoryContexts } from './memory-context.js';
import { escalationExists, MemoryEscalations } from './memory-escalations.js';
import {
  type ActionStep,
  type AgentHolding,
  type AgentListFilter,
  type ChangeSignal,
  type ClaimEvent,
  type ClaimRequest,
  claimEventFor,
  type Expectation,
  type FollowingClaim,
  type SpendingDelta,
  type Storage,
  type TaskChanges,
  type TaskContext,
  type TaskFilter,
  type TaskNote,
  type TaskUpdate,
  type UpdateExtras,
} from './storage.js';

// The claim and lease rules live in memory-claim.ts; these two are exported from here as before.
export { claimOrder, matches } from './memory-claim.js';

const copy = <T>(value: T): T => structuredClone(value);
/** Code-point order (UTF-8 bytes), as the SQL engines sort ids. */
const byId = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

/**
 * Everything in process memory: for tests and throwaway demos. Every method runs to completion
 * without yielding, so each is atomic; rows are copied in and out, as a database would.
 */
export class MemoryStorage implements Storage {
  readonly engine = 'memory' as const;
  readonly location = 'memory';
  readonly #tasks = new Map<string, TaskRow>();
  readonly #agents = new Map<string, AgentRow>();
  readonly #escalations = new MemoryEscalations();
  readonly #events: EventRow[] = [];
  readonly #contexts = new MemoryContexts();
  readonly #actions = new Map<string, JsonValue>();
  readonly #signals = new ListenerSet<ChangeSignal>();
  #seq = 0;
  #eventSeq = 0;
  #open = false;

  async open(): Promise<void> {
    this.#open = true;
  }

  async close(): Promise<void> {
    this.#open = false;
  }

  async ping(): Promise<void> {
    if (!this.#open) throw new Error('memory storage is closed');
  }

  async insertTask(
    task: NewTaskRow,
    event: NewEvent,
  ): Promise<{ task: TaskRow; created: boolean }> {
    if (task.idempotencyKey !== null) {
      for (const existing of this.#tasks.values()) {
        if (existing.idempotencyKey === task.idempotencyKey && existing.agentId === task.agentId) {
          return { task: copy(existing), created: false };
        }
      }
    }
    if (this.#tasks.has(task.id)) {
      throw new ConflictError(
        { resource: `task ${task.id}` },
        { message: `Task ${task.id} already exists` },
      );
    }
    const row: TaskRow = { ...copy(task), seq: ++this.#seq };
    this.#tasks.set(row.id, row);
    this.#append(event);
    this.#signal(row.state === 'todo' ? 'task' : 'event');
    return { task: copy(row), created: true };
  }

  async getTask(id: string): Promise<TaskRow | undefined> {
    const task = this.#tasks.get(id);
    return task === undefined ? undefined : copy(task);
  }

  async getTasks(ids: readonly string[]): Promise<TaskRow[]> {
    const out: TaskRow[] = [];
    for (const id of new Set(ids)) {
      const task = this.#tasks.get(id);
      if (task !== undefined) out.push(copy(task));
    }
    return out;
  }

  async listTasks(filter: TaskFilter): Promise<TaskRow[]> {
    const out: TaskRow[] = [];
    for (const task of this.#tasks.values()) {
      if (
        (filter.state === undefined || task.state === filter.state) &&
        (filter.type === undefined || task.type === filter.type) &&
        (filter.agentId === undefined || task.agentId === filter.agentId) &&
        (filter.leaseOwner === undefined || task.leaseOwner === filter.leaseOwner) &&
        (filter.afterSeq === undefined || task.seq > filter.afterSeq)
      ) {
        out.push(copy(task));
        if (out.length >= filter.limit) break;
      }
    }
    return out;
  }

  async lineage(ids: readonly string[]): Promise<TaskRow[]> {
    const found = new Map<string, TaskRow>();
    const queue = [...ids];
    while (queue.length > 0) {
      const id = queue.shift() as string;
      const task = this.#tasks.get(id);
      if (task === undefined || found.has(id)) continue;
      found.set(id, copy(task));
      if (task.parentId !== null) queue.push(task.parentId);
      if (task.createdById !== null) queue.push(task.createdById);
    }
    return [...found.values()];
  }

  async countTasks(): Promise<Record<TaskState, number>> {
    const counts = Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as Record<TaskState, number>;
    for (const task of this.#tasks.values()) counts[task.state]++;
    return counts;
  }

  async claim(request: ClaimRequest, event: ClaimEvent): Promise<TaskRow | undefined> {
    const task = this.#claimOne(request, event);
    if (task === undefined) return undefined;
    this.#wakeClaimant(request);
    this.#signal('event');
    return task;
  }

  async claimMany(request: ClaimRequest, max: number, event: ClaimEvent): Promise<TaskRow[]> {
    return this.#claimMany(request, max, event, new Set(request.exceptIds));
  }

  #claimMany(
    request: ClaimRequest,
    max: number,
    event: ClaimEvent,
    except: ReadonlySet<string>,
  ): TaskRow[] {
    const claimed: TaskRow[] = [];
    const next = { ...request, taskId: undefined };
    while (claimed.length < max) {
      const task = this.#claimOne(next, event, except);
      if (task === undefined) break;
      claimed.push(task);
    }
    if (claimed.length === 0) return claimed;
    this.#wakeClaimant(request);
    this.#signal('event');
    return claimed;
  }

  #claimOne(
    request: ClaimRequest,
    event: ClaimEvent,
    except?: ReadonlySet<string>,
  ): TaskRow | undefined {
    const next = nextClaimable(this.#tasks, request, except);
    if (next === undefined) return undefined;
    takeLease(next, request);
    this.#append(claimEventFor(event, next));
    return copy(next);
  }

  /** After a claim took work: wakes the claimant if it sleeps (`request.wake`). */
  #wakeClaimant(request: ClaimRequest): void {
    const wake = wakeClaimant(this.#agents.get(request.agentId), request);
    if (wake !== undefined) this.#append(wake);
  }

  async updateTasks(updates: readonly TaskUpdate[]): Promise<Array<TaskRow | undefined>> {
    return this.#updateMany(updates);
  }

  #updateMany(updates: readonly TaskUpdate[]): Array<TaskRow | undefined> {
    // All or nothing, as in one transaction: a duplicate escalation id refuses the whole batch.
    const escalations = updates.flatMap((u) =>
      u.extras.escalation === undefined ? [] : [u.extras.escalation.id],
    );
    for (const [i, id] of escalations.entries()) {
      if (this.#escalations.has(id) || escalations.indexOf(id) !== i) throw escalationExists(id);
    }
    return updates.map((u) => this.#updateOne(u.id, u.expect, u.changes, u.extras));
  }

  async updateThenClaim(
    updates: readonly TaskUpdate[],
    claim: FollowingClaim,
  ): Promise<{ tasks: Array<TaskRow | undefined>; claimed: TaskRow[] | undefined }> {
    const tasks = this.#updateMany(updates);
    if (tasks.every((task) => task === undefined)) return { tasks, claimed: undefined };
    const named = new Set([...(claim.request.exceptIds ?? []), ...updates.map((u) => u.id)]);
    return { tasks, claimed: this.#claimMany(claim.request, claim.max, claim.event, named) };
  }

  async updateTask(
    id: string,
    expect: Expectation,
    changes: TaskChanges,
    extras: UpdateExtras,
  ): Promise<TaskRow | undefined> {
    return this.#updateOne(id, expect, changes, extras);
  }

  #updateOne(
    id: string,
    expect: Expectation,
    changes: TaskChanges,
    extras: UpdateExtras,
  ): TaskRow | undefined {
    const task = this.#tasks.get(id);
    if (task === undefined || !matches(task, expect)) return undefined;
    if (extras.escalation !== undefined && this.#escalations.has(extras.escalation.id))
      throw escalationExists(extras.escalation.id);
    Object.assign(task, copy(changes));
    if (isTerminalState(task.state)) this.#actions.delete(id);
    for (const event of extras.events) this.#append(event);
    if (extras.escalation !== undefined) this.#escalations.insert(extras.escalation);
    this.#signal(task.state === 'todo' ? 'task' : 'event');
    return copy(task);
  }

  async addSpending(
    ids: readonly string[],
    delta: SpendingDelta,
    now: number,
    event: NewEvent,
    expect?: Expectation | undefined,
  ): Promise<TaskRow[] | undefined> {
    const unique = [...new Set(ids)];
    if (expect !== undefined) {
      const first = unique[0] === undefined ? undefined : this.#tasks.get(unique[0]);
      if (first === undefined || !matches(first, expect)) return undefined;
    }
    const rows: TaskRow[] = [];
    for (const id of unique) {
      const task = this.#tasks.get(id);
      if (task === undefined) continue;
      task.stepsTaken += delta.steps;
      task.tokens += delta.tokens;
      task.costUsd += delta.costUsd;
      task.updatedAt = now;
      rows.push(copy(task));
    }
    this.#append(event);
    this.#signal('event');
    return rows;
  }

  async getContext(taskId: string): Promise<TaskContext | undefined> {
    return this.#tasks.has(taskId) ? this.#contexts.read(taskId) : undefined;
  }

  async setContext(
    taskId: string,
    key: string,
    value: JsonValue | undefined,
    event: NewEvent,
  ): Promise<Record<string, JsonValue> | undefined> {
    if (!this.#tasks.has(taskId)) return undefined;
    const context = this.#contexts.set(taskId, key, value);
    this.#append(event);
    this.#signal('event');
    return context;
  }

  async addNote(taskId: string, note: TaskNote, event: NewEvent): Promise<TaskNote | undefined> {
    if (!this.#tasks.has(taskId)) return undefined;
    const added = this.#contexts.addNote(taskId, note);
    this.#append(event);
    this.#signal('event');
    return added;
  }

  async recordAction<T>(
    taskId: string,
    expect: Expectation,
    step: ActionStep<T>,
  ): Promise<{ value: T } | undefined> {
    const task = this.#tasks.get(taskId);
    if (task === undefined || !matches(task, expect)) return undefined;
    const saved = this.#actions.get(taskId);
    // Synchronous from the read to the write: no other call runs in between.
    const { history, events, value } = step(saved === undefined ? undefined : copy(saved));
    this.#actions.set(taskId, copy(history));
    for (const event of events) this.#append(event);
    if (events.length > 0) this.#signal('event');
    return { value };
  }

  async getActions(taskId: string): Promise<JsonValue | undefined> {
    const saved = this.#actions.get(taskId);
    return saved === undefined ? undefined : copy(saved);
  }

  async listExpiredLeases(now: number, limit: number): Promise<TaskRow[]> {
    return expiredLeases(this.#tasks.values(), now, limit);
  }

  async putAgent(agent: AgentRow): Promise<void> {
    this.#agents.set(agent.id, copy(agent));
  }

  async getAgent(id: string): Promise<AgentRow | undefined> {
    const agent = this.#agents.get(id);
    return agent === undefined ? undefined : copy(agent);
  }

  async findAgentByTokenHash(tokenHash: string): Promise<AgentRow | undefined> {
    for (const agent of this.#agents.values())
      if (agent.tokenHash === tokenHash) return copy(agent);
    return undefined;
  }

  async listAgents(): Promise<AgentRow[]> {
    return [...this.#agents.values()].map(copy);
  }

  async listAgentsHolding(filter: AgentListFilter): Promise<AgentHolding[]> {
    const { afterId } = filter;
    const agents = [...this.#agents.values()]
      .filter((agent) => afterId === undefined || byId(agent.id, afterId) > 0)
      .sort((a, b) => byId(a.id, b.id))
      .slice(0, filter.limit);
    const holding = new Map<string, string[]>(agents.map((agent) => [agent.id, []]));
    for (const task of this.#tasks.values()) {
      if (task.state !== 'in_progress' || task.leaseOwner === null) continue;
      if (task.leaseUntil === null || task.leaseUntil < filter.now) continue;
      holding.get(task.leaseOwner)?.push(task.id);
    }
    return agents.map((agent) => ({
      agent: copy(agent),
      holding: (holding.get(agent.id) ?? []).sort(byId),
    }));
  }

  async updateAgent(
    id: string,
    changes: Partial<Omit<AgentRow, 'id' | 'createdAt'>>,
    event: NewEvent | undefined,
  ): Promise<AgentRow | undefined> {
    const agent = this.#agents.get(id);
    if (agent === undefined) return undefined;
    Object.assign(agent, copy(changes));
    if (event !== undefined) {
      this.#append(event);
      this.#signal('event');
    }
    return copy(agent);
  }

  async insertEscalation(escalation: NewEscalationRow, event: NewEvent): Promise<EscalationRow> {
    if (this.#escalations.has(escalation.id)) throw escalationExists(escalation.id);
    const row = this.#escalations.insert(escalation);
    this.#append(event);
    this.#signal('event');
    return copy(row);
  }

  async getEscalation(id: string): Promise<EscalationRow | undefined> {
    return this.#escalations.get(id);
  }

  async listEscalations(filter: {
    status?: EscalationStatus | undefined;
    afterSeq?: number | undefined;
    limit: number;
  }): Promise<EscalationRow[]> {
    return this.#escalations.list(filter);
  }

  async updateEscalation(
    id: string,
    expectStatuses: readonly EscalationStatus[],
    changes: Partial<Omit<EscalationRow, 'id' | 'seq' | 'createdAt'>>,
    event: NewEvent,
  ): Promise<EscalationRow | undefined> {
    const row = this.#escalations.update(id, expectStatuses, changes);
    if (row === undefined) return undefined;
    this.#append(event);
    this.#signal('event');
    return row;
  }

  async countOpenEscalations(): Promise<number> {
    return this.#escalations.countOpen();
  }

  async appendEvent(event: NewEvent): Promise<EventRow> {
    const row = this.#append(event);
    this.#signal('event');
    return copy(row);
  }

  async readEvents(
    afterSeq: number,
    limit: number,
    taskId?: string | undefined,
  ): Promise<EventRow[]> {
    // Seqs are dense here, so the position of seq s is s - 1.
    const from = Math.max(0, afterSeq);
    if (taskId === undefined) return this.#events.slice(from, from + limit).map(copy);
    const out: EventRow[] = [];
    for (let i = from; i < this.#events.length && out.length < limit; i++) {
      const event = this.#events[i] as EventRow;
      if (event.taskId === taskId) out.push(copy(event));
    }
    return out;
  }

  onChange(listener: (signal: ChangeSignal) => void): Unsubscribe {
    return this.#signals.add(listener);
  }

  #append(event: NewEvent): EventRow {
    const row: EventRow = { ...copy(event), seq: ++this.#eventSeq };
    this.#events.push(row);
    return row;
  }

  #signal(signal: ChangeSignal): void {
    // A task signal implies new events too; listeners get one call per write.
    queueMicrotask(() => this.#signals.emit(signal));
  }
}
