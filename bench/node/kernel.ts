/**
 * Kernel benchmark: the fused distillation loss forward+backward against the stock-op
 * composition (Keras formula) and against a memory ceiling, on the current adapter, in one
 * process. Prints a table; writes JSON and CSV under bench/results/.
 *
 *   npm run bench:kernel [-- --shapes 64x10,256x32768 --windows 7]
 */
import { Command } from 'commander';
import * as tf from '@tensorflow/tfjs-core';
// tfjs-layers registers the gradients of every stock op (tfjs-core alone registers none).
import '@tensorflow/tfjs-layers';
import { distillationLoss, stockDistillationLoss } from 'tfjs-fused-distill';
import { lossStep, stepDispatches, timeWindow, windowCalls } from '../core/lib/loss-timing.js';
import { measureMemoryCeiling } from './lib/memory-ceiling.js';
import { initNodeWebGPU } from './lib/node-webgpu.js';
import { labelArray, mulberry32, uniformArray } from '../core/lib/random.js';
import { fileStamp, gitCommit, toCsv, versions, writeFileAtomic } from './lib/results.js';
import { formatMs, spread, type Spread } from '../core/lib/stats.js';

interface ShapeResult {
  batch: number;
  classes: number;
  fused: Spread;
  stock: Spread;
  ceiling: Spread;
  fusedDispatches: number;
  stockDispatches: number;
  /** stock p50 / fused p50 */
  speedup: number;
  /** fused p50 / ceiling p50 */
  ceilingRatio: number;
  /** Bytes of the least traffic (s and t read, the gradient written) per ms of fused time, GB/s. */
  fusedGBps: number;
  ceilingGBps: number;
}

const program = new Command()
  .name('bench:kernel')
  .description('Fused vs stock distillation loss, forward+backward, on the current WebGPU adapter')
  .option('--shapes <list>', 'comma-separated BxC shapes', '64x10,1024x10,64x1000,256x32768')
  .option('--windows <n>', 'measured windows per shape (one fence each)', (v) => parseInt(v, 10), 9)
  .option('--window-ms <ms>', 'target length of one window', (v) => parseFloat(v), 250)
  .option('--alpha <a>', 'alpha', parseFloat, 0.1)
  .option('--temperature <t>', 'temperature', parseFloat, 10)
  .option('--seed <n>', 'input seed', (v) => parseInt(v, 10), 1234)
  .option('--out <dir>', 'results directory', 'bench/results');

function parseShapes(list: string): [number, number][] {
  return list.split(',').map((s) => {
    const m = /^(\d+)x(\d+)$/.exec(s.trim());
    if (!m) throw new Error(`--shapes: expected entries like 64x10, got "${s}"`);
    return [parseInt(m[1]!, 10), parseInt(m[2]!, 10)];
  });
}

/**
 * Per-call times: two fenced warm-up calls, one probe call to size the windows, then `windows`
 * windows of calls with one fence each (bench/core/lib/loss-timing.ts).
 */
async function timeSteps(run: () => tf.Tensor, windows: number, windowMs: number): Promise<Spread> {
  for (let i = 0; i < 2; i++) await timeWindow(run, 1);
  const calls = windowCalls(await timeWindow(run, 1), windowMs, 1);
  const samples: number[] = [];
  for (let w = 0; w < windows; w++) samples.push(await timeWindow(run, calls));
  return spread(samples);
}

