/**
 * The Distiller's teacher cache: the frozen teacher's outputs for a whole data set, kept on the
 * backend so that a step gathers its batch's rows instead of running the teacher. It holds
 * either the teacher's logits `[N, C]` or, with `teacherTopK`, its top-K per example as a
 * sparse teacher `[N, K]`; the Distiller's options fix which.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import {
  checkBatchIndices,
  checkInputs,
  checkPositiveInt,
  checkTensor,
  type ModelShapes,
} from './distiller-checks.js';
import { headTensors, isLinearHead } from './distiller-head.js';
import type { DistillerTeacherValue } from './distiller-options.js';
import type { LinearHead } from './linear/types.js';
import { checkSparseTeacher, isSparseTeacher, type SparseTeacher } from './sparse-teacher.js';
import { topKTeacher } from './topk.js';
import { isTensorLike } from './validate.js';

/** Batch indices into a cache: a rank-1 tensor, or integers. */
export type BatchIndices = tf.Tensor | readonly number[] | Int32Array;

/**
 * `distiller.teacherCache`: the teacher's outputs for every example of a data set, for steps
 * given `batchIndices` in 'cached' mode. `V` is its form: `tf.Tensor2D` logits, or a
 * `SparseTeacher` with `teacherTopK`; for a Distiller whose options' type does not say which,
 * `V` is the union, narrowed with `isSparseTeacher`. Arguments are checked, with errors naming
 * them, before anything is dispatched. `Distiller.fit` keeps a cache of its own.
 */
export interface DistillerTeacherCache<V extends DistillerTeacherValue = DistillerTeacherValue> {
  /** The cached teacher outputs `[N, …]`, owned by the cache (do not dispose), or null. */
  readonly value: V | null;
  /**
   * The bytes the value holds on the backend: N × C × 4 for logits, N × K × 8 for a top-K
   * (int32 ids and float32 log-probabilities); 0 when empty.
   */
  readonly bytes: number;
  /**
   * Runs the teacher once over `x` in inference mode, `batchSize` rows at a time (which bounds
   * the teacher's activation memory), and keeps its logits, or with `teacherTopK` the top-K of
   * each batch of logits (`topKTeacher`; the `[N, C]` logits never exist at once). Replaces
   * the earlier value. Nothing is read back.
   *
   * @returns the new value, owned by the cache.
   */
  fill(x: tf.Tensor, batchSize?: number): V;
  /**
   * Adopts teacher outputs computed by the caller (e.g. chunk by chunk from data kept in host
   * memory, or the top-K log-probabilities an inference server returned, padded with index −1)
   * and takes ownership of their tensors: logits float32 `[N, C]`, or with `teacherTopK` a
   * sparse teacher int32 / float32 `[N, K]` with any K in [1, C]. Replaces the earlier value.
   */
  set(value: V): void;
  /**
   * The rows `batchIndices` (`B` indices in [0, N)) of the value, in its form.
   *
   * @returns `[B, C]` logits or a `[B, K]` sparse teacher, owned by the caller.
   */
  rows(batchIndices: BatchIndices): V;
  /** Frees the value; the cache is empty afterwards. */
  clear(): void;
}

/** The bytes a value holds on the backend (every dtype here is 4 bytes per element). */
export function teacherBytes(value: DistillerTeacherValue | null): number {
  if (value === null) return 0;
  return isSparseTeacher(value) ? (value.indices.size + value.logProbs.size) * 4 : value.size * 4;
}

/** The tensors of a value (or of a step's teacher). */
function tensorsOf(value: tf.Tensor | SparseTeacher | LinearHead | null): tf.Tensor[] {
  if (value === null) return [];
  if (isLinearHead(value)) return headTensors(value);
  return isSparseTeacher(value) ? [value.indices, value.logProbs] : [value];
}

export function disposeTeacher(value: tf.Tensor | SparseTeacher | LinearHead | null): void {
  tf.dispose(tensorsOf(value));
}

/** The number of examples N of a value. */
function rowCount(value: DistillerTeacherValue): number {
  return isSparseTeacher(value) ? value.indices.shape[0]! : value.shape[0];
}

/** The rows `idx` (int32 `[B]`) of a value, in its form; owned by the caller. */
export function gatherTeacherRows<V extends DistillerTeacherValue>(value: V, idx: tf.Tensor): V {
  if (!isSparseTeacher(value)) return tf.gather(value, idx) as V;
  const [indices, logProbs] = tf.tidy(() => [
    tf.gather(value.indices, idx),
    tf.gather(value.logProbs, idx),
  ]);
  // The value's form, as the logits' branch: a sparse teacher of the gathered rows.
  return { indices: indices!, logProbs: logProbs! } as V;
}

/**
 * The teacher's outputs for all of `x`, `batchSize` rows of logits at a time: the `[N, C]`
 * logits, or the top-K `[N, K]` of each batch of logits when `topK` is a number (only one
 * batch of logits exists at a time); owned by the caller.
 */
