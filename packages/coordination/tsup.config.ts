import { defineConfig } from 'tsup';
import { base } from '../../tsup.config.ts';

export default defineConfig({
  ...base,
  entry: ['src/index.ts', 'src/client-entry.ts'],
  // tsup leaves `dependencies` external but bundles optional ones; the native SQLite driver must stay a require.
  external: ['better-sqlite3'],
});
