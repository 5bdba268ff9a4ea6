/**
 * The linear-head mode's sides: the seeded inputs of a `rows × H × V` size, one
 * forward+backward step of each side (gradients w.r.t. hidden, weight and bias), what a side
 * would hold (and the refusals that follow from it), the checked step that catches a silent
 * wrong output (stock matMul past one storage binding returns zeros), tf.profile()'s peak, and
 * the plain matMul whose throughput gives the arithmetic floor.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  distillationLoss,
  fusedLinearDistillationLoss,
  type FusedLinearDistillationLossConfig,
} from 'tfjs-fused-distill';
import { labelArray, mulberry32, uniformArray } from 'tfjs-fused-distill/validation';
import { uploadToGpu, withGpuErrorScopes, type StepFailure } from '../lib/gpu-memory.js';
import type { LossFn, TimedLossConfig } from '../lib/loss-timing.js';
import { formatBytes } from '../lib/stats.js';
import type { LinearCheck, LinearSide } from './linear-report.js';
import type { LinearShape } from './linear-shapes.js';

/** The inputs of one size: the student head, the teacher head, the labels. */
export interface LinearInputs {
  y: tf.Tensor1D;
  h: tf.Tensor2D;
  w: tf.Tensor2D;
  b: tf.Tensor1D;
  th: tf.Tensor2D;
  tw: tf.Tensor2D;
  tb: tf.Tensor1D;
}

/**
 * Seeded inputs: hidden states uniform in [−1, 1], weights uniform in ±9/√H (logits of about
 * unit-3 spread), biases in [−1, 1]; uploaded to the GPU before anything is timed.
 */
export function makeLinearInputs(seed: number, [rows, hidden, vocab]: LinearShape): LinearInputs {
  const rng = mulberry32(seed + rows * 7919 + hidden * 104729 + vocab);
  const ws = 9 / Math.sqrt(hidden);
  const x: LinearInputs = {
    y: tf.tensor1d(labelArray(rows, vocab, rng), 'int32'),
    h: tf.tensor2d(uniformArray(rows * hidden, 1, rng), [rows, hidden]),
    w: tf.tensor2d(uniformArray(hidden * vocab, ws, rng), [hidden, vocab]),
    b: tf.tensor1d(uniformArray(vocab, 1, rng)),
    th: tf.tensor2d(uniformArray(rows * hidden, 1, rng), [rows, hidden]),
    tw: tf.tensor2d(uniformArray(hidden * vocab, ws, rng), [hidden, vocab]),
    tb: tf.tensor1d(uniformArray(vocab, 1, rng)),
  };
  uploadToGpu(Object.values(x));
  return x;
}

export function disposeLinearInputs(x: LinearInputs): void {
  tf.dispose(Object.values(x));
}

/** What a side's step computes with: the loss config and the stock side's loss. */
export interface LinearStepConfig {
  loss: TimedLossConfig;
  /** The fused op's memoryBudgetBytes (null: its default). */
  opBudgetBytes: number | null;
  stockLoss: LossFn;
}

/**
 * The loss of one side as a function of the student head (hidden, weight, bias), plus the
 * logits it made (the matMul sides) for the check.
 */
function sideLoss(
  side: LinearSide,
  x: LinearInputs,
  c: LinearStepConfig,
): { f: (h: tf.Tensor, w: tf.Tensor, b: tf.Tensor) => tf.Scalar; teacherLogits: tf.Tensor | null } {
  if (side === 'fused-linear') {
    const config: FusedLinearDistillationLossConfig = {
      ...c.loss,
      ...(c.opBudgetBytes === null ? {} : { memoryBudgetBytes: c.opBudgetBytes }),
    };
    const teacher = { hidden: x.th, weight: x.tw, bias: x.tb };
    return {
      f: (h, w, b) =>
        fusedLinearDistillationLoss(
          x.y,
          { hidden: h, weight: w, bias: b },
          teacher,
          config,
        ) as tf.Scalar,
      teacherLogits: null,
    };
  }
  // The teacher's logits: inside the step, outside the differentiated function (a constant).
  const t = tf.add(tf.matMul(x.th, x.tw), x.tb);
  const loss: LossFn = side === 'matmul-fused' ? distillationLoss : c.stockLoss;
  return { f: (h, w, b) => loss(x.y, tf.add(tf.matMul(h, w), b), t, c.loss), teacherLogits: t };
}

/**
 * One forward+backward step of a side: the loss and its gradients w.r.t. hidden, weight and
 * bias (implicit dy, as training takes them); returns the loss to fence on, the gradients
 * disposed.
 */
