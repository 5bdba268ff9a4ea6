/**
 * The distillation benchmark's result file: the types of {@link DistillReport} and its parts
 * (run records, timings, curve comparison), the report a run starts from, and the fields
 * derived once the runs are done (speedup, curve comparison, memory flag, completeness).
 * Printing it and its CSV rows: bench/core/protocol/report-output.ts; writing the files:
 * bench/node/report-files.ts.
 */
import type { Spread } from '../lib/stats.js';
import type { BenchSettings, PresetName } from '../presets.js';
import type { BenchData } from './data.js';

/** The four trained models, as keys of {@link DistillReport.runs}. */
export type RunName = 'teacher' | 'distilledFused' | 'distilledStock' | 'scratch';

/** `tf.memory()` figures at one point of a run. */
export interface MemorySample {
  numTensors: number;
  numBytes: number;
}

/** One epoch of a training run (a partial one when the run was interrupted). */
export interface EpochRecord {
  /** 1-based. */
  epoch: number;
  /** Steps done in this epoch. */
  steps: number;
  /** Mean of the per-step batch losses. */
  loss: number;
  /** Mean of the per-step batch accuracies (training mode, before the update). */
  accuracy: number;
  wallMs: number;
  /** `tf.memory()` at the end of the epoch, after the last window's read-back. */
  memory: MemorySample;
}

/** Growth of `tf.memory()` between the end of warm-up and the end of the last epoch. */
export interface MemoryGrowth {
  tensors: number;
  bytes: number;
  /** True when either grew: a leak (Adam's slots exist from the first step on). */
  flagged: boolean;
}

/** A training run and the test-set evaluation of its model. */
export interface RunRecord {
  /** 'trained' or 'loaded' (a teacher from `--teacher PATH`). */
  source: 'trained' | 'loaded';
  /** Which loss trained it: cross-entropy on hard labels, or a distillation loss. */
  loss: 'cross-entropy' | 'fused' | 'stock';
  filters: [number, number];
  params: number;
  /** False when the run was interrupted (then it has no evaluation). */
  complete: boolean;
  /** Steps done in all epochs. */
  steps: number;
  epochs: EpochRecord[];
  /** Per-step batch loss, in step order. */
  lossCurve: number[];
  /** Per-step batch accuracy, in step order. */
  accuracyCurve: number[];
  /**
   * Wall time per step: per-window means of the full-size windows after warm-up, median and
   * p20/p80; null if none.
   */
  stepMs: Spread | null;
  /** The per-window means behind {@link stepMs}. */
  stepMsSamples: number[];
  /** WebGPU dispatches of one full step after warm-up; null when none was counted. */
  dispatchesPerStep: number | null;
  /** `tf.memory()` at the first read-back after warm-up. */
  memoryAfterWarmup: MemorySample | null;
  memoryGrowth: MemoryGrowth | null;
  wallMs: number;
  testAccuracy: number | null;
  testLoss: number | null;
  /** Checkpoint path for a loaded or saved teacher. */
  checkpoint?: string;
}

/** Median and spread of each step phase, every phase fenced on its own. */
export interface PhaseTimes {
  /** Teacher forward (inference), or the gather from the cache in 'cached' mode. */
  teacherForward: Spread;
  /** Student forward (training mode) + distillation loss + backward. */
  studentForwardLossBackward: Spread;
  /** Adam's update of the student's variables. */
  optimizerApply: Spread;
}

/** The loss alone, forward + backward, on one real batch's logits. */
export interface LossOnlyTimes {
  /** `[B, C]` of the captured logits. */
  shape: [number, number];
  fused: Spread;
  stock: Spread;
  /** stock p50 / fused p50. */
  speedup: number;
  dispatches: { fused: number; stock: number };
  /**
   * GPU timestamps (tf.time's kernelMs: the sum of one step's pass times, one step per
   * sample); null without 'timestamp-query' (see {@link clock}). Absent in older reports.
   */
  gpu?: { fused: Spread; stock: Spread } | null;
  /** Which clock each figure came from, and why the GPU clock is missing when it is. */
  clock?: string;
}

/** A speedup stock/fused from two spreads: the p50 ratio and a conservative band. */
export interface SpeedupSpread {
  /** stock p50 / fused p50. */
  p50: number;
  /** stock p20 / fused p80. */
  low: number;
  /** stock p80 / fused p20. */
  high: number;
}

/** Fused and stock loss curves side by side over their first steps. */
export interface CurveComparison {
  /** Steps compared (the first K of both curves). */
  steps: number;
  maxAbsDiff: number;
  maxRelDiff: number;
  /** A few (1-based) steps with both losses, for the printed table. */
  points: { step: number; fused: number; stock: number }[];
}

/** The adapter a run used, as the host describes it (Dawn in Node, `navigator.gpu` in a page). */
export interface AdapterDescription {
  /** Which software or hardware adapter, e.g. "lavapipe (mesa, software)". */
  readonly description: string;
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  /** The Vulkan ICD file that was selected, or "dawn default". */
  readonly icd: string;
}

/**
 * The settings' provenance and the environment, filled in by the host (the CLI): the shared
 * protocol reads no files, processes or environment itself.
 */
export interface ReportMeta {
  /** Why this preset (e.g. "--preset quick", or the adapter rule). */
  presetReason: string;
  /** What the preset reduced relative to the Keras protocol. */
  reductions: string[];
  adapter: AdapterDescription;
  software: boolean;
  /** The command-line flags as parsed (all of them, defaults included). */
  flags: Record<string, unknown>;
  /** The source's git commit (short), or "unknown". */
  commit: string;
  /** Versions of the runtime and packages, by name. */
  versions: Record<string, string>;
}

