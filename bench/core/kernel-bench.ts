/**
 * The kernel benchmark, host-neutral: the fused distillation loss forward+backward against the
 * stock-op composition (Keras formula) and against a memory ceiling, per `[B, C]` shape, on
 * the WebGPU device that tfjs uses. The CLI (bench/node/kernel.ts) and the page both run
 * {@link runKernelBenchmark}; the host supplies the device, the ceiling's WGSL source and the
 * provenance, and writes the files.
 *
 * Two clocks (bench/core/lib/loss-timing.ts), and every figure says which:
 *   - wall, one fence per window: fused, stock and ceiling, always;
 *   - GPU timestamps: fused, stock and ceiling, where the device has 'timestamp-query'
 *     (null otherwise, and the report says why).
 */
import * as tf from '@tensorflow/tfjs-core';
import { distillationLoss, stockDistillationLoss } from 'tfjs-fused-distill';
import {
  GPU_CLOCK,
  GPU_CLOCK_TEXT,
  gpuClockAvailability,
  lossStep,
  stepDispatches,
  timeStepsGpu,
  timeWindow,
  WALL_CLOCK,
  WALL_CLOCK_TEXT,
  windowCalls,
  type GpuStepTimes,
} from './lib/loss-timing.js';
import { measureMemoryCeiling } from './lib/memory-ceiling.js';
import { labelArray, mulberry32, uniformArray } from './lib/random.js';
import { formatMs, spread, type Spread } from './lib/stats.js';
import type { AdapterDescription } from './protocol/report.js';
import { textTable } from './protocol/report-output.js';

/** The shapes the CLI times by default, `BxC` comma-separated. */
export const DEFAULT_KERNEL_SHAPES = '64x10,1024x10,64x1000,256x32768';

/** `"64x10,256x32768"` → `[[64, 10], [256, 32768]]`; throws on a malformed entry. */
export function parseShapes(list: string): [number, number][] {
  return list.split(',').map((s) => {
    const m = /^(\d+)x(\d+)$/.exec(s.trim());
    if (!m) throw new Error(`--shapes: expected entries like 64x10, got "${s}"`);
    const shape: [number, number] = [parseInt(m[1]!, 10), parseInt(m[2]!, 10)];
    if (!(shape[0] > 0 && shape[1] > 0)) {
      throw new Error(`--shapes: sizes must be positive, got "${s}"`);
    }
    return shape;
  });
}

/** Which clock each figure of a {@link KernelShapeResult} came from. */
export interface KernelClocks {
  fused: string;
  stock: string;
  ceiling: string;
  /** null when there is no GPU figure. */
  fusedGpu: string | null;
  stockGpu: string | null;
  ceilingGpu: string | null;
}

/** One shape's figures. Times are ms per forward+backward step (ceiling: per pass). */
export interface KernelShapeResult {
  batch: number;
  classes: number;
  /** Wall clock, one fence per window. */
  fused: Spread;
  stock: Spread;
  ceiling: Spread;
  fusedDispatches: number;
  stockDispatches: number;
  /** stock p50 / fused p50 (wall). */
  speedup: number;
  /** fused p50 / ceiling p50 (wall). */
  ceilingRatio: number;
  /** Bytes of the least traffic (s and t read, the gradient written) per ms of fused time, GB/s. */
  fusedGBps: number;
  ceilingGBps: number;
  /** GPU timestamps: the sum of one step's pass times, one step per sample; null without. */
  fusedGpu: Spread | null;
  stockGpu: Spread | null;
  /** GPU timestamps: one pass of the ceiling's dispatches, per dispatch; null without. */
  ceilingGpu: Spread | null;
  /** Passes timed per step on the GPU clock (equal to the dispatches when all were timed). */
  fusedGpuPasses: number | null;
  stockGpuPasses: number | null;
  /** stockGpu p50 / fusedGpu p50. */
  speedupGpu: number | null;
  /** fusedGpu p50 / ceilingGpu p50. */
  ceilingRatioGpu: number | null;
  fusedGpuGBps: number | null;
  ceilingGpuGBps: number | null;
  /** The apparent resolution of the GPU clock, ms (see GpuStepTimes.resolutionMs). */
  gpuResolutionMs: number | null;
  clock: KernelClocks;
}

/** What the host tells the report about itself. */
export interface KernelBenchMeta {
  adapter: AdapterDescription;
  software: boolean;
  /** The source's git commit (short), or "unknown". */
  commit: string;
  versions: Record<string, string>;
}

export interface KernelBenchSettings {
  shapes: [number, number][];
  /** Measured windows (wall) and samples (GPU) per shape and loss. */
  windows: number;
  /** Target length of one wall-clock window, ms. */
  windowMs: number;
  alpha: number;
  temperature: number;
  seed: number;
}

