import { ConflictError } from '@exec-kernel/core';
import postgres from 'postgres';
import type { NewEvent } from '../../model.js';
import type {
  ClaimEvent,
  ClaimRequest,
  Expectation,
  FollowingClaim,
  SpendingDelta,
  TaskUpdate,
} from '../storage.js';
import { ESCALATIONS, TASKS, type Table } from '../tables.js';
import type { Fragment, Row, Sql, Tx } from './connection.js';

// The SQL of the PostgreSQL engine, apart from the class that runs it (as pg-boss keeps its
// plans.ts). Each function builds one statement, or a fragment of one, on the driver's tagged
// templates; nothing here holds state.

/** What a compare-and-set checks of a task's row, after `id` (SQL for {@link Expectation}). */
export function matching(sql: Sql | Tx, expect: Expectation): Fragment {
  return sql`state = ${expect.state}
    ${expect.leaseOwner === undefined ? sql`` : sql`and lease_owner is not distinct from ${expect.leaseOwner}`}
    ${expect.leaseId === undefined ? sql`` : sql`and lease_id is not distinct from ${expect.leaseId}`}
    ${expect.leaseLiveAt === undefined ? sql`` : sql`and lease_until >= ${expect.leaseLiveAt}`}
    ${expect.leaseEndedBefore === undefined ? sql`` : sql`and lease_until < ${expect.leaseEndedBefore}`}`;
}

export const CLAIM_SET = (r: ClaimRequest, sql: Sql | Tx): Fragment =>
  sql`state = 'in_progress', lease_owner = ${r.agentId}, lease_id = ${r.leaseId},
    lease_until = ${r.leaseUntil}, attempts = attempts + 1,
    started_at = coalesce(started_at, ${r.now}), updated_at = ${r.now}`;

/**
 * The claim of the tasks `which` selects, as one statement (one round trip, one commit): the
 * update, each task's event built in SQL from the template, and the claimant's wake-up.
 */
export function claimQuery(
  sql: Sql | Tx,
  which: Fragment,
  request: ClaimRequest,
  event: ClaimEvent,
): Promise<Row[]> {
  const { wakeUp, wakeEvent } = wakeParts(sql, request);
  return sql`
    with c as (
      update tasks set ${CLAIM_SET(request, sql)} where ${which} returning *
    )${wakeUp}, ev as (
      insert into events (type, task_id, agent_id, data, at)
      select type, task_id, agent_id, data, at from (
        ${claimEvents(sql, event)}
        ${wakeEvent}
      ) x
      where event_guard()
      order by k, o1, o2
    )
    select * from c`;
}

/** The claim's event rows, from `c` (the claimed tasks), with their place in the log. */
export function claimEvents(sql: Sql | Tx, event: ClaimEvent): Fragment {
  return sql`
    select ${event.type} as type, c.id as task_id, ${event.agentId} as agent_id,
      ${sql.json(event.data)}::jsonb || jsonb_build_object('attempts', c.attempts) as data,
      ${event.at}::bigint as at, 1 as k, -c.priority::bigint as o1, c.seq as o2
    from c`;
}

/**
 * The wake-up of a sleeping claimant as a CTE `w` (after `c`, the claimed tasks), and its event
 * row to add to the claim's; both empty when the request carries no wake event.
 */
export function wakeParts(
  sql: Sql | Tx,
  request: ClaimRequest,
): { wakeUp: Fragment; wakeEvent: Fragment } {
  const { wake } = request;
  if (wake === undefined) return { wakeUp: sql``, wakeEvent: sql`` };
  return {
    wakeUp: sql`, w as (
      update agents set sleep_until = null, sleep_reason = null, sleep_since = null
      where id = ${request.agentId} and sleep_until > ${request.now}
        and exists (select 1 from c)
      returning id
    )`,
    wakeEvent: sql`union all
      select ${wake.type}, ${wake.taskId}, ${wake.agentId}, ${sql.json(wake.data as postgres.JSONValue)}::jsonb,
        ${wake.at}::bigint, 2, 0::bigint, 0::bigint
      from w`,
  };
}

