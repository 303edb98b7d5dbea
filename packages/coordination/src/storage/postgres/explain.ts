import type { Row, Sql, Tx } from './connection.js';
import { nextTodo } from './queries.js';

const ROLLBACK = Symbol('rollback');

/** One node of an `EXPLAIN (FORMAT JSON)` plan, as far as {@link ClaimPlan} reads it. */
export interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  'Relation Name'?: string;
  'Shared Hit Blocks'?: number;
  'Shared Read Blocks'?: number;
  Plans?: PlanNode[];
  [field: string]: unknown;
}

/** What {@link PostgresStorage.explainClaim} found. */
export interface ClaimPlan {
  /** Node types, depth first, e.g. `['Limit', 'LockRows', 'Index Scan']`. */
  nodes: string[];
  /** Every index the plan reads, e.g. `['tasks_claim']`. */
  indexes: string[];
  /** With `analyze`: shared buffers (pages) hit or read to pick one task. */
  buffers: number | undefined;
  /** The root node, as PostgreSQL returned it. */
  plan: PlanNode;
}

/**
 * The plan of the claim's inner SELECT (the one that picks the next task), for health checks
 * and tests: it must read `tasks_claim` (or `tasks_claim_type` for one type), never walk the
 * table or another index past finished tasks. With `analyze` the SELECT runs, in a transaction
 * that is rolled back, and `buffers` says how many pages one claim touches.
 */
export async function explainClaim(
  sql: Sql,
  options: { types?: string[] | null | undefined; analyze?: boolean | undefined } = {},
): Promise<ClaimPlan> {
  const next = (tx: Tx) => nextTodo(tx, options.types ?? null);
  let plan: Row | undefined;
  await sql
    .begin(async (tx) => {
      [plan] = options.analyze
        ? await tx`explain (analyze, buffers, format json) ${next(tx)} for update skip locked`
        : await tx`explain (format json) ${next(tx)} for update skip locked`;
      throw ROLLBACK;
    })
    .catch((error: unknown) => {
      if (error !== ROLLBACK) throw error;
    });
  const root = (plan?.['QUERY PLAN'] as Array<{ Plan: PlanNode }> | undefined)?.[0]?.Plan;
  if (root === undefined) throw new Error('EXPLAIN returned no plan');
  const nodes: PlanNode[] = [];
  const walk = (node: PlanNode) => {
    nodes.push(node);
    for (const child of node.Plans ?? []) walk(child);
  };
  walk(root);
  return {
    nodes: nodes.map((n) => n['Node Type']),
    indexes: nodes.flatMap((n) => (n['Index Name'] === undefined ? [] : [n['Index Name']])),
    buffers: options.analyze
      ? (root['Shared Hit Blocks'] ?? 0) + (root['Shared Read Blocks'] ?? 0)
      : undefined,
    plan: root,
  };
}
