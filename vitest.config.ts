import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
    // Each test file gets its own process: tfjs keeps one global engine/backend per process.
    pool: 'forks',
    poolOptions: { forks: { singleFork: false } },
    fileParallelism: false,
    // A committed `.only` would silently drop every other test: refuse it everywhere, not only when CI is set.
    allowOnly: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
