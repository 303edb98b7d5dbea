export { SQLITE_MIGRATIONS, type SqliteMigration } from './migrations.js';
export {
  type SqliteDiagnostics,
  SqliteStorage,
  type SqliteStorageOptions,
} from './storage.js';
