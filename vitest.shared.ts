import { defineConfig } from 'vitest/config';

// Workspace siblings resolve to their TypeScript source, so unit tests need no build.
export default defineConfig({
  resolve: { conditions: ['@exec-kernel/source'] },
  ssr: { resolve: { conditions: ['@exec-kernel/source'] } },
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    restoreMocks: true,
  },
});