/**
 * {@link alike} updates as one statement, their rows numbered by position (`n_`), each applying
 * or not on its own; with `claim`, the claim follows in the same statement if any applied. A
 * worker's finished batch, and its next one, in one round trip and one commit.
 */
export async function alikeQuery(
  sql: Sql,
  updates: readonly TaskUpdate[],
  claim: FollowingClaim | undefined,
): Promise<Row[]> {
  const { expect, changes } = (updates as [TaskUpdate])[0];
  const items = updates.map((u, n) => ({
    n,
    id: u.id,
    lease_owner: u.expect.leaseOwner ?? null,
    lease_id: u.expect.leaseId ?? null,
    live_at: u.expect.leaseLiveAt ?? null,
    ended_before: u.expect.leaseEndedBefore ?? null,
    events: eventList(u.extras.events),
  }));
  const applied = sql`(select 1 from u)`;
  let claiming = sql``;
  let claimEventRows = sql``;
  let claimRows = sql``;
  if (claim !== undefined) {
    const { request, max, event } = claim;
    const next = nextTodo(
      sql,
      request.types,
      max,
      [...(request.exceptIds ?? []), ...updates.map((u) => u.id)],
      applied,
    );
    const { wakeUp, wakeEvent } = wakeParts(sql, request);
    claiming = sql`, c as (
      update tasks set ${CLAIM_SET(request, sql)}
      where id = any(array(${next} for update skip locked))
      returning *
    )${wakeUp}`;
    claimEventRows = sql`union all ${claimEvents(sql, event)} ${wakeEvent}`;
    claimRows = sql`union all select 'c' as stage, null::int as n_, c.* from c`;
  }
  return await sql`
    with x as (
      select * from jsonb_to_recordset(${sql.json(items as postgres.JSONValue)})
        as x(n int, id text, lease_owner text, lease_id text, live_at bigint,
          ended_before bigint, events jsonb)
    ), u as (
      ${updateSet(sql, TASKS, changes)}
      from x
      where tasks.id = x.id and tasks.state = ${expect.state}
      ${expect.leaseOwner === undefined ? sql`` : sql`and tasks.lease_owner is not distinct from x.lease_owner`}
      ${expect.leaseId === undefined ? sql`` : sql`and tasks.lease_id is not distinct from x.lease_id`}
      ${expect.leaseLiveAt === undefined ? sql`` : sql`and tasks.lease_until >= x.live_at`}
      ${expect.leaseEndedBefore === undefined ? sql`` : sql`and tasks.lease_until < x.ended_before`}
      returning x.n as n_, tasks.*
    )${claiming}, ev as (
      insert into events (type, task_id, agent_id, data, at)
      select type, task_id, agent_id, data, at from (
        select e->>'type' as type, e->>'taskId' as task_id, e->>'agentId' as agent_id,
          e->'data' as data, (e->>'at')::bigint as at, 0 as k, u.n_::bigint as o1, y.m as o2
        from u join x on x.n = u.n_
          cross join lateral jsonb_array_elements(x.events) with ordinality as y(e, m)
        ${claimEventRows}
      ) z
      where event_guard()
      order by k, o1, o2
    )
    select 'u' as stage, u.* from u
    ${claimRows}`;
}

/**
 * One compare-and-set and, only if it applied, the claim after it, as one statement: a worker's
 * finished task and its next one in one round trip and one commit. Rows of both, by `stage`.
 */