/** The kernel benchmark's result file (JSON). */
export interface KernelReport {
  kind: 'kernel-benchmark';
  schemaVersion: 1;
  timestamp: string;
  adapter: AdapterDescription;
  software: boolean;
  commit: string;
  versions: Record<string, string>;
  settings: KernelBenchSettings;
  results: KernelShapeResult[];
  /** Which clock each figure came from, and why a clock is missing. */
  clocks: {
    wall: string;
    gpu: string;
    /** True when the GPU-clock figures were measured. */
    gpuAvailable: boolean;
  };
  /** False when aborted before every shape was timed. */
  complete: boolean;
  totalWallMs: number;
}

export interface KernelBenchOptions {
  /** tfjs' WebGPU device (the ceiling runs on it). */
  device: GPUDevice;
  /** The WGSL source of bench/core/memory_ceiling.wgsl. */
  ceilingShader: string;
  /** `"64x10,256x32768"` or the parsed list. */
  shapes: string | readonly (readonly [number, number])[];
  windows: number;
  windowMs: number;
  alpha: number;
  temperature: number;
  seed: number;
  meta: KernelBenchMeta;
  /** After each shape: its result, its index and the number of shapes. */
  onShape?(r: KernelShapeResult, i: number, n: number): void;
  /** What is being timed now, one line at a time. */
  onProgress?(line: string): void;
  /** Stops between windows; the report then has complete: false and the shapes done. */
  signal?: AbortSignal;
  /** Awaited between windows, e.g. to let a page repaint. */
  yieldToEventLoop?: () => Promise<void>;
}

/** Windows of the stock loss at very wide shapes, where one stock window takes long. */
const WIDE_STOCK_WINDOWS = 5;
const WIDE_CLASSES = 8192;

/**
 * Per-step wall times: two fenced warm-up steps, one probe step to size the windows, then
 * `windows` windows of steps with one fence each; null if aborted before a window.
 */
async function timeSteps(
  run: () => tf.Tensor,
  windows: number,
  windowMs: number,
  signal: AbortSignal | undefined,
  between: (() => Promise<void>) | undefined,
): Promise<Spread | null> {
  for (let i = 0; i < 2; i++) await timeWindow(run, 1);
  const calls = windowCalls(await timeWindow(run, 1), windowMs, 1);
  const samples: number[] = [];
  for (let w = 0; w < windows && !signal?.aborted; w++) {
    samples.push(await timeWindow(run, calls));
    await between?.();
  }
  return samples.length > 0 ? spread(samples) : null;
}

class Aborted extends Error {}

