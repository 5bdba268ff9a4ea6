/**
 * The sparse (top-K) teacher: what an inference server returns instead of full logits, the
 * teacher's K most likely token ids and their log-probabilities at temperature 1, per row.
 *
 * Maths (docs/top-k-teachers.md; shaders/distill-sparse.wgsl), per row b, entries k = 1 … K
 * with vocabulary ids i_k and log-probabilities ℓ_k:
 *   listed entries: i_k ≠ −1 (padding) and ℓ_k ≠ −Infinity (probability 0)
 *   p_k = exp(ℓ_k / T) / Σ_{j listed} exp(ℓ_j / T)          (the tempered teacher on its support)
 *   q   = softmax(s / T)                                      (the student, full vocabulary)
 *   KL_b = Σ_{k listed} p_k (log p_k − log q[i_k])
 *   ℓ_b = α · CE_b + (1 − α) · k · KL_b                      (k = T² or 1, as for dense teachers)
 *   ∂ℓ_b/∂s = α (softmax(s) Σ y − y) + (1 − α) (k / T) (q − P),  P_c = Σ_{k listed, i_k = c} p_k
 * Each entry counts on its own: an id listed twice adds two terms to KL_b and both p to P.
 * The teacher's inputs are constants: no gradient is defined for them.
 *
 * Special entries and rows:
 * - i_k = −1 is padding (fewer than K entries available): skipped, whatever ℓ_k holds.
 * - i_k outside [−1, C) makes the row's soft term NaN (never used as an address): ℓ_b and the
 *   row's student gradient are NaN, the hard component stays what it is.
 * - ℓ_k NaN or +Infinity makes the row's soft term NaN, as NaN teacher logits do.
 * - A row with no listed entry has no teacher distribution: its soft term is NaN (as a dense
 *   teacher row masked everywhere), unless ignoreIndex ignores the row.
 * - The student masking (−Infinity) a listed id: KL_b = +Infinity, as for dense teachers.
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import { isTensorLike } from './validate.js';

/** A teacher given by its top-K entries per row (see the module's maths). */
export interface SparseTeacher {
  /** int32 `[..., K]`: vocabulary ids in [0, C), or −1 for padding. The student's leading shape. */
  readonly indices: Tensor;
  /** float32 `[..., K]`: the teacher's log-probabilities (temperature 1) of those ids. */
  readonly logProbs: Tensor;
}

/** The largest K accepted (the kernels keep no per-entry state, but bound the work per row). */
export const MAX_TOP_K = 262_144;

/** Whether `x` is a {@link SparseTeacher} (an object with tensor `indices` and `logProbs`). */
export function isSparseTeacher(x: unknown): x is SparseTeacher {
  return (
    typeof x === 'object' && x !== null && !isTensorLike(x) && 'indices' in x && 'logProbs' in x
  );
}

function describe(t: Tensor): string {
  return `${t.dtype} [${t.shape.join(', ')}]`;
}

/**
 * Checks a sparse teacher against the student's shape (before anything is dispatched) and
 * returns K. Throws an error that names the argument and what was expected.
 */
export function checkSparseTeacher(
  teacher: SparseTeacher,
  studentShape: readonly number[],
  op: string,
): { topK: number } {
  const { indices, logProbs } = teacher;
  const leading = studentShape.slice(0, -1);
  const expected = `[${[...leading, 'K'].join(', ')}]`;
  for (const [name, x, dtype] of [
    ['teacher.indices', indices, 'int32'],
    ['teacher.logProbs', logProbs, 'float32'],
  ] as const) {
    if (!isTensorLike(x)) {
      throw new TypeError(
        `${op}: ${name} must be a tf.Tensor (${dtype} ${expected}), got ${typeof x}`,
      );
    }
    if (x.isDisposed) throw new Error(`${op}: ${name} has been disposed`);
    if (x.dtype !== dtype) {
      throw new TypeError(
        `${op}: ${name} must be ${dtype} ${expected}, got ${describe(x)}` +
          (dtype === 'int32' ? ' (cast vocabulary ids with tf.cast(x, "int32"))' : ''),
      );
    }
    if (x.rank !== studentShape.length || !leading.every((d, i) => x.shape[i] === d)) {
      throw new Error(
        `${op}: ${name} must have shape ${expected} (the student's leading shape, then K), ` +
          `got ${describe(x)} for studentLogits [${studentShape.join(', ')}]`,
      );
    }
  }
  const topK = indices.shape[indices.rank - 1]!;
  if (logProbs.shape[logProbs.rank - 1] !== topK) {
    throw new Error(
      `${op}: teacher.indices ${describe(indices)} and teacher.logProbs ${describe(logProbs)} ` +
        'must have the same K (one log-probability per id)',
    );
  }
  if (topK < 1 || topK > MAX_TOP_K) {
    throw new RangeError(`${op}: teacher K must be in [1, ${MAX_TOP_K}], got K = ${topK}`);
  }
  return { topK };
}
