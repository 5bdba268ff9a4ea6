import { defineConfig } from 'vite';

// Library mode: two ESM entries (the package and its `/validation` subpath, sharing one chunk
// of the library so the kernels register once), tfjs left to the app (peer dependencies), WGSL
// inlined through `?raw` imports.
export default defineConfig({
  build: {
    lib: {
      entry: { index: 'src/index.ts', validation: 'src/validation/index.ts' },
      formats: ['es'],
      fileName: (_format, name) => `${name}.js`,
    },
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: true,
    minify: false,
    rollupOptions: {
      external: [/^@tensorflow\//],
      output: { chunkFileNames: 'fused-distill-[hash].js' },
    },
  },
});
