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
 *
 * A sparse (top-K) teacher `{ indices, logProbs }` (src/sparse-teacher.ts) is scattered to a
 * dense `[..., C]` tempered distribution first (tf.scatterND; padding and −Infinity entries
 * weigh 0), then KL(p ‖ q) = Σ_{p > 0} p (log p − log q) with q = softmax(s / T): the exact
 * top-K maths from stock ops, unclipped (a clip would give every unlisted class mass 1e-7).
 */
import * as tf from '@tensorflow/tfjs-core';
import { klFactor, resolveConfig, type DistillationLossConfig } from './config.js';
import { oneHotFloat } from './composed.js';
import type { RowLosses } from './op.js';
import { checkSparseTeacher, isSparseTeacher, type SparseTeacher } from './sparse-teacher.js';
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
  teacher: tf.Tensor | SparseTeacher,
  config?: DistillationLossConfig & { reduction?: 'mean' | 'sum' },
): tf.Scalar;
export function stockDistillationLoss<S extends tf.Tensor>(
  labels: tf.Tensor,
  studentLogits: S,
  teacher: tf.Tensor | SparseTeacher,
  config: DistillationLossConfig & { reduction: 'none' },
): RowLosses<S>;
export function stockDistillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacher: tf.Tensor | SparseTeacher,
  config?: DistillationLossConfig,
): tf.Tensor;
export function stockDistillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacher: tf.Tensor | SparseTeacher,
  config?: DistillationLossConfig,
): tf.Tensor {
  const op = 'stockDistillationLoss';
  const sparse = isSparseTeacher(teacher);
  const shapes = checkInputs(labels, studentLogits, sparse ? null : teacher, op);
  if (sparse) checkSparseTeacher(teacher, studentLogits.shape, op);
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
    const kl = sparse
      ? scatteredKl(teacher, studentLogits, T)
      : tf.sum(
          tf.mul(
            tf.clipByValue(tf.softmax(tf.div(teacher, T)), KERAS_EPSILON, 1),
            tf.log(
              tf.div(
                tf.clipByValue(tf.softmax(tf.div(teacher, T)), KERAS_EPSILON, 1),
                tf.clipByValue(tf.softmax(tf.div(studentLogits, T)), KERAS_EPSILON, 1),
              ),
            ),
          ),
          -1,
        );
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

/**
 * Σ_c p_c (log p_c − log q_c) over p_c > 0, p the top-K teacher tempered over its listed entries
 * and scattered to `[rows, C]`, q = softmax(s / T): per row, in the leading shape.
 */
function scatteredKl(teacher: SparseTeacher, studentLogits: tf.Tensor, T: number): tf.Tensor {
  const classes = studentLogits.shape[studentLogits.rank - 1]!;
  const topK = teacher.indices.shape[teacher.indices.rank - 1]!;
  const rows = studentLogits.size / classes;
  const ids = tf.reshape(teacher.indices, [rows, topK]);
  const lp = tf.reshape(teacher.logProbs, [rows, topK]);
  const listed = tf.logicalAnd(tf.greaterEqual(ids, 0), tf.notEqual(lp, -Infinity));
  const p = tf.softmax(tf.where(listed, tf.div(lp, T), tf.fill(lp.shape, -Infinity)));
  const rowIds = tf.tile(tf.reshape(tf.range(0, rows, 1, 'int32'), [rows, 1]), [1, topK]);
  const at = tf.reshape(tf.stack([rowIds, tf.where(listed, ids, tf.zerosLike(ids))], -1), [-1, 2]);
  const dense = tf.scatterND(at, tf.reshape(tf.where(listed, p, tf.zerosLike(p)), [-1]), [
    rows,
    classes,
  ]);
  const logQ = tf.logSoftmax(tf.div(tf.reshape(studentLogits, [rows, classes]), T));
  const positive = tf.greater(dense, 0);
  const terms = tf.where(
    positive,
    tf.mul(dense, tf.sub(tf.log(tf.where(positive, dense, tf.onesLike(dense))), logQ)),
    tf.zerosLike(dense),
  );
  return tf.reshape(tf.sum(terms, -1), studentLogits.shape.slice(0, -1));
}
