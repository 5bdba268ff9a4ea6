/**
 * The kernel benchmark (bench/core/kernel-bench/) on the Node WebGPU adapter: the report's
 * structure, both clocks, no tensor leak, a clean stop on abort; and the proof that the fused
 * passes join tfjs' GPU timing: `tf.time()` of the fused op alone reports kernelMs > 0, with
 * one timed pass per fused dispatch.
 *
 * The GPU clock is present exactly when the device has 'timestamp-query' (lavapipe and
 * SwiftShader via Dawn both do); each test asserts which case it is in instead of skipping.
 */
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
// Registers the stock ops' gradients for the stock composition.
import '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, test } from 'vitest';
import { distillationLoss } from '../src/index.js';
import {
  DEFAULT_KERNEL_SHAPES,
  DEFAULT_TOPK_SHAPES,
  formatKernelPlan,
  formatKernelReport,
  formatTopKLine,
  kernelCsvRows,
  parseShapes,
  parseTopKShapes,
  planKernelRun,
  runKernelBenchmark,
  sweepShapes,
  topKShapeName,
  topKSweepShapes,
  windowsFor,
  type KernelBenchOptions,
  type KernelMemoryModel,
  type KernelReport,
} from '../bench/core/kernel-bench/index.js';
import { kernelResultRows } from '../bench/core/results-table/index.js';
import { countDispatches } from '../bench/core/lib/dispatch-counter.js';
import { gpuClockAvailability, gpuStepTime, lossStep } from '../bench/core/lib/loss-timing.js';
import { tfDevice, useCheckedWebGPU, withValidationScope } from './helpers/backend.js';

useCheckedWebGPU();

const CEILING_SHADER = readFileSync(
  new URL('../bench/core/memory-ceiling.wgsl', import.meta.url),
  'utf8',
);

const hasTimestamps = (): boolean => tfDevice().features.has('timestamp-query');

/**
 * A shape whose fused step is far above the GPU clock's resolution (Dawn quantizes timestamps
 * to 2^16 ns = 65.5 µs; lavapipe takes ~1 ms for this step), so its GPU time cannot read 0.
 */
const TIMED_SHAPE: [number, number] = [128, 1024];

function options(overrides: Partial<KernelBenchOptions> = {}): KernelBenchOptions {
  return {
    device: tfDevice(),
    ceilingShader: CEILING_SHADER,
    shapes: [[16, 10], TIMED_SHAPE],
    windows: 3,
    windowMs: 15,
    alpha: 0.1,
    temperature: 10,
    seed: 7,
    meta: {
      adapter: {
        description: 'test adapter',
        vendor: '',
        architecture: '',
        device: '',
        icd: 'dawn default',
      },
      software: true,
      commit: 'test',
      versions: {},
    },
    ...overrides,
  };
}

describe('parseShapes', () => {
  test('the default shapes and malformed entries', () => {
    expect(parseShapes(DEFAULT_KERNEL_SHAPES)).toEqual([
      [64, 10],
      [1024, 10],
      [64, 1000],
      [256, 32768],
    ]);
    expect(parseShapes(' 2x3 ')).toEqual([[2, 3]]);
    expect(() => parseShapes('64by10')).toThrow(/expected entries like 64x10/);
    expect(() => parseShapes('0x10')).toThrow(/positive/);
  });
});

