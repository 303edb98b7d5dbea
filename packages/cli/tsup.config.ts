import { defineConfig, type Options } from 'tsup';
import { base } from '../../tsup.config.ts';

// Everything the CLI runs is bundled into it: the kernels, config and the store. It installs
// with no dependencies.
const bundled: Options = {
  noExternal: [/^@exec-kernel\//, 'valibot', 'yaml', 'ky'],
};

// Loaded apart from the binary, only by the calls that need them: package -> dist/<file>.cjs.
const APART: Record<string, string> = {
  yaml: 'yaml',
  '@exec-kernel/paperclip': 'paperclip',
  '@exec-kernel/coordination-client': 'coordination-client',
};

export default defineConfig([
  // `main()` for programs, ESM, commands split into chunks loaded on demand.
  {
    ...base,
    ...bundled,
    entry: ['src/index.ts'],
    banner: {
      js: "import { createRequire as __createRequire } from 'node:module';\nconst require = __createRequire(import.meta.url);",
    },
  },
  // The `exec-kernel` binary: one minified CommonJS file. Agents start it hundreds of times, and
  // a CommonJS entry skips the ESM loader's start-up; modules inside are evaluated only when the
  // command needs them. What only some calls need is in files of its own (below), required on
  // first use: yaml (a config file exists) and the Paperclip adapter (Paperclip backend).
  {
    ...bundled,
    entry: ['src/bin.ts'],
    esbuildOptions(options) {
      // import() becomes require(), so loading those files does not start the ESM loader either.
      options.supported = { 'dynamic-import': false };
    },
    esbuildPlugins: [
      {
        name: 'load-apart',
        setup(build) {
          for (const [name, file] of Object.entries(APART)) {
            const filter = new RegExp(`^${name.replaceAll('/', '\\/')}$`);
            build.onResolve({ filter }, () => ({ path: `./${file}.cjs`, external: true }));
          }
          // The service (`exec-kernel serve`) is an optional peer, installed by those who run it:
          // it brings a native SQLite driver. Only serve loads it.
          build.onResolve({ filter: /^@exec-kernel\/coordination$/ }, () => ({
            path: '@exec-kernel/coordination',
            external: true,
          }));
        },
      },
    ],
    format: ['cjs'],
    target: 'node20',
    platform: 'node',
    minify: true,
    sourcemap: true,
    dts: false,
    clean: false,
    define: { 'import.meta.url': '__importMetaUrl' },
    banner: { js: "const __importMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
  },
  ...Object.entries(APART).map(
    ([name, file]): Options => ({
      ...bundled,
      entry: { [file]: `src/_apart/${file}.ts` },
      noExternal: [name, ...(bundled.noExternal ?? [])],
      format: ['cjs'],
      target: 'node20',
      platform: 'node',
      minify: true,
      dts: false,
      clean: false,
    }),
  ),
]);