/** Times one shape; throws Aborted when the signal fires before its figures are complete. */
async function timeShape(
  options: KernelBenchOptions,
  batch: number,
  classes: number,
  gpuClock: boolean,
): Promise<KernelShapeResult> {
  const { windows, windowMs, signal } = options;
  const between = options.yieldToEventLoop;
  const progress = (what: string) => options.onProgress?.(`${batch}x${classes}: ${what}`);
  const config = { alpha: options.alpha, temperature: options.temperature };
  const rng = mulberry32(options.seed + batch * 7919 + classes);
  const s = tf.tensor2d(uniformArray(batch * classes, 4, rng), [batch, classes]);
  const t = tf.tensor2d(uniformArray(batch * classes, 4, rng), [batch, classes]);
  const y = tf.tensor1d(labelArray(batch, classes, rng), 'int32');
  const before = tf.memory().numTensors;
  const check = <T>(x: T | null): T => {
    if (x === null || signal?.aborted) throw new Aborted();
    return x;
  };
  let outcome: { result: KernelShapeResult } | { error: unknown };
  try {
    outcome = { result: await measure() };
  } catch (error) {
    outcome = { error };
  }
  tf.dispose([s, t, y]);
  if (tf.memory().numTensors !== before - 3) {
    // A leak outranks an abort or another failure.
    throw new Error(`tensor leak: ${tf.memory().numTensors} tensors, expected ${before - 3}`);
  }
  if ('error' in outcome) throw outcome.error;
  return outcome.result;

  async function measure(): Promise<KernelShapeResult> {
    const fusedRun = () => lossStep(distillationLoss, y, s, t, config);
    const stockRun = () => lossStep(stockDistillationLoss, y, s, t, config);
    const stockWindows = Math.min(windows, classes >= WIDE_CLASSES ? WIDE_STOCK_WINDOWS : windows);
    progress(`fused, ${WALL_CLOCK}`);
    const fused = check(await timeSteps(fusedRun, windows, windowMs, signal, between));
    progress(`stock, ${WALL_CLOCK}`);
    const stock = check(await timeSteps(stockRun, stockWindows, windowMs, signal, between));
    const fusedDispatches = stepDispatches(fusedRun);
    const stockDispatches = stepDispatches(stockRun);
    let fusedGpu: GpuStepTimes | null = null;
    let stockGpu: GpuStepTimes | null = null;
    if (gpuClock) {
      progress(`fused, ${GPU_CLOCK}`);
      fusedGpu = check(await timeStepsGpu(fusedRun, windows, signal, between));
      progress(`stock, ${GPU_CLOCK}`);
      stockGpu = check(await timeStepsGpu(stockRun, stockWindows, signal, between));
    }
    progress('memory ceiling');
    const ceilingCalls = Math.max(1, Math.round(windowMs / Math.max(fused.p50, 0.01)));
    const ceilingTimes = await measureMemoryCeiling(
      options.device,
      options.ceilingShader,
      batch * classes,
      windows,
      ceilingCalls,
      signal,
    );
    const ceiling = check(ceilingTimes.wall.n > 0 ? ceilingTimes.wall : null);
    const ceilingGpu = gpuClock ? check(ceilingTimes.gpu) : null;
    const bytes = 3 * batch * classes * 4;
    const gbps = (ms: number) => bytes / ms / 1e6;
    const resolutions = [fusedGpu?.resolutionMs, stockGpu?.resolutionMs].filter(
      (r): r is number => typeof r === 'number',
    );
    return {
      batch,
      classes,
      fused,
      stock,
      ceiling,
      fusedDispatches,
      stockDispatches,
      speedup: stock.p50 / fused.p50,
      ceilingRatio: fused.p50 / ceiling.p50,
      fusedGBps: gbps(fused.p50),
      ceilingGBps: gbps(ceiling.p50),
      fusedGpu: fusedGpu?.step ?? null,
      stockGpu: stockGpu?.step ?? null,
      ceilingGpu,
      fusedGpuPasses: fusedGpu?.passes ?? null,
      stockGpuPasses: stockGpu?.passes ?? null,
      speedupGpu: fusedGpu && stockGpu ? stockGpu.step.p50 / fusedGpu.step.p50 : null,
      ceilingRatioGpu: fusedGpu && ceilingGpu ? fusedGpu.step.p50 / ceilingGpu.p50 : null,
      fusedGpuGBps: fusedGpu ? gbps(fusedGpu.step.p50) : null,
      ceilingGpuGBps: ceilingGpu ? gbps(ceilingGpu.p50) : null,
      gpuResolutionMs: resolutions.length > 0 ? Math.min(...resolutions) : null,
      clock: {
        fused: WALL_CLOCK,
        stock: WALL_CLOCK,
        ceiling: WALL_CLOCK,
        fusedGpu: fusedGpu ? GPU_CLOCK : null,
        stockGpu: stockGpu ? GPU_CLOCK : null,
        ceilingGpu: ceilingGpu ? `${GPU_CLOCK}, one pass per window` : null,
      },
    };
  }
}

/**
 * Times every shape: the fused and the stock loss (forward+backward, wall clock; GPU clock too
 * with 'timestamp-query'), their dispatches, and the memory ceiling. Stops cleanly on abort
 * (complete: false, the shapes done so far). Throws on a tensor leak.
 */
export async function runKernelBenchmark(options: KernelBenchOptions): Promise<KernelReport> {
  const started = performance.now();
  const shapes =
    typeof options.shapes === 'string'
      ? parseShapes(options.shapes)
      : options.shapes.map(([b, c]): [number, number] => [b, c]);
  const availability = gpuClockAvailability();
  const report: KernelReport = {
    kind: 'kernel-benchmark',
    schemaVersion: 1,
    timestamp: new Date().toISOString(),
    adapter: options.meta.adapter,
    software: options.meta.software,
    commit: options.meta.commit,
    versions: options.meta.versions,
    settings: {
      shapes,
      windows: options.windows,
      windowMs: options.windowMs,
      alpha: options.alpha,
      temperature: options.temperature,
      seed: options.seed,
    },
    results: [],
    clocks: {
      wall: WALL_CLOCK_TEXT,
      gpu: availability.available
        ? `${GPU_CLOCK_TEXT}; the ceiling: one pass of a window's dispatches with timestampWrites, per dispatch`
        : `no GPU-clock figures: ${availability.reason}`,
      gpuAvailable: availability.available,
    },
    complete: false,
    totalWallMs: 0,
  };
  try {
    for (const [i, [batch, classes]] of shapes.entries()) {
      if (options.signal?.aborted) break;
      let r: KernelShapeResult;
      try {
        r = await timeShape(options, batch, classes, availability.available);
      } catch (err) {
        if (err instanceof Aborted) break;
        throw err;
      }
      report.results.push(r);
      options.onShape?.(r, i, shapes.length);
    }
    report.complete = report.results.length === shapes.length;
    const resolution = report.results.find((r) => r.gpuResolutionMs !== null)?.gpuResolutionMs;
    if (resolution != null && resolution >= 0.001) {
      report.clocks.gpu +=
        `; pass times came in multiples of ${(resolution * 1000).toFixed(3)} µs (the ` +
        "implementation's timestamp quantization): a pass shorter than that reads as 0 or one step";
    }
  } finally {
    report.totalWallMs = performance.now() - started;
  }
  return report;
}