export function linearStep(side: LinearSide, x: LinearInputs, c: LinearStepConfig): tf.Tensor {
  return tf.tidy(() => {
    const { f } = sideLoss(side, x, c);
    const { value, grads } = tf.valueAndGrads(f)([x.h, x.w, x.b]);
    tf.dispose(grads);
    return value;
  });
}

/**
 * The checked step of a side, in GPU error scopes: the loss, Σ|gradient| of each input and, on
 * the matMul sides, max |logits| of student and teacher, read back; or how it failed. A zero
 * where none can be (stock matMul past maxStorageBufferBindingSize writes nothing and reads
 * as 0) or a non-finite figure fails the side.
 */
export async function checkLinearSide(
  device: GPUDevice,
  side: LinearSide,
  x: LinearInputs,
  c: LinearStepConfig,
  pastBinding: string | null,
): Promise<{ check: LinearCheck | null; failure: StepFailure | null; ms: number }> {
  const t0 = performance.now();
  const out = await withGpuErrorScopes(device, async () => {
    const v = tf.tidy(() => {
      const { f, teacherLogits } = sideLoss(side, x, c);
      const { value, grads } = tf.valueAndGrads(f)([x.h, x.w, x.b]);
      // The student logits again, outside the tape (its intermediates do not outlive it).
      const student = side === 'fused-linear' ? null : tf.add(tf.matMul(x.h, x.w), x.b);
      const absMax = (t: tf.Tensor | null) => (t ? tf.max(tf.abs(t)) : tf.scalar(-1));
      return tf.stack([
        value,
        ...grads.map((d) => tf.sum(tf.abs(d))),
        absMax(student),
        absMax(teacherLogits),
      ]);
    });
    try {
      return Array.from(await v.data());
    } finally {
      v.dispose();
    }
  });
  const ms = performance.now() - t0;
  if (out.failure || !out.result) {
    return { check: null, failure: out.failure ?? { kind: 'error', message: 'no result' }, ms };
  }
  const [loss, dh, dw, db, zMax, tMax] = out.result as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const check: LinearCheck = {
    loss,
    hiddenGradAbsSum: dh,
    weightGradAbsSum: dw,
    biasGradAbsSum: db,
    studentLogitsAbsMax: zMax < 0 ? null : zMax,
    teacherLogitsAbsMax: tMax < 0 ? null : tMax,
  };
  const figures = [loss, dh, dw, db, zMax, tMax];
  if (!figures.every(Number.isFinite)) {
    return {
      check,
      failure: { kind: 'error', message: `non-finite output (${figures.join(', ')})` },
      ms,
    };
  }
  const zeros = [
    dh === 0 && 'Σ|∂hidden| = 0',
    dw === 0 && 'Σ|∂weight| = 0',
    zMax === 0 && 'student logits all 0',
    tMax === 0 && 'teacher logits all 0',
  ].filter((s): s is string => typeof s === 'string');
  if (zeros.length > 0) {
    const message =
      pastBinding !== null
        ? `zeros past the binding limit (${zeros.join(', ')}; ${pastBinding})`
        : `zero output (${zeros.join(', ')})`;
    return {
      check,
      failure: { kind: pastBinding !== null ? 'binding-limit' : 'error', message },
      ms,
    };
  }
  return { check, failure: null, ms };
}

/** The bytes of the gradients a step returns: hidden, weight and bias. */
export function gradientBytes([rows, hidden, vocab]: LinearShape): number {
  return 4 * (rows * hidden + hidden * vocab + vocab);
}

/** The inputs' bytes: both heads and the labels. */
export function inputBytes([rows, hidden, vocab]: LinearShape): number {
  return 4 * (2 * rows * hidden + 2 * hidden * vocab + 2 * vocab + rows);
}

/**
 * `[rows, V]` float32 arrays a step of the matMul sides holds at its peak besides its inputs
 * (teacher and student logits, the logits' gradient, the loss's own: the fused loss 1, the
 * stock composition about 26, measured by the dense benchmark's calibration).
 */
const MATMUL_SIDE_ARRAYS: Record<Exclude<LinearSide, 'fused-linear'>, number> = {
  'matmul-fused': 4,
  'matmul-stock': 30,
};

/** The fused op's default memory budget (DEFAULT_LINEAR_MEMORY_BUDGET_BYTES), for estimates. */
const FUSED_OP_DEFAULT_BUDGET = 256 * 1024 * 1024;

