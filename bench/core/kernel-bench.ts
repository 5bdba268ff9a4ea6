/**
 * The kernel benchmark, host-neutral: the fused distillation loss forward+backward against the
 * stock-op composition (Keras formula) and against a memory ceiling, per `[B, C]` shape, on
 * the WebGPU device that tfjs uses. The CLI (bench/node/kernel.ts) and the page both run
 * {@link runKernelBenchmark}; the host supplies the device, the ceiling's WGSL source and the
 * provenance, and writes the files.
 *
 * Shapes come from a list or a named sweep (`vocab`: C from 1k to 256k × rows 64/512/2048).
 * Sparse (top-K) teacher shapes `BxCkK` come from their own list or the `topk` sweep: per
 * shape, the fused loss with the teacher's top-K against the dense fused loss on the same
 * logits and against the stock composition with the same sparse teacher (see
 * {@link TopKShapeResult}).
 * Per shape and side (fused, stock): forward+backward, and with `phases` forward alone and
 * backward as the paired difference; the peak GPU bytes of one step (tf.memory()); dispatches.
 * A side that fails (out of memory, a binding past the adapter's limit, a lost device) or that
 * the memory budget skips is recorded in the report's `failures`, never aborting the run.
 *
 * The soft term's divergence (`divergence`: forward KL by default, reverse KL, or the JSD with
 * its β) is the same on both sides. The stock side of forward KL is stockDistillationLoss (the
 * Keras formula); that function has no other divergence (it refuses one by name), so reverse
 * KL and the JSD are timed against the exact composition from stock ops instead
 * (src/composed.ts: what distillationLoss runs off WebGPU). The report
 * says which ({@link KernelBenchSettings.stockBaseline}). Top-K teachers are forward KL only.
 *
 * Two clocks (bench/core/lib/loss-timing.ts), and every figure says which:
 *   - wall, one fence per window: fused, stock and ceiling, always;
 *   - GPU timestamps: fused, stock and ceiling, where the device has 'timestamp-query'
 *     (null otherwise, and the report says why).
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  DEFAULT_JSD_BETA,
  distillationLoss,
  stockDistillationLoss,
  topKTeacher,
  type Divergence,
  type SparseTeacher,
} from 'tfjs-fused-distill';
// The exact composition is internal to the package (distillationLoss runs it off WebGPU, and
// for configs the kernels cannot run): the stock baseline of the divergences that
// stockDistillationLoss lacks. Imported by path; it holds only stock ops and a custom gradient,
// no state shared with the package's instance.
import { composedDistillationLoss } from '../../src/composed.js';
import { DIVERGENCE_NAMES, resolveConfig } from '../../src/config.js';
import {
  GPU_CLOCK,
  GPU_CLOCK_TEXT,
  gpuClockAvailability,
  lossStep,
  type LossFn,
  timeStepsGpu,
  timeWindow,
  WALL_CLOCK,
  WALL_CLOCK_TEXT,
  windowCalls,
  type GpuStepTimes,
} from './lib/loss-timing.js';
import { countDispatches } from './lib/dispatch-counter.js';
import {
  failureText,
  releasePooledGpuBuffers,
  uploadToGpu,
  withGpuErrorScopes,
  withPeakGpuBytes,
  type FailureKind,
  type StepFailure,
} from './lib/gpu-memory.js';
import { measureMemoryCeiling } from './lib/memory-ceiling.js';
import { labelArray, mulberry32, uniformArray } from 'tfjs-fused-distill/validation';
import { formatBytes, formatMs, spread, type Spread } from './lib/stats.js';
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

/** The divergences `--divergence` accepts: the package's own list (src/config.ts). */
export const KERNEL_DIVERGENCES: readonly Divergence[] = DIVERGENCE_NAMES;

/**
 * The stock side of the benchmark: `keras`, stockDistillationLoss (the Keras formula from stock
 * ops, tfjs autograd: forward KL only); `exact-composition`, composedDistillationLoss
 * (src/composed.ts: stock ops for the value, a custom gradient holding the exact formulas),
 * for the divergences stockDistillationLoss lacks.
 */
export type StockBaseline = 'keras' | 'exact-composition';

export const STOCK_BASELINE_TEXT: Record<StockBaseline, string> = {
  keras:
    'stockDistillationLoss, the Keras formula from stock ops (clipped softmaxes, forward KL), ' +
    'differentiated by tfjs autograd',
  'exact-composition':
    'the exact composition from stock ops (src/composed.ts, what distillationLoss runs off ' +
    'WebGPU; its gradient a custom gradient of stock ops), since stockDistillationLoss has the ' +
    "Keras formula's forward KL only",
};

/** The stock baseline a divergence is timed against. */
export function stockBaselineOf(divergence: Divergence): StockBaseline {
  return divergence === 'forward-kl' ? 'keras' : 'exact-composition';
}

/** The divergence and β as the report prints them: `forward-kl`, `jsd (β = 0.2)`. */
export function divergenceLabel(divergence: Divergence, beta: number | null | undefined): string {
  return divergence === 'jsd' ? `jsd (β = ${beta ?? DEFAULT_JSD_BETA})` : divergence;
}

/**
 * Checks `--divergence` and `--beta` (strings from the command line, or the options' values):
 * the divergence one of {@link KERNEL_DIVERGENCES} (default forward-kl); β a number in (0, 1),
 * for jsd only (default {@link DEFAULT_JSD_BETA} there; null for the others). Throws an error
 * that names the flag and what it accepts.
 */
export function parseDivergenceOptions(
  divergence: string | null | undefined,
  beta?: string | number | null,
): { divergence: Divergence; beta: number | null } {
  const name = divergence ?? 'forward-kl';
  if (!(KERNEL_DIVERGENCES as readonly string[]).includes(name)) {
    throw new Error(
      `--divergence: unknown divergence "${name}" (expected one of: ${KERNEL_DIVERGENCES.join(', ')})`,
    );
  }
  const d = name as Divergence;
  if (beta === undefined || beta === null) {
    return { divergence: d, beta: d === 'jsd' ? DEFAULT_JSD_BETA : null };
  }
  if (d !== 'jsd') {
    throw new Error(`--beta: applies to --divergence jsd only (got --divergence ${d})`);
  }
  const text = String(beta).trim();
  const b = typeof beta === 'number' ? beta : text === '' ? NaN : Number(text);
  if (!(Number.isFinite(b) && b > 0 && b < 1)) {
    throw new Error(
      `--beta: expected a number in (0, 1) (0 and 1 make the JSD vanish), got "${text}"`,
    );
  }
  return { divergence: d, beta: b };
}

/**
 * The config of both sides: alpha, temperature, the divergence and (jsd) β; forward KL's is
 * exactly what it was before divergences (no `divergence` field), for the stock formula.
 */
function lossConfig(options: {
  alpha: number;
  temperature: number;
  divergence?: Divergence | undefined;
  beta?: number | null | undefined;
}): object {
  const { divergence, beta } = parseDivergenceOptions(options.divergence, options.beta);
  const base = { alpha: options.alpha, temperature: options.temperature };
  if (divergence === 'forward-kl') return base;
  return { ...base, divergence, ...(beta === null ? {} : { beta }) };
}

/**
 * The exact composition (src/composed.ts) with distillationLoss's signature: dense teachers,
 * labels int32 indices or float32 `[..., C]`.
 */
function exactComposition(
  labels: tf.Tensor,
  student: tf.Tensor,
  teacher: tf.Tensor | SparseTeacher,
  config?: object,
): tf.Tensor {
  if (!(teacher instanceof tf.Tensor)) {
    throw new Error('the exact composition baseline takes dense teacher logits only');
  }
  const cfg = resolveConfig(config ?? {}, 'exact composition');
  const labelKind = labels.dtype === 'int32' ? 'index' : 'dense';
  return composedDistillationLoss(labels, student, teacher, { labelKind }, cfg);
}

/** The stock side's loss for a divergence (see {@link StockBaseline}). */
export function stockLossFor(divergence: Divergence): LossFn {
  return stockBaselineOf(divergence) === 'keras'
    ? stockDistillationLoss
    : (exactComposition as unknown as LossFn);
}

/**
 * The vocabulary sweep (`--sweep vocab`): C ∈ {1k, 4k, 32k, 128k, 256k} — binary thousands,
 * 1k = 1024, 4k = 4096, 32k = 32768, 128k = 131072, 256k = 262144 — × rows ∈ {64, 512, 2048},
 * plus the two shapes the targets name (512 × 32768 is in the grid; 128 × 131072 is added).
 */
export const VOCAB_SWEEP_CLASSES = [1024, 4096, 32768, 131072, 262144] as const;
export const VOCAB_SWEEP_ROWS = [64, 512, 2048] as const;
export const VOCAB_SWEEP_TARGET_SHAPES: readonly (readonly [number, number])[] = [
  [512, 32768],
  [128, 131072],
];
export const KERNEL_SWEEPS = ['vocab', 'topk'] as const;
export type KernelSweep = (typeof KERNEL_SWEEPS)[number];