async function main(): Promise<void> {
  const opts = program.parse().opts<{
    shapes: string;
    windows: number;
    windowMs: number;
    alpha: number;
    temperature: number;
    seed: number;
    out: string;
  }>();
  const env = await initNodeWebGPU();
  console.log(`adapter: ${env.adapter.description}`);
  const config = { alpha: opts.alpha, temperature: opts.temperature };
  const results: ShapeResult[] = [];
  for (const [batch, classes] of parseShapes(opts.shapes)) {
    const rng = mulberry32(opts.seed + batch * 7919 + classes);
    const s = tf.tensor2d(uniformArray(batch * classes, 4, rng), [batch, classes]);
    const t = tf.tensor2d(uniformArray(batch * classes, 4, rng), [batch, classes]);
    const y = tf.tensor1d(labelArray(batch, classes, rng), 'int32');
    const before = tf.memory().numTensors;
    const fusedRun = () => lossStep(distillationLoss, y, s, t, config);
    const stockRun = () => lossStep(stockDistillationLoss, y, s, t, config);
    const fused = await timeSteps(fusedRun, opts.windows, opts.windowMs);
    const stock = await timeSteps(
      stockRun,
      Math.min(opts.windows, classes >= 8192 ? 5 : opts.windows),
      opts.windowMs,
    );
    const fusedDispatches = stepDispatches(fusedRun);
    const stockDispatches = stepDispatches(stockRun);
    const ceilingCalls = Math.max(1, Math.round(opts.windowMs / Math.max(fused.p50, 0.01)));
    const ceiling = await measureMemoryCeiling(
      env.device,
      batch * classes,
      opts.windows,
      ceilingCalls,
    );
    tf.dispose([s, t, y]);
    if (tf.memory().numTensors !== before - 3) {
      throw new Error(`tensor leak: ${tf.memory().numTensors} tensors, expected ${before - 3}`);
    }
    const bytes = 3 * batch * classes * 4;
    const r: ShapeResult = {
      batch,
      classes,
      fused,
      stock,
      ceiling,
      fusedDispatches,
      stockDispatches,
      speedup: stock.p50 / fused.p50,
      ceilingRatio: fused.p50 / ceiling.p50,
      fusedGBps: bytes / fused.p50 / 1e6,
      ceilingGBps: bytes / ceiling.p50 / 1e6,
    };
    results.push(r);
    console.log(
      `${batch}x${classes}: fused ${formatMs(fused)} (${fusedDispatches} dispatches), ` +
        `stock ${formatMs(stock)} (${stockDispatches}), ×${r.speedup.toFixed(1)}; ` +
        `ceiling ${formatMs(ceiling)}, fused/ceiling ${r.ceilingRatio.toFixed(2)}`,
    );
  }
  console.log('');
  console.log(`Forward+backward per call on ${env.adapter.description} (median [p20–p80])`);
  console.table(
    results.map((r) => ({
      'B×C': `${r.batch}×${r.classes}`,
      fused: formatMs(r.fused),
      stock: formatMs(r.stock),
      'stock/fused': `×${r.speedup.toFixed(1)}`,
      'dispatches fused/stock': `${r.fusedDispatches}/${r.stockDispatches}`,
      ceiling: formatMs(r.ceiling),
      'fused/ceiling': r.ceilingRatio.toFixed(2),
      'GB/s fused/ceiling': `${r.fusedGBps.toFixed(2)}/${r.ceilingGBps.toFixed(2)}`,
    })),
  );
  const stamp = fileStamp();
  const base = `${opts.out}/kernel-${stamp}`;
  const payload = {
    kind: 'kernel-benchmark',
    timestamp: new Date().toISOString(),
    adapter: env.adapter,
    software: env.software,
    config,
    seed: opts.seed,
    commit: gitCommit(),
    versions: versions(),
    results,
  };
  writeFileAtomic(`${base}.json`, JSON.stringify(payload, null, 2) + '\n');
  writeFileAtomic(
    `${base}.csv`,
    toCsv(
      results.map((r) => ({
        adapter: env.adapter.description,
        batch: r.batch,
        classes: r.classes,
        fused_p20_ms: r.fused.p20,
        fused_p50_ms: r.fused.p50,
        fused_p80_ms: r.fused.p80,
        stock_p20_ms: r.stock.p20,
        stock_p50_ms: r.stock.p50,
        stock_p80_ms: r.stock.p80,
        ceiling_p50_ms: r.ceiling.p50,
        speedup: r.speedup,
        fused_over_ceiling: r.ceilingRatio,
        fused_dispatches: r.fusedDispatches,
        stock_dispatches: r.stockDispatches,
      })),
    ),
  );
  console.log(`wrote ${base}.json and ${base}.csv`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