export async function updateThenClaimQuery(
  sql: Sql,
  update: TaskUpdate,
  { request, max, event }: FollowingClaim,
): Promise<Row[]> {
  const applied = sql`(select 1 from u)`;
  const next = nextTodo(
    sql,
    request.types,
    max,
    [...(request.exceptIds ?? []), update.id],
    applied,
  );
  const { wakeUp, wakeEvent } = wakeParts(sql, request);
  return await sql`
    with ${updateCtes(sql, update)}, c as (
      update tasks set ${CLAIM_SET(request, sql)}
      where id = any(array(${next} for update skip locked))
      returning *
    )${wakeUp}, ev as (
      insert into events (type, task_id, agent_id, data, at)
      select type, task_id, agent_id, data, at from (
        ${eventRows(sql, update.extras.events, applied)}
        union all
        ${claimEvents(sql, event)}
        ${wakeEvent}
      ) x
      where event_guard()
      order by k, o1, o2
    )
    select 'u' as stage, 0 as n_, u.* from u
    union all
    select 'c' as stage, null::int as n_, c.* from c`.catch((error: unknown) => {
    throw conflict(error, update.extras.escalation?.id);
  });
}

/** The compare-and-set statement, with its events and escalation in data-modifying CTEs. */
export async function updateQuery(sql: Sql | Tx, update: TaskUpdate): Promise<Row[]> {
  const { events, escalation } = update.extras;
  const when = sql`(select 1 from u)`;
  return await sql`
    with ${updateCtes(sql, update)}
    ${events.length === 0 ? sql`` : sql`, ev as (${insertEvents(sql, events, when)})`}
    select * from u`.catch((error: unknown) => {
    throw conflict(error, escalation?.id);
  });
}

/**
 * The compare-and-set as the CTE `u`, followed by its escalation's insert (`esc`) when it has
 * one, made only if `u` applied. The caller writes the events.
 */
export function updateCtes(sql: Sql | Tx, { id, expect, changes, extras }: TaskUpdate): Fragment {
  return sql`
    u as (
      ${updateSet(sql, TASKS, changes)}
      where id = ${id} and ${matching(sql, expect)}
      returning *
    )
    ${
      extras.escalation === undefined
        ? sql``
        : sql`, esc as (${insertWhen(sql, ESCALATIONS, extras.escalation, sql`(select 1 from u)`)})`
    }`;
}

/**
 * The inner SELECT of the claim: the next open tasks, in exactly the order of its index, but
 * none of `except`, and only if `when` (a subquery) finds a row.
 */
export function nextTodo(
  sql: Sql | Tx,
  types: string[] | null,
  limit = 1,
  except: readonly string[] = [],
  when?: Fragment,
): Fragment {
  // One type as `=`, not `= any`, so the per-type index serves the ORDER BY with no sort. The
  // literal 'todo' (never a parameter) lets even a generic plan use the partial indexes.
  const filter =
    types === null
      ? sql``
      : types.length === 1
        ? sql`and type = ${types[0] as string}`
        : sql`and type = any(${types}::text[])`;
  const passOver =
    except.length === 0
      ? sql``
      : except.length === 1
        ? sql`and id <> ${except[0] as string}`
        : sql`and id <> all(${except as string[]}::text[])`;
  const only = when === undefined ? sql`` : sql`and exists ${when}`;
  const take = limit === 1 ? sql`limit 1` : sql`limit ${limit}`;
  return sql`select id from tasks where state = 'todo' ${filter} ${passOver} ${only} order by priority desc, seq ${take}`;
}

/**
 * An INSERT of `events`, in order, behind `event_guard()` (see `read_events`). With `when`, only
 * if that subquery finds a row (the change the events describe took place).
 */
export function insertEvents(
  sql: Sql | Tx,
  events: readonly NewEvent[],
  when?: Fragment,
): Fragment {
  return sql`
    insert into events (type, task_id, agent_id, data, at)
    select type, task_id, agent_id, data, at from (${eventRows(sql, events, when)}) x
    where event_guard()
    order by k, o1, o2`;
}

/**
 * `events` as rows for an events INSERT, with their place in the log (`k`, `o1`, `o2`: first,
 * in the given order); with `when`, only if that subquery finds a row.
 */