/**
 * The dense shapes of a sweep, by rows then classes (the grid, then the target shapes not in
 * it). The `topk` sweep has none: its shapes are {@link topKSweepShapes}.
 */
export function sweepShapes(sweep: KernelSweep): [number, number][] {
  if (sweep === 'topk') return [];
  if (sweep !== 'vocab') {
    throw new Error(`unknown sweep "${String(sweep)}" (expected: ${KERNEL_SWEEPS.join(', ')})`);
  }
  const shapes: [number, number][] = [];
  for (const rows of VOCAB_SWEEP_ROWS) {
    for (const classes of VOCAB_SWEEP_CLASSES) shapes.push([rows, classes]);
  }
  for (const [rows, classes] of VOCAB_SWEEP_TARGET_SHAPES) {
    if (!shapes.some(([b, c]) => b === rows && c === classes)) shapes.push([rows, classes]);
  }
  return shapes.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
}

/** A sparse (top-K) teacher shape: rows B, classes C, entries K per row. */
export type TopKShape = readonly [number, number, number];

/** The sparse shapes the CLI times by default (`BxCkK`, comma-separated): the bar. */
export const DEFAULT_TOPK_SHAPES = '256x32768k32';

/** The top-K sweep (`--sweep topk`): C ∈ {32k, 128k} (32768, 131072) × K ∈ {8, 32, 128}. */
export const TOPK_SWEEP_ROWS = 256;
export const TOPK_SWEEP_CLASSES = [32768, 131072] as const;
export const TOPK_SWEEP_K = [8, 32, 128] as const;

/**
 * The bar at 256 × 32768, K = 32 (issue 9): the sparse fused step at most 0.7× the dense fused
 * step's time, and at least 25× faster than the stock composition, same run.
 */
export const TOPK_TARGETS = {
  shape: [256, 32768, 32] as TopKShape,
  maxSparseOverDense: 0.7,
  minStockOverSparse: 25,
} as const;

/** `"256x32768k32,64x1000k8"` → `[[256, 32768, 32], [64, 1000, 8]]`; "" or "none" → []. */
export function parseTopKShapes(list: string): [number, number, number][] {
  const text = list.trim();
  if (text === '' || text === 'none') return [];
  return text.split(',').map((s) => {
    const m = /^(\d+)x(\d+)k(\d+)$/.exec(s.trim());
    if (!m) throw new Error(`--topk: expected entries like 256x32768k32 (BxCkK), got "${s}"`);
    const [b, c, k] = [m[1]!, m[2]!, m[3]!].map((x) => parseInt(x, 10)) as [number, number, number];
    if (!(b > 0 && c > 0 && k > 0)) throw new Error(`--topk: sizes must be positive, got "${s}"`);
    if (k > c) throw new Error(`--topk: K must be at most C, got "${s}"`);
    return [b, c, k];
  });
}

/** The top-K sweep's shapes, by classes then K. */
export function topKSweepShapes(): [number, number, number][] {
  return TOPK_SWEEP_CLASSES.flatMap((c) =>
    TOPK_SWEEP_K.map((k): [number, number, number] => [TOPK_SWEEP_ROWS, c, k]),
  );
}

/** `BxCkK`, the name of a top-K shape in files and tables. */
export function topKShapeName([b, c, k]: TopKShape): string {
  return `${b}x${c}k${k}`;
}

/** The default memory budget of a sweep, GiB (`--memory-budget`). */
export const DEFAULT_MEMORY_BUDGET_GIB = 8;
/** The shape whose steps calibrate the memory model and the time estimate. */
export const CALIBRATION_SHAPE: readonly [number, number] = [128, 16384];

/**
 * What one step holds at its peak, measured on {@link CALIBRATION_SHAPE}: the peak of
 * `tf.memory().numBytesInGPU` above the inputs, in `[rows, C]` float32 arrays (the step's own
 * row vectors make it a little more than a whole number), and the wall time of one step.
 */
export interface KernelMemoryModel {
  shape: [number, number];
  fusedLiveArrays: number;
  stockLiveArrays: number;
  /** ms per element of one forward+backward step at that shape (for the time estimate). */
  fusedMsPerElement: number;
  stockMsPerElement: number;
}

/** A side's estimate and whether it runs. */
export interface SidePlan {
  /**
   * Bytes: the inputs s and t twice (made on the host, then uploaded) + the step's peak; for
   * the ceiling, its three arrays.
   */
  estimatedBytes: number;
  /** Why this side is not run (the estimate exceeds the budget, or an array cannot exist). */
  skip: string | null;
  /** Estimated wall time of this side's measurements, s. */
  estimatedSeconds: number;
}

export interface ShapePlan {
  batch: number;
  classes: number;
  /** One `[rows, C]` float32 array. */
  arrayBytes: number;
  fused: SidePlan;
  stock: SidePlan;
  ceiling: SidePlan;
}

export interface KernelRunPlan {
  shapes: ShapePlan[];
  memory: KernelMemoryModel | null;
  budgetBytes: number | null;
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
  /** The whole run's estimated wall time, s (null without a memory model). */
  estimatedSeconds: number | null;
}

const GiB = 1024 ** 3;

export { formatBytes };

/**
 * Calls per measured side, for the time estimate: the check call, a warm-up, `windows` windows
 * of about `windowMs` (one call at least; twice with the forward-only windows) and `gpuSamples`
 * + 1 GPU-clock steps.
 */
function sideSeconds(
  stepMs: number,
  windows: number,
  windowMs: number,
  phases: boolean,
  gpuSamples: number,
): number {
  const window = Math.max(windowMs, stepMs);
  const perWindow = phases ? window * 1.6 : window;
  return (2 * stepMs * (phases ? 1.6 : 1) + windows * perWindow + (gpuSamples + 1) * stepMs) / 1000;
}

/** Windows actually measured for a side whose step takes `stepMs` (see maxSideMs). */
export function windowsFor(
  stepMs: number,
  windows: number,
  maxSideMs: number | null,
  phases: boolean,
): number {
  if (maxSideMs === null) return windows;
  const perWindow = stepMs * (phases ? 2.6 : 2);
  return Math.max(
    Math.min(MIN_WINDOWS, windows),
    Math.min(windows, Math.floor(maxSideMs / perWindow)),
  );
}

/** Fewest windows a long side is cut to. */
const MIN_WINDOWS = 3;

/**
 * Which sides of which shapes run, from the memory model and the limits: a side is skipped when
 * its inputs (on the host and on the GPU) plus its measured peak (scaled from the calibration
 * shape) exceed the budget, or
 * when one `[rows, C]` array is larger than the adapter's maxBufferSize (it cannot be created).
 * The ceiling needs three arrays. Without a model (no budget), nothing is skipped.
 */
export function planKernelRun(
  shapes: readonly (readonly [number, number])[],
  memory: KernelMemoryModel | null,
  limits: {
    budgetBytes: number | null;
    maxBufferSize: number;
    maxStorageBufferBindingSize: number;
    windows: number;
    windowMs: number;
    phases: boolean;
    gpuClock: boolean;
    maxSideMs: number | null;
  },
): KernelRunPlan {
  const plans = shapes.map(([batch, classes]): ShapePlan => {
    const arrayBytes = batch * classes * 4;
    const elements = batch * classes;
    // A loss side: its inputs on the host (made there, then uploaded) and on the GPU, and the
    // step's peak; the ceiling: its three GPU arrays.
    const side = (arrays: number, live: number, msPerElement: number | null): SidePlan => {
      const estimatedBytes = Math.ceil((arrays + live) * arrayBytes);
      let skip: string | null = null;
      if (arrayBytes > limits.maxBufferSize) {
        skip =
          `one [${batch}, ${classes}] float32 array (${formatBytes(arrayBytes)}) exceeds the ` +
          `adapter's maxBufferSize (${formatBytes(limits.maxBufferSize)})`;
      } else if (limits.budgetBytes !== null && estimatedBytes > limits.budgetBytes) {
        skip =
          `estimated ${formatBytes(estimatedBytes)} (${arrays} [rows, C] arrays of inputs + ` +
          `${live.toFixed(1)} at the peak) exceeds the memory budget of ` +
          formatBytes(limits.budgetBytes);
      }
      let estimatedSeconds = 0;
      if (skip === null && msPerElement !== null) {
        const stepMs = msPerElement * elements;
        const w = windowsFor(stepMs, limits.windows, limits.maxSideMs, limits.phases);
        estimatedSeconds = sideSeconds(
          stepMs,
          w,
          limits.windowMs,
          limits.phases,
          limits.gpuClock ? w : 0,
        );
      }
      return { estimatedBytes, skip, estimatedSeconds };
    };
    const fused = side(4, memory?.fusedLiveArrays ?? 1, memory?.fusedMsPerElement ?? null);
    const stock = side(4, memory?.stockLiveArrays ?? 1, memory?.stockMsPerElement ?? null);
    const ceiling = side(3, 0, memory ? memory.fusedMsPerElement / 3 : null);
    return { batch, classes, arrayBytes, fused, stock, ceiling };
  });
  return {
    shapes: plans,
    memory,
    budgetBytes: limits.budgetBytes,
    maxBufferSize: limits.maxBufferSize,
    maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
    estimatedSeconds: memory
      ? plans.reduce(
          (a, p) =>
            a + p.fused.estimatedSeconds + p.stock.estimatedSeconds + p.ceiling.estimatedSeconds,
          0,
        )
      : null,
  };
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
  /**
   * Forward only (the loss without a tape: what inference or evaluation runs), wall clock, ms
   * per call; null unless the run timed the phases (settings.phases).
   */
  fusedForward?: Spread | null;
  stockForward?: Spread | null;
  /**
   * Backward: (forward+backward) − forward of the same pair of back-to-back windows, one
   * difference per pair; its median and p20–p80 are those of the differences. null unless
   * the run timed the phases.
   */
  fusedBackward?: Spread | null;
  stockBackward?: Spread | null;
  /**
   * The peak of `tf.memory().numBytesInGPU` during one forward+backward step above its value
   * before the step (the inputs and everything else already allocated excluded), bytes;
   * measured on a step of its own, outside the timed windows. null off WebGPU.
   */
  fusedPeakBytes?: number | null;
  stockPeakBytes?: number | null;
  /** Windows measured per side (fewer than settings.windows for long steps; see maxSideMs). */
  fusedWindows?: number;
  stockWindows?: number;
}

