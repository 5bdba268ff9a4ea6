/**
 * The benchmark app in a real browser, as a user runs it: `npm run bench:browser` (build, serve
 * on 127.0.0.1, headless Chromium through puppeteer-core) on Debian's Chromium, whose WebGPU
 * adapter here is SwiftShader. No browser or no adapter is a failure, never a skip.
 *
 * - the numerics panel's quick suite passes on the browser's adapter;
 * - a smoke distillation runs both losses and writes a valid result file, and the page shows
 *   it; a screenshot of the finished page is saved for a person to look at
 *   (bench/results/screenshots/, or APP_SCREENSHOT_DIR);
 * - the runner fails (non-zero) when the page does not finish in time.
 * Any console error or page error fails the runner, hence these tests.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, test } from 'vitest';
import type { DistillReport } from '../bench/core/protocol.js';
import type { ValidationSummary } from '../bench/page/automation.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const out = mkdtempSync(path.join(tmpdir(), 'app-test-'));
const SCREENSHOTS = path.resolve(
  ROOT,
  process.env.APP_SCREENSHOT_DIR ?? 'bench/results/screenshots',
);
afterAll(() => rmSync(out, { recursive: true, force: true }));

/** Runs the headless runner as `npm run bench:browser` does; resolves with its exit and output. */
function runner(args: string[]): Promise<{ code: number | null; output: string }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'bench/node/browser-runner.ts', ...args],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        TSX_TSCONFIG_PATH: 'tsconfig.run.json',
        MNIST_DIR: path.resolve(ROOT, process.env.MNIST_DIR ?? '../shared/data/mnist'),
      },
    },
  );
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, output })));
}

test(
  'the numerics panel passes its quick suite on the browser adapter',
  async () => {
    const json = path.join(out, 'validation.json');
    const { code, output } = await runner([
      '--validate',
      '--level',
      'quick',
      '--json',
      json,
      '--timeout',
      '20',
    ]);
    expect(code, output).toBe(0);
    const summary = JSON.parse(readFileSync(json, 'utf8')) as ValidationSummary;
    expect(summary.kind).toBe('kernel-validation');
    expect(summary.failed, output).toBe(0);
    expect(summary.passed).toBe(summary.cases.length);
    expect(summary.cases.length).toBeGreaterThan(10);
    for (const c of summary.cases) expect(c.worstRatio, c.name).toBeLessThanOrEqual(1);
    process.stdout.write(
      `[app] validation on ${summary.adapter}: ${summary.passed} cases passed\n`,
    );
  },
  25 * 60_000,
);

test(
  'a smoke distillation runs both losses in the page and writes a valid result file',
  async () => {
    mkdirSync(SCREENSHOTS, { recursive: true });
    const json = path.join(out, 'smoke.json');
    const shot = path.join(SCREENSHOTS, 'app-distill-smoke.png');
    const { code, output } = await runner([
      '--preset',
      'smoke',
      '--json',
      json,
      '--out',
      path.join(out, 'files'),
      '--screenshot',
      shot,
      '--timeout',
      '25',
    ]);
    expect(code, output).toBe(0);
    const r = JSON.parse(readFileSync(json, 'utf8')) as DistillReport;
    expect(r.kind).toBe('distill-benchmark');
    expect(r.complete).toBe(true);
    expect(r.preset).toBe('smoke');
    expect(r.flags.host).toBe('browser');
    expect(r.versions.browser).toMatch(/Chrom/);
    expect(r.adapter.description).toMatch(/SwiftShader/i);
    expect(r.dataset.name).toBe('mnist');
    for (const run of ['teacher', 'distilledFused', 'distilledStock', 'scratch'] as const) {
      const rec = r.runs[run];
      expect(rec, run).not.toBeNull();
      expect(rec!.complete).toBe(true);
      expect(rec!.testAccuracy).toBeGreaterThan(0.1);
      expect(rec!.lossCurve.every(Number.isFinite), run).toBe(true);
    }
    // Both losses ran: their loss curves agree step by step (same weights, same batches).
    expect(r.curves!.maxRelDiff).toBeLessThanOrEqual(1e-4);
    expect(r.dispatchesPerStep.fused).toBeLessThan(r.dispatchesPerStep.stock!);
    expect(r.lossOnly!.speedup).toBeGreaterThan(1);
    expect(r.memoryGrowthFlagged).toBe(false);
    expect(existsSync(shot) && statSync(shot).size > 10_000, 'screenshot written').toBe(true);
    process.stdout.write(`[app] screenshot of the finished page: ${shot}\n`);
  },
  30 * 60_000,
);

test(
  'the runner fails when the page does not finish in time',
  async () => {
    const { code, output } = await runner([
      '--kernel',
      '--shapes',
      '256x32768',
      '--timeout',
      '0.05',
    ]);
    expect(code).not.toBe(0);
    expect(output).toMatch(/timed out after 0\.05 minutes/);
  },
  5 * 60_000,
);
