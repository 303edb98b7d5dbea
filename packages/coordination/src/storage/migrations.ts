import { StoreError } from '@exec-kernel/core';

/**
 * One numbered, named step of a SQL engine's schema. `up` is SQL text, or a function that does
 * the work on the engine's transaction handle. Released steps never change: a new schema is a new
 * step at the end.
 */
export interface Migration<Tx = never> {
  /** 1, 2, 3, … in order, with no gaps. */
  version: number;
  /** Kebab-case, e.g. `initial-schema`; recorded beside the version. */
  name: string;
  up: string | ((tx: Tx) => unknown);
}

/** Where a schema is, for a refusal's message: `location` (no password) and, in words, `schema`. */
export interface SchemaPlace {
  location: string;
  /** How the message names the schema, e.g. `sqlite:/data/q.db` or `Schema exec_kernel at …`. */
  label: string;
}

/**
 * The steps still to run on a schema at `current` (the highest version applied), in order.
 *
 * @throws StoreError `newer_version` when the schema was migrated by a newer build.
 * @throws TypeError when the steps are not numbered 1, 2, 3, … (a programming error).
 */
export function pendingMigrations<M extends Migration<never>>(
  steps: readonly M[],
  current: number,
  place: SchemaPlace,
): M[] {
  for (const [i, step] of steps.entries()) {
    if (step.version !== i + 1) {
      throw new TypeError(`Migration ${step.name} is numbered ${step.version}, expected ${i + 1}`);
    }
  }
  const latest = steps.length;
  if (current > latest) {
    throw new StoreError(
      { path: place.location, problem: 'newer_version', version: current },
      {
        message: `${place.label} has schema version ${current}, newer than this exec-kernel reads (${latest}); upgrade @exec-kernel/coordination`,
      },
    );
  }
  return steps.slice(current);
}
