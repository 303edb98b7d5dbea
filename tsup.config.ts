import { defineConfig, type Options } from 'tsup';

/** Shared build settings; a package with extra entry points spreads this into its own config. */
export const base: Options = {
  entry: ['src/index.ts'],
  format: ['esm'],
  target: 'node20',
  platform: 'node',
  dts: true,
  clean: true,
  sourcemap: true,
};

export default defineConfig(base);
