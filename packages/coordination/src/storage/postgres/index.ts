export type { ClaimPlan, PlanNode } from './explain.js';
export { POSTGRES_MIGRATIONS, type PostgresMigration } from './migrations.js';
export { PostgresStorage, type PostgresStorageOptions } from './storage.js';
