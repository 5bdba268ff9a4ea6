/**
 * The benchmark in a real browser, headless (`npm run bench:browser`): builds the app
 * (bench/page/), serves the build on 127.0.0.1 with the dataset folders (as `npm run app` does),
 * opens it in Chrome or Chromium through puppeteer-core, runs the chosen preset (or, with
 * `--kernel`, the kernel benchmark; with `--validate`, the numerics suite) in the page, streams
 * the page's progress here, and writes the same result files as the CLI.
 *
 *   npm run bench:browser                         # the distillation, preset by adapter
 *   npm run bench:browser -- --preset smoke --json result.json
 *   npm run bench:browser -- --kernel             # the kernel benchmark
 *   npm run bench:browser -- --validate           # the numerics suite on the browser's GPU
 *   npm run bench:browser -- --headed             # watch it
 *
 * Exits non-zero on any page error, console error, failed validation case, lost device or
 * timeout: a run that prints figures has run clean.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Command, Option } from 'commander';
import type { Browser, Page } from 'puppeteer-core';
import { build, preview, type PreviewServer } from 'vite';
import type { BenchEvent, ValidationSummary } from '../page/automation.js';
import type { DistillReport } from '../core/protocol.js';
import { formatReport } from '../core/protocol.js';
import {
  formatKernelReport,
  kernelCsvRows,
  type KernelReport,
} from '../core/kernel-bench/index.js';
import { PRESET_NAMES } from '../core/presets.js';
import { resolveDatasetDirs } from './app-dataset-server.js';
import { appViteConfig } from './app-vite.config.js';
import { launchChromium } from './lib/chromium.js';
import { fileStamp, toCsv, writeFileAtomic } from './lib/results.js';
import { writeReport } from './report-files.js';
import { appendReportToResults } from './results-file.js';

interface RunnerOptions {
  preset?: string;
  dataset: 'mnist' | 'fashion-mnist';
  kernel: boolean;
  validate: boolean;
  level: 'quick' | 'full';
  shapes?: string;
  windows?: string;
  json?: string;
  out: string;
  screenshot?: string;
  appendResults: boolean;
  headed: boolean;
  timeout: number;
  chromeArg: string[];
}

const program = new Command()
  .name('bench:browser')
  .description('Runs the benchmark app in headless Chrome/Chromium and writes its result files')
  .addOption(
    new Option('--preset <name>', 'distillation preset (default: by adapter)').choices(
      PRESET_NAMES,
    ),
  )
  .addOption(
    new Option('--dataset <name>', 'dataset').choices(['mnist', 'fashion-mnist']).default('mnist'),
  )
  .option('--kernel', 'run the kernel benchmark instead of the distillation', false)
  .option('--validate', 'run the kernel numerics suite instead of the distillation', false)
  .addOption(
    new Option('--level <level>', 'numerics suite size')
      .choices(['quick', 'full'])
      .default('quick'),
  )
  .option('--shapes <list>', 'kernel benchmark shapes, e.g. 64x10,256x32768')
  .option('--windows <n>', 'kernel benchmark windows per shape')
  .option('--json <path>', 'write the JSON result here (default: in --out)')
  .option('--out <dir>', 'results directory', 'bench/results')
  .option('--append-results', 'add the rows to bench/results/all-results.csv', false)
  .option('--screenshot <path>', 'save a screenshot of the finished page (PNG)')
  .option('--headed', 'show the browser window', false)
  .option('--timeout <minutes>', 'give up after this long', (v) => Number(v), 60)
  .option(
    '--chrome-arg <arg...>',
    'extra browser flags (e.g. --enable-features=Vulkan on Linux GPUs)',
    [],
  );

/** Where the run failed, collected from every source; empty means clean. */
class Failures {
  readonly list: string[] = [];
  add(what: string): void {
    this.list.push(what);
    process.stderr.write(`[bench:browser] FAILURE: ${what}\n`);
  }
}

function autorunQuery(opts: RunnerOptions): {
  task: 'kernel' | 'distill' | 'validate';
  query: string;
} {
  const params = new URLSearchParams();
  const task = opts.kernel ? 'kernel' : opts.validate ? 'validate' : 'distill';
  params.set('autorun', task);
  if (task === 'distill') {
    if (opts.preset) params.set('preset', opts.preset);
    params.set('dataset', opts.dataset);
  }
  if (task === 'kernel') {
    if (opts.shapes) params.set('shapes', opts.shapes);
    if (opts.windows) params.set('windows', opts.windows);
  }
  if (task === 'validate') params.set('level', opts.level);
  return { task, query: params.toString() };
}

