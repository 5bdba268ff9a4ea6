/**
 * The linear-head mode's part of the kernel report (`KernelReport.linear`): per `rows × H × V`
 * size, three sides timed forward+backward w.r.t. the student head's hidden states, weight and
 * bias, on the same adapter in the same process:
 *
 * - `fused-linear`: fusedLinearDistillationLoss with a teacher head (never holds `[rows, V]`);
 * - `matmul-fused`: `z = matMul(h, W) + b`, then distillationLoss (the fused loss kernel);
 * - `matmul-stock`: the same logits, then the stock composition (stockDistillationLoss for
 *   forward KL, the exact composition for the other divergences; see StockBaseline).
 *
 * On the two matMul sides the teacher's logits `matMul(th, tW) + tb` are computed inside each
 * timed step, outside the differentiated function (a constant, as the fused side's teacher
 * head is), so every side runs the same four products: the teacher's, the student's forward,
 * and its two backward products.
 */
import type { Spread } from '../lib/stats.js';

export const LINEAR_SIDES = ['fused-linear', 'matmul-fused', 'matmul-stock'] as const;
export type LinearSide = (typeof LINEAR_SIDES)[number];

/** What each side is, in words. */
export const LINEAR_SIDE_TEXT: Readonly<Record<LinearSide, string>> = {
  'fused-linear':
    'fusedLinearDistillationLoss(y, {hidden, weight, bias}, teacher head {hidden, weight, bias})',
  'matmul-fused': 'z = matMul(h, W) + b, distillationLoss(y, z, matMul(th, tW) + tb)',
  'matmul-stock': 'z = matMul(h, W) + b, the stock composition on (y, z, matMul(th, tW) + tb)',
};

/** A side's outcome: measured, failed (an error or a wrong output), or refused up front. */
export type LinearSideStatus = 'ok' | 'failed' | 'refused';

/** The checked step's output: the loss and the sizes of the three gradients. */
export interface LinearCheck {
  loss: number;
  /** Σ|∂L/∂hidden|, Σ|∂L/∂weight|, Σ|∂L/∂bias|. */
  hiddenGradAbsSum: number;
  weightGradAbsSum: number;
  biasGradAbsSum: number;
  /** max |student logits| and max |teacher logits| (the matMul sides; null for fused-linear). */
  studentLogitsAbsMax: number | null;
  teacherLogitsAbsMax: number | null;
}

export interface LinearSideResult {
  side: LinearSide;
  status: LinearSideStatus;
  /** Why it failed ("KIND: message") or was refused; null when measured. */
  error: string | null;
  /** Forward+backward per step, wall clock (one fence per window), ms; null unless ok. */
  wall: Spread | null;
  /** GPU timestamps (tf.time kernelMs) per step; null without 'timestamp-query' or unless ok. */
  gpu: Spread | null;
  /** Windows (wall) measured. */
  windows: number;
  /** GPU dispatches of one step. */
  dispatches: number | null;
  /** The first (checked) step's wall time, ms, pipeline compilation included. */
  firstMs: number | null;
  /**
   * tf.profile() of one step: its peakBytes (the largest tf.memory().numBytes after a kernel)
   * minus numBytes before the step (the inputs excluded), bytes.
   */
  profilePeakBytes: number | null;
  /** profilePeakBytes minus the bytes of the returned gradients (hidden, weight, bias). */
  profileExtraBytes: number | null;
  /** The largest tf.memory().numBytesInGPU during one step above its value before, bytes. */
  gpuPeakBytes: number | null;
  /** The checked step's loss and gradient sizes; null when it did not run. */
  check: LinearCheck | null;
  /** The estimate the refusal was judged on: inputs + gradients + the step's own arrays, bytes. */
  estimatedBytes: number;
}

/** A plain `tf.matMul` of (at most) the size's shape: the arithmetic throughput on this adapter. */
export interface LinearMatMulFigures {
  /** The product timed, `[rows', H] · [H, V']`: the size's own, or cut to fit one binding. */
  shape: [number, number, number];
  wall: Spread | null;
  gpu: Spread | null;
  /** 2 · rows' · H · V' / wall p50, GFLOP/s. */
  gflops: number | null;
  /** The same on the GPU clock. */
  gpuGflops: number | null;
  error: string | null;
}

export interface LinearShapeResult {
  rows: number;
  hidden: number;
  vocab: number;
  /** The student's three products (forward, ∂hidden, ∂weight): 3 · 2 · rows · H · V. */
  studentFlops: number;
  /** The teacher head's one product: 2 · rows · H · V. */
  teacherFlops: number;
  matmul: LinearMatMulFigures;
  /** (student + teacher FLOPs) / the plain matMul's throughput (wall), ms; null without it. */
  floorMs: number | null;
  /** The same on the GPU clock. */
  floorGpuMs: number | null;
  sides: Record<LinearSide, LinearSideResult>;
  /** fused-linear p50 / matmul-fused p50 (wall); null unless both were measured. */
  fusedOverMatmulFused: number | null;
  /** matmul-stock p50 / fused-linear p50 (wall). */
  stockOverFused: number | null;
  /** The same ratios on the GPU clock. */
  fusedOverMatmulFusedGpu: number | null;
  stockOverFusedGpu: number | null;
  /**
   * The largest relative difference of the fused side's loss and gradient sizes from the
   * matmul-fused side's (the same maths); null unless both ran.
   */
  fusedVsMatmulRelDiff: number | null;
}

/** The linear mode's settings (KernelBenchSettings.linear). */
export interface LinearSettings {
  shapes: [number, number, number][];
  /** The fused op's memoryBudgetBytes; null: its default. */
  opBudgetBytes: number | null;
  /** A side whose estimate exceeds this is refused, bytes. */
  capBytes: number;
  /** False: a matMul side whose `[rows, V]` or `[H, V]` array exceeds one binding is refused. */
  tryPastBinding: boolean;
  /**
   * One checked step per side and one measured step (wall time of that step, peak GPU bytes,
   * dispatches): no profile and no timed windows. For sizes whose step takes minutes.
   */
  singleStep: boolean;
  /** Where the matMul sides' teacher logits come from. */
  teacherLogits: 'inside-step-constant';
}