describe('tf.time() times the fused passes', () => {
  test('kernelMs > 0 for the fused op alone, one timed pass per fused dispatch', async () => {
    const [B, C] = TIMED_SHAPE;
    const s = tf.randomNormal([B, C]);
    const t = tf.randomNormal([B, C]);
    const y = tf.tensor1d(
      Array.from({ length: B }, (_, i) => i % C),
      'int32',
    );
    const before = tf.memory().numTensors;
    const run = () => lossStep(distillationLoss, y, s, t, { alpha: 0.1, temperature: 10 });
    await withValidationScope(async () => {
      const untimed = run();
      const expected = await untimed.data();
      untimed.dispose();
      const dispatches = countDispatches(() => run().dispose());
      // The timed path (own pass per dispatch, submit after each) gives the same value.
      let timedOut: tf.Tensor | undefined;
      const info = await tf.time(() => {
        timedOut = run();
      });
      expect(Array.from(await timedOut!.data())).toEqual(Array.from(expected));
      timedOut!.dispose();
      const extra = info.getExtraProfileInfo?.() ?? '';
      const passes = extra.split(', ').filter((p) => p !== '');
      // Only fused kernels ran, and each of them was timed.
      expect(passes.length).toBe(dispatches);
      expect(passes.every((p) => p.startsWith('distill_'))).toBe(true);
      expect(typeof info.kernelMs).toBe('number');
      if (hasTimestamps()) {
        expect(info.kernelMs as number).toBeGreaterThan(0);
        const sample = await gpuStepTime(run);
        expect(sample.passes).toHaveLength(dispatches);
        expect(sample.ms).toBeGreaterThan(0);
        expect(sample.ms).toBeCloseTo(
          sample.passes.reduce((a, b) => a + b, 0),
          6,
        );
      } else {
        // tfjs' getQueryTime() reads 0 without the feature.
        expect(info.kernelMs).toBe(0);
      }
    });
    tf.dispose([s, t, y]);
    expect(tf.memory().numTensors).toBe(before - 3);
  });
});