/** One side's figures in a shape that could not be measured whole. */
export interface KernelSideFigures {
  /** Forward+backward, wall clock. */
  both: Spread;
  forward: Spread | null;
  backward: Spread | null;
  gpu: Spread | null;
  dispatches: number;
  peakBytes: number | null;
  windows: number;
}

/**
 * A shape where a side failed or was skipped: what failed and how, and what was measured
 * anyway. `fusedError` / `stockError` / `ceilingError`: "KIND: message" (KIND one of
 * {@link FailureKind}: skipped, out-of-memory, binding-limit, validation, device-lost, error),
 * null when that side was measured.
 */
export interface KernelShapeFailure {
  batch: number;
  classes: number;
  fusedError: string | null;
  stockError: string | null;
  ceilingError: string | null;
  fusedErrorKind: FailureKind | null;
  stockErrorKind: FailureKind | null;
  ceilingErrorKind: FailureKind | null;
  fused: KernelSideFigures | null;
  stock: KernelSideFigures | null;
  ceiling: Spread | null;
  ceilingGpu: Spread | null;
  /** As in KernelShapeResult, where the figures exist. */
  fusedGBps: number | null;
  ceilingGBps: number | null;
  ceilingRatio: number | null;
  /** The plan's estimates, bytes. */
  estimatedBytes: { fused: number; stock: number; ceiling: number };
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
  /** The sweep the shapes came from, if any (absent in older reports). */
  sweep?: KernelSweep | null;
  /** Forward and backward timed apart too. */
  phases?: boolean;
  /** Sides whose estimate exceeded this were skipped, bytes; null: no budget. */
  memoryBudgetBytes?: number | null;
  /** A side's windows were cut (to 3 at least) to stay near this, ms; null: no cut. */
  maxSideMs?: number | null;
  /** The sparse (top-K) teacher shapes `[B, C, K]` (absent in older reports). */
  topKShapes?: [number, number, number][];
  /** The soft term's divergence of both sides (absent in older reports: forward-kl). */
  divergence?: Divergence;
  /** β of 'jsd'; null for the other divergences (absent in older reports). */
  beta?: number | null;
  /** What the stock side ran (absent in older reports: keras). */
  stockBaseline?: StockBaseline;
}

/**
 * One sparse (top-K) teacher shape: three sides, each forward+backward w.r.t. the student:
 * - `sparse`: the fused op with the teacher's top-K (`{ indices, logProbs }` from topKTeacher
 *   of the dense logits);
 * - `dense`: the fused op with the dense teacher logits the top-K came from;
 * - `stock`: stockDistillationLoss with the same sparse teacher (scattered to a dense `[B, C]`
 *   distribution, then the stock composition).
 * `sparse` and `dense` are timed in alternating windows (their ratio from the same stretch of
 * time), `stock` after them. A side that failed has null figures and its error.
 */
