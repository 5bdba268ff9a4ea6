/**
 * The benchmark CLI as a user runs it: Ctrl-C (SIGINT) mid-run stops after the current step,
 * writes what finished marked incomplete, exits non-zero and leaves no partial file behind.
 * Runs the built package (`npm test` builds it first) on the software adapter.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, test } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..');
const out = mkdtempSync(path.join(tmpdir(), 'distill-cli-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function runCli(args: string[]) {
  const dataDir = path.resolve(ROOT, process.env.MNIST_DIR ?? '../shared/data/mnist');
  // As `npm run bench` runs it: one Node process with tsx's loader (tsx's own CLI would put a
  // signal-relaying parent in between).
  return spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'bench/node/distill.ts',
      '--preset',
      'smoke',
      '--data-dir',
      dataDir,
      '--no-progress',
      ...args,
    ],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TSX_TSCONFIG_PATH: 'tsconfig.run.json' },
    },
  );
}

test('the smoke preset runs end to end and its result file has every field', async () => {
  const jsonPath = path.join(out, 'smoke.json');
  const child = runCli(['--out', path.join(out, 'smoke'), '--json', jsonPath]);
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  expect(code, output).toBe(0);
  const r = JSON.parse(readFileSync(jsonPath, 'utf8'));
  expect(r.preset).toBe('smoke');
  expect(r.complete).toBe(true);
  expect(typeof r.adapter.description).toBe('string');
  for (const run of ['teacher', 'distilledFused', 'distilledStock', 'scratch']) {
    expect(r.runs[run].testAccuracy, run).toBeGreaterThanOrEqual(0);
    expect(r.runs[run].testAccuracy, run).toBeLessThanOrEqual(1);
  }
  expect(r.runs.distilledFused.stepMs.p50).toBeGreaterThan(0);
  expect(r.runs.distilledStock.stepMs.p50).toBeGreaterThan(0);
  expect(r.dispatchesPerStep.fused).toBeLessThan(r.dispatchesPerStep.stock);
}, 180_000);

test('SIGINT during distillation writes an incomplete result and exits non-zero', async () => {
  const child = runCli(['--out', path.join(out, 'interrupted')]);
  let output = '';
  let interrupted = false;
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    // Interrupt once the first distillation run has started.
    if (!interrupted && /distillation \(fused loss\)/.test(output)) {
      interrupted = true;
      child.kill('SIGINT');
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  expect(interrupted, output).toBe(true);
  expect(code, output).not.toBe(0);
  const files = readdirSync(path.join(out, 'interrupted'));
  expect(
    files.filter((f) => f.includes('.tmp')),
    'no temporary file left',
  ).toEqual([]);
  const json = files.find((f) => f.endsWith('.json'));
  expect(json, `result files: ${files.join(', ')}\n${output}`).toBeDefined();
  const report = JSON.parse(readFileSync(path.join(out, 'interrupted', json!), 'utf8')) as {
    complete: boolean;
    runs: { teacher: { testAccuracy: number } | null; scratch: unknown };
  };
  expect(report.complete).toBe(false);
  expect(report.runs.teacher?.testAccuracy).toBeGreaterThan(0);
  expect(report.runs.scratch).toBeNull();
}, 120_000);
