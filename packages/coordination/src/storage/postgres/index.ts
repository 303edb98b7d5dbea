export type { PostgresStorageOptions } from './connection.js';
export type { ClaimPlan, PlanNode } from './explain.js';
export { POSTGRES_MIGRATIONS, type PostgresMigration } from './migrations.js';
export { PostgresStorage } from './storage.js';
