/**
 * `topKTeacher`: a sparse (top-K) teacher ({@link SparseTeacher}) from dense teacher logits,
 * on the current backend (on WebGPU, tfjs' GPU top-K and reductions: nothing is read back).
 * What an inference server would return for these logits: the K most likely ids per row and
 * their log-probabilities at temperature 1 under the full softmax.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { SparseTeacher } from './sparse-teacher.js';
import { isTensorLike } from './validate.js';

function describe(t: tf.Tensor): string {
  return `${t.dtype} [${t.shape.join(', ')}]`;
}

/**
 * The teacher's top-K entries per row of dense logits `[..., C]`:
 *
 *   indices[..., k]  = the id of the row's k-th largest logit (k = 0 … K − 1, descending);
 *   logProbs[..., k] = t[id] − logSumExp(t)   (log softmax(t)[id], temperature 1).
 *
 * The log-probabilities are normalised over the full row (as a server reports them), not over
 * the K entries: the loss renormalises over the listed entries itself (src/sparse-teacher.ts).
 * Ties between equal logits are broken as `tf.topk` breaks them.
 *
 * −Infinity logits (masked classes, probability 0) are never listed: a row with fewer than K
 * finite logits has its surplus entries padded with index −1 and log-probability −Infinity,
 * which the loss skips. A row whose logits are all −Infinity is all padding (the loss makes its
 * soft term NaN, as for a dense teacher masked everywhere). A NaN or +Infinity logit makes the
 * row's log-probabilities NaN, so the loss of that row is NaN, as with the dense logits.
 *
 * @param teacherLogits float32 `[..., C]` of rank ≥ 2 (`[B, C]`, `[batch, sequence, C]`).
 * @param k entries per row: an integer in [1, C].
 * @returns `{ indices, logProbs }`: int32 and float32 `[..., K]` (the input's leading shape),
 *   owned by the caller. The input is not disposed.
 */
export function topKTeacher(teacherLogits: tf.Tensor, k: number): SparseTeacher {
  const op = 'topKTeacher';
  if (!isTensorLike(teacherLogits)) {
    throw new TypeError(
      `${op}: teacherLogits must be a tf.Tensor (float32 [..., C]), got ${typeof teacherLogits}`,
    );
  }
  if (teacherLogits.isDisposed) throw new Error(`${op}: teacherLogits has been disposed`);
  if (teacherLogits.dtype !== 'float32') {
    throw new TypeError(
      `${op}: teacherLogits must be float32 [..., C], got ${describe(teacherLogits)}`,
    );
  }
  if (teacherLogits.rank < 2) {
    throw new Error(
      `${op}: teacherLogits must have rank ≥ 2 ([B, C] or [..., C], one row per example), got ` +
        `${describe(teacherLogits)} (reshape a single row to [1, C])`,
    );
  }
  const classes = teacherLogits.shape[teacherLogits.rank - 1]!;
  if (teacherLogits.size === 0) {
    throw new Error(
      `${op}: teacherLogits has no rows or no classes, got ${describe(teacherLogits)}`,
    );
  }
  if (typeof k !== 'number' || !Number.isInteger(k) || k < 1 || k > classes) {
    throw new RangeError(
      `${op}: k must be an integer in [1, C] = [1, ${classes}] (entries per row), got ` +
        `${String(k)} for teacherLogits ${describe(teacherLogits)}`,
    );
  }
  const result = tf.tidy(() => {
    const { values, indices } = tf.topk(teacherLogits, k);
    const logSumExp = tf.logSumExp(teacherLogits, -1, true);
    // Listed: a real id (the GPU top-K pads its sort with −Infinity; such a slot, or a masked
    // class, is never listed) whose logit is not −Infinity.
    const listed = tf.logicalAnd(
      tf.logicalAnd(tf.greaterEqual(indices, 0), tf.less(indices, classes)),
      tf.notEqual(values, Number.NEGATIVE_INFINITY),
    );
    const padIndex = tf.fill(indices.shape, -1, 'int32');
    const padLogProb = tf.fill(values.shape, Number.NEGATIVE_INFINITY);
    return [
      tf.where(listed, indices, padIndex),
      tf.where(listed, tf.sub(values, logSumExp), padLogProb),
    ];
  });
  return { indices: result[0]!, logProbs: result[1]! };
}