export function eventRows(sql: Sql | Tx, events: readonly NewEvent[], when?: Fragment): Fragment {
  const list = eventList(events);
  return sql`
    select e->>'type' as type, e->>'taskId' as task_id, e->>'agentId' as agent_id,
      e->'data' as data, (e->>'at')::bigint as at, 0 as k, n as o1, 0::bigint as o2
    from jsonb_array_elements(${sql.json(list as postgres.JSONValue)}) with ordinality as x(e, n)
    ${when === undefined ? sql`` : sql`where exists ${when}`}`;
}

export function escalationExists(id: string): ConflictError {
  return new ConflictError(
    { resource: `escalation ${id}` },
    { message: `Escalation ${id} already exists` },
  );
}

export function conflict(error: unknown, escalationId: string | undefined): unknown {
  if (
    escalationId !== undefined &&
    error instanceof postgres.PostgresError &&
    error.code === '23505' &&
    error.table_name === 'escalations'
  ) {
    return escalationExists(escalationId);
  }
  return error;
}

/**
 * A row's (or a change set's) fields as columns, JSON fields typed `jsonb`. `insert` takes every
 * column of the table; otherwise only the fields present, and a fixed or unknown field throws.
 */
export function columnValues(
  sql: Sql | Tx,
  table: Table,
  fields: object,
  insert: boolean,
): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  const given = fields as Record<string, unknown>;
  for (const field of insert ? Object.keys(table.columns) : Object.keys(given)) {
    const value = given[field];
    if (!insert && value === undefined) continue;
    const column = table.columns[field];
    if (column === undefined || (!insert && table.fixed.has(field))) {
      throw new TypeError(`${table.name}.${field} cannot be changed`);
    }
    values[column] = table.json.has(field) ? json(sql, value) : (value ?? null);
  }
  return values;
}

/** `update <table> set <changes>`; with nothing to change, a SET that changes nothing. */
export function updateSet(sql: Sql | Tx, table: Table, changes: object): Fragment {
  const values = columnValues(sql, table, changes, false);
  return Object.keys(values).length === 0
    ? sql`update ${sql(table.name)} set id = id`
    : sql`update ${sql(table.name)} set ${sql(values)}`;
}

/**
 * Whether one statement can apply these updates together (see `#alikeQuery`): each to a different
 * task, none with an escalation, all with the same changes and expected state, and expecting the
 * same lease fields (their values may differ).
 */
export function alike(updates: readonly TaskUpdate[]): boolean {
  const [first] = updates;
  if (first === undefined || Object.keys(first.changes).length === 0) return false;
  const changes = JSON.stringify(first.changes);
  const ids = new Set<string>();
  for (const u of updates) {
    if (u.extras.escalation !== undefined || ids.has(u.id)) return false;
    ids.add(u.id);
    if (u.expect.state !== first.expect.state) return false;
    if ((u.expect.leaseOwner === undefined) !== (first.expect.leaseOwner === undefined))
      return false;
    if ((u.expect.leaseId === undefined) !== (first.expect.leaseId === undefined)) return false;
    if ((u.expect.leaseLiveAt === undefined) !== (first.expect.leaseLiveAt === undefined))
      return false;
    if ((u.expect.leaseEndedBefore === undefined) !== (first.expect.leaseEndedBefore === undefined))
      return false;
    if (u !== first && JSON.stringify(u.changes) !== changes) return false;
  }
  return true;
}

/** Events as the JSON the statements unpack. */
export function eventList(events: readonly NewEvent[]): postgres.JSONValue {
  return events.map((e) => ({
    type: e.type,
    taskId: e.taskId,
    agentId: e.agentId,
    data: e.data,
    at: e.at,
  })) as postgres.JSONValue;
}

