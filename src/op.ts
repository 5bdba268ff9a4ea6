/**
 * `distillationLoss`: the public op. Checks its inputs, then runs the fused kernels where
 * they are registered (webgpu) and the exact stock-op composition elsewhere.
 */
import * as tf from '@tensorflow/tfjs-core';
import { resolveConfig, type DistillationLossConfig } from './config.js';
import { composedDistillationLoss } from './composed.js';
import { FUSED_DISTILLATION_LOSS, ROW_STATS_WIDTH, type DistillAttrs } from './kernels/names.js';
import { activeTape, maxStorageBufferBindingSize } from './tfjs_internals.js';
import { checkInputs, MAX_CLASSES } from './validate.js';

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
 * @param labels int32 `[B]` class indices, or float32 `[B, C]` one-hot / soft labels.
 * @param studentLogits float32 `[B, C]`.
 * @param teacherLogits float32 `[B, C]`.
 * @param config `{alpha = 0.1, temperature = 10, temperatureSquared = true, reduction = 'mean'}`.
 * @returns a scalar for 'mean' / 'sum', a `[B]` vector for 'none'.
 */
export function distillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacherLogits: tf.Tensor,
  config?: DistillationLossConfig & { reduction?: 'mean' | 'sum' },
): tf.Scalar;
export function distillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacherLogits: tf.Tensor,
  config: DistillationLossConfig & { reduction: 'none' },
): tf.Tensor1D;
export function distillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacherLogits: tf.Tensor,
  config?: DistillationLossConfig,
): tf.Tensor;
export function distillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacherLogits: tf.Tensor,
  config?: DistillationLossConfig,
): tf.Tensor {
  const op = 'distillationLoss';
  const shapes = checkInputs(labels, studentLogits, teacherLogits, op, MAX_CLASSES);
  const cfg = resolveConfig(config, op);
  const backendName = tf.getBackend();
  if (!tf.getKernel(FUSED_DISTILLATION_LOSS, backendName)) {
    return composedDistillationLoss(labels, studentLogits, teacherLogits, shapes, cfg);
  }
  // The largest binding: a [B, C] logits/gradient array or the row statistics.
  const bytes = shapes.batch * Math.max(shapes.classes, ROW_STATS_WIDTH) * 4;
  const limit = maxStorageBufferBindingSize();
  if (bytes > limit) {
    throw new RangeError(
      `${op}: inputs of shape [${shapes.batch}, ${shapes.classes}] need a ${bytes}-byte buffer, more ` +
        `than this adapter's maxStorageBufferBindingSize (${limit}); split the batch`,
    );
  }
  const attrs: DistillAttrs = {
    ...cfg,
    writeGradients: gradientsToWrite(teacherLogits),
    gradients: 'student',
  };
  return tf.tidy(() => {
    const [value] = tf
      .engine()
      .runKernel(
        FUSED_DISTILLATION_LOSS,
        { labels, studentLogits, teacherLogits },
        attrs as unknown as tf.NamedAttrMap,
      ) as tf.Tensor[];
    return value!;
  });
}
