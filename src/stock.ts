/**
 * The distillation loss composed from stock tfjs ops, exactly as the Keras "Knowledge
 * Distillation" example computes it: the baseline of every benchmark.
 *
 *   student_loss      = softmaxCrossEntropy(y, s)                       (from logits)
 *   distillation_loss = KLDivergence(softmax(t / T), softmax(s / T)) · T²
 *   KLDivergence(p, q) = Σ_c p̂_c · log(p̂_c / q̂_c),  p̂ = clip(p, 1e-7, 1), q̂ = clip(q, 1e-7, 1)
 *   loss              = α · student_loss + (1 − α) · distillation_loss
 *
 * The clip is Keras' and makes this differ slightly from the exact loss (docs/loss.md, "The stock composition"). Options
 * outside that formula (another divergence, ignoreIndex, returnComponents) are a named error.
 *
 * A sparse (top-K) teacher `{ indices, logProbs }` (src/sparse-teacher.ts) is tempered over its
 * listed entries and scattered to a dense `[..., C]` P (tf.scatterND; padding and −Infinity
 * entries weigh 0), then KL = Σ_k p_k log p_k − Σ_c P_c log q_c with q = softmax(s / T): the
 * exact top-K maths from stock ops, unclipped (a clip would give every unlisted class 1e-7).
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  klFactor,
  resolveConfig,
  type DistillationLossConfig,
  type StockDistillationLossConfig,
} from './config.js';
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
  config?: StockDistillationLossConfig & { reduction?: 'mean' | 'sum' },
): tf.Scalar;
export function stockDistillationLoss<S extends tf.Tensor>(
  labels: tf.Tensor,
  studentLogits: S,
  teacher: tf.Tensor | SparseTeacher,
  config: StockDistillationLossConfig & { reduction: 'none' },
): RowLosses<S>;
export function stockDistillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacher: tf.Tensor | SparseTeacher,
  config?: StockDistillationLossConfig,
): tf.Tensor;
export function stockDistillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacher: tf.Tensor | SparseTeacher,
  config?: StockDistillationLossConfig,
): tf.Tensor {
  const op = 'stockDistillationLoss';
  const sparse = isSparseTeacher(teacher);
  const shapes = checkInputs(labels, studentLogits, sparse ? null : teacher, op);
  if (sparse) checkSparseTeacher(teacher, studentLogits.shape, op);
  checkKerasOptions(config, op);
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
    const kl = sparse ? scatteredKl(teacher, studentLogits, T) : kerasKl(teacher, studentLogits, T);
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
 * The Keras formula has forward KL, every row counted and one loss tensor. The config type
 * admits nothing else; a caller past the types (plain JavaScript, a cast) who asks for more
 * gets it refused by name rather than ignored (a baseline that silently computed another loss
 * would make every comparison with it wrong). Unknown fields are resolveConfig's to refuse.
 */
function checkKerasOptions(config: StockDistillationLossConfig | undefined, op: string): void {
  if (config === null || typeof config !== 'object') return; // resolveConfig says why
  const refuse = (what: string) =>
    new Error(
      `${op}: ${what} is not part of the Keras formula this baseline composes ` +
        '(forward KL, every row counted, one loss tensor); distillationLoss computes it',
    );
  const { divergence, beta, ignoreIndex, returnComponents } = config as DistillationLossConfig;
  if (divergence !== undefined && divergence !== 'forward-kl') {
    throw refuse(`config.divergence '${String(divergence)}'`);
  }
  if (beta !== undefined) throw refuse(`config.beta (${String(beta)})`);
  if (ignoreIndex !== undefined) throw refuse(`config.ignoreIndex (${String(ignoreIndex)})`);
  if (returnComponents !== undefined && returnComponents !== false) {
    throw refuse('config.returnComponents');
  }
}

/** Keras' KLDivergence(softmax(t / T), softmax(s / T)), both clipped to [1e-7, 1]: per row. */
function kerasKl(teacherLogits: tf.Tensor, studentLogits: tf.Tensor, T: number): tf.Tensor {
  const p = tf.clipByValue(tf.softmax(tf.div(teacherLogits, T)), KERAS_EPSILON, 1);
  const q = tf.clipByValue(tf.softmax(tf.div(studentLogits, T)), KERAS_EPSILON, 1);
  return tf.sum(tf.mul(p, tf.log(tf.div(p, q))), -1);
}

/**
 * KL_b = Σ_k p_k log p_k − Σ_c P_c log q_c: p the top-K teacher tempered over its listed entries,
 * P its scatter to a dense `[rows, C]` (duplicate ids add up, as each entry counts on its own),
 * q = softmax(s / T). Per row, in the leading shape.
 */
function scatteredKl(teacher: SparseTeacher, studentLogits: tf.Tensor, T: number): tf.Tensor {
  const classes = studentLogits.shape[studentLogits.rank - 1]!;
  const topK = teacher.indices.shape[teacher.indices.rank - 1]!;
  const rows = studentLogits.size / classes;
  const ids = tf.reshape(teacher.indices, [rows, topK]);
  const lp = tf.reshape(teacher.logProbs, [rows, topK]);
  const listed = tf.logicalAnd(tf.greaterEqual(ids, 0), tf.notEqual(lp, -Infinity));
  const logP = tf.logSoftmax(tf.where(listed, tf.div(lp, T), tf.fill(lp.shape, -Infinity)));
  const p = tf.where(listed, tf.exp(logP), tf.zerosLike(logP));
  const negEntropy = tf.sum(tf.where(listed, tf.mul(p, logP), tf.zerosLike(p)), -1);
  const rowIds = tf.tile(tf.reshape(tf.range(0, rows, 1, 'int32'), [rows, 1]), [1, topK]);
  const at = tf.reshape(tf.stack([rowIds, tf.where(listed, ids, tf.zerosLike(ids))], -1), [-1, 2]);
  const dense = tf.scatterND(at, tf.reshape(p, [-1]), [rows, classes]);
  const logQ = tf.logSoftmax(tf.div(tf.reshape(studentLogits, [rows, classes]), T));
  const cross = tf.sum(
    tf.where(tf.greater(dense, 0), tf.mul(dense, logQ), tf.zerosLike(dense)),
    -1,
  );
  // a row with no listed entry has no teacher distribution: NaN, as the fused op and a dense
  // teacher row masked everywhere
  const kl = tf.where(tf.any(listed, -1), tf.sub(negEntropy, cross), tf.fill([rows], NaN));
  return tf.reshape(kl, studentLogits.shape.slice(0, -1));
}
