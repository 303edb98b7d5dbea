import { defineConfig, type Options } from 'tsup';
import { base } from '../../tsup.config.ts';

// Everything the CLI runs is bundled into it: the kernels, config and the store. It installs
// with no dependencies.
const bundled: Options = {
  noExternal: [/^@exec-kernel\//, 'valibot', 'proper-lockfile', 'yaml'],
  esbuildOptions(options) {
    // graceful-fs only retries EMFILE, which a short-lived process never hits: plain fs spares
    // loading node:stream and patching fs at every start. signal-exit (via proper-lockfile) only
    // uses node:assert to check arguments; a shim spares its ~5 ms load.
    options.alias = { 'graceful-fs': 'node:fs', assert: './src/_assert-shim.ts' };
  },
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
  // command needs them. yaml is its own file (below), required only when a config file exists.
  {
    ...bundled,
    entry: ['src/bin.ts'],
    esbuildOptions(options) {
      bundled.esbuildOptions?.(options, { format: 'cjs' });
      // import() becomes require(), so loading yaml.cjs does not start the ESM loader either.
      options.supported = { 'dynamic-import': false };
    },
    esbuildPlugins: [
      {
        name: 'yaml-apart',
        setup(build) {
          build.onResolve({ filter: /^yaml$/ }, () => ({ path: './yaml.cjs', external: true }));
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
  {
    entry: { yaml: 'src/_yaml.ts' },
    noExternal: ['yaml'],
    format: ['cjs'],
    target: 'node20',
    platform: 'node',
    minify: true,
    dts: false,
    clean: false,
  },
]);
