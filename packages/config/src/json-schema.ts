import { type JsonSchema, toJsonSchema } from '@valibot/to-json-schema';
import { fileSchema } from './schema.js';

/**
 * The JSON Schema (draft-07) of `.exec-kernel.yml`, generated from the same valibot schema that
 * validates the file: descriptions and defaults on every key, `additionalProperties: false` on
 * every mapping. The committed `schema.json` must equal it (checked by a test; regenerate with
 * `pnpm --filter @exec-kernel/config generate-schema`).
 *
 * Not exported from the package: it needs `@valibot/to-json-schema`, a devDependency. Users get the
 * result as `@exec-kernel/config/schema.json`.
 */
export function buildJsonSchema(): JsonSchema {
  // `finite` has no JSON Schema form, and needs none: JSON and YAML numbers in a schema check are
  // finite. `check` (no control characters in strings) has none either; the loader still applies it.
  return toJsonSchema(fileSchema(), { target: 'draft-07', ignoreActions: ['finite', 'check'] });
}
