import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// The suites that test the CLI, server and trainer mechanics run the "demo model" on the tiny random-weights fixture
// (9 frames, 2 layers: a generation takes ~1 s), named by COGVIDEOX_DEMO_MODEL (src/cli/demo.ts), which child
// processes inherit too. test/demo_model.test.ts removes it and checks the trained model bundled in assets/demo-model.
const TINY_DEMO = fileURLToPath(new URL('./test/fixtures/tiny-cogvideox-fun', import.meta.url));

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/setup.ts'],
    env: { COGVIDEOX_DEMO_MODEL: TINY_DEMO },
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
