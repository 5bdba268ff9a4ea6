/**
 * The package as a consumer gets it: `npm pack`, then a fresh app OUTSIDE the
 * repository (a temporary folder) installs the tarball with `@tensorflow/tfjs` 4.22 and
 * `@tensorflow/tfjs-backend-webgpu` 4.22 from the registry, and
 *   - type-checks its JavaScript (checkJs, strict) against the tarball's declarations;
 *   - trains a small student with `Distiller` in Node on Dawn's WebGPU adapter;
 *   - is built by its own Vite and run in headless Chromium on its WebGPU adapter;
 * and in both places the fused and the stock loss agree step by step, from identical initial
 * weights, for int32 labels and for `tf.oneHot(…).toFloat()` labels, and the first cases of the
 * numerics suite pass through the `tfjs-fused-distill/validation` subpath. The app's sources are
 * test/consumer/app/ (train.js is the shared training run; node.js and main.js the entries).
 *
 * Needs the built package (`npm test` builds it first: pretest) and the npm registry (or a
 * warm npm cache) for the app's install. No adapter, no browser, no registry: failures, never
 * skips.
 */
import { execFile } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  readdirSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser } from 'puppeteer-core';
import { preview, type PreviewServer } from 'vite';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { launchChromium, pageResult } from './helpers/chromium.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const APP_SOURCES = path.join(ROOT, 'test/consumer/app');
/** Steps per run, as test/consumer/app/train.js. */
const STEPS = 5;

/**
 * Fused vs stock loss, per step: |fused − stock| ≤ LOSS_RTOL · |stock|.
 *
 * The two compute the same function in float32 and differ by rounding only (logits here are
 * small, so the stock loss' clip of probabilities to [1e-7, 1] never acts: probabilities stay
 * near 1/C at T = 10). The stock loss dominates the difference: it forms KL as
 * Σ_c p_c (log p_c − log q_c) with p ≈ q ≈ 1/C, so each log's rounding (≈ ε·|log(1/C)|,
 * ε = 2^-24 ≈ 6e-8, |log 0.1| ≈ 2.3) survives the cancellation and is multiplied by
 * (1 − α)·T² = 90. Those errors are random, so per row about
 * 90 · 6e-8 · 2.3 · √(2C)/C ≈ 5.6e-6, and over the batch mean (B = 32) about 1e-6: on losses
 * near 1, a relative 1e-6. Measured over the five steps (which include the drift of weights
 * trained on slightly different gradients): at most 1.6e-6 in Node (lavapipe) and 1.4e-6 in
 * Chromium (SwiftShader). 1e-5 is 6× the largest observed and 10× the estimate; a real defect
 * (a wrong α, a missing T², labels read wrongly) moves these losses by 1e-2 or more.
 */
const LOSS_RTOL = 1e-5;

const work = mkdtempSync(path.join(tmpdir(), 'fused-distill-consumer-'));
const app = path.join(work, 'app');
let tarball = '';
let server: PreviewServer | undefined;
let browser: Browser | undefined;

interface RunResult {
  losses: number[];
  fusedKernel: boolean;
  kernels: number;
  leakedTensors: number;
}
interface ConsumerResult {
  backend: string;
  adapter: string;
  runs: Record<'indices' | 'oneHot', { fused: RunResult; stock: RunResult }>;
  validation: { cases: number; passed: number; failed: number };
  error?: string;
}

/**
 * The environment for npm in the app: without the variables `npm test` sets for this
 * repository (its local prefix, package and lifecycle), which would point npm back here.
 */
function appEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(env)) {
    if (/^npm_(config_(local_)?prefix|package_|lifecycle_|command$)/i.test(key)) delete env[key];
  }
  return env;
}

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end (never throws); its output is kept for the error messages. */
function run(file: string, args: string[], cwd: string, timeoutMs: number): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { cwd, env: appEnv(), timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr: err && code === 1 && !stderr ? String(err) : stderr });
      },
    );
  });
}

