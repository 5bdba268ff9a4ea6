import { defineConfig } from 'vite';

// Relative asset URLs, so that the built app works from any folder or server path. tfjs is
// a few MB: no chunk-size warning for that.
export default defineConfig({
  base: './',
  build: { outDir: 'dist', chunkSizeWarningLimit: 8192 },
});
