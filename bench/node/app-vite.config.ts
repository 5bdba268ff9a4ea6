/**
 * Vite configuration of the benchmark app (bench/page/): `npm run app` serves it for
 * development, `npm run build:app` builds it into dist-app/ as static files, and the headless
 * runner (bench/node/browser-runner.ts) and the page tests build and preview it the same way.
 *
 * - Listens on 127.0.0.1 unless told otherwise (`npm run app -- --host 0.0.0.0`).
 * - Serves the app and nothing else: Vite's file access is limited to the folders the app is
 *   built from, and the dataset middleware serves only the four files of each dataset, read-only,
 *   from the folder the Node loader would use (MNIST_DIR / FASHION_MNIST_DIR, else the cache).
 * - `base: './'`: the static build works from any path of any static host (GitHub Pages
 *   included); `APP_BASE=/sub/path/` sets an absolute base instead.
 * - The build's provenance (commit, versions) is compiled in, for the result files.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig, type InlineConfig } from 'vite';
import { datasetServerPlugin, resolveDatasetDirs } from './app-dataset-server.js';
import { gitCommit } from './lib/results.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const at = (p: string): string => fileURLToPath(new URL(`../../${p}`, import.meta.url));

/** What the page reports as its provenance (see bench/page/build-info.ts). */
export interface AppBuildInfo {
  commit: string;
  builtAt: string;
  versions: Record<string, string>;
}

function packageVersion(path: string): string {
  try {
    return (JSON.parse(readFileSync(at(path), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function appBuildInfo(): AppBuildInfo {
  return {
    commit: gitCommit(ROOT),
    builtAt: new Date().toISOString(),
    versions: {
      'tfjs-fused-distill': packageVersion('package.json'),
      'tfjs-core': packageVersion('node_modules/@tensorflow/tfjs-core/package.json'),
      'tfjs-backend-webgpu': packageVersion(
        'node_modules/@tensorflow/tfjs-backend-webgpu/package.json',
      ),
      'tfjs-layers': packageVersion('node_modules/@tensorflow/tfjs-layers/package.json'),
    },
  };
}

/**
 * The dataset folders the Node loader would use; a folder that is named (MNIST_DIR…) but
 * incomplete is an error here too, not something to serve half of.
 */
export function datasetDirsFromEnv(): Partial<Record<'mnist' | 'fashion-mnist', string>> {
  const resolved = resolveDatasetDirs(process.env);
  if (resolved.problems.length > 0) throw new Error(resolved.problems.join('\n'));
  for (const note of Object.values(resolved.notes)) console.error(`[app] ${note}`);
  return resolved.dirs;
}

/** Options of {@link appViteConfig}, for the runner and the tests. */
export interface AppConfigOptions {
  outDir?: string;
  base?: string;
  /** Dataset folders; default: resolved from the environment as the Node loader does. */
  datasetDirs?: Partial<Record<'mnist' | 'fashion-mnist', string>>;
  port?: number;
}

/** The app's Vite config (a plain object: `configFile: false` users pass it to build/preview). */
export function appViteConfig(options: AppConfigOptions = {}): InlineConfig {
  const dirs = options.datasetDirs ?? datasetDirsFromEnv();
  return {
    configFile: false,
    root: at('bench/page'),
    base: options.base ?? process.env.APP_BASE ?? './',
    logLevel: 'info',
    publicDir: false,
    resolve: {
      alias: [
        { find: /^tfjs-fused-distill\/validation$/, replacement: at('src/validation/index.ts') },
        { find: /^tfjs-fused-distill$/, replacement: at('src/index.ts') },
      ],
    },
    define: { __APP_BUILD__: JSON.stringify(appBuildInfo()) },
    plugins: [datasetServerPlugin({ dirs })],
    server: {
      host: '127.0.0.1',
      port: options.port ?? 5173,
      fs: {
        strict: true,
        allow: ['bench/page', 'bench/core', 'src', 'shaders', 'node_modules'].map(at),
      },
    },
    preview: { host: '127.0.0.1', port: options.port ?? 4173 },
    build: {
      outDir: options.outDir ?? at('dist-app'),
      emptyOutDir: true,
      sourcemap: true,
      target: 'es2022',
      // tfjs is large; the warning says nothing useful about this app.
      chunkSizeWarningLimit: 4096,
    },
  };
}

export default defineConfig(() => appViteConfig());
