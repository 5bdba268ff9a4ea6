/**
 * The package in a browser: Vite bundles test/browser/ (importing `tfjs-fused-distill` as an
 * app would), Vite's preview server serves it on 127.0.0.1, and headless Chromium
 * (Debian's, driven by puppeteer-core) runs the fused loss on its WebGPU adapter (SwiftShader)
 * and compares it with the float64 reference. The browser is `CHROMIUM_PATH`, else an installed
 * Chromium or Chrome (tools/find-chromium.ts). No browser is a failure that says where it
 * looked, not a skip: CI installs Chromium (`scripts/setup-headless.sh --install`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'puppeteer-core';
import { build, preview, type PreviewServer } from 'vite';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { BrowserResult } from './browser/main.js';
import { launchChromium, pageResult } from './helpers/chromium.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const work = mkdtempSync(path.join(tmpdir(), 'fused-distill-browser-'));
let server: PreviewServer | undefined;
let browser: Browser | undefined;

const viteConfig = {
  configFile: false as const,
  root: path.join(ROOT, 'test/browser'),
  logLevel: 'warn' as const,
  resolve: {
    alias: [
      {
        find: /^tfjs-fused-distill\/validation$/,
        replacement: path.join(ROOT, 'src/validation/index.ts'),
      },
      { find: /^tfjs-fused-distill$/, replacement: path.join(ROOT, 'src/index.ts') },
    ],
  },
  build: { outDir: path.join(work, 'dist'), emptyOutDir: true },
  preview: { host: '127.0.0.1', port: 0, strictPort: false },
};

beforeAll(async () => {
  await build(viteConfig);
  server = await preview(viteConfig);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

test('imports and runs in headless Chromium on its WebGPU adapter', async () => {
  const url = server!.resolvedUrls?.local[0];
  expect(url, 'preview server URL').toBeDefined();
  browser = await launchChromium(path.join(work, 'profile'), 'browser');
  const { result, console } = await pageResult<BrowserResult>(
    browser,
    url!,
    '__fusedDistillResult',
    120_000,
  );
  expect(result.error, console.join('\n')).toBeUndefined();
  expect(result.backend).toBe('webgpu');
  process.stdout.write(`[browser] adapter: ${result.adapter}\n`);
  // Same tolerances in spirit as the Node suite, at this small size: a few ULP of the loss, and
  // of the largest gradient element.
  expect(Math.abs(result.value - result.reference)).toBeLessThan(1e-5 * Math.abs(result.reference));
  expect(result.maxGradError).toBeLessThan(1e-5 * result.maxGradMagnitude);
}, 180_000);