/** A side's estimated bytes: inputs, gradients, and what the step holds. */
export function estimateLinearSideBytes(
  side: LinearSide,
  shape: LinearShape,
  opBudgetBytes: number | null,
): number {
  const [rows, , vocab] = shape;
  const own =
    side === 'fused-linear'
      ? (opBudgetBytes ?? FUSED_OP_DEFAULT_BUDGET)
      : MATMUL_SIDE_ARRAYS[side] * rows * vocab * 4;
  return inputBytes(shape) + gradientBytes(shape) + own;
}

/**
 * The arrays of a matMul side that exceed one storage binding (tfjs binds whole tensors), in
 * words, or null: `[rows, V]` logits and the `[H, V]` weight.
 */
export function pastBindingText(
  [rows, hidden, vocab]: LinearShape,
  maxStorageBufferBindingSize: number,
): string | null {
  const over = [
    [`[${rows}, ${vocab}]`, rows * vocab * 4],
    [`[${hidden}, ${vocab}]`, hidden * vocab * 4],
  ].filter(([, bytes]) => (bytes as number) > maxStorageBufferBindingSize);
  if (over.length === 0) return null;
  return (
    over
      .map(([what, bytes]) => `one ${what} float32 array (${formatBytes(bytes as number)})`)
      .join(' and ') +
    ` exceeds maxStorageBufferBindingSize (${formatBytes(maxStorageBufferBindingSize)})`
  );
}

/** Why a side is refused before it runs, or null. */
export function refuseLinearSide(
  side: LinearSide,
  shape: LinearShape,
  limits: {
    maxBufferSize: number;
    maxStorageBufferBindingSize: number;
    capBytes: number;
    opBudgetBytes: number | null;
    tryPastBinding: boolean;
  },
): string | null {
  const [rows, hidden, vocab] = shape;
  const weightBytes = hidden * vocab * 4;
  if (weightBytes > limits.maxBufferSize) {
    return (
      `one [${hidden}, ${vocab}] float32 weight (${formatBytes(weightBytes)}) exceeds the ` +
      `adapter's maxBufferSize (${formatBytes(limits.maxBufferSize)})`
    );
  }
  if (side !== 'fused-linear') {
    const logitBytes = rows * vocab * 4;
    if (logitBytes > limits.maxBufferSize) {
      return (
        `one [${rows}, ${vocab}] float32 array (${formatBytes(logitBytes)}) exceeds the ` +
        `adapter's maxBufferSize (${formatBytes(limits.maxBufferSize)})`
      );
    }
    const past = pastBindingText(shape, limits.maxStorageBufferBindingSize);
    if (past !== null && !limits.tryPastBinding) {
      return `${past}: tfjs binds whole tensors, and matMul past that returns zeros`;
    }
  }
  const estimated = estimateLinearSideBytes(side, shape, limits.opBudgetBytes);
  if (estimated > limits.capBytes) {
    return (
      `estimated ${formatBytes(estimated)} (inputs, gradients and the step's own arrays) ` +
      `exceeds the cap of ${formatBytes(limits.capBytes)}`
    );
  }
  return null;
}

/**
 * tf.profile() of one step: peakBytes (the largest tf.memory().numBytes after a kernel) minus
 * numBytes before the step; `extra` also minus the gradients' bytes. null when no kernel ran.
 */
export async function profileLinearStep(
  run: () => tf.Tensor,
  gradBytes: number,
): Promise<{ raw: number; extra: number } | null> {
  const before = tf.memory().numBytes;
  const info = await tf.profile(() => run());
  const result = info.result;
  try {
    if (result instanceof tf.Tensor) await result.data();
  } finally {
    tf.dispose(result);
  }
  if (info.kernels.length === 0 || !Number.isFinite(info.peakBytes)) return null;
  const raw = Math.max(0, info.peakBytes - before);
  return { raw, extra: raw - gradBytes };
}

/**
 * The plain matMul's shape for a size: `[rows', H] · [H, V']` with V' halved until the
 * `[H, V']` weight fits one storage binding and rows' halved until the `[rows', V']` product
 * does (tfjs binds whole tensors; past a binding its result is zeros).
 */
export function matMulShape(
  [rows, hidden, vocab]: LinearShape,
  maxStorageBufferBindingSize: number,
): [number, number, number] {
  let v = vocab;
  while (v > 1 && hidden * v * 4 > maxStorageBufferBindingSize) v = Math.ceil(v / 2);
  let r = rows;
  while (r > 1 && r * v * 4 > maxStorageBufferBindingSize) r = Math.ceil(r / 2);
  return [r, hidden, v];
}
