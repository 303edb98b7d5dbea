import { defineConfig } from 'tsup';
import { base } from '../../tsup.config.ts';

export default defineConfig({
  ...base,
  entry: { index: 'src/index.ts', 'protocol/index': 'src/protocol/index.ts' },
});