export interface TopKShapeResult {
  batch: number;
  classes: number;
  topK: number;
  /** The teacher's bytes per row: dense logits C·4, sparse K·8 (int32 id + float32 log-prob). */
  denseTeacherBytesPerRow: number;
  sparseTeacherBytesPerRow: number;
  sparse: KernelSideFigures | null;
  dense: KernelSideFigures | null;
  stock: KernelSideFigures | null;
  /** "KIND: message" when the side failed or was not run, else null. */
  sparseError: string | null;
  denseError: string | null;
  stockError: string | null;
  /** sparse p50 / dense p50 (wall); null unless both were measured. */
  sparseOverDense: number | null;
  /** stock p50 / sparse p50 (wall). */
  stockOverSparse: number | null;
  /** The same ratios on the GPU clock; null without it. */
  sparseOverDenseGpu: number | null;
  stockOverSparseGpu: number | null;
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
  /** Shapes whose fused, stock and ceiling figures were all measured. */
  results: KernelShapeResult[];
  /** Shapes where a side failed or was skipped (absent in older reports). */
  failures?: KernelShapeFailure[];
  /** Sparse (top-K) teacher shapes (absent in older reports). */
  topK?: TopKShapeResult[];
  /** The memory model and the plan (with a budget or a sweep; absent in older reports). */
  plan?: KernelRunPlan | null;
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
  /** `"64x10,256x32768"` or the parsed list; ignored when `sweep` is set. */
  shapes: string | readonly (readonly [number, number])[];
  /** A named sweep instead of `shapes`; it implies phases and a memory budget. */
  sweep?: KernelSweep | null;
  /**
   * Sparse (top-K) teacher shapes, `"256x32768k32"` or parsed; ignored with a sweep (`topk`
   * times {@link topKSweepShapes}, `vocab` none). Default: none.
   */
  topK?: string | readonly TopKShape[] | null;
  /** After each top-K shape: its result, its index and the number of top-K shapes. */
  onTopKShape?(r: TopKShapeResult, i: number, n: number): void;
  windows: number;
  windowMs: number;
  alpha: number;
  temperature: number;
  /**
   * The soft term's divergence, both sides (default forward-kl); reverse-kl and jsd are timed
   * against the exact composition ({@link StockBaseline}). Top-K shapes need forward-kl.
   */
  divergence?: Divergence;
  /** β of 'jsd', in (0, 1) (default 0.5); only with divergence 'jsd'. */
  beta?: number | null;
  seed: number;
  meta: KernelBenchMeta;
  /** Time forward alone too, and backward as the paired difference (default: with a sweep). */
  phases?: boolean;
  /**
   * Skip a side whose estimated memory exceeds this, bytes (default with a sweep:
   * {@link DEFAULT_MEMORY_BUDGET_GIB} GiB; else none, and no calibration).
   */
  memoryBudgetBytes?: number | null;
  /**
   * Cut a side's windows (to 3 at least) so that its timing stays near this, ms (default with
   * a sweep: 30 s; else none, and the stock side at C ≥ 8192 gets 5 windows as before).
   */
  maxSideMs?: number | null;
  /** Before the first shape: the plan, with the skips and the time estimate. */
  onPlan?(plan: KernelRunPlan): void;
  /** After each shape: its result, its index and the number of shapes. */
  onShape?(r: KernelShapeResult, i: number, n: number): void;
  /** After a shape where a side failed or was skipped. */
  onFailure?(f: KernelShapeFailure, i: number, n: number): void;
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
/** A step longer than this gets no separate warm-up or probe (the check call warmed it). */
const LONG_STEP_MS = 1000;

class Aborted extends Error {}

/** The loss inputs of one shape, seeded. */
function makeInputs(seed: number, batch: number, classes: number) {
  const rng = mulberry32(seed + batch * 7919 + classes);
  const s = tf.tensor2d(uniformArray(batch * classes, 4, rng), [batch, classes]);
  const t = tf.tensor2d(uniformArray(batch * classes, 4, rng), [batch, classes]);
  const y = tf.tensor1d(labelArray(batch, classes, rng), 'int32');
  uploadToGpu([s, t, y]);
  return { s, t, y };
}

/**
 * Measures the memory model on {@link CALIBRATION_SHAPE}: one step of each loss for the peak
 * bytes, and one more (warm) for the time per element.
 */
export async function calibrateKernelBench(
  options: Pick<KernelBenchOptions, 'alpha' | 'temperature' | 'seed' | 'divergence' | 'beta'>,
): Promise<KernelMemoryModel> {
  const [batch, classes] = CALIBRATION_SHAPE;
  const config = lossConfig(options);
  const { s, t, y } = makeInputs(options.seed, batch, classes);
  const arrayBytes = batch * classes * 4;
  try {
    const one = async (loss: LossFn) => {
      const run = () => lossStep(loss, y, s, t, config);
      const { peakBytes } = await withPeakGpuBytes(run, async (v) => {
        await v.data();
        v.dispose();
      });
      const ms = await timeWindow(run, 1);
      return { live: (peakBytes ?? arrayBytes) / arrayBytes, msPerElement: ms / (batch * classes) };
    };
    const fused = await one(distillationLoss);
    const stock = await one(stockLossFor(options.divergence ?? 'forward-kl'));
    return {
      shape: [batch, classes],
      fusedLiveArrays: fused.live,
      stockLiveArrays: stock.live,
      fusedMsPerElement: fused.msPerElement,
      stockMsPerElement: stock.msPerElement,
    };
  } finally {
    tf.dispose([s, t, y]);
    releasePooledGpuBuffers();
  }
}

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

/**
 * Forward-only and forward+backward windows in pairs, back to back (forward first): the same
 * calls per window for both, sized on the forward+backward step. Backward = both − forward per
 * pair. null if aborted before a pair.
 */
async function timePhases(
  step: () => tf.Tensor,
  forward: () => tf.Tensor,
  windows: number,
  windowMs: number,
  stepMs: number,
  signal: AbortSignal | undefined,
  between: (() => Promise<void>) | undefined,
): Promise<{ both: Spread; forward: Spread; backward: Spread } | null> {
  let calls = 1;
  if (stepMs < LONG_STEP_MS) {
    for (let i = 0; i < 2; i++) {
      await timeWindow(forward, 1);
      await timeWindow(step, 1);
    }
    calls = windowCalls(await timeWindow(step, 1), windowMs, 1);
  } else {
    await timeWindow(forward, 1);
  }
  const f: number[] = [];
  const b: number[] = [];
  for (let w = 0; w < windows && !signal?.aborted; w++) {
    f.push(await timeWindow(forward, calls));
    b.push(await timeWindow(step, calls));
    await between?.();
  }
  if (b.length === 0) return null;
  return { both: spread(b), forward: spread(f), backward: spread(b.map((x, i) => x - f[i]!)) };
}

type SideOutcome = { figures: KernelSideFigures; gpu: GpuStepTimes | null } | StepFailure;

/** Times one shape; throws Aborted when the signal fires before its figures are complete. */
async function timeShape(
  options: KernelBenchOptions,
  plan: ShapePlan,
  run: {
    gpuClock: boolean;
    phases: boolean;
    maxSideMs: number | null;
    deviceLost: () => string | null;
  },
): Promise<KernelShapeResult | KernelShapeFailure> {
  const { batch, classes } = plan;
  const { windows, windowMs, signal } = options;
  const between = options.yieldToEventLoop;
  const progress = (what: string) => options.onProgress?.(`${batch}x${classes}: ${what}`);
  const config = lossConfig(options);
  const before = tf.memory().numTensors;
  const lost = run.deviceLost();
  const skipAll = !!lost || (plan.fused.skip !== null && plan.stock.skip !== null);
  const inputs = skipAll ? null : makeInputs(options.seed, batch, classes);
  const check = <T>(x: T | null): T => {
    if (x === null || signal?.aborted) throw new Aborted();
    return x;
  };
  let outcome: { result: KernelShapeResult | KernelShapeFailure } | { error: unknown };
  try {
    outcome = { result: await measure() };
  } catch (error) {
    outcome = { error };
  }
  if (inputs) tf.dispose([inputs.s, inputs.t, inputs.y]);
  releasePooledGpuBuffers();
  if (tf.memory().numTensors !== before) {
    // A leak outranks an abort or another failure.
    throw new Error(`tensor leak: ${tf.memory().numTensors} tensors, expected ${before}`);
  }
  if ('error' in outcome) throw outcome.error;
  return outcome.result;

  async function side(
    name: 'fused' | 'stock',
    loss: LossFn,
    sidePlan: SidePlan,
    defaultWindows: number,
  ): Promise<SideOutcome> {
    const gone = run.deviceLost();
    if (gone) return { kind: 'device-lost', message: gone };
    if (sidePlan.skip !== null) return { kind: 'skipped', message: sidePlan.skip };
    const { s, t, y } = inputs!;
    const stepRun = () => lossStep(loss, y, s, t, config);
    const forwardRun = () => tf.tidy(() => loss(y, s, t, config) as tf.Tensor);
    progress(`${name}, checking one step (errors, peak memory, dispatches)`);
    const t0 = performance.now();
    let dispatches = 0;
    const checked = await withGpuErrorScopes(options.device, () =>
      withPeakGpuBytes(
        () => {
          let out: tf.Tensor | undefined;
          dispatches = countDispatches(() => {
            out = stepRun();
          });
          return out!;
        },
        async (v) => {
          try {
            await v.data();
          } finally {
            v.dispose();
          }
        },
      ),
    );
    const firstMs = performance.now() - t0;
    const goneNow = run.deviceLost();
    if (goneNow) return { kind: 'device-lost', message: goneNow };
    if (checked.failure) return checked.failure;
    const peakBytes = checked.result?.peakBytes ?? null;
    const w = Math.max(
      1,
      run.maxSideMs === null
        ? defaultWindows
        : windowsFor(firstMs, defaultWindows, run.maxSideMs, run.phases),
    );
    let both: Spread;
    let forward: Spread | null = null;
    let backward: Spread | null = null;
    if (run.phases) {
      progress(`${name}, forward and forward+backward, ${WALL_CLOCK}`);
      const p = check(await timePhases(stepRun, forwardRun, w, windowMs, firstMs, signal, between));
      ({ both, forward, backward } = p);
    } else {
      progress(`${name}, ${WALL_CLOCK}`);
      both = check(await timeSteps(stepRun, w, windowMs, signal, between));
    }
    let gpu: GpuStepTimes | null = null;
    if (run.gpuClock) {
      progress(`${name}, ${GPU_CLOCK}`);
      gpu = check(await timeStepsGpu(stepRun, w, signal, between));
    }
    return {
      figures: {
        both,
        forward,
        backward,
        gpu: gpu?.step ?? null,
        dispatches,
        peakBytes,
        windows: w,
      },
      gpu,
    };
  }

  async function measure(): Promise<KernelShapeResult | KernelShapeFailure> {
    const stockDefault =
      run.maxSideMs === null
        ? Math.min(windows, classes >= WIDE_CLASSES ? WIDE_STOCK_WINDOWS : windows)
        : windows;
    const fused = await side('fused', distillationLoss, plan.fused, windows);
    const stockLoss = stockLossFor(options.divergence ?? 'forward-kl');
    const stock = await side('stock', stockLoss, plan.stock, stockDefault);
    const fusedOk = 'figures' in fused ? fused : null;
    const stockOk = 'figures' in stock ? stock : null;
    // The ceiling: as many calls per window as the fused step's window held.
    let ceiling: Spread | null = null;
    let ceilingGpu: Spread | null = null;
    let ceilingFailure: StepFailure | null = null;
    const gone = run.deviceLost();
    if (gone) ceilingFailure = { kind: 'device-lost', message: gone };
    else if (plan.ceiling.skip !== null) {
      ceilingFailure = { kind: 'skipped', message: plan.ceiling.skip };
    } else {
      progress('memory ceiling');
      const refMs = fusedOk?.figures.both.p50 ?? (batch * classes * 12) / 1e6;
      const ceilingCalls = Math.max(1, Math.round(windowMs / Math.max(refMs, 0.01)));
      const ceilingWindows = fusedOk?.figures.windows ?? windows;
      const measured = await withGpuErrorScopes(options.device, () =>
        measureMemoryCeiling(
          options.device,
          options.ceilingShader,
          batch * classes,
          ceilingWindows,
          ceilingCalls,
          signal,
        ),
      );
      if (measured.failure) ceilingFailure = measured.failure;
      else {
        ceiling = check(measured.result!.wall.n > 0 ? measured.result!.wall : null);
        ceilingGpu = run.gpuClock ? check(measured.result!.gpu) : null;
      }
    }
    const bytes = 3 * batch * classes * 4;
    const gbps = (ms: number) => bytes / ms / 1e6;
    if (!fusedOk || !stockOk || !ceiling) {
      const err = (o: SideOutcome | StepFailure | null) =>
        o && !('figures' in o) ? failureText(o) : null;
      const kind = (o: SideOutcome | StepFailure | null) =>
        o && !('figures' in o) ? o.kind : null;
      return {
        batch,
        classes,
        fusedError: err(fused),
        stockError: err(stock),
        ceilingError: err(ceilingFailure),
        fusedErrorKind: kind(fused),
        stockErrorKind: kind(stock),
        ceilingErrorKind: kind(ceilingFailure),
        fused: fusedOk?.figures ?? null,
        stock: stockOk?.figures ?? null,
        ceiling,
        ceilingGpu,
        fusedGBps: fusedOk ? gbps(fusedOk.figures.both.p50) : null,
        ceilingGBps: ceiling ? gbps(ceiling.p50) : null,
        ceilingRatio: fusedOk && ceiling ? fusedOk.figures.both.p50 / ceiling.p50 : null,
        estimatedBytes: {
          fused: plan.fused.estimatedBytes,
          stock: plan.stock.estimatedBytes,
          ceiling: plan.ceiling.estimatedBytes,
        },
      };
    }
    const f = fusedOk.figures;
    const st = stockOk.figures;
    const fusedGpu = fusedOk.gpu;
    const stockGpu = stockOk.gpu;
    const resolutions = [fusedGpu?.resolutionMs, stockGpu?.resolutionMs].filter(
      (r): r is number => typeof r === 'number',
    );
    const result: KernelShapeResult = {
      batch,
      classes,
      fused: f.both,
      stock: st.both,
      ceiling,
      fusedDispatches: f.dispatches,
      stockDispatches: st.dispatches,
      speedup: st.both.p50 / f.both.p50,
      ceilingRatio: f.both.p50 / ceiling.p50,
      fusedGBps: gbps(f.both.p50),
      ceilingGBps: gbps(ceiling.p50),
      fusedGpu: fusedGpu?.step ?? null,
      stockGpu: stockGpu?.step ?? null,
      ceilingGpu,
      fusedGpuPasses: fusedGpu?.passes ?? null,
      stockGpuPasses: stockGpu?.passes ?? null,
      // A GPU time below the clock's resolution reads 0: such ratios are null, not Infinity
      // (which JSON cannot hold).
      speedupGpu: finite(fusedGpu && stockGpu ? stockGpu.step.p50 / fusedGpu.step.p50 : null),
      ceilingRatioGpu: finite(fusedGpu && ceilingGpu ? fusedGpu.step.p50 / ceilingGpu.p50 : null),
      fusedGpuGBps: finite(fusedGpu ? gbps(fusedGpu.step.p50) : null),
      ceilingGpuGBps: finite(ceilingGpu ? gbps(ceilingGpu.p50) : null),
      gpuResolutionMs: resolutions.length > 0 ? Math.min(...resolutions) : null,
      clock: {
        fused: WALL_CLOCK,
        stock: WALL_CLOCK,
        ceiling: WALL_CLOCK,
        fusedGpu: fusedGpu ? GPU_CLOCK : null,
        stockGpu: stockGpu ? GPU_CLOCK : null,
        ceilingGpu: ceilingGpu ? `${GPU_CLOCK}, one pass per window` : null,
      },
      fusedForward: f.forward,
      stockForward: st.forward,
      fusedBackward: f.backward,
      stockBackward: st.backward,
      fusedPeakBytes: f.peakBytes,
      stockPeakBytes: st.peakBytes,
      fusedWindows: f.windows,
      stockWindows: st.windows,
    };
    return result;
  }
}

/**
 * One forward+backward of `loss` with a sparse teacher w.r.t. the student logits (as
 * lossStep); returns the loss value to fence on, the gradient disposed.
 */
function sparseLossStep(
  loss: LossFn,
  labels: tf.Tensor,
  student: tf.Tensor,
  teacher: SparseTeacher,
  config: object,
): tf.Tensor {
  return tf.tidy(() => {
    const f = (s: tf.Tensor) => loss(labels, s, teacher, config) as tf.Scalar;
    const { value, grads } = tf.valueAndGrads(f)([student]);
    tf.dispose(grads);
    return value;
  });
}

/**
 * Wall times of several steps in alternating windows (one fence each): two fenced warm-ups
 * and a probe each, then `windows` rounds of one window per step, so that their ratios come
 * from the same stretch of time. null if aborted before a round.
 */
async function timeAlternating(
  runs: readonly (() => tf.Tensor)[],
  windows: number,
  windowMs: number,
  signal: AbortSignal | undefined,
  between: (() => Promise<void>) | undefined,
): Promise<Spread[] | null> {
  const calls: number[] = [];
  for (const run of runs) {
    for (let i = 0; i < 2; i++) await timeWindow(run, 1);
    calls.push(windowCalls(await timeWindow(run, 1), windowMs, 1));
  }
  const samples: number[][] = runs.map(() => []);
  for (let w = 0; w < windows && !signal?.aborted; w++) {
    for (const [i, run] of runs.entries()) samples[i]!.push(await timeWindow(run, calls[i]!));
    await between?.();
  }
  return samples[0]!.length > 0 ? samples.map((x) => spread(x)) : null;
}

/** Times one top-K shape; throws Aborted when the signal fires before its figures are done. */
async function timeTopKShape(
  options: KernelBenchOptions,
  [batch, classes, topK]: TopKShape,
  run: { gpuClock: boolean; maxSideMs: number | null; deviceLost: () => string | null },
): Promise<TopKShapeResult> {
  const { windows, windowMs, signal } = options;
  const between = options.yieldToEventLoop;
  const name = topKShapeName([batch, classes, topK]);
  const progress = (what: string) => options.onProgress?.(`${name}: ${what}`);
  const config = { alpha: options.alpha, temperature: options.temperature };
  const before = tf.memory().numTensors;
  const result: TopKShapeResult = {
    batch,
    classes,
    topK,
    denseTeacherBytesPerRow: classes * 4,
    sparseTeacherBytesPerRow: topK * 8,
    sparse: null,
    dense: null,
    stock: null,
    sparseError: null,
    denseError: null,
    stockError: null,
    sparseOverDense: null,
    stockOverSparse: null,
    sparseOverDenseGpu: null,
    stockOverSparseGpu: null,
  };
  const check = <T>(x: T | null): T => {
    if (x === null || signal?.aborted) throw new Aborted();
    return x;
  };
  let inputs: { s: tf.Tensor; t: tf.Tensor; y: tf.Tensor; teacher: SparseTeacher } | null = null;
  let error: unknown = null;
  try {
    const gone = run.deviceLost();
    if (gone) {
      const text = failureText({ kind: 'device-lost', message: gone });
      result.sparseError = result.denseError = result.stockError = text;
    } else {
      const { s, t, y } = makeInputs(options.seed, batch, classes);
      // The sparse teacher of the same logits, built on the GPU (nothing read back).
      const built = await withGpuErrorScopes(options.device, () =>
        Promise.resolve(topKTeacher(t, topK)),
      );
      if (built.failure || !built.result) {
        tf.dispose([s, t, y]);
        const text = `topKTeacher ${failureText(built.failure ?? { kind: 'error', message: '' })}`;
        result.sparseError = result.denseError = result.stockError = text;
      } else {
        inputs = { s, t, y, teacher: built.result };
        await measure(inputs);
      }
    }
  } catch (err) {
    error = err;
  }
  if (inputs)
    tf.dispose([inputs.s, inputs.t, inputs.y, inputs.teacher.indices, inputs.teacher.logProbs]);
  releasePooledGpuBuffers();
  if (tf.memory().numTensors !== before) {
    throw new Error(`tensor leak: ${tf.memory().numTensors} tensors, expected ${before}`);
  }
  if (error !== null) throw error;
  return result;

  /** One checked step: errors, peak memory, dispatches, its time; or how it failed. */
  async function checkStep(
    side: string,
    stepRun: () => tf.Tensor,
  ): Promise<{ dispatches: number; peakBytes: number | null; firstMs: number } | StepFailure> {
    const gone = run.deviceLost();
    if (gone) return { kind: 'device-lost', message: gone };
    progress(`${side}, checking one step (errors, peak memory, dispatches)`);
    const t0 = performance.now();
    let dispatches = 0;
    const checked = await withGpuErrorScopes(options.device, () =>
      withPeakGpuBytes(
        () => {
          let out: tf.Tensor | undefined;
          dispatches = countDispatches(() => {
            out = stepRun();
          });
          return out!;
        },
        async (v) => {
          try {
            await v.data();
          } finally {
            v.dispose();
          }
        },
      ),
    );
    const firstMs = performance.now() - t0;
    const goneNow = run.deviceLost();
    if (goneNow) return { kind: 'device-lost', message: goneNow };
    if (checked.failure) return checked.failure;
    return { dispatches, peakBytes: checked.result?.peakBytes ?? null, firstMs };
  }

  function windowsOf(firstMs: number, wide: boolean): number {
    if (run.maxSideMs !== null) return windowsFor(firstMs, windows, run.maxSideMs, false);
    return wide ? Math.min(windows, WIDE_STOCK_WINDOWS) : windows;
  }

  async function gpuTimes(side: string, stepRun: () => tf.Tensor, w: number) {
    if (!run.gpuClock) return null;
    progress(`${side}, ${GPU_CLOCK}`);
    return check(await timeStepsGpu(stepRun, w, signal, between));
  }

  async function measure(x: NonNullable<typeof inputs>): Promise<void> {
    const { s, t, y, teacher } = x;
    const sparseRun = () => sparseLossStep(distillationLoss, y, s, teacher, config);
    const denseRun = () => lossStep(distillationLoss, y, s, t, config);
    const stockRun = () => sparseLossStep(stockDistillationLoss, y, s, teacher, config);
    const sparseCheck = await checkStep('fused sparse', sparseRun);
    const denseCheck = await checkStep('fused dense', denseRun);
    if ('kind' in sparseCheck) result.sparseError = failureText(sparseCheck);
    if ('kind' in denseCheck) result.denseError = failureText(denseCheck);
    const fusedRuns: [string, () => tf.Tensor, Exclude<typeof sparseCheck, StepFailure>][] = [];
    if (!('kind' in sparseCheck)) fusedRuns.push(['sparse', sparseRun, sparseCheck]);
    if (!('kind' in denseCheck)) fusedRuns.push(['dense', denseRun, denseCheck]);
    if (fusedRuns.length > 0) {
      const w = Math.max(1, Math.min(...fusedRuns.map(([, , c]) => windowsOf(c.firstMs, false))));
      progress(
        `fused ${fusedRuns.map(([n]) => n).join(' and ')}, alternating windows, ${WALL_CLOCK}`,
      );
      const spreads = check(
        await timeAlternating(
          fusedRuns.map(([, r]) => r),
          w,
          windowMs,
          signal,
          between,
        ),
      );
      for (const [i, [side, stepRun, c]] of fusedRuns.entries()) {
        const gpu = await gpuTimes(`fused ${side}`, stepRun, w);
        const figures: KernelSideFigures = {
          both: spreads[i]!,
          forward: null,
          backward: null,
          gpu: gpu?.step ?? null,
          dispatches: c.dispatches,
          peakBytes: c.peakBytes,
          windows: w,
        };
        if (side === 'sparse') result.sparse = figures;
        else result.dense = figures;
      }
    }
    const stockCheck = await checkStep('stock sparse', stockRun);
    if ('kind' in stockCheck) {
      result.stockError = failureText(stockCheck);
    } else {
      const w = Math.max(1, windowsOf(stockCheck.firstMs, classes >= WIDE_CLASSES));
      progress(`stock sparse, ${WALL_CLOCK}`);
      const both = check(await timeSteps(stockRun, w, windowMs, signal, between));
      const gpu = await gpuTimes('stock sparse', stockRun, w);
      result.stock = {
        both,
        forward: null,
        backward: null,
        gpu: gpu?.step ?? null,
        dispatches: stockCheck.dispatches,
        peakBytes: stockCheck.peakBytes,
        windows: w,
      };
    }
    const { sparse, dense, stock } = result;
    result.sparseOverDense = sparse && dense ? finite(sparse.both.p50 / dense.both.p50) : null;
    result.stockOverSparse = sparse && stock ? finite(stock.both.p50 / sparse.both.p50) : null;
    result.sparseOverDenseGpu =
      sparse?.gpu && dense?.gpu ? finite(sparse.gpu.p50 / dense.gpu.p50) : null;
    result.stockOverSparseGpu =
      sparse?.gpu && stock?.gpu ? finite(stock.gpu.p50 / sparse.gpu.p50) : null;
  }
}

function finite(x: number | null): number | null {
  return x !== null && Number.isFinite(x) ? x : null;
}

/** True for a shape record that is a failure (a side failed or was skipped). */
export function isShapeFailure(r: KernelShapeResult | KernelShapeFailure): r is KernelShapeFailure {
  return 'fusedError' in r;
}

/**
 * Refuses top-K shapes (given, or the `topk` sweep) with a divergence other than forward KL:
 * a top-K teacher is forward KL only (src/sparse-op.ts).
 */
export function checkTopKDivergence(
  topKShapes: readonly TopKShape[],
  sweep: KernelSweep | null,
  divergence: Divergence,
): void {
  if (divergence === 'forward-kl' || topKShapes.length === 0) return;
  const [what, instead] =
    sweep === 'topk'
      ? ['--sweep topk', 'another sweep']
      : [`--topk ${topKShapes.map(topKShapeName).join(',')}`, '--topk none'];
  throw new Error(
    `--divergence ${divergence}: ${what} times top-K teachers, which are forward-kl only ` +
      `(use ${instead}, or --divergence forward-kl)`,
  );
}

/**
 * The top-K shapes of a command line: `--topk`'s list (`given`: set on the command line, not
 * its default). With a divergence other than forward KL: none when `--topk` was left at its
 * default, an error when shapes were given or the sweep is `topk` (top-K teachers are forward
 * KL only). A `vocab` sweep times no top-K shape whatever the list.
 */
export function topKShapesFor(
  list: string,
  given: boolean,
  sweep: KernelSweep | null,
  divergence: Divergence,
): [number, number, number][] {
  if (sweep === 'topk') checkTopKDivergence(topKSweepShapes(), sweep, divergence);
  const shapes = divergence === 'forward-kl' || given ? parseTopKShapes(list) : [];
  if (sweep === null) checkTopKDivergence(shapes, sweep, divergence);
  return shapes;
}

/**
 * Times every shape: the fused and the stock loss (forward+backward, wall clock; GPU clock too
 * with 'timestamp-query'; forward and backward apart with `phases`), their dispatches and peak
 * memory, and the memory ceiling. A side that fails (out of memory, a binding past the
 * adapter's limit, a lost device, any error) or is skipped by the memory budget is recorded in
 * `failures` and the run goes on. Stops cleanly on abort (complete: false, the shapes done so
 * far). Throws on a tensor leak.
 */
export async function runKernelBenchmark(options: KernelBenchOptions): Promise<KernelReport> {
  const started = performance.now();
  const { divergence, beta } = parseDivergenceOptions(options.divergence, options.beta);
  const sweep = options.sweep ?? null;
  const shapes = sweep
    ? sweepShapes(sweep)
    : typeof options.shapes === 'string'
      ? parseShapes(options.shapes)
      : options.shapes.map(([b, c]): [number, number] => [b, c]);
  const topKShapes: [number, number, number][] =
    sweep === 'topk'
      ? topKSweepShapes()
      : sweep !== null || options.topK == null
        ? []
        : typeof options.topK === 'string'
          ? parseTopKShapes(options.topK)
          : options.topK.map(([b, c, k]): [number, number, number] => [b, c, k]);
  checkTopKDivergence(topKShapes, sweep, divergence);
  const phases = options.phases ?? sweep !== null;
  const memoryBudgetBytes =
    options.memoryBudgetBytes !== undefined
      ? options.memoryBudgetBytes
      : sweep
        ? DEFAULT_MEMORY_BUDGET_GIB * GiB
        : null;
  const maxSideMs = options.maxSideMs !== undefined ? options.maxSideMs : sweep ? 30_000 : null;
  const availability = gpuClockAvailability();
  let lostMessage: string | null = null;
  void options.device.lost.then((info) => {
    lostMessage = `the GPU device was lost (${info.reason}): ${info.message}`;
  });
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
      sweep,
      phases,
      memoryBudgetBytes,
      maxSideMs,
      topKShapes,
      divergence,
      beta,
      stockBaseline: stockBaselineOf(divergence),
    },
    results: [],
    failures: [],
    topK: [],
    plan: null,
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
    const limits = options.device.limits;
    let memory: KernelMemoryModel | null = null;
    if (memoryBudgetBytes !== null && shapes.length > 0) {
      options.onProgress?.(
        `calibrating the memory model and the time estimate at ${CALIBRATION_SHAPE.join('x')}`,
      );
      memory = await calibrateKernelBench({ ...options, divergence, beta });
    }
    const plan = planKernelRun(shapes, memory, {
      budgetBytes: memoryBudgetBytes,
      maxBufferSize: limits.maxBufferSize,
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      windows: options.windows,
      windowMs: options.windowMs,
      phases,
      gpuClock: availability.available,
      maxSideMs,
    });
    report.plan = plan;
    options.onPlan?.(plan);
    let done = 0;
    for (const [i, shapePlan] of plan.shapes.entries()) {
      if (options.signal?.aborted) break;
      let r: KernelShapeResult | KernelShapeFailure;
      try {
        r = await timeShape(options, shapePlan, {
          gpuClock: availability.available,
          phases,
          maxSideMs,
          deviceLost: () => lostMessage,
        });
      } catch (err) {
        if (err instanceof Aborted) break;
        throw err;
      }
      done++;
      if (isShapeFailure(r)) {
        report.failures!.push(r);
        options.onFailure?.(r, i, shapes.length);
      } else {
        report.results.push(r);
        options.onShape?.(r, i, shapes.length);
      }
    }
    let topKDone = 0;
    for (const [i, shape] of topKShapes.entries()) {
      if (options.signal?.aborted) break;
      let r: TopKShapeResult;
      try {
        r = await timeTopKShape(options, shape, {
          gpuClock: availability.available,
          maxSideMs,
          deviceLost: () => lostMessage,
        });
      } catch (err) {
        if (err instanceof Aborted) break;
        throw err;
      }
      topKDone++;
      report.topK!.push(r);
      options.onTopKShape?.(r, i, topKShapes.length);
    }
    report.complete = done === shapes.length && topKDone === topKShapes.length;
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

export type { FailureKind } from './lib/gpu-memory.js';

function bytesCell(x: number | null | undefined): string {
  return x === null || x === undefined ? '—' : formatBytes(x);
}

/** One shape's figures on one line (the CLI prints it as each shape finishes). */
export function formatShapeLine(r: KernelShapeResult): string {
  const gpu =
    r.fusedGpu && r.stockGpu
      ? `; ${GPU_CLOCK}: fused ${formatMs(r.fusedGpu)}, stock ${formatMs(r.stockGpu)}, ` +
        `${ratio(r.speedupGpu)}`
      : '';
  const phases =
    r.fusedForward && r.fusedBackward && r.stockForward && r.stockBackward
      ? `; forward fused ${formatMs(r.fusedForward)}, stock ${formatMs(r.stockForward)}; ` +
        `backward fused ${formatMs(r.fusedBackward)}, stock ${formatMs(r.stockBackward)}`
      : '';
  const peak =
    r.fusedPeakBytes != null && r.stockPeakBytes != null
      ? `; peak GPU bytes fused ${formatBytes(r.fusedPeakBytes)}, stock ${formatBytes(r.stockPeakBytes)}`
      : '';
  return (
    `${r.batch}x${r.classes}: ${WALL_CLOCK}: fused ${formatMs(r.fused)} ` +
    `(${r.fusedDispatches} dispatches), stock ${formatMs(r.stock)} (${r.stockDispatches}), ` +
    `${ratio(r.speedup)}; ceiling ${formatMs(r.ceiling)}, fused/ceiling ` +
    `${r.ceilingRatio.toFixed(2)}${gpu}${phases}${peak}`
  );
}

function sideCell(x: KernelSideFigures | null, error: string | null): string {
  return x ? formatMs(x.both) : (error ?? '—');
}

/** One top-K shape's figures on one line (the CLI prints it as each shape finishes). */
export function formatTopKLine(r: TopKShapeResult): string {
  const side = (label: string, x: KernelSideFigures | null, error: string | null) =>
    x ? `${label} ${formatMs(x.both)} (${x.dispatches} dispatches)` : `${label} ${error ?? '—'}`;
  const gpu =
    r.sparse?.gpu && r.dense?.gpu && r.stock?.gpu
      ? `; ${GPU_CLOCK}: sparse ${formatMs(r.sparse.gpu)}, dense ${formatMs(r.dense.gpu)}, ` +
        `stock ${formatMs(r.stock.gpu)}`
      : '';
  return (
    `${topKShapeName([r.batch, r.classes, r.topK])}: ${WALL_CLOCK}: ` +
    `${side('fused sparse', r.sparse, r.sparseError)}, ` +
    `${side('fused dense', r.dense, r.denseError)}, ` +
    `${side('stock sparse', r.stock, r.stockError)}; sparse/dense ` +
    `${r.sparseOverDense === null ? '—' : r.sparseOverDense.toFixed(2)}, stock/sparse ` +
    `${ratio(r.stockOverSparse)}; teacher bytes per row ${formatBytes(r.sparseTeacherBytesPerRow)} ` +
    `vs ${formatBytes(r.denseTeacherBytesPerRow)}${gpu}`
  );
}

/** The top-K shapes as a table, and the bar at {@link TOPK_TARGETS} when it was measured. */
export function formatTopKTable(results: readonly TopKShapeResult[]): string {
  const gpu = results.some((r) => r.sparse?.gpu);
  const header = [
    'B×C, K',
    'fused sparse (wall)',
    'fused dense (wall)',
    'stock sparse (wall)',
    'sparse/dense',
    'stock/sparse',
  ];
  if (gpu) header.push('sparse/dense GPU', 'stock/sparse GPU');
  header.push('dispatches sparse/dense/stock', 'teacher B/row sparse/dense');
  const rows = results.map((r) => {
    const row = [
      `${r.batch}×${r.classes}, ${r.topK}`,
      sideCell(r.sparse, r.sparseError),
      sideCell(r.dense, r.denseError),
      sideCell(r.stock, r.stockError),
      r.sparseOverDense === null ? '—' : r.sparseOverDense.toFixed(2),
      ratio(r.stockOverSparse),
    ];
    if (gpu) {
      row.push(
        r.sparseOverDenseGpu === null ? '—' : r.sparseOverDenseGpu.toFixed(2),
        ratio(r.stockOverSparseGpu),
      );
    }
    const d = (x: KernelSideFigures | null) => (x ? String(x.dispatches) : '—');
    row.push(
      `${d(r.sparse)}/${d(r.dense)}/${d(r.stock)}`,
      `${formatBytes(r.sparseTeacherBytesPerRow)}/${formatBytes(r.denseTeacherBytesPerRow)}`,
    );
    return row;
  });
  const lines = [textTable(header, rows)];
  const [tb, tc, tk] = TOPK_TARGETS.shape;
  const bar = results.find((r) => r.batch === tb && r.classes === tc && r.topK === tk);
  if (bar) {
    const met = (ok: boolean | null) => (ok === null ? '—' : ok ? 'met' : 'not met');
    lines.push(
      '',
      `Bar at ${tb} × ${tc}, K = ${tk}, same run: sparse/dense ` +
        `${bar.sparseOverDense === null ? '—' : bar.sparseOverDense.toFixed(2)} (target ≤ ` +
        `${TOPK_TARGETS.maxSparseOverDense}: ` +
        `${met(bar.sparseOverDense === null ? null : bar.sparseOverDense <= TOPK_TARGETS.maxSparseOverDense)}); ` +
        `stock/sparse ${ratio(bar.stockOverSparse)} (target ≥ ${TOPK_TARGETS.minStockOverSparse}: ` +
        `${met(bar.stockOverSparse === null ? null : bar.stockOverSparse >= TOPK_TARGETS.minStockOverSparse)}).`,
    );
  }
  return lines.join('\n');
}

/** A failed or skipped shape on one line. */
export function formatFailureLine(f: KernelShapeFailure): string {
  const side = (name: string, error: string | null, x: KernelSideFigures | null) =>
    error !== null
      ? `${name} ${error}`
      : x
        ? `${name} ${formatMs(x.both)} (peak ${bytesCell(x.peakBytes)})`
        : `${name} —`;
  return (
    `${f.batch}x${f.classes}: ${side('fused', f.fusedError, f.fused)}; ` +
    `${side('stock', f.stockError, f.stock)}; ` +
    (f.ceilingError !== null ? `ceiling ${f.ceilingError}` : `ceiling ${ms(f.ceiling)}`)
  );
}

/** The plan before a run: what will be skipped and why, and the time estimate. */
export function formatKernelPlan(plan: KernelRunPlan): string {
  const lines: string[] = [];
  if (plan.memory) {
    const m = plan.memory;
    lines.push(
      `memory model (measured at ${m.shape.join('x')}): one step holds ` +
        `${m.fusedLiveArrays.toFixed(2)} (fused) and ${m.stockLiveArrays.toFixed(2)} (stock) ` +
        '[rows, C] float32 arrays at its peak besides its inputs',
    );
  }
  lines.push(
    `limits: budget ${plan.budgetBytes === null ? 'none' : formatBytes(plan.budgetBytes)}, ` +
      `maxBufferSize ${formatBytes(plan.maxBufferSize)}, maxStorageBufferBindingSize ` +
      `${formatBytes(plan.maxStorageBufferBindingSize)}`,
  );
  for (const p of plan.shapes) {
    const skips = (['fused', 'stock', 'ceiling'] as const)
      .filter((k) => p[k].skip !== null)
      .map((k) => `${k} skipped: ${p[k].skip}`);
    if (skips.length > 0) lines.push(`  ${p.batch}x${p.classes}: ${skips.join('; ')}`);
  }
  if (plan.estimatedSeconds !== null) {
    lines.push(
      `estimated time: ${(plan.estimatedSeconds / 60).toFixed(1)} min for ${plan.shapes.length} ` +
        'shapes (scaled from the calibration step; failing sides end sooner)',
    );
  }
  return lines.join('\n');
}

/** The printed report: a table of both clocks, then what each clock is. */
export function formatKernelReport(report: KernelReport): string {
  const phases = report.results.some((r) => r.fusedForward);
  const peaks = report.results.some((r) => r.fusedPeakBytes != null);
  const rows = report.results.map((r) => {
    const row = [`${r.batch}×${r.classes}`, formatMs(r.fused), formatMs(r.stock), ratio(r.speedup)];
    if (phases) {
      row.push(
        ms(r.fusedForward ?? null),
        ms(r.fusedBackward ?? null),
        ms(r.stockForward ?? null),
        ms(r.stockBackward ?? null),
      );
    }
    row.push(
      ms(r.fusedGpu),
      ms(r.stockGpu),
      ratio(r.speedupGpu),
      `${r.fusedDispatches}/${r.stockDispatches}`,
      formatMs(r.ceiling),
      ms(r.ceilingGpu),
      `${r.ceilingRatio.toFixed(2)}/${r.ceilingRatioGpu === null ? '—' : r.ceilingRatioGpu.toFixed(2)}`,
      `${r.fusedGBps.toFixed(2)}/${r.ceilingGBps.toFixed(2)}`,
    );
    if (peaks) row.push(`${bytesCell(r.fusedPeakBytes)}/${bytesCell(r.stockPeakBytes)}`);
    return row;
  });
  const header = ['B×C', 'fused (wall)', 'stock (wall)', 'stock/fused'];
  if (phases) header.push('fused fwd', 'fused bwd', 'stock fwd', 'stock bwd');
  header.push(
    'fused (GPU)',
    'stock (GPU)',
    'stock/fused GPU',
    'dispatches fused/stock',
    'ceiling (wall)',
    'ceiling (GPU)',
    'fused/ceiling wall/GPU',
    'GB/s fused/ceiling (wall)',
  );
  if (peaks) header.push('peak GPU bytes fused/stock');
  const table = textTable(header, rows);
  const { divergence, beta, baseline } = reportDivergence(report);
  const failures = report.failures ?? [];
  const topK = report.topK ?? [];
  const denseRun = report.results.length > 0 || failures.length > 0 || topK.length === 0;
  return [
    ...(denseRun ? [] : [`On ${report.adapter.description}:`]),
    ...(denseRun
      ? [
          `Forward+backward per step on ${report.adapter.description} (median [p20–p80], ms), ` +
            `divergence ${divergenceLabel(divergence, beta)}` +
            (report.complete ? '' : ' — INCOMPLETE (stopped early)'),
          table,
        ]
      : []),
    ...(failures.length > 0
      ? [
          '',
          'Shapes with a failed or skipped side:',
          ...failures.map((f) => `  ${formatFailureLine(f)}`),
        ]
      : []),
    ...(topK.length > 0
      ? [
          '',
          'Sparse (top-K) teacher, forward+backward per step (median [p20–p80], ms): fused with ' +
            'the top-K, fused with the dense logits they came from (alternating windows), stock ' +
            'composition with the top-K' +
            (report.complete ? '' : ' — INCOMPLETE (stopped early)'),
          formatTopKTable(topK),
        ]
      : []),
    '',
    `(wall) ${report.clocks.wall}.`,
    `(GPU)  ${report.clocks.gpu}.`,
    ...(denseRun ? [`(stock) ${STOCK_BASELINE_TEXT[baseline]}.`] : []),
    ...(phases
      ? [
          '(fwd)  the loss alone, no tape; (bwd) forward+backward − forward of back-to-back ' +
            'windows, per pair.',
        ]
      : []),
    ...(peaks
      ? [
          '(peak) the largest tf.memory().numBytesInGPU during one forward+backward step, above ' +
            'its value before the step (inputs excluded).',
        ]
      : []),
  ].join('\n');
}

/**
 * A report's divergence, β and stock baseline; a report from before divergences has none:
 * forward KL against the Keras formula.
 */
export function reportDivergence(report: Pick<KernelReport, 'settings'>): {
  divergence: Divergence;
  beta: number | null;
  baseline: StockBaseline;
} {
  const divergence = report.settings.divergence ?? 'forward-kl';
  return {
    divergence,
    beta: divergence === 'jsd' ? (report.settings.beta ?? DEFAULT_JSD_BETA) : null,
    baseline: report.settings.stockBaseline ?? stockBaselineOf(divergence),
  };
}

/**
 * The CSV rows of a report: one per shape, both clocks (GPU cells empty without). The last
 * columns say what was timed: `divergence` (forward-kl in a report from before divergences),
 * `beta` (jsd's β, else empty) and `stock_baseline` ({@link StockBaseline}).
 */
export function kernelCsvRows(report: KernelReport): Record<string, string | number>[] {
  const cell = (x: number | null | undefined): number | string => x ?? '';
  const what = reportDivergence(report);
  const timed = {
    divergence: what.divergence,
    beta: cell(what.beta),
    stock_baseline: what.baseline,
  };
  const rows: Record<string, string | number>[] = report.results.map((r) => ({
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
    fused_forward_p50_ms: cell(r.fusedForward?.p50),
    fused_backward_p50_ms: cell(r.fusedBackward?.p50),
    stock_forward_p50_ms: cell(r.stockForward?.p50),
    stock_backward_p50_ms: cell(r.stockBackward?.p50),
    fused_peak_bytes: cell(r.fusedPeakBytes),
    stock_peak_bytes: cell(r.stockPeakBytes),
    error: '',
    ...timed,
  }));
  for (const f of report.failures ?? []) {
    rows.push({
      adapter: report.adapter.description,
      batch: f.batch,
      classes: f.classes,
      fused_p50_ms: cell(f.fused?.both.p50),
      stock_p50_ms: cell(f.stock?.both.p50),
      ceiling_p50_ms: cell(f.ceiling?.p50),
      fused_peak_bytes: cell(f.fused?.peakBytes),
      stock_peak_bytes: cell(f.stock?.peakBytes),
      error: [
        f.fusedError && `fused ${f.fusedError}`,
        f.stockError && `stock ${f.stockError}`,
        f.ceilingError && `ceiling ${f.ceilingError}`,
      ]
        .filter(Boolean)
        .join('; '),
      ...timed,
    });
  }
  for (const r of report.topK ?? []) {
    rows.push({
      adapter: report.adapter.description,
      batch: r.batch,
      classes: r.classes,
      top_k: r.topK,
      fused_sparse_p20_ms: cell(r.sparse?.both.p20),
      fused_sparse_p50_ms: cell(r.sparse?.both.p50),
      fused_sparse_p80_ms: cell(r.sparse?.both.p80),
      fused_p20_ms: cell(r.dense?.both.p20),
      fused_p50_ms: cell(r.dense?.both.p50),
      fused_p80_ms: cell(r.dense?.both.p80),
      stock_p20_ms: cell(r.stock?.both.p20),
      stock_p50_ms: cell(r.stock?.both.p50),
      stock_p80_ms: cell(r.stock?.both.p80),
      sparse_over_dense: cell(r.sparseOverDense),
      speedup: cell(r.stockOverSparse),
      fused_sparse_dispatches: cell(r.sparse?.dispatches),
      fused_dispatches: cell(r.dense?.dispatches),
      stock_dispatches: cell(r.stock?.dispatches),
      wall_clock: WALL_CLOCK,
      fused_sparse_gpu_p50_ms: cell(r.sparse?.gpu?.p50),
      fused_gpu_p50_ms: cell(r.dense?.gpu?.p50),
      stock_gpu_p50_ms: cell(r.stock?.gpu?.p50),
      gpu_clock: r.sparse?.gpu ? GPU_CLOCK : '',
      fused_sparse_peak_bytes: cell(r.sparse?.peakBytes),
      fused_peak_bytes: cell(r.dense?.peakBytes),
      stock_peak_bytes: cell(r.stock?.peakBytes),
      sparse_teacher_bytes_per_row: r.sparseTeacherBytesPerRow,
      dense_teacher_bytes_per_row: r.denseTeacherBytesPerRow,
      error: [
        r.sparseError && `fused sparse ${r.sparseError}`,
        r.denseError && `fused dense ${r.denseError}`,
        r.stockError && `stock sparse ${r.stockError}`,
      ]
        .filter(Boolean)
        .join('; '),
      ...timed,
    });
  }
  // Every row gets every column (toCsv takes the header from the first row); the columns of
  // older files keep their order, what was timed comes last.
  const last = Object.keys(timed);
  const keys = [
    ...[...new Set(rows.flatMap((r) => Object.keys(r)))].filter((k) => !last.includes(k)),
    ...last,
  ];
  return rows.map((r) => Object.fromEntries(keys.map((k) => [k, r[k] ?? ''])));
}