/** Runs a command that must succeed; throws with its output otherwise. */
async function runOk(file: string, args: string[], cwd: string, timeoutMs: number): Promise<Ran> {
  const r = await run(file, args, cwd, timeoutMs);
  if (r.code !== 0) {
    throw new Error(
      `${[file, ...args].join(' ')} (in ${cwd}) exited with ${r.code}\n${r.stdout}\n${r.stderr}`,
    );
  }
  return r;
}

/** The version of a dependency installed in this repository (what the app pins). */
function repoVersion(name: string): string {
  const json = path.join(ROOT, 'node_modules', name, 'package.json');
  return (JSON.parse(readFileSync(json, 'utf8')) as { version: string }).version;
}

/** The newest modification time under a folder. */
function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) {
      newest = Math.max(newest, statSync(path.join(entry.parentPath, entry.name)).mtimeMs);
    }
  }
  return newest;
}

beforeAll(async () => {
  const entry = path.join(ROOT, 'dist/index.js');
  if (!existsSync(entry)) {
    throw new Error(
      'dist/index.js is missing: `npm test` builds it first (pretest), or `npm run build`',
    );
  }
  const sourceTime = Math.max(
    newestMtime(path.join(ROOT, 'src')),
    newestMtime(path.join(ROOT, 'shaders')),
  );
  if (sourceTime > statSync(entry).mtimeMs) {
    process.stdout.write(
      '[consumer] warning: dist/ is older than src/ or shaders/: `npm run build` to test the current sources\n',
    );
  }

  const packed = await runOk('npm', ['pack', '--json', '--pack-destination', work], ROOT, 120_000);
  const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as {
    filename: string;
  }[];
  tarball = path.join(work, info!.filename);

  cpSync(APP_SOURCES, app, {
    recursive: true,
    filter: (src) => !/[\\/](node_modules|dist)$/.test(src),
  });
  const manifestPath = path.join(app, 'package.json');
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as {
    dependencies: Record<string, string>;
    devDependencies: Record<string, string>;
  };
  manifest.dependencies['tfjs-fused-distill'] = `file:${tarball}`;
  manifest.dependencies.webgpu = repoVersion('webgpu');
  manifest.devDependencies.vite = repoVersion('vite');
  manifest.devDependencies['@types/node'] = repoVersion('@types/node');
  writeFileSync(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);

  const started = Date.now();
  await runOk('npm', ['install', '--no-audit', '--no-fund', '--prefix', app], app, 480_000);
  process.stdout.write(
    `[consumer] app installed in ${work} (${((Date.now() - started) / 1000).toFixed(1)} s)\n`,
  );
}, 600_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  rmSync(work, { recursive: true, force: true });
});

/** The assertions both environments share. */
function expectAgreement(result: ConsumerResult, where: string): void {
  expect(result.error, `${where}: the app failed`).toBeUndefined();
  expect(result.backend, where).toBe('webgpu');
  expect(result.adapter, `${where}: adapter description`).not.toBe('');
  let worst = 0;
  for (const kind of ['indices', 'oneHot'] as const) {
    const { fused, stock } = result.runs[kind];
    const label = `${where}, ${kind} labels`;
    expect(fused.fusedKernel, `${label}: the fused kernel ran on the app's tfjs`).toBe(true);
    expect(stock.fusedKernel, `${label}: the stock loss ran no fused kernel`).toBe(false);
    expect(fused.losses).toHaveLength(STEPS);
    expect(stock.losses).toHaveLength(STEPS);
    for (let step = 0; step < STEPS; step++) {
      const f = fused.losses[step]!;
      const s = stock.losses[step]!;
      expect(Number.isFinite(f) && Number.isFinite(s), `${label}, step ${step}: ${f} / ${s}`).toBe(
        true,
      );
      const rel = Math.abs(f - s) / Math.abs(s);
      worst = Math.max(worst, rel);
      expect(rel, `${label}, step ${step}: fused ${f} vs stock ${s}`).toBeLessThanOrEqual(
        LOSS_RTOL,
      );
    }
    // The student learns (the steps did update it), and nothing leaked.
    expect(fused.losses[STEPS - 1]!, `${label}: fused loss decreases`).toBeLessThan(
      fused.losses[0]!,
    );
    expect(fused.leakedTensors, `${label}: tensors leaked by the fused run`).toBe(0);
    expect(stock.leakedTensors, `${label}: tensors leaked by the stock run`).toBe(0);
  }
  // The validation subpath resolves and runs in the app: its cases pass on this adapter.
  expect(result.validation.cases, `${where}: validation cases`).toBeGreaterThan(0);
  expect(result.validation, `${where}: tfjs-fused-distill/validation`).toEqual({
    cases: result.validation.cases,
    passed: result.validation.cases,
    failed: 0,
  });
  // The two label forms are the same labels: the fused losses agree as closely.
  result.runs.indices.fused.losses.forEach((f, step) => {
    const g = result.runs.oneHot.fused.losses[step]!;
    expect(Math.abs(f - g), `${where}, step ${step}: int32 vs one-hot labels`).toBeLessThanOrEqual(
      LOSS_RTOL * Math.abs(g),
    );
  });
  process.stdout.write(
    `[consumer] ${where} (${result.adapter}): fused vs stock, largest relative difference ${worst.toExponential(2)}\n` +
      `[consumer]   fused ${JSON.stringify(result.runs.indices.fused.losses)}\n` +
      `[consumer]   stock ${JSON.stringify(result.runs.indices.stock.losses)}\n`,
  );
}