describe('runKernelBenchmark', () => {
  let report: KernelReport;

  beforeAll(async () => {
    const shapesSeen: number[] = [];
    const before = tf.memory().numTensors;
    report = await runKernelBenchmark(
      options({ onShape: (_r, i, n) => shapesSeen.push(i * 10 + n) }),
    );
    expect(tf.memory().numTensors).toBe(before);
    expect(shapesSeen).toEqual([2, 12]);
  });

  test('report structure and settings', () => {
    expect(report.kind).toBe('kernel-benchmark');
    expect(report.schemaVersion).toBe(1);
    expect(report.complete).toBe(true);
    expect(report.settings).toEqual({
      shapes: [[16, 10], TIMED_SHAPE],
      windows: 3,
      windowMs: 15,
      alpha: 0.1,
      temperature: 10,
      seed: 7,
      sweep: null,
      phases: false,
      memoryBudgetBytes: null,
      maxSideMs: null,
      topKShapes: [],
      divergence: 'forward-kl',
      beta: null,
      stockBaseline: 'keras',
    });
    expect(report.failures).toEqual([]);
    expect(report.topK).toEqual([]);
    expect(report.adapter.description).toBe('test adapter');
    expect(Number.isNaN(Date.parse(report.timestamp))).toBe(false);
    expect(report.totalWallMs).toBeGreaterThan(0);
    expect(report.results.map((r) => [r.batch, r.classes])).toEqual([[16, 10], TIMED_SHAPE]);
    for (const r of report.results) {
      for (const s of [r.fused, r.stock, r.ceiling]) {
        expect(s.p50).toBeGreaterThan(0);
        expect(s.p20).toBeLessThanOrEqual(s.p50);
        expect(s.p50).toBeLessThanOrEqual(s.p80);
      }
      expect(r.fused.n).toBe(3);
      expect(r.fusedDispatches).toBeGreaterThanOrEqual(1);
      expect(r.fusedDispatches).toBeLessThanOrEqual(3);
      expect(r.stockDispatches).toBeGreaterThan(r.fusedDispatches);
      expect(r.speedup).toBeCloseTo(r.stock.p50 / r.fused.p50, 10);
      expect(r.fusedGBps).toBeCloseTo((12 * r.batch * r.classes) / r.fused.p50 / 1e6, 10);
      expect(r.clock.fused).toBe('wall, one fence per window');
      expect(r.clock.stock).toBe('wall, one fence per window');
    }
    expect(report.clocks.wall).toMatch(/^wall, one fence per window/);
    // JSON round trip: a plain object.
    expect(JSON.parse(JSON.stringify(report))).toEqual(report);
  });

  test('GPU-clock figures exist exactly when the device has timestamp-query', () => {
    const has = hasTimestamps();
    expect(gpuClockAvailability().available).toBe(has);
    expect(report.clocks.gpuAvailable).toBe(has);
    for (const r of report.results) {
      const gpuFields = [r.fusedGpu, r.stockGpu, r.ceilingGpu, r.fusedGpuPasses];
      if (!has) {
        expect(gpuFields.every((f) => f === null)).toBe(true);
        expect(r.speedupGpu).toBeNull();
        expect(r.clock.fusedGpu).toBeNull();
        expect(report.clocks.gpu).toMatch(/no GPU-clock figures: .*timestamp-query/);
        continue;
      }
      expect(gpuFields.every((f) => f !== null)).toBe(true);
      // A fused step under the clock's resolution reads 0: its ratio is null, not Infinity.
      expect(r.speedupGpu === null).toBe(r.fusedGpu!.p50 === 0);
      expect(r.clock.fusedGpu).toBe('GPU timestamps');
      expect(r.clock.stockGpu).toBe('GPU timestamps');
      expect(report.clocks.gpu).toMatch(/^GPU timestamps: tf\.time/);
      // Every pass of the step was timed, the fused ones included.
      expect(r.fusedGpuPasses).toBe(r.fusedDispatches);
      expect(r.stockGpuPasses).toBe(r.stockDispatches);
      // 52 stock passes cannot all fall under the clock's resolution; the ceiling's window
      // is one pass of ~windowMs.
      expect(r.stockGpu!.p50).toBeGreaterThan(0);
      expect(r.ceilingGpu!.p50).toBeGreaterThan(0);
      for (const s of [r.fusedGpu!, r.stockGpu!]) expect(s.p20).toBeGreaterThanOrEqual(0);
    }
  });

  test('GPU times are plausible against the wall clock', () => {
    if (!hasTimestamps()) {
      expect(report.results.every((r) => r.fusedGpu === null)).toBe(true);
      return;
    }
    const timed = report.results.find((r) => r.batch === TIMED_SHAPE[0])!;
    expect(timed.fusedGpu!.p50).toBeGreaterThan(0);
    for (const r of report.results) {
      const resolution = r.gpuResolutionMs ?? 0;
      // The GPU clock counts only the step's passes, the wall clock the whole step, so GPU ≤
      // wall, up to: (a) inside tf.time every pass runs alone after a submit, and a software
      // adapter's timestamps then include its worker threads' wake-up (stock at 256×4096 on
      // lavapipe: ~1.3× its wall time); (b) quantization, one resolution step per pass. A
      // factor 3 keeps room for (a) and still catches a timer that counts something else
      // (tf.time's wall time, the read-backs) or a unit error (ns read as ms: ×10^6); (c) on a
      // loaded machine the OS may run a software adapter's worker threads late inside a timed
      // pass, a fixed delay that the wall clock's windows of many steps amortise: 0.5 ms of
      // slack per sample covers it (seen: the ceiling at 0.55 ms GPU against 0.16 ms wall, with
      // another benchmark on the 2 cores) and is still far below what a wrong timer adds.
      const slackMs = 0.5;
      const bound = (wall: number, passes: number) => 3 * wall + passes * resolution + slackMs;
      expect(r.fusedGpu!.p50).toBeLessThanOrEqual(bound(r.fused.p50, r.fusedDispatches));
      expect(r.stockGpu!.p50).toBeLessThanOrEqual(bound(r.stock.p50, r.stockDispatches));
      expect(r.ceilingGpu!.p50).toBeLessThanOrEqual(3 * r.ceiling.p50 + resolution + slackMs);
      // And the stock composition's 52 passes take more GPU time than the fused 1–3.
      expect(r.stockGpu!.p50).toBeGreaterThan(r.fusedGpu!.p50);
    }
  });

  test('printed table and CSV rows name both clocks', () => {
    const text = formatKernelReport(report);
    expect(text).toMatch(/fused \(wall\)/);
    expect(text).toMatch(/fused \(GPU\)/);
    expect(text).toMatch(/^\(wall\) wall, one fence per window/m);
    expect(text).toMatch(/^\(GPU\) {2}/m);
    expect(text).toContain('128×1024');
    const rows = kernelCsvRows(report);
    expect(rows).toHaveLength(2);
    expect(rows[1]!.wall_clock).toBe('wall, one fence per window');
    expect(rows[1]!.gpu_clock).toBe(hasTimestamps() ? 'GPU timestamps' : '');
  });
});

