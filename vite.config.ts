import { defineConfig } from 'vite';

// Library mode: one ESM entry, tfjs left to the app (peer dependencies), WGSL inlined
// through `?raw` imports.
export default defineConfig({
  build: {
    lib: { entry: 'src/index.ts', formats: ['es'], fileName: () => 'index.js' },
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: true,
    minify: false,
    rollupOptions: { external: [/^@tensorflow\//] },
  },
});
