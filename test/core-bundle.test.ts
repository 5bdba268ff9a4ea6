// The host-neutral benchmark code (bench/core/) bundles for the browser: Vite's client build of
// its entry points (the protocol and benchmarks, the dataset catalogue) and of the validation
// subpath (the numerics suite) succeeds and pulls in no Node built-in. (tsconfig.core.json checks the
// types; this checks what a page would actually load.)
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, createLogger, type Rollup } from 'vite';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const outDir = mkdtempSync(path.join(os.tmpdir(), 'core-bundle-'));

afterAll(() => rmSync(outDir, { recursive: true, force: true }));

describe('bench/core bundles for the browser', () => {
  it('builds bench/core with no node: import and no browser-external stub', async () => {
    const warnings: string[] = [];
    // Vite replaces a Node built-in by an empty "browser external" module and only warns.
    const logger = createLogger('silent');
    logger.warn = (message) => void warnings.push(message);
    logger.warnOnce = logger.warn;
    await build({
      root: ROOT,
      configFile: false,
      customLogger: logger,
      resolve: {
        alias: [
          {
            find: /^tfjs-fused-distill\/validation$/,
            replacement: path.join(ROOT, 'src/validation/index.ts'),
          },
          { find: /^tfjs-fused-distill$/, replacement: path.join(ROOT, 'src/index.ts') },
        ],
      },
      build: {
        ssr: false,
        target: 'esnext',
        outDir,
        emptyOutDir: true,
        minify: false,
        lib: {
          entry: {
            core: path.join(ROOT, 'bench/core/index.ts'),
            validation: path.join(ROOT, 'src/validation/index.ts'),
            datasets: path.join(ROOT, 'bench/core/data/datasets.ts'),
          },
          formats: ['es'],
          fileName: (_format, name) => `${name}.js`,
        },
        // tfjs is the page's own (as for the library); everything of ours is bundled.
        rollupOptions: {
          external: [/^@tensorflow\//],
          onwarn: (warning: Rollup.RollupLog) => void warnings.push(warning.message),
        },
      },
    });
    const files = readdirSync(outDir).filter((f) => f.endsWith('.js'));
    expect(files.length).toBeGreaterThan(0);
    const code = files.map((f) => readFileSync(path.join(outDir, f), 'utf8')).join('\n');
    for (const name of [
      'runDistillBenchmark',
      'runKernelBenchmark',
      'runValidationSuite',
      'verifyDigest',
    ]) {
      expect(code).toContain(name);
    }
    expect(code).not.toMatch(/from\s*["']node:|import\(\s*["']node:|require\(\s*["']node:/);
    expect(code).not.toMatch(/vite[-_]browser[-_]external/);
    expect(warnings.filter((w) => /externalized for browser|node:/i.test(w))).toEqual([]);
    // The only imports left are tfjs' and the entries' shared chunks.
    const imports = [...code.matchAll(/^import\b[^'"]*["']([^"']+)["']/gm)].map((m) => m[1]);
    expect(imports.filter((spec) => !/^(@tensorflow\/|\.\/)/.test(spec!))).toEqual([]);
  });
});