/** The result file of one benchmark run (JSON). */
export interface DistillReport {
  kind: 'distill-benchmark';
  schemaVersion: 1;
  /** False when the run was interrupted (SIGINT) or a run was cut short. */
  complete: boolean;
  /** Where an interrupted run stopped; null when complete. */
  interrupted: { during: string; afterSteps: number } | null;
  preset: PresetName;
  presetReason: string;
  reductions: string[];
  adapter: AdapterDescription;
  software: boolean;
  timestamp: string;
  commit: string;
  versions: Record<string, string>;
  flags: Record<string, unknown>;
  settings: BenchSettings;
  dataset: { name: string; source: string; trainImages: number; testImages: number };
  runs: {
    teacher: RunRecord | null;
    distilledFused: RunRecord | null;
    distilledStock: RunRecord | null;
    scratch: RunRecord | null;
  };
  /** One full step after warm-up, counted with bench/core/lib/dispatch-counter.ts. */
  dispatchesPerStep: {
    fused: number | null;
    stock: number | null;
    scratch: number | null;
    teacher: number | null;
    /** What a counted step contains. */
    note: string;
  };
  /** Step wall time stock/fused; null until both distillation runs have step times. */
  speedup: SpeedupSpread | null;
  lossOnly: LossOnlyTimes | null;
  phases: { method: string; fused: PhaseTimes | null; stock: PhaseTimes | null };
  curves: CurveComparison | null;
  /** True when any run's tfjs memory grew after warm-up. */
  memoryGrowthFlagged: boolean;
  totalWallMs: number;
}

/** What {@link emptyReport} fills in: the run's options (`RunOptions`, bench/core/protocol.ts). */
export interface ReportInputs {
  settings: BenchSettings;
  data: BenchData;
  meta: ReportMeta;
}

/** A report with nothing measured yet: settings, provenance and the methods' notes. */
export function emptyReport(options: ReportInputs): DistillReport {
  const { settings, data, meta } = options;
  return {
    kind: 'distill-benchmark',
    schemaVersion: 1,
    complete: false,
    interrupted: null,
    preset: settings.preset,
    presetReason: meta.presetReason,
    reductions: meta.reductions,
    adapter: meta.adapter,
    software: meta.software,
    timestamp: new Date().toISOString(),
    commit: meta.commit,
    versions: meta.versions,
    flags: meta.flags,
    settings,
    dataset: {
      name: data.name,
      source: data.source,
      trainImages: data.train.count,
      testImages: data.test.count,
    },
    runs: { teacher: null, distilledFused: null, distilledStock: null, scratch: null },
    dispatchesPerStep: {
      fused: null,
      stock: null,
      scratch: null,
      teacher: null,
      note:
        'one full training step after warm-up: batch upload, teacher forward (per-step mode) ' +
        'or cache gather, student forward + loss + backward, batch-accuracy metric, Adam update',
    },
    speedup: null,
    lossOnly: null,
    phases: {
      method:
        'a separate short sample after evaluation; EACH PHASE FENCED (a read-back after ' +
        'it), so the phases sum to more than a windowed step: a breakdown, not the step time',
      fused: null,
      stock: null,
    },
    curves: null,
    memoryGrowthFlagged: false,
    totalWallMs: 0,
  };
}

/** Derived fields: speedup, curve comparison, memory flag, completeness. */
export function finishReport(report: DistillReport): void {
  const { distilledFused: fused, distilledStock: stock } = report.runs;
  if (fused?.stepMs && stock?.stepMs) report.speedup = speedupSpread(fused.stepMs, stock.stepMs);
  if (fused && stock) {
    report.curves = compareCurves(
      fused.lossCurve,
      stock.lossCurve,
      report.settings.timing.curveCompareSteps,
    );
  }
  const runs = Object.values(report.runs).filter((r): r is RunRecord => r !== null);
  report.memoryGrowthFlagged = runs.some((r) => r.memoryGrowth?.flagged === true);
  report.complete =
    report.interrupted === null && runs.length === 4 && runs.every((r) => r.complete);
}

/** stock/fused per step: the p50 ratio, and [stock p20 / fused p80, stock p80 / fused p20]. */
export function speedupSpread(fused: Spread, stock: Spread): SpeedupSpread {
  return { p50: stock.p50 / fused.p50, low: stock.p20 / fused.p80, high: stock.p80 / fused.p20 };
}

/**
 * The max absolute and relative differences of the first `steps` losses of two curves, and
 * a few points for display (steps 1, 2, 5, 10, 20, 50, … up to `steps`).
 */
export function compareCurves(
  fused: readonly number[],
  stock: readonly number[],
  steps: number,
): CurveComparison {
  const k = Math.min(steps, fused.length, stock.length);
  let maxAbsDiff = 0;
  let maxRelDiff = 0;
  for (let i = 0; i < k; i++) {
    const abs = Math.abs(fused[i] - stock[i]);
    maxAbsDiff = Math.max(maxAbsDiff, abs);
    maxRelDiff = Math.max(maxRelDiff, abs / Math.max(Math.abs(stock[i]), 1e-30));
  }
  const marks = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000].filter((s) => s < k);
  const points = [...marks, k]
    .filter((s) => s >= 1)
    .map((step) => ({ step, fused: fused[step - 1], stock: stock[step - 1] }));
  return { steps: k, maxAbsDiff, maxRelDiff, points };
}