function ratio(x: number | null, digits = 1): string {
  return x === null ? '—' : `×${x.toFixed(digits)}`;
}

function ms(s: Spread | null): string {
  return s === null ? '—' : formatMs(s);
}

/** One shape's figures on one line (the CLI prints it as each shape finishes). */
export function formatShapeLine(r: KernelShapeResult): string {
  const gpu =
    r.fusedGpu && r.stockGpu
      ? `; ${GPU_CLOCK}: fused ${formatMs(r.fusedGpu)}, stock ${formatMs(r.stockGpu)}, ` +
        `${ratio(r.speedupGpu)}`
      : '';
  return (
    `${r.batch}x${r.classes}: ${WALL_CLOCK}: fused ${formatMs(r.fused)} ` +
    `(${r.fusedDispatches} dispatches), stock ${formatMs(r.stock)} (${r.stockDispatches}), ` +
    `${ratio(r.speedup)}; ceiling ${formatMs(r.ceiling)}, fused/ceiling ` +
    `${r.ceilingRatio.toFixed(2)}${gpu}`
  );
}

/** The printed report: a table of both clocks, then what each clock is. */
export function formatKernelReport(report: KernelReport): string {
  const rows = report.results.map((r) => [
    `${r.batch}×${r.classes}`,
    formatMs(r.fused),
    formatMs(r.stock),
    ratio(r.speedup),
    ms(r.fusedGpu),
    ms(r.stockGpu),
    ratio(r.speedupGpu),
    `${r.fusedDispatches}/${r.stockDispatches}`,
    formatMs(r.ceiling),
    ms(r.ceilingGpu),
    `${r.ceilingRatio.toFixed(2)}/${r.ceilingRatioGpu === null ? '—' : r.ceilingRatioGpu.toFixed(2)}`,
    `${r.fusedGBps.toFixed(2)}/${r.ceilingGBps.toFixed(2)}`,
  ]);
  const table = textTable(
    [
      'B×C',
      'fused (wall)',
      'stock (wall)',
      'stock/fused',
      'fused (GPU)',
      'stock (GPU)',
      'stock/fused GPU',
      'dispatches fused/stock',
      'ceiling (wall)',
      'ceiling (GPU)',
      'fused/ceiling wall/GPU',
      'GB/s fused/ceiling (wall)',
    ],
    rows,
  );
  return [
    `Forward+backward per step on ${report.adapter.description} (median [p20–p80], ms)` +
      (report.complete ? '' : ' — INCOMPLETE (stopped early)'),
    table,
    '',
    `(wall) ${report.clocks.wall}.`,
    `(GPU)  ${report.clocks.gpu}.`,
  ].join('\n');
}

/** The CSV rows of a report: one per shape, both clocks (GPU cells empty without). */
export function kernelCsvRows(report: KernelReport): Record<string, string | number>[] {
  const cell = (x: number | null | undefined): number | string => x ?? '';
  return report.results.map((r) => ({
    adapter: report.adapter.description,
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
    wall_clock: WALL_CLOCK,
    fused_gpu_p20_ms: cell(r.fusedGpu?.p20),
    fused_gpu_p50_ms: cell(r.fusedGpu?.p50),
    fused_gpu_p80_ms: cell(r.fusedGpu?.p80),
    stock_gpu_p20_ms: cell(r.stockGpu?.p20),
    stock_gpu_p50_ms: cell(r.stockGpu?.p50),
    stock_gpu_p80_ms: cell(r.stockGpu?.p80),
    ceiling_gpu_p50_ms: cell(r.ceilingGpu?.p50),
    speedup_gpu: cell(r.speedupGpu),
    fused_over_ceiling_gpu: cell(r.ceilingRatioGpu),
    gpu_clock: r.fusedGpu ? GPU_CLOCK : '',
  }));
}