/** An INSERT of one row that happens only if `when` finds a row (VALUES cannot be conditional). */
export function insertWhen(sql: Sql | Tx, table: Table, row: object, when: Fragment): Fragment {
  const values = columnValues(sql, table, row, true);
  return sql`
    insert into ${sql(table.name)} (${sql(Object.keys(values))})
    select ${sql(values)} where exists ${when}`;
}

export function json(sql: Sql | Tx, value: unknown): postgres.Parameter | null {
  return value === undefined || value === null ? null : sql.json(value as postgres.JSONValue);
}

/**
 * Spending on each task of `ids` (unique, known ones) and its event, as one statement. With
 * `expect`, the first id must match it when its row is locked, or nothing is written: the lock
 * re-reads the row, so a lease that a concurrent reaper or claim changed is seen as changed.
 */
export function addSpendingQuery(
  sql: Sql,
  ids: readonly string[],
  delta: SpendingDelta,
  now: number,
  event: NewEvent,
  expect: Expectation | undefined,
): Fragment {
  const [first] = ids;
  const checked = expect !== undefined && first !== undefined;
  const guard = checked ? sql`and (id <> ${first} or (${matching(sql, expect)}))` : sql``;
  const held = checked ? sql`exists (select 1 from locked where id = ${first})` : sql`true`;
  // Rows are locked in id order, so two writers with overlapping ancestors cannot deadlock.
  return sql`
    with locked as (
      select id from tasks where id = any(${[...ids]}::text[]) ${guard} order by id for update
    ), u as (
      update tasks t set
        steps_taken = t.steps_taken + ${delta.steps},
        tokens = t.tokens + ${delta.tokens},
        cost_usd = t.cost_usd + ${delta.costUsd}::double precision,
        updated_at = ${now}
      from locked where t.id = locked.id and ${held}
      returning t.*
    ), ev as (
      ${insertEvents(sql, [event], sql`(select 1 where ${held})`)}
    )
    select * from u`;
}

/**
 * Inserts a row and, in the same statement, its event; nothing at all (no row returned) when a
 * unique key already holds such a row.
 */
export function insertOnceQuery(sql: Sql, table: Table, fields: object, event: NewEvent): Fragment {
  return sql`
    with x as (
      insert into ${sql(table.name)} ${sql(columnValues(sql, table, fields, true))}
      on conflict do nothing
      returning *
    ), ev as (
      ${insertEvents(sql, [event], sql`(select 1 from x)`)}
    )
    select * from x`;
}

/** Each update as its own statement in the transaction, sent together (the driver pipelines). */
export function updateEach(
  tx: Tx,
  updates: readonly TaskUpdate[],
): Promise<Array<Row | undefined>> {
  return Promise.all(updates.map(async (u) => (await updateQuery(tx, u))[0]));
}

/** The updated rows of a statement's result (`stage` 'u', numbered `n_`), by update. */
export function byItem(count: number, stages: readonly Row[]): Array<Row | undefined> {
  const rows: Array<Row | undefined> = Array.from({ length: count }, () => undefined);
  for (const row of stages) if (row.stage === 'u') rows[row.n_ as number] = row;
  return rows;
}

/**
 * The updates, each its own statement, then (only if one applied) the claim, in one transaction:
 * for a batch that {@link alike} cannot serve as one statement.
 */
export function updateThenClaimEach(
  sql: Sql,
  updates: readonly TaskUpdate[],
  { request, max, event }: FollowingClaim,
): Promise<{ rows: Array<Row | undefined>; claimed: Row[] | undefined }> {
  return sql.begin(async (tx) => {
    const rows = await updateEach(tx, updates);
    if (rows.every((row) => row === undefined)) return { rows, claimed: undefined };
    const next = nextTodo(tx, request.types, max, [
      ...(request.exceptIds ?? []),
      ...updates.map((u) => u.id),
    ]);
    const which = tx`id = any(array(${next} for update skip locked))`;
    return { rows, claimed: await claimQuery(tx, which, request, event) };
  });
}
