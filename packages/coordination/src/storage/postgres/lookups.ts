import type {
  AgentRow,
  EscalationRow,
  EscalationStatus,
  JsonValue,
  NewEvent,
} from '../../model.js';
import type {
  ActionStep,
  AgentListFilter,
  Expectation,
  TaskContext,
  TaskFilter,
  TaskNote,
} from '../storage.js';
import { AGENTS, ESCALATIONS } from '../tables.js';
import type { Fragment, Row, Sql, Tx } from './connection.js';
import { columnValues, insertEvents, matching, updateSet } from './queries.js';
import { toNote } from './rows.js';

// The PostgreSQL engine's reads, and its writes of agents, escalations, events and task context:
// the SQL apart from the class that runs it, one statement per function.

/** The tasks `filter` selects, in seq order. */
export function listTasksQuery(sql: Sql, filter: TaskFilter): Fragment {
  return sql`
    select * from tasks where true
    ${filter.state === undefined ? sql`` : sql`and state = ${filter.state}`}
    ${filter.type === undefined ? sql`` : sql`and type = ${filter.type}`}
    ${filter.agentId === undefined ? sql`` : sql`and agent_id = ${filter.agentId}`}
    ${filter.leaseOwner === undefined ? sql`` : sql`and lease_owner = ${filter.leaseOwner}`}
    ${filter.afterSeq === undefined ? sql`` : sql`and seq > ${filter.afterSeq}`}
    order by seq limit ${filter.limit}`;
}

/** The tasks with these ids and every ancestor along both links, once each. */
export function lineageQuery(sql: Sql, ids: readonly string[]): Fragment {
  // UNION (not UNION ALL) drops ids already walked, so a cycle in the links ends the walk.
  return sql`
    with recursive walk(id) as (
      select unnest(${[...ids]}::text[])
      union
      select link.id from tasks t
        join walk on t.id = walk.id
        cross join lateral (values (t.parent_id), (t.created_by_id)) as link(id)
        where link.id is not null
    )
    select t.* from tasks t join walk on t.id = walk.id`;
}

/** `in_progress` tasks whose lease ended before `now`, oldest lease first. */
export function expiredLeasesQuery(sql: Sql, now: number, limit: number): Fragment {
  return sql`
    select * from tasks where state = 'in_progress' and lease_until < ${now}
    order by lease_until, seq limit ${limit}`;
}

/** Creates or replaces an agent. */
export function putAgentQuery(sql: Sql, agent: AgentRow): Fragment {
  const values = columnValues(sql, AGENTS, agent, true);
  const { id: _, ...rest } = values;
  return sql`insert into agents ${sql(values)} on conflict (id) do update set ${sql(rest)}`;
}

/** Changes an agent and, if it exists, writes `event`. */
export function updateAgentQuery(
  sql: Sql,
  id: string,
  changes: Partial<Omit<AgentRow, 'id' | 'createdAt'>>,
  event: NewEvent | undefined,
): Fragment {
  const logged =
    event === undefined
      ? sql``
      : sql`, ev as (${insertEvents(sql, [event], sql`(select 1 from u)`)})`;
  return sql`
    with u as (
      ${updateSet(sql, AGENTS, changes)} where id = ${id} returning *
    )
    ${logged}
    select * from u`;
}

/** Escalations by status, after a seq, in seq order. */
export function listEscalationsQuery(
  sql: Sql,
  filter: { status?: EscalationStatus | undefined; afterSeq?: number | undefined; limit: number },
): Fragment {
  return sql`
    select * from escalations where true
    ${filter.status === undefined ? sql`` : sql`and status = ${filter.status}`}
    ${filter.afterSeq === undefined ? sql`` : sql`and seq > ${filter.afterSeq}`}
    order by seq limit ${filter.limit}`;
}

/**
 * A page of agents by id (`collate "C"`: code-point order, whatever the database's collation),
 * each with `holding`, the ids of the tasks it holds under a lease live at `now`: one statement.
 */
export function listAgentsHoldingQuery(sql: Sql, filter: AgentListFilter): Fragment {
  return sql`
    with page as (
      select * from agents
      ${filter.afterId === undefined ? sql`` : sql`where id collate "C" > ${filter.afterId}`}
      order by id collate "C" limit ${filter.limit}
    ), held as (
      select lease_owner, array_agg(id order by id collate "C") as ids from tasks
      where state = 'in_progress' and lease_until >= ${filter.now}
        and lease_owner in (select id from page)
      group by lease_owner
    )
    select page.*, coalesce(held.ids, '{}') as holding
    from page left join held on held.lease_owner = page.id
    order by page.id collate "C"`;
}