describe('runKernelBenchmark with another divergence', () => {
  test('jsd reaches both sides: settings, the exact composition as stock, no leak', async () => {
    const before = tf.memory().numTensors;
    const report = await runKernelBenchmark(
      options({ shapes: '8x10', windows: 2, windowMs: 5, divergence: 'jsd', beta: 0.2 }),
    );
    expect(tf.memory().numTensors).toBe(before);
    expect(report.complete).toBe(true);
    expect(report.settings).toMatchObject({
      divergence: 'jsd',
      beta: 0.2,
      stockBaseline: 'exact-composition',
    });
    const r = report.results[0]!;
    expect(r.fused.p50).toBeGreaterThan(0);
    expect(r.stock.p50).toBeGreaterThan(0);
    // the fused kernels keep forward KL's dispatch count; the stock side is not Keras' 52
    expect(r.fusedDispatches).toBeLessThanOrEqual(3);
    expect(r.stockDispatches).not.toBe(52);
    expect(formatKernelReport(report)).toMatch(/divergence jsd \(β = 0\.2\)/);
    expect(kernelCsvRows(report)[0]).toMatchObject({ divergence: 'jsd', beta: 0.2 });
    expect(JSON.parse(JSON.stringify(report))).toEqual(report);
  });

  test('refuses top-K shapes and bad values before timing anything', async () => {
    const progress: string[] = [];
    await expect(
      runKernelBenchmark(
        options({ topK: '8x100k4', divergence: 'reverse-kl', onProgress: (l) => progress.push(l) }),
      ),
    ).rejects.toThrow(/--divergence reverse-kl: --topk 8x100k4 times top-K teachers/);
    await expect(
      runKernelBenchmark(
        options({ divergence: 'kl' as 'jsd', onProgress: (l) => progress.push(l) }),
      ),
    ).rejects.toThrow(/--divergence: unknown divergence "kl"/);
    await expect(
      runKernelBenchmark(
        options({ divergence: 'reverse-kl', beta: 0.3, onProgress: (l) => progress.push(l) }),
      ),
    ).rejects.toThrow(/--beta: applies to --divergence jsd only/);
    expect(progress).toEqual([]);
  });
});