export function runTeacher(
  teacher: LayersModel,
  x: tf.Tensor,
  batchSize: number,
  topK: number | null,
): DistillerTeacherValue {
  const n = x.shape[0]!;
  const logitParts: tf.Tensor2D[] = [];
  const sparseParts: SparseTeacher[] = [];
  try {
    for (let start = 0; start < n; start += batchSize) {
      const size = Math.min(batchSize, n - start);
      const logits = tf.tidy(
        () => teacher.apply(tf.slice(x, [start], [size]), { training: false }) as tf.Tensor2D,
      );
      if (topK === null) {
        logitParts.push(logits);
        continue;
      }
      try {
        sparseParts.push(topKTeacher(logits, topK));
      } finally {
        logits.dispose();
      }
    }
    if (topK === null) {
      return logitParts.length === 1 ? logitParts[0]!.clone() : tf.concat(logitParts, 0);
    }
    const [indices, logProbs] = tf.tidy(() => [
      tf.concat(
        sparseParts.map((p) => p.indices),
        0,
      ),
      tf.concat(
        sparseParts.map((p) => p.logProbs),
        0,
      ),
    ]);
    return { indices: indices!, logProbs: logProbs! };
  } finally {
    tf.dispose([...logitParts, ...sparseParts.flatMap(tensorsOf)]);
  }
}

function describe(value: unknown): string {
  if (isTensorLike(value)) return `${value.dtype} [${value.shape.join(', ')}]`;
  if (isSparseTeacher(value)) return 'a sparse teacher { indices, logProbs }';
  return value === null ? 'null' : typeof value;
}

/**
 * The Distiller's teacher cache (see {@link DistillerTeacherCache}). `V` is the form the
 * Distiller's options give it, which `topK` sets at run time: sparse teachers exactly when
 * `topK` is a number.
 */
export class TeacherCache<V extends DistillerTeacherValue> implements DistillerTeacherCache<V> {
  private current: V | null = null;

  /**
   * @param teacher the frozen teacher; @param shapes the models' shapes;
   * @param topK K with `teacherTopK` (a cache of sparse teachers), null for one of logits.
   */
  constructor(
    private readonly teacher: LayersModel,
    private readonly shapes: ModelShapes,
    private readonly topK: number | null,
  ) {}

  get value(): V | null {
    return this.current;
  }

  get bytes(): number {
    return teacherBytes(this.current);
  }

  fill(x: tf.Tensor, batchSize = 256): V {
    const op = 'Distiller.teacherCache.fill';
    checkInputs(x, this.shapes, op);
    checkPositiveInt(batchSize, 'batchSize', op);
    // runTeacher gives sparse teachers exactly when topK is a number: the form V stands for.
    const value = runTeacher(this.teacher, x, batchSize, this.topK) as V;
    this.replace(value);
    return value;
  }

  set(value: V): void {
    const op = 'Distiller.teacherCache.set';
    const C = this.shapes.classes;
    if (this.topK === null) {
      if (isSparseTeacher(value)) {
        throw new TypeError(
          `${op}: this Distiller caches teacher logits: value must be float32 [N, ${C}], got ` +
            `a sparse teacher { indices, logProbs } (construct the Distiller with ` +
            `teacherLogits: 'cached' and teacherTopK: K to cache a top-K)`,
        );
      }
      checkTensor(value, 'value', op);
      const steps = this.shapes.steps;
      if (
        value.dtype !== 'float32' ||
        value.rank !== 2 + steps.length ||
        !steps.every((d, i) => d === null || value.shape[i + 1] === d) ||
        value.shape.at(-1) !== C
      ) {
        throw new Error(
          `${op}: value must be float32 [N, ${C}] teacher logits, got ${describe(value)}`,
        );
      }
      this.replace(value);
      return;
    }
    if (!isSparseTeacher(value)) {
      throw new TypeError(
        `${op}: this Distiller caches the teacher's top-K (teacherTopK: ${this.topK}): value ` +
          `must be a sparse teacher { indices, logProbs } (int32 / float32 [N, K]), got ` +
          describe(value),
      );
    }
    // The rows N come from the ids; their rank, dtype and K are checked against [N, C] next.
    const known = isTensorLike(value.indices) ? value.indices.shape : [];
    const leading = [known[0] ?? 0, ...this.shapes.steps.map((d, i) => d ?? known[i + 1] ?? 0)];
    const { topK } = checkSparseTeacher(value, [...leading, C], op);
    if (topK > C) {
      throw new RangeError(
        `${op}: K = ${topK} entries per example, more than the C = ${C} classes`,
      );
    }
    this.replace(value);
  }

  rows(batchIndices: BatchIndices): V {
    return this.rowsFor(batchIndices, 'Distiller.teacherCache.rows');
  }

  /** {@link rows}, its errors naming `op` (a step that reads the cache). */
  rowsFor(batchIndices: unknown, op: string): V {
    const value = this.current;
    if (value === null) {
      throw new Error(
        `${op}: the teacher cache is empty; fill it first with ` +
          'distiller.teacherCache.fill(x) (or set(value))',
      );
    }
    const checked = checkBatchIndices(batchIndices, rowCount(value), op);
    const idx = isTensorLike(checked)
      ? tf.cast(checked, 'int32')
      : tf.tensor1d(Array.from(checked), 'int32');
    try {
      return gatherTeacherRows(value, idx);
    } finally {
      idx.dispose();
    }
  }

  clear(): void {
    disposeTeacher(this.current);
    this.current = null;
  }

  /** Adopts `next` and frees the tensors of the earlier value that `next` does not reuse. */
  private replace(next: V): void {
    const kept = new Set(tensorsOf(next));
    const freed = tensorsOf(this.current).filter((t) => !kept.has(t));
    this.current = next;
    tf.dispose(freed);
  }
}
