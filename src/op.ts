/**
 * `distillationLoss`: the public op. Checks its inputs, then runs the fused kernels where
 * they are registered (webgpu) and the exact stock-op composition elsewhere.
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkConfigForLabels, resolveConfig, type DistillationLossConfig } from './config.js';
import {
  composedDistillationLoss,
  composedDistillationLossComponents,
  type DistillationLossComponents,
} from './composed.js';
import { FUSED_DISTILLATION_LOSS, type DistillAttrs } from './kernels/names.js';
import { runFusedForward } from './kernels/run.js';
import { activeTape } from './tfjs-internals.js';
import { checkDeviceLimits } from './limits.js';
import { isSparseTeacher, type SparseTeacher } from './sparse-teacher.js';
import { sparseDistillationLoss } from './sparse-op.js';
import { checkInputs, MAX_CLASSES } from './validate.js';

export type { DistillationLossComponents } from './composed.js';

/** A config that asks for `{ loss, hardLoss, softLoss }`. */
type ComponentsConfig = DistillationLossConfig & { returnComponents: true };
/** A config that asks for the loss alone (the default). */
type LossOnlyConfig = DistillationLossConfig & { returnComponents?: false };

/**
 * The per-row losses of 'none' for student logits of type S: the leading shape, `tf.Tensor1D`
 * for `[B, C]`, `tf.Tensor2D` for `[batch, sequence, C]`, a `tf.Tensor` when the rank is not
 * known statically.
 */
export type RowLosses<S extends tf.Tensor> = S extends tf.Tensor2D
  ? tf.Tensor1D
  : S extends tf.Tensor3D
    ? tf.Tensor2D
    : S extends tf.Tensor4D
      ? tf.Tensor3D
      : tf.Tensor;

/**
 * Which gradients the forward kernel writes. Without a tape, none. Under a tape, the
 * student's; the teacher's too when its logits can be differentiated (they come out of an op
 * recorded on the tape, or are a trainable variable). A teacher gradient asked for anyway is
 * still exact: the backward pass then recomputes it from the saved row statistics.
 */
function gradientsToWrite(teacherLogits: tf.Tensor): DistillAttrs['writeGradients'] {
  const tape = activeTape();
  if (tape === null) return 'none';
  if (teacherLogits instanceof tf.Variable && teacherLogits.trainable) return 'both';
  const id = teacherLogits.id;
  const onTape = tape.some((node) => node.outputs.some((o) => o.id === id));
  return onTape ? 'both' : 'student';
}

/**
 * The knowledge-distillation loss (Hinton et al. 2015), fused on WebGPU:
 *
 *   ℓ_b = α · CE(y_b, softmax(s_b)) + (1 − α) · k · KL(softmax(t_b / T) ‖ softmax(s_b / T)),
 *   k = T² (temperatureSquared, default) or 1; the result is mean_b ℓ_b, Σ_b ℓ_b or `[B]`.
 *
 * Differentiable with respect to both logits (exact gradients; the teacher's is computed only
 * when the tape can ask for it). Labels are constants. Under a tape the forward kernel also
 * writes the gradients, so the backward pass is at most one scaling by the upstream gradient. An integer label outside `[0, C)` makes
 * its row's loss NaN (it is never used as an address).
 *
 * Logits may have any rank ≥ 2, `[..., C]` (e.g. `[batch, sequence, C]`): every leading index
 * is a row. Inputs larger than one WebGPU storage binding are dispatched in chunks of rows.
 *
 * @param labels int32 class indices of the logits' leading shape (`[B]` for `[B, C]`), or
 *   float32 one-hot / soft labels of the logits' shape.
 * @param studentLogits float32 `[..., C]`.
 * @param teacher float32 `[..., C]` logits, the student's shape (pad a smaller vocabulary with
 *   −Infinity logits); or a sparse (top-K) teacher `{ indices, logProbs }`, int32 and float32
 *   `[..., K]`: the teacher's K most likely ids and their log-probabilities at temperature 1
 *   (src/sparse-teacher.ts; forward KL only; a constant, no gradient flows into it).
 * @param config {@link DistillationLossConfig}; defaults in {@link DEFAULT_CONFIG}.
 * @returns a scalar for 'mean' / 'sum', the per-row losses in the leading shape for 'none'
 *   (typed by the student's rank: {@link RowLosses}).
 *   With `returnComponents: true`, `{ loss, hardLoss, softLoss }` (DistillationLossComponents):
 *   on WebGPU from the same forward pass (the row statistics hold CE_b and KL_b; one more
 *   dispatch writes both components), each differentiable (its gradient is the loss's at
 *   α = 1 or α = 0, one backward dispatch per component differentiated).
 */
export function distillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacher: tf.Tensor | SparseTeacher,
  config: ComponentsConfig & { reduction?: 'mean' | 'sum' },
): DistillationLossComponents<tf.Scalar>;
export function distillationLoss<S extends tf.Tensor>(
  labels: tf.Tensor,
  studentLogits: S,
  teacher: tf.Tensor | SparseTeacher,
  config: ComponentsConfig & { reduction: 'none' },
): DistillationLossComponents<RowLosses<S>>;
export function distillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacher: tf.Tensor | SparseTeacher,
  config: ComponentsConfig,
): DistillationLossComponents;
export function distillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacher: tf.Tensor | SparseTeacher,
  config?: LossOnlyConfig & { reduction?: 'mean' | 'sum' },
): tf.Scalar;
export function distillationLoss<S extends tf.Tensor>(
  labels: tf.Tensor,
  studentLogits: S,
  teacher: tf.Tensor | SparseTeacher,
  config: LossOnlyConfig & { reduction: 'none' },
): RowLosses<S>;
export function distillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacher: tf.Tensor | SparseTeacher,
  config?: LossOnlyConfig,
): tf.Tensor;
export function distillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacher: tf.Tensor | SparseTeacher,
  config?: DistillationLossConfig,
): tf.Tensor | DistillationLossComponents;
export function distillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacher: tf.Tensor | SparseTeacher,
  config?: DistillationLossConfig,
): tf.Tensor | DistillationLossComponents {
  if (isSparseTeacher(teacher)) {
    return sparseDistillationLoss(labels, studentLogits, teacher, config);
  }
  const teacherLogits = teacher;
  const op = 'distillationLoss';
  const shapes = checkInputs(labels, studentLogits, teacherLogits, op, MAX_CLASSES);
  const cfg = resolveConfig(config, op);
  checkConfigForLabels(cfg, shapes.labelKind, op);
  if (!tf.getKernel(FUSED_DISTILLATION_LOSS, tf.getBackend())) {
    // Backends without the kernels: the exact composition (src/composed.ts), [..., C] rows.
    return cfg.returnComponents
      ? composedDistillationLossComponents(labels, studentLogits, teacherLogits, shapes, cfg)
      : composedDistillationLoss(labels, studentLogits, teacherLogits, shapes, cfg);
  }
  checkDeviceLimits(shapes, op);
  const attrs: DistillAttrs = {
    ...cfg,
    writeGradients: gradientsToWrite(teacherLogits),
    gradients: 'student',
  };
  return runFusedForward(FUSED_DISTILLATION_LOSS, { labels, studentLogits, teacherLogits }, attrs);
}
