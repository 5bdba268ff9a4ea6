/**
 * The distillation loss composed from stock tfjs ops, exactly as the Keras "Knowledge
 * Distillation" example computes it: the baseline of every benchmark.
 *
 *   student_loss      = softmaxCrossEntropy(y, s)                       (from logits)
 *   distillation_loss = KLDivergence(softmax(t / T), softmax(s / T)) · T²
 *   KLDivergence(p, q) = Σ_c p̂_c · log(p̂_c / q̂_c),  p̂ = clip(p, 1e-7, 1), q̂ = clip(q, 1e-7, 1)
 *   loss              = α · student_loss + (1 − α) · distillation_loss
 *
 * The clip is Keras' and makes this differ slightly from the exact loss (see README).
 */
import * as tf from '@tensorflow/tfjs-core';
import { klFactor, resolveConfig, type DistillationLossConfig } from './config.js';
import { oneHotFloat } from './composed.js';
import { checkInputs } from './validate.js';

/** Keras' `backend.epsilon()`, the lower clip of `KLDivergence`. */
export const KERAS_EPSILON = 1e-7;

/**
 * The distillation loss built from stock tfjs ops (the Keras formula, clip included).
 *
 * @param labels int32 `[B]` class indices or float32 `[B, C]` one-hot / soft labels.
 * @param studentLogits float32 `[B, C]`.
 * @param teacherLogits float32 `[B, C]`.
 * @returns a scalar for 'mean' / 'sum', `[B]` for 'none'.
 */
export function stockDistillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacherLogits: tf.Tensor,
  config?: DistillationLossConfig & { reduction?: 'mean' | 'sum' },
): tf.Scalar;
export function stockDistillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacherLogits: tf.Tensor,
  config: DistillationLossConfig & { reduction: 'none' },
): tf.Tensor1D;
export function stockDistillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacherLogits: tf.Tensor,
  config?: DistillationLossConfig,
): tf.Tensor;
export function stockDistillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacherLogits: tf.Tensor,
  config?: DistillationLossConfig,
): tf.Tensor {
  const op = 'stockDistillationLoss';
  const shapes = checkInputs(labels, studentLogits, teacherLogits, op);
  const cfg = resolveConfig(config, op);
  return tf.tidy(() => {
    const dense = shapes.labelKind === 'index' ? oneHotFloat(labels, shapes.classes) : labels;
    const ce = tf.losses.softmaxCrossEntropy(
      dense,
      studentLogits,
      undefined,
      0,
      tf.Reduction.NONE,
    ) as tf.Tensor1D;
    const T = cfg.temperature;
    const p = tf.clipByValue(tf.softmax(tf.div(teacherLogits, T)), KERAS_EPSILON, 1);
    const q = tf.clipByValue(tf.softmax(tf.div(studentLogits, T)), KERAS_EPSILON, 1);
    const kl = tf.sum(tf.mul(p, tf.log(tf.div(p, q))), -1);
    const rows = tf.add(tf.mul(ce, cfg.alpha), tf.mul(kl, (1 - cfg.alpha) * klFactor(cfg)));
    switch (cfg.reduction) {
      case 'none':
        return rows;
      case 'sum':
        return tf.sum(rows);
      case 'mean':
        return tf.mean(rows);
    }
  });
}
