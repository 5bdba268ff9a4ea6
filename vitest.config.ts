import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Benchmarks and tests import the package by its name, as an app would; under vitest that
    // name is the TypeScript source (WGSL inlined through `?raw`), under Node it is dist/.
    alias: [
      {
        find: /^tfjs-fused-distill\/validation$/,
        replacement: fileURLToPath(new URL('./src/validation/index.ts', import.meta.url)),
      },
      {
        find: /^tfjs-fused-distill$/,
        replacement: fileURLToPath(new URL('./src/index.ts', import.meta.url)),
      },
    ],
  },
  test: {
    include: ['test/**/*.test.ts'],
    // Dawn (the `webgpu` package) is a native addon: one process per test file is the
    // setting known to be stable with it (worker threads have crashed it).
    pool: 'forks',
    // Every core: vitest's default leaves one idle, which on a 2-core CI machine runs the files
    // one at a time. A file's time is lavapipe's threads and the float64 references on the
    // main thread in turns, so two files at once overlap them.
    maxWorkers: availableParallelism(),
    setupFiles: ['test/setup/webgpu.ts', 'test/setup/assertions.ts'],
    // A fresh machine starts with an empty Mesa shader cache: lavapipe then compiles each
    // pipeline specialisation in seconds (a test that walks 24 of them took 56 s cold on a quiet
    // machine, and the real row chunks past 128 MiB 160 s), and two files share the cores, so
    // the limit leaves room.
    testTimeout: 600_000,
    hookTimeout: 600_000,
  },
});