/** Writes the page's result where the CLI would; returns the paths. */
function writeResult(
  report: DistillReport | KernelReport | ValidationSummary,
  opts: RunnerOptions,
): string[] {
  if (report.kind === 'distill-benchmark') {
    process.stdout.write(`\n${formatReport(report)}\n`);
    const files = writeReport(report, opts.out, opts.json);
    if (opts.appendResults) process.stdout.write(`${appendReportToResults(report)}\n`);
    return [files.json, files.csv, files.curvesCsv];
  }
  if (report.kind === 'kernel-benchmark') {
    process.stdout.write(`\n${formatKernelReport(report)}\n`);
    const base = `${opts.out}/kernel-browser-${fileStamp(new Date(report.timestamp))}`;
    const json = opts.json ?? `${base}.json`;
    writeFileAtomic(json, JSON.stringify(report, null, 2) + '\n');
    writeFileAtomic(`${base}.csv`, toCsv(kernelCsvRows(report)));
    if (opts.appendResults) process.stdout.write(`${appendReportToResults(report)}\n`);
    return [json, `${base}.csv`];
  }
  process.stdout.write(
    `\nvalidation (${report.level}) on ${report.adapter}: ${report.passed} passed, ${report.failed} failed\n` +
      report.cases
        .filter((c) => !c.pass)
        .map((c) => `  FAIL ${c.name}: ${c.error ?? `worst |error|/tolerance ${c.worstRatio}`}\n`)
        .join(''),
  );
  const json = opts.json ?? `${opts.out}/validation-browser-${fileStamp()}.json`;
  writeFileAtomic(json, JSON.stringify(report, null, 2) + '\n');
  return [json];
}

/** Resolves on the page's `done` event, or rejects on timeout, crash or a closed page. */
function watchPage(
  page: Page,
  opts: RunnerOptions,
  failures: Failures,
): Promise<BenchEvent & { type: 'done' }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`timed out after ${opts.timeout} minutes`)),
      opts.timeout * 60_000,
    );
    page.on('console', (m) => {
      // The page probes the server's dataset folder before the browser cache and the mirror; a
      // 404 there is an answer ("not served here"), which the browser logs as an error anyway.
      const probe =
        m.text().startsWith('Failed to load resource') &&
        /\/datasets\/[^/]+\/[^/]+\.gz$/.test(m.location().url ?? '');
      if (m.type() === 'error' && !probe) failures.add(`console error: ${m.text()}`);
      else if (m.type() === 'warn') process.stderr.write(`[page warn] ${m.text()}\n`);
    });
    page.on('pageerror', (e) => failures.add(`page error: ${String(e)}`));
    // The console's "Failed to load resource" names no URL: this does.
    page.on('response', (r) => {
      if (r.status() >= 400) process.stderr.write(`[page] HTTP ${r.status()} for ${r.url()}\n`);
    });
    page.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`the page crashed: ${String(e)}`));
    });
    page.on('close', () => {
      clearTimeout(timer);
      reject(new Error('the page closed before the run finished'));
    });
    void page.exposeFunction('__benchEmit', (event: BenchEvent) => {
      switch (event.type) {
        case 'log':
        case 'progress':
          process.stderr.write(`${'line' in event ? event.line : ''}\n`);
          break;
        case 'result':
          try {
            for (const f of writeResult(event.report, opts)) process.stdout.write(`wrote ${f}\n`);
          } catch (err) {
            failures.add(`writing the result: ${String(err)}`);
          }
          break;
        case 'done':
          clearTimeout(timer);
          resolve(event);
          break;
      }
    });
  });
}

async function main(): Promise<number> {
  const opts = program.parse().opts<RunnerOptions>();
  const failures = new Failures();
  const { dirs, missing, notes, problems } = resolveDatasetDirs(process.env);
  if (problems.length > 0) throw new Error(problems.join('\n'));
  for (const note of Object.values(notes)) process.stderr.write(`dataset: ${note}\n`);
  for (const name of missing) {
    process.stderr.write(
      `no local ${name} folder: the page downloads it (or set MNIST_DIR / FASHION_MNIST_DIR)\n`,
    );
  }
  const work = mkdtempSync(path.join(tmpdir(), 'fused-distill-app-'));
  let server: PreviewServer | undefined;
  let browser: Browser | undefined;
  try {
    const config = appViteConfig({ outDir: path.join(work, 'dist'), datasetDirs: dirs, port: 0 });
    process.stderr.write('building the app…\n');
    await build({ ...config, logLevel: 'warn' });
    server = await preview({
      ...config,
      logLevel: 'warn',
      preview: { host: '127.0.0.1', port: 0 },
    });
    const url = server.resolvedUrls?.local[0];
    if (!url) throw new Error('the preview server has no local URL');
    browser = await launchChromium(path.join(work, 'profile'), 'bench:browser', {
      headless: !opts.headed,
      extraArgs: opts.chromeArg,
      log: (line) => process.stderr.write(`${line}\n`),
    });
    const page = await browser.newPage();
    const done = watchPage(page, opts, failures);
    const { task, query } = autorunQuery(opts);
    process.stderr.write(`running ${task} at ${url}?${query}\n`);
    await page.goto(`${url}?${query}`);
    const event = await done;
    if (!event.ok) failures.add(`the ${task} run failed: ${event.error ?? 'no reason given'}`);
    if (opts.screenshot) {
      await page.screenshot({ path: opts.screenshot, fullPage: true });
      process.stdout.write(`wrote ${opts.screenshot}\n`);
    }
  } catch (err) {
    failures.add(err instanceof Error ? err.message : String(err));
  } finally {
    await browser?.close().catch(() => undefined);
    await server?.close().catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  }
  if (failures.list.length > 0) {
    process.stderr.write(`bench:browser: ${failures.list.length} failure(s)\n`);
    return 1;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exit(1);
  },
);