test('the packed tarball holds the entry, its declarations and nothing from the repo', async () => {
  const listing = await runOk('tar', ['-tzf', tarball], work, 60_000);
  const files = listing.stdout.split('\n').filter(Boolean);
  for (const f of [
    'package/package.json',
    'package/dist/index.js',
    'package/dist/index.d.ts',
    'package/dist/validation.js',
    'package/dist/validation/index.d.ts',
  ]) {
    expect(files, f).toContain(f);
  }
  expect(files.filter((f) => /^package\/(src|test|bench|node_modules)\//.test(f))).toEqual([]);
});

test('the app type-checks against the packed declarations (checkJs, strict)', async () => {
  // skipLibCheck is off, so the package's own .d.ts files are checked too. tfjs 4.22's
  // declarations and @webgpu/types have errors of their own under TypeScript 5.9 strict; only
  // errors in the app or in the package count.
  const tsc = path.join(ROOT, 'node_modules/typescript/bin/tsc');
  const r = await run(process.execPath, [tsc, '-p', path.join(app, 'tsconfig.json')], app, 180_000);
  const errors = r.stdout.split('\n').filter((l) => /^\S.*\(\d+,\d+\): error TS/.test(l));
  expect(r.code === 0 || errors.length > 0, `tsc failed to run:\n${r.stdout}\n${r.stderr}`).toBe(
    true,
  );
  const ours = errors.filter(
    (l) => !l.startsWith('node_modules/') || l.startsWith('node_modules/tfjs-fused-distill/'),
  );
  expect(ours, r.stdout).toEqual([]);
}, 180_000);

test('Node: Distiller on WebGPU (Dawn), fused and stock losses agree step by step', async () => {
  const r = await run(process.execPath, ['node.js'], app, 240_000);
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  expect(
    r.code === 0 && line,
    `node.js exited with ${r.code}\n${r.stdout}\n${r.stderr}`,
  ).toBeTruthy();
  expectAgreement(JSON.parse(line!.slice('RESULT '.length)) as ConsumerResult, 'Node');
}, 240_000);

test('Chromium: the app built by Vite, fused and stock losses agree step by step', async () => {
  await runOk(
    process.execPath,
    [path.join(app, 'node_modules/vite/bin/vite.js'), 'build'],
    app,
    240_000,
  );
  // Static files only: served by this repository's Vite (preview), on a free port.
  server = await preview({
    configFile: false,
    root: app,
    logLevel: 'warn',
    build: { outDir: 'dist' },
    preview: { host: '127.0.0.1', port: 0, strictPort: false },
  });
  const url = server.resolvedUrls?.local[0];
  expect(url, 'preview server URL').toBeDefined();
  browser = await launchChromium(path.join(work, 'profile'), 'consumer');
  const { result, console } = await pageResult<ConsumerResult>(
    browser,
    url!,
    '__consumerResult',
    180_000,
  );
  expect(result.error, console.join('\n')).toBeUndefined();
  expectAgreement(result, 'Chromium');
}, 300_000);