describe('runKernelBenchmark stops cleanly on abort', () => {
  test('after the first shape: complete false, one result, no leak', async () => {
    const abort = new AbortController();
    const before = tf.memory().numTensors;
    const report = await runKernelBenchmark(
      options({
        shapes: '8x10,8x20,8x30',
        windows: 2,
        windowMs: 5,
        signal: abort.signal,
        onShape: () => abort.abort(),
      }),
    );
    expect(report.complete).toBe(false);
    expect(report.results).toHaveLength(1);
    expect(formatKernelReport(report)).toMatch(/INCOMPLETE/);
    expect(tf.memory().numTensors).toBe(before);
  });

  test('in the middle of a shape: no partial result, no leak', async () => {
    const abort = new AbortController();
    const before = tf.memory().numTensors;
    let yields = 0;
    const report = await runKernelBenchmark(
      options({
        shapes: '8x10',
        windows: 3,
        windowMs: 5,
        signal: abort.signal,
        onProgress: (line) => {
          if (/stock/.test(line)) abort.abort();
        },
        yieldToEventLoop: async () => {
          yields++;
          await new Promise((r) => setTimeout(r, 0));
        },
      }),
    );
    expect(report.complete).toBe(false);
    expect(report.results).toEqual([]);
    expect(yields).toBeGreaterThan(0);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('the vocabulary sweep: shapes and the memory plan', () => {
  const model: KernelMemoryModel = {
    shape: [128, 16384],
    fusedLiveArrays: 1,
    stockLiveArrays: 26,
    fusedMsPerElement: 1e-5,
    stockMsPerElement: 2e-4,
  };
  const limits = {
    budgetBytes: 8 * 1024 ** 3,
    maxBufferSize: 4 * 1024 ** 3,
    maxStorageBufferBindingSize: 128 * 1024 ** 2,
    windows: 9,
    windowMs: 250,
    phases: true,
    gpuClock: true,
    maxSideMs: 30_000,
  };

  test('C in {1k..256k} (1k = 1024) x rows {64, 512, 2048}, plus 128x131072', () => {
    const shapes = sweepShapes('vocab');
    expect(shapes).toHaveLength(16);
    for (const rows of [64, 512, 2048]) {
      for (const c of [1024, 4096, 32768, 131072, 262144]) {
        expect(shapes).toContainEqual([rows, c]);
      }
    }
    expect(shapes).toContainEqual([128, 131072]);
    expect(shapes).toContainEqual([512, 32768]);
    // Sorted by rows, then C.
    expect(shapes.slice(0, 6)).toEqual([
      [64, 1024],
      [64, 4096],
      [64, 32768],
      [64, 131072],
      [64, 262144],
      [128, 131072],
    ]);
    expect(() => sweepShapes('other' as 'vocab')).toThrow(/unknown sweep/);
  });

  test('a side whose inputs + measured peak exceed the budget is skipped, saying why', () => {
    const plan = planKernelRun(sweepShapes('vocab'), model, limits);
    const skipped = (side: 'fused' | 'stock' | 'ceiling') =>
      plan.shapes.filter((p) => p[side].skip !== null).map((p) => `${p.batch}x${p.classes}`);
    // Stock: (4 + 26) arrays (inputs on the host and the GPU, the peak); 2048x32768 is
    // 30 x 256 MiB = 7.5 GiB, within 8 GiB. Fused: 5 arrays; 2048x262144 is 10 GiB.
    expect(skipped('stock')).toEqual(['512x262144', '2048x131072', '2048x262144']);
    expect(skipped('fused')).toEqual(['2048x262144']);
    expect(skipped('ceiling')).toEqual([]);
    const p = plan.shapes.find((x) => x.batch === 512 && x.classes === 262144)!;
    expect(p.arrayBytes).toBe(512 * 262144 * 4);
    expect(p.stock.estimatedBytes).toBe(30 * p.arrayBytes);
    expect(p.ceiling.estimatedBytes).toBe(3 * p.arrayBytes);
    expect(p.stock.skip).toMatch(/estimated 15\.0 GiB .* exceeds the memory budget of 8\.00 GiB/);
    expect(plan.estimatedSeconds).toBeGreaterThan(0);
    // A smaller budget skips more; an array past maxBufferSize is skipped whatever the budget.
    const tight = planKernelRun([[2048, 262144]], model, {
      ...limits,
      budgetBytes: null,
      maxBufferSize: 1024 ** 3,
    });
    expect(tight.shapes[0]!.fused.skip).toMatch(/exceeds the adapter's maxBufferSize/);
    expect(formatKernelPlan(plan)).toMatch(/512x262144: stock skipped: estimated/);
    // Without a model nothing is skipped for the budget and there is no estimate.
    const none = planKernelRun(sweepShapes('vocab'), null, { ...limits, budgetBytes: null });
    expect(none.shapes.every((x) => x.stock.skip === null)).toBe(true);
    expect(none.estimatedSeconds).toBeNull();
  });

  test('slow sides get fewer windows, never under 3', () => {
    expect(windowsFor(10, 9, 30_000, true)).toBe(9);
    expect(windowsFor(3000, 9, 30_000, true)).toBe(3);
    expect(windowsFor(2000, 9, 30_000, false)).toBe(7);
    expect(windowsFor(3000, 9, null, true)).toBe(9);
  });
});

describe('phases, peak bytes and failures', () => {
  test('forward, backward and peak bytes at a small shape; fused peak < stock peak', async () => {
    const before = tf.memory().numTensors;
    const report = await runKernelBenchmark(
      options({ shapes: [[64, 1024]], windows: 3, windowMs: 10, phases: true }),
    );
    expect(tf.memory().numTensors).toBe(before);
    expect(report.settings.phases).toBe(true);
    const r = report.results[0]!;
    for (const s of [r.fusedForward, r.fusedBackward, r.stockForward, r.stockBackward]) {
      expect(s).not.toBeNull();
      expect(s!.n).toBe(3);
      expect(s!.p20).toBeLessThanOrEqual(s!.p80);
    }
    expect(r.fusedForward!.p50).toBeGreaterThan(0);
    expect(r.stockForward!.p50).toBeGreaterThan(0);
    // Peak GPU bytes of one step above its inputs: the fused op holds the gradient
    // (64 x 1024 x 4 = 256 KiB) and row vectors; the stock composition many [rows, C] arrays.
    expect(r.fusedPeakBytes).toBeGreaterThanOrEqual(64 * 1024 * 4);
    expect(r.stockPeakBytes).toBeGreaterThan(4 * r.fusedPeakBytes!);
    expect(formatKernelReport(report)).toMatch(/fused fwd .*peak GPU bytes fused\/stock/);
    const rows = kernelResultRows(report);
    expect(rows.filter((x) => x.metric === 'forward_ms').map((x) => x.variant)).toEqual([
      'fused',
      'stock',
    ]);
    expect(rows.find((x) => x.metric === 'peak_bytes' && x.variant === 'fused')?.unit).toBe(
      'bytes',
    );
  });

  test('a failing or skipped side is recorded, not thrown, and the run goes on', async () => {
    // 512 x 131072: 256 MiB inputs, past lavapipe's 128 MiB binding limit. The budget of
    // 2 GiB skips the stock side (30 arrays, not the fused: 5); the fused op either rejects the shape with a
    // RangeError (before it chunks rows) or measures it; the next shape still runs.
    const before = tf.memory().numTensors;
    const binding = tfDevice().limits.maxStorageBufferBindingSize;
    const report = await runKernelBenchmark(
      options({
        shapes: [
          [512, 131072],
          [16, 10],
        ],
        windows: 3,
        windowMs: 10,
        memoryBudgetBytes: 2 * 1024 ** 3,
      }),
    );
    expect(tf.memory().numTensors).toBe(before);
    expect(report.complete).toBe(true);
    expect(report.results.map((r) => [r.batch, r.classes])).toEqual([[16, 10]]);
    expect(report.failures).toHaveLength(1);
    const f = report.failures![0]!;
    expect([f.batch, f.classes]).toEqual([512, 131072]);
    expect(f.stockErrorKind).toBe('skipped');
    expect(f.stockError).toMatch(/^skipped: estimated .* exceeds the memory budget of 2\.00 GiB/);
    expect(f.stock).toBeNull();
    if (512 * 131072 * 4 > binding && f.fusedError !== null) {
      expect(f.fusedErrorKind).toBe('binding-limit');
      expect(f.fusedError).toMatch(/^binding-limit: RangeError: .*maxStorageBufferBindingSize/);
      expect(f.fused).toBeNull();
    } else {
      expect(f.fusedError).toBeNull();
      expect(f.fused!.both.p50).toBeGreaterThan(0);
    }
    // The ceiling binds in chunks: it runs past the binding limit.
    expect(f.ceilingError).toBeNull();
    expect(f.ceiling!.p50).toBeGreaterThan(0);
    expect(formatKernelReport(report)).toMatch(/512x131072: .*stock skipped: estimated/);
    const rows = kernelResultRows(report);
    const failure = rows.filter((r) => r.metric === 'failure');
    expect(failure.map((r) => r.variant)).toContain('stock');
    expect(failure.find((r) => r.variant === 'stock')!.note).toMatch(/^skipped: /);
    expect(JSON.parse(JSON.stringify(report))).toEqual(report);
  });
});

describe('sparse (top-K) teacher shapes', () => {
  test('parseTopKShapes, the default, the sweep and the names', () => {
    expect(parseTopKShapes(DEFAULT_TOPK_SHAPES)).toEqual([[256, 32768, 32]]);
    expect(parseTopKShapes(' 8x100k4 , 2x10k10')).toEqual([
      [8, 100, 4],
      [2, 10, 10],
    ]);
    expect(parseTopKShapes('none')).toEqual([]);
    expect(parseTopKShapes('')).toEqual([]);
    expect(() => parseTopKShapes('256x32768')).toThrow(
      /--topk: expected entries like 256x32768k32/,
    );
    expect(() => parseTopKShapes('8x10k0')).toThrow(/--topk: sizes must be positive/);
    expect(() => parseTopKShapes('8x10k11')).toThrow(/--topk: K must be at most C/);
    // 256 rows x C in {32k, 128k} x K in {8, 32, 128}; the bar's shape is in it.
    expect(topKSweepShapes().map(topKShapeName)).toEqual([
      '256x32768k8',
      '256x32768k32',
      '256x32768k128',
      '256x131072k8',
      '256x131072k32',
      '256x131072k128',
    ]);
    expect(sweepShapes('topk')).toEqual([]);
  });

  test('the topk sweep times its shapes only (no dense shapes, no calibration)', async () => {
    const abort = new AbortController();
    abort.abort();
    const progress: string[] = [];
    const report = await runKernelBenchmark(
      options({ sweep: 'topk', signal: abort.signal, onProgress: (l) => progress.push(l) }),
    );
    expect(report.settings.sweep).toBe('topk');
    expect(report.settings.shapes).toEqual([]);
    expect(report.settings.topKShapes).toEqual(topKSweepShapes());
    expect(report.complete).toBe(false);
    expect(report.topK).toEqual([]);
    expect(progress.some((l) => /calibrating/.test(l))).toBe(false);
    // A vocab sweep has no top-K shapes, even when some are given.
    const vocab = await runKernelBenchmark(
      options({ sweep: 'vocab', topK: '8x100k4', signal: abort.signal }),
    );
    expect(vocab.settings.topKShapes).toEqual([]);
  });

  test('fused sparse vs fused dense vs stock sparse: figures, ratios, bytes, rows, no leak', async () => {
    const before = tf.memory().numTensors;
    const seen: string[] = [];
    const progress: string[] = [];
    const report = await runKernelBenchmark(
      options({
        shapes: [],
        topK: '32x2048k8,16x300k300',
        windows: 3,
        windowMs: 10,
        onTopKShape: (r, i, n) =>
          seen.push(`${topKShapeName([r.batch, r.classes, r.topK])} ${i}/${n}`),
        onProgress: (l) => progress.push(l),
      }),
    );
    expect(tf.memory().numTensors).toBe(before);
    expect(seen).toEqual(['32x2048k8 0/2', '16x300k300 1/2']);
    expect(report.complete).toBe(true);
    expect(report.results).toEqual([]);
    expect(report.settings.topKShapes).toEqual([
      [32, 2048, 8],
      [16, 300, 300],
    ]);
    // The fused sides alternate windows; the stock side comes after.
    expect(
      progress.some((l) => /^32x2048k8: fused sparse and dense, alternating windows/.test(l)),
    ).toBe(true);
    for (const r of report.topK!) {
      expect([r.sparseError, r.denseError, r.stockError]).toEqual([null, null, null]);
      expect(r.sparseTeacherBytesPerRow).toBe(r.topK * 8);
      expect(r.denseTeacherBytesPerRow).toBe(r.classes * 4);
      for (const side of [r.sparse!, r.dense!, r.stock!]) {
        expect(side.both.n).toBe(3);
        expect(side.both.p50).toBeGreaterThan(0);
        expect(side.both.p20).toBeLessThanOrEqual(side.both.p80);
        expect(side.windows).toBe(3);
        expect(side.gpu === null).toBe(!hasTimestamps());
        expect(side.peakBytes).toBeGreaterThan(0);
      }
      // The fused ops take a few dispatches, the stock composition (scatter, softmax…) many.
      expect(r.sparse!.dispatches).toBeGreaterThanOrEqual(1);
      expect(r.sparse!.dispatches).toBeLessThanOrEqual(4);
      expect(r.stock!.dispatches).toBeGreaterThan(r.sparse!.dispatches);
      expect(r.sparseOverDense).toBeCloseTo(r.sparse!.both.p50 / r.dense!.both.p50, 10);
      expect(r.stockOverSparse).toBeCloseTo(r.stock!.both.p50 / r.sparse!.both.p50, 10);
      // Both hold at least the [rows, C] student gradient at their peak.
      expect(r.sparse!.peakBytes).toBeGreaterThanOrEqual(r.batch * r.classes * 4);
    }
    expect(JSON.parse(JSON.stringify(report))).toEqual(report);
    const text = formatKernelReport(report);
    expect(text).toMatch(/Sparse \(top-K\) teacher, forward\+backward per step/);
    expect(text).toContain('32×2048, 8');
    expect(text).toContain('64 B/8.00 KiB');
    expect(text).not.toMatch(/^Forward\+backward per step/m);
    expect(formatTopKLine(report.topK![0]!)).toMatch(
      /^32x2048k8: wall, one fence per window: fused sparse .* dispatches\), fused dense .*stock\/sparse ×/,
    );
    const csv = kernelCsvRows(report);
    expect(csv.map((r) => [r.top_k, r.sparse_teacher_bytes_per_row])).toEqual([
      [8, 64],
      [300, 2400],
    ]);
    const rows = kernelResultRows(report);
    expect(rows.every((r) => r.x_name === 'topk_shape')).toBe(true);
    expect(
      rows.filter((r) => r.metric === 'time_ms' && r.x_value === '32x2048k8').map((r) => r.variant),
    ).toEqual(['fused-sparse', 'fused-dense', 'stock-sparse']);
    const ratio = rows.find((r) => r.metric === 'time_ratio' && r.x_value === '32x2048k8')!;
    expect(ratio.variant).toBe('fused-sparse/fused-dense');
    expect(ratio.p50).toBeCloseTo(report.topK![0]!.sparseOverDense!, 4);
    const bytes = rows.filter((r) => r.metric === 'teacher_bytes_per_row');
    expect(bytes.map((r) => `${r.x_value} ${r.variant} ${r.p50}`)).toEqual([
      '32x2048k8 sparse 64',
      '32x2048k8 dense 8192',
      '16x300k300 sparse 2400',
      '16x300k300 dense 1200',
    ]);
  }, 120_000);

  test('stops cleanly on abort in the middle of a top-K shape', async () => {
    const abort = new AbortController();
    const before = tf.memory().numTensors;
    const report = await runKernelBenchmark(
      options({
        shapes: [],
        topK: '8x100k4,8x100k8',
        windows: 3,
        windowMs: 5,
        signal: abort.signal,
        onProgress: (line) => {
          if (/stock sparse/.test(line)) abort.abort();
        },
      }),
    );
    expect(report.complete).toBe(false);
    expect(report.topK).toEqual([]);
    expect(tf.memory().numTensors).toBe(before);
  });
});