/** A compare-and-set on an escalation's status, with its event. */
export function updateEscalationQuery(
  sql: Sql,
  id: string,
  expectStatuses: readonly EscalationStatus[],
  changes: Partial<Omit<EscalationRow, 'id' | 'seq' | 'createdAt'>>,
  event: NewEvent,
): Fragment {
  return sql`
    with u as (
      ${updateSet(sql, ESCALATIONS, changes)}
      where id = ${id} and status = any(${[...expectStatuses]}::text[])
      returning *
    ), ev as (
      ${insertEvents(sql, [event], sql`(select 1 from u)`)}
    )
    select * from u`;
}

/** A task's context keys (in code-point order) and values; rows `{ key, value }`. */
export function contextQuery(sql: Sql | Tx, taskId: string): Fragment {
  return sql`select key, value from task_context where task_id = ${taskId} order by key collate "C"`;
}

/** A task's notes, oldest first; rows `{ at, agent_id, text }`. */
export function notesQuery(sql: Sql | Tx, taskId: string): Fragment {
  return sql`select at, agent_id, text from task_notes where task_id = ${taskId} order by seq`;
}

/**
 * Sets (or, with `value` `undefined`, deletes) one key of a known task's context and writes its
 * event, in one statement; one row `{ found }` saying whether the task exists.
 */
export function setContextQuery(
  sql: Sql | Tx,
  taskId: string,
  key: string,
  value: JsonValue | undefined,
  event: NewEvent,
): Fragment {
  const found = sql`(select 1 from tasks where id = ${taskId})`;
  const change =
    value === undefined
      ? sql`delete from task_context where task_id = ${taskId} and key = ${key}`
      : // As text cast to jsonb: sql.json(null) would be SQL NULL, not the JSON value null.
        sql`insert into task_context (task_id, key, value)
          select ${taskId}, ${key}, ${JSON.stringify(value)}::text::jsonb where exists ${found}
          on conflict (task_id, key) do update set value = excluded.value`;
  return sql`
    with w as (${change}), ev as (${insertEvents(sql, [event], found)})
    select exists ${found} as found`;
}

/** Appends a note to a known task and writes its event; the note's row, none for an unknown task. */
export function addNoteQuery(sql: Sql, taskId: string, note: TaskNote, event: NewEvent): Fragment {
  return sql`
    with n as (
      insert into task_notes (task_id, at, agent_id, text)
      select ${taskId}, ${note.at}, ${note.agentId}, ${note.text}
      where exists (select 1 from tasks where id = ${taskId})
      returning at, agent_id, text
    ), ev as (
      ${insertEvents(sql, [event], sql`(select 1 from n)`)}
    )
    select * from n`;
}

/** A context as a record, from {@link contextQuery}'s rows. */
function asContext(rows: readonly Row[]): Record<string, JsonValue> {
  return Object.fromEntries(rows.map((r) => [r.key as string, r.value as JsonValue]));
}

/** A task's context and notes, of one moment (one transaction, the reads sent at once). */
export async function readContext(sql: Sql, taskId: string): Promise<TaskContext | undefined> {
  const [found, context, notes] = await sql.begin((tx) => [
    tx`select 1 from tasks where id = ${taskId}`,
    contextQuery(tx, taskId),
    notesQuery(tx, taskId),
  ]);
  if (found.length === 0) return undefined;
  return { context: asContext(context), notes: notes.map(toNote) };
}

/** {@link setContextQuery} and the context after it, in one transaction. */
export async function writeContext(
  sql: Sql,
  taskId: string,
  key: string,
  value: JsonValue | undefined,
  event: NewEvent,
): Promise<Record<string, JsonValue> | undefined> {
  const [written, context] = await sql.begin((tx) => [
    setContextQuery(tx, taskId, key, value, event),
    contextQuery(tx, taskId),
  ]);
  return written[0]?.found === true ? asContext(context) : undefined;
}

/**
 * One step of a task's action history, in a transaction holding the task's row (`FOR UPDATE`):
 * `undefined` (nothing run or written) when the task does not match `expect`.
 */
export async function recordActionTx<T>(
  sql: Sql,
  taskId: string,
  expect: Expectation,
  step: ActionStep<T>,
): Promise<{ value: T; events: number } | undefined> {
  return sql.begin(async (tx) => {
    const [held] =
      await tx`select 1 from tasks where id = ${taskId} and ${matching(tx, expect)} for update`;
    if (held === undefined) return undefined;
    const [saved] = await tx`select history from task_actions where task_id = ${taskId}`;
    const { history, events, value } = step(saved?.history as JsonValue | undefined);
    // As text cast to jsonb, as context values are.
    await tx`
      insert into task_actions (task_id, history)
      values (${taskId}, ${JSON.stringify(history)}::text::jsonb)
      on conflict (task_id) do update set history = excluded.history`;
    if (events.length > 0) await tx`${insertEvents(tx, events)}`;
    return { value, events: events.length };
  });
}

/** A task's saved action history. */
export async function readActions(sql: Sql, taskId: string): Promise<JsonValue | undefined> {
  const [saved] = await sql`select history from task_actions where task_id = ${taskId}`;
  return saved?.history as JsonValue | undefined;
}
