/**
 * The kernel benchmark's report (JSON), its one schema: what `npm run bench:kernel` and the
 * page write, what the printed report, the CSV and the results table (bench/core/results-table/)
 * read. Fields added after the first reports are optional and say what their absence means.
 */
import type { Divergence } from 'tfjs-fused-distill';
import type { FailureKind } from '../lib/gpu-memory.js';
import type { Spread } from '../lib/stats.js';
import type { AdapterDescription } from '../protocol/report.js';
import type { LinearSettings, LinearShapeResult } from './linear-report.js';
import type { KernelSweep } from './shapes.js';

export type { FailureKind } from '../lib/gpu-memory.js';

/**
 * The stock side of the benchmark: `keras`, stockDistillationLoss (the Keras formula from stock
 * ops, tfjs autograd: forward KL only); `exact-composition`, exactStockOpsDistillationLoss
 * (tfjs-fused-distill/validation: stock ops for the value, a custom gradient holding the exact
 * formulas), for the divergences stockDistillationLoss lacks.
 */
export type StockBaseline = 'keras' | 'exact-composition';

/**
 * What one step holds at its peak, measured on the calibration shape (plan.ts): the peak of
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
  /** The linear-head mode's settings (`--linear`); absent or null without it. */
  linear?: LinearSettings | null;
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
  /** Linear-head sizes (`--linear`; absent in older reports and without it). */
  linear?: LinearShapeResult[];
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

/**
 * The loss settings of the first kernel reports, at the top level instead of in `settings`;
 * the results table still reads them.
 */
export interface LegacyKernelReportFields {
  config?: { alpha?: number; temperature?: number };
  seed?: number;
}

/** True for a shape record that is a failure (a side failed or was skipped). */
export function isShapeFailure(r: KernelShapeResult | KernelShapeFailure): r is KernelShapeFailure {
  return 'fusedError' in r;
}
