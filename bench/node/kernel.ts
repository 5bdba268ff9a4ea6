/**
 * Kernel benchmark CLI: the fused distillation loss forward+backward against the stock-op
 * composition (Keras formula) and against a memory ceiling, on the current adapter, in one
 * process. Runs bench/core/kernel-bench/ (as the page does); prints a table with the wall
 * clock and, where the adapter has 'timestamp-query', the GPU clock; writes JSON and CSV under
 * bench/results/.
 *
 *   npm run bench:kernel [-- --shapes 64x10,256x32768 --topk 256x32768k32 --windows 7]
 *   npm run bench:kernel -- --sweep vocab [--memory-budget 8] [--append-results]
 *   npm run bench:kernel -- --sweep topk [--append-results]
 *   npm run bench:kernel -- --divergence jsd [--beta 0.2] [--topk none] [--shapes …]
 *
 * `--divergence forward-kl|reverse-kl|jsd` (default forward-kl) picks the soft term of both
 * sides; `--beta b` is the JSD's β, in (0, 1) (default 0.5; jsd only). The stock side of
 * forward KL is stockDistillationLoss (the Keras formula); it has no other divergence, so
 * reverse KL and the JSD are timed against the exact composition from stock ops
 * (src/composed.ts), and the report says which baseline ran. Top-K teachers are forward KL
 * only: with another divergence `--topk` defaults to none, and `--topk` shapes or
 * `--sweep topk` are an error. Bad values are refused before anything runs.
 *
 * `--sweep vocab`: C ∈ {1k, 4k, 32k, 128k, 256k} (1k = 1024) × rows ∈ {64, 512, 2048}, plus
 * 128 × 131072; forward, backward and both; peak GPU bytes; sides whose estimated memory
 * exceeds `--memory-budget` GiB are skipped, and failures (out of memory, binding limit) are
 * recorded, not fatal. The plan and its time estimate are printed first.
 *
 * Sparse (top-K) teachers, `--topk BxCkK,…` (default 256x32768k32, the bar; `none` for
 * none) or `--sweep topk` (256 rows × C ∈ {32768, 131072} × K ∈ {8, 32, 128}): the fused loss
 * with the teacher's top-K against the dense fused loss on the same logits (alternating
 * windows) and against the stock composition with the same top-K, with the teacher's bytes
 * per row of each (dense C·4, sparse K·8).
 *
 * Linear head, `--linear [--linear-sizes 512x256x32768,…]` (rows x H x V; default the grid
 * H ∈ {256, 768} × V ∈ {32768, 131072} × rows ∈ {512, 2048}): fusedLinearDistillationLoss with
 * a teacher head against `matMul(h, W) + b` then distillationLoss, and then the stock
 * composition, forward+backward w.r.t. hidden, weight and bias; the plain matMul's throughput
 * and the FLOP floor beside them; peak bytes from tf.profile(). With `--linear` the dense and
 * top-K shapes run only when `--shapes` / `--topk` are given. `--linear-op-budget MiB` sets the
 * op's memoryBudgetBytes; a matMul side whose arrays exceed one storage binding is refused
 * unless `--linear-try-past-binding` (then its zeros are reported as a failure); a side whose
 * estimate exceeds `--memory-budget` GiB (default 8) is refused.
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
// tfjs-layers registers the gradients of every stock op (tfjs-core alone registers none).
import '@tensorflow/tfjs-layers';
import {
  DEFAULT_KERNEL_SHAPES,
  DEFAULT_LINEAR_SIZES,
  DEFAULT_MEMORY_BUDGET_GIB,
  DEFAULT_TOPK_SHAPES,
  divergenceLabel,
  formatFailureLine,
  formatKernelPlan,
  formatKernelReport,
  formatLinearLine,
  formatShapeLine,
  formatTopKLine,
  KERNEL_DIVERGENCES,
  KERNEL_SWEEPS,
  kernelCsvRows,
  parseDivergenceOptions,
  parseLinearSizes,
  parseShapes,
  runKernelBenchmark,
  STOCK_BASELINE_TEXT,
  stockBaselineOf,
  topKShapesFor,
  type KernelSweep,
} from '../core/kernel-bench/index.js';
import { initNodeWebGPU } from './lib/node-webgpu.js';
import { fileStamp, gitCommit, toCsv, versions, writeFileAtomic } from './lib/results.js';
import { appendReportToResults } from './results-file.js';

const CEILING_SHADER = new URL('../core/memory-ceiling.wgsl', import.meta.url);

const program = new Command()
  .name('bench:kernel')
  .description('Fused vs stock distillation loss, forward+backward, on the current WebGPU adapter')
  .option('--shapes <list>', 'comma-separated BxC shapes', DEFAULT_KERNEL_SHAPES)
  .option(
    '--topk <list>',
    'sparse (top-K) teacher shapes BxCkK, comma-separated, or none',
    DEFAULT_TOPK_SHAPES,
  )
  .option(
    '--windows <n>',
    'measured windows (wall) and samples (GPU clock) per shape',
    (v) => parseInt(v, 10),
    9,
  )
  .option('--window-ms <ms>', 'target length of one window', (v) => parseFloat(v), 250)
  .option('--sweep <name>', `a named sweep instead of --shapes (${KERNEL_SWEEPS.join(', ')})`)
  .option(
    '--memory-budget <GiB>',
    `skip a side whose estimated memory exceeds this (default with --sweep: ${DEFAULT_MEMORY_BUDGET_GIB})`,
    parseFloat,
  )
  .option(
    '--max-side-s <s>',
    'cut the windows of a slow side (to 3 at least) to stay near this (default with --sweep: 30)',
    parseFloat,
  )
  .option(
    '--phases',
    'time forward alone too, and backward as the paired difference (on with --sweep)',
  )
  .option('--alpha <a>', 'alpha', parseFloat, 0.1)
  .option('--temperature <t>', 'temperature', parseFloat, 10)
  .option(
    '--divergence <name>',
    `the soft term's divergence, both sides (${KERNEL_DIVERGENCES.join(', ')}); the stock side ` +
      'of reverse-kl and jsd is the exact composition',
    'forward-kl',
  )
  .option('--beta <b>', 'β of --divergence jsd, in (0, 1) (default 0.5)')
  .option(
    '--linear',
    'time the linear head: the fused linear op vs matMul + fused loss vs matMul + stock',
  )
  .option(
    '--linear-sizes <list>',
    'linear sizes rows x H x V, comma-separated (e.g. 64x32x1024), or grid (implies --linear)',
  )
  .option('--linear-op-budget <MiB>', "the fused linear op's memoryBudgetBytes, MiB", parseFloat)
  .option(
    '--linear-try-past-binding',
    'run matMul sides whose arrays exceed one storage binding (their zeros are reported)',
  )
  .option(
    '--linear-single-step',
    'one measured step per linear side (wall, peak GPU bytes): for sizes whose step takes minutes',
  )
  .option('--seed <n>', 'input seed', (v) => parseInt(v, 10), 1234)
  .option('--out <dir>', 'results directory', 'bench/results')
  .option('--append-results', 'add the rows to bench/results/all-results.csv', false);

async function main(): Promise<void> {
  const opts = program.parse().opts<{
    appendResults: boolean;
    shapes: string;
    topk: string;
    windows: number;
    windowMs: number;
    alpha: number;
    temperature: number;
    divergence: string;
    beta?: string;
    seed: number;
    out: string;
    sweep?: string;
    memoryBudget?: number;
    maxSideS?: number;
    phases?: boolean;
    linear?: boolean;
    linearSizes?: string;
    linearOpBudget?: number;
    linearTryPastBinding?: boolean;
    linearSingleStep?: boolean;
  }>();
  if (opts.sweep !== undefined && !(KERNEL_SWEEPS as readonly string[]).includes(opts.sweep)) {
    throw new Error(
      `--sweep: unknown sweep "${opts.sweep}" (expected: ${KERNEL_SWEEPS.join(', ')})`,
    );
  }
  if (opts.memoryBudget !== undefined && !(opts.memoryBudget > 0)) {
    throw new Error('--memory-budget: expected a positive number of GiB');
  }
  const sweep = (opts.sweep as KernelSweep | undefined) ?? null;
  const { divergence, beta } = parseDivergenceOptions(opts.divergence, opts.beta);
  const linear = opts.linear === true || opts.linearSizes !== undefined;
  if (opts.linearOpBudget !== undefined && !(opts.linearOpBudget > 0)) {
    throw new Error('--linear-op-budget: expected a positive number of MiB');
  }
  const linearShapes = linear ? parseLinearSizes(opts.linearSizes ?? DEFAULT_LINEAR_SIZES) : [];
  // With --linear, the dense and top-K shapes run only when given on the command line.
  const shapesGiven = program.getOptionValueSource('shapes') !== 'default';
  const shapes = linear && !shapesGiven ? [] : parseShapes(opts.shapes);
  // Top-K teachers are forward KL only: the default shape is dropped for another divergence,
  // shapes given on the command line (or the topk sweep) are an error.
  const topKGiven = program.getOptionValueSource('topk') !== 'default';
  const topK = linear && !topKGiven ? [] : topKShapesFor(opts.topk, topKGiven, sweep, divergence);
  const env = await initNodeWebGPU();
  console.log(`adapter: ${env.adapter.description}`);
  console.log(
    `divergence: ${divergenceLabel(divergence, beta)}; stock side: ` +
      STOCK_BASELINE_TEXT[stockBaselineOf(divergence)],
  );
  // Ctrl-C stops between windows; the shapes done so far are still written.
  const abort = new AbortController();
  process.once('SIGINT', () => {
    console.error('interrupted: stopping after the current window');
    abort.abort();
  });
  const report = await runKernelBenchmark({
    device: env.device,
    ceilingShader: readFileSync(CEILING_SHADER, 'utf8'),
    shapes,
    topK,
    sweep,
    ...(opts.phases ? { phases: true } : {}),
    ...(opts.memoryBudget !== undefined
      ? { memoryBudgetBytes: opts.memoryBudget * 1024 ** 3 }
      : {}),
    ...(opts.maxSideS !== undefined ? { maxSideMs: opts.maxSideS * 1000 } : {}),
    ...(linear
      ? {
          linear: linearShapes,
          linearTryPastBinding: opts.linearTryPastBinding === true,
          linearSingleStep: opts.linearSingleStep === true,
          ...(opts.linearOpBudget !== undefined
            ? { linearOpBudgetBytes: opts.linearOpBudget * 1024 ** 2 }
            : {}),
        }
      : {}),
    windows: opts.windows,
    windowMs: opts.windowMs,
    alpha: opts.alpha,
    temperature: opts.temperature,
    divergence,
    beta,
    seed: opts.seed,
    meta: {
      adapter: env.adapter,
      software: env.software,
      commit: gitCommit(),
      versions: versions(),
    },
    onPlan: (plan) => console.log(formatKernelPlan(plan)),
    onShape: (r) => console.log(formatShapeLine(r)),
    onFailure: (f) => console.log(formatFailureLine(f)),
    onTopKShape: (r) => console.log(formatTopKLine(r)),
    onLinearShape: (r) => console.log(formatLinearLine(r)),
    onProgress: (line) => {
      if (sweep || linear) console.log(`  … ${line}`);
    },
    signal: abort.signal,
  });
  console.log('');
  console.log(formatKernelReport(report));
  const base = `${opts.out}/kernel-${fileStamp()}`;
  writeFileAtomic(`${base}.json`, JSON.stringify(report, null, 2) + '\n');
  writeFileAtomic(`${base}.csv`, toCsv(kernelCsvRows(report)));
  console.log(`wrote ${base}.json and ${base}.csv`);
  if (opts.appendResults) console.log(appendReportToResults(report));
  if (!report.complete) process.exitCode = 130;
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
