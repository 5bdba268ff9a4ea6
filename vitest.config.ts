import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Dawn (the `webgpu` package) is a native addon: one process per test file is the
    // setting known to be stable with it (worker threads have crashed it).
    pool: 'forks',
    setupFiles: ['test/setup/webgpu.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
