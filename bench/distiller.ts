/**
 * Knowledge distillation of a tfjs-layers student from a frozen teacher, in the spirit of the
 * Keras example's `Distiller` (https://keras.io/examples/vision/knowledge_distillation/),
 * with the loss injected so that the benchmark can swap the fused WGSL op for the stock-op
 * formula and nothing else changes.
 *
 * One training step:
 *   1. teacher logits: teacher forward in inference mode, OUTSIDE the gradient tape (the
 *      teacher is frozen; taping it would only cost memory), or a slice of logits cached
 *      once for the whole training set ('cached' mode);
 *   2. student forward in training mode + loss + backward, gradients of the student's
 *      trainable variables only;
 *   3. optimizer update of those variables.
 * The three phases are public methods so that a benchmark can time them separately;
 * {@link Distiller.trainStep} composes them.
 *
 * Note: the Keras notebook we started from assigns `self.teacher = student` and
 * `self.student = teacher` in `Distiller.__init__`, i.e. it trains the big model to mimic the
 * small random one. Here `teacher` is the frozen one and `student` the trained one, as named.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
// By package name, as an app would: under tsx this is the built dist/ (the sources' `?raw` WGSL
// imports need Vite), under vitest an alias of src/index.ts.
import { distillationLoss, stockDistillationLoss } from 'tfjs-fused-distill';

/** The configuration a distillation loss receives (a subset of the library's config). */
export interface DistillationLossFnConfig {
  alpha?: number;
  temperature?: number;
  temperatureSquared?: boolean;
  reduction?: 'mean' | 'sum' | 'none';
}

/**
 * The signature of `distillationLoss` / `stockDistillationLoss`.
 *
 * @param labels int32 `[B]` class indices (what the Distiller passes) or float32 `[B, C]`.
 * @param studentLogits float32 `[B, C]`.
 * @param teacherLogits float32 `[B, C]`.
 * @returns a scalar for reduction 'mean' (what the Distiller asks for).
 */
export type DistillationLossFn = (
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacherLogits: tf.Tensor,
  config?: DistillationLossFnConfig,
) => tf.Tensor;

/** Where the teacher logits of a step come from. */
export type TeacherLogitsMode = 'per-step' | 'cached';

/** Options of the {@link Distiller} constructor. */
export interface DistillerOptions {
  /** Frozen model, `[B, 28, 28, 1]` → `[B, C]` logits; its weights are never updated. */
  teacher: tfl.LayersModel;
  /** Trained model, same input and output shapes as the teacher. */
  student: tfl.LayersModel;
  /** Updates the student's trainable variables only, e.g. `tf.train.adam()` (Keras default). */
  optimizer: tf.Optimizer;
  /** Weight of the hard-label cross-entropy, default 0.1 (Keras example). */
  alpha?: number;
  /** Softmax temperature, default 10 (Keras example). */
  temperature?: number;
  /** Multiply the KL term by T²; omitted: the loss function's default (true). */
  temperatureSquared?: boolean;
  /**
   * 'fused': the library's `distillationLoss` (the WGSL op on webgpu); 'stock': the Keras
   * formula from stock ops; or any function with the same signature. Default 'fused'.
   */
  loss?: 'fused' | 'stock' | DistillationLossFn;
  /**
   * 'per-step' (default): the teacher runs on every batch, as in Keras.
   * 'cached': {@link Distiller.cacheTeacherLogits} runs it once over the training set, and
   * steps gather the rows of their batch (the teacher is frozen, so the logits are the same).
   */
  teacherLogits?: TeacherLogitsMode;
}

/** Options of {@link Distiller.trainStep} and {@link trainStudentFromScratch}. */
export interface StepOptions {
  /**
   * Teacher logits `[B, C]` for this batch, computed by the caller (e.g. to time the teacher
   * forward on its own). Not disposed by the step. Takes precedence over `batchIndices`.
   */
  teacherLogits?: tf.Tensor2D;
  /**
   * 'cached' mode: the rows of the cached training set that form this batch, int32 `[B]`
   * (the same indices the caller used to gather `x` and `y`).
   */
  batchIndices?: tf.Tensor1D | readonly number[] | Int32Array;
  /** Also return the student's accuracy on the batch (from the training forward pass). */
  accuracy?: boolean;
}

/**
 * What a step returns. The caller owns the tensors: read them asynchronously (`await
 * loss.data()`) when convenient, then dispose them — no synchronous read-back in the step.
 */
export interface StepResult {
  /** The batch loss, float32 scalar. */
  loss: tf.Scalar;
  /** The student's accuracy on the batch in [0, 1], when `accuracy: true` was asked. */
  accuracy?: tf.Scalar;
}

/** What {@link Distiller.computeGradients} returns; the caller owns all tensors. */
export interface GradientsResult extends StepResult {
  /** Gradients keyed by variable name (the student's trainable variables only). */
  grads: tf.NamedTensorMap;
}

/** The student's trainable variables, the only ones a step differentiates and updates. */
export function trainableVariables(model: tfl.LayersModel): tf.Variable[] {
  // LayerVariable.read() is the backing tf.Variable (not a copy).
  return model.trainableWeights.map((w) => w.read() as tf.Variable);
}

/**
 * Runs `model` in inference mode (no dropout, frozen batch norm; also lets tfjs-layers free
 * intermediate activations early).
 *
 * @param x float32 `[B, H, W, C]`. @returns `[B, classes]` logits.
 */
export function inferLogits(model: tfl.LayersModel, x: tf.Tensor): tf.Tensor2D {
  return model.apply(x, { training: false }) as tf.Tensor2D;
}

/**
 * Sparse softmax cross-entropy from logits (Keras' `SparseCategoricalCrossentropy(
 * from_logits=True)`).
 *
 * @param labels int32 `[B]`. @param logits float32 `[B, C]`.
 * @returns a scalar: the mean over the batch, or the sum for `reduction: 'sum'`.
 */
export function sparseSoftmaxCrossEntropy(
  labels: tf.Tensor1D,
  logits: tf.Tensor2D,
  reduction: 'mean' | 'sum' = 'mean',
): tf.Scalar {
  return tf.tidy(() => {
    const onehot = tf.cast(tf.oneHot(labels, logits.shape[1]), 'float32');
    return tf.losses.softmaxCrossEntropy(
      onehot,
      logits,
      undefined,
      0,
      reduction === 'sum' ? tf.Reduction.SUM : tf.Reduction.MEAN,
    ) as tf.Scalar;
  });
}

/** Number of rows of `logits` `[B, C]` whose argmax equals `labels` `[B]`, float32 scalar. */
function correctCount(labels: tf.Tensor1D, logits: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() =>
    tf.sum(tf.cast(tf.equal(tf.argMax(logits, -1), tf.cast(labels, 'int32')), 'float32')),
  );
}

/** Fraction of rows of `logits` `[B, C]` whose argmax equals `labels` `[B]`. */
export function batchAccuracy(labels: tf.Tensor1D, logits: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.div(correctCount(labels, logits), labels.shape[0]));
}

/** Resolves the `loss` option to a function. */
export function resolveLossFn(loss: DistillerOptions['loss'] = 'fused'): DistillationLossFn {
  if (typeof loss === 'function') return loss;
  if (loss === 'fused') return distillationLoss;
  if (loss === 'stock') return stockDistillationLoss;
  throw new Error(`Distiller: loss must be 'fused', 'stock' or a function, got ${String(loss)}`);
}

/**
 * Distils `teacher` into `student`; owns nothing but the cached teacher logits (the models and
 * the optimizer stay the caller's).
 */
export class Distiller {
  readonly teacher: tfl.LayersModel;
  readonly student: tfl.LayersModel;
  readonly optimizer: tf.Optimizer;
  readonly lossFn: DistillationLossFn;
  readonly lossConfig: Readonly<DistillationLossFnConfig>;
  readonly teacherLogitsMode: TeacherLogitsMode;
  /** The student's trainable variables, resolved once (the model is built). */
  private readonly studentVars: tf.Variable[];
  private cache: tf.Tensor2D | null = null;

  constructor(options: DistillerOptions) {
    const { teacher, student, optimizer } = options;
    if (teacher === student) {
      throw new Error('Distiller: teacher and student must be different models');
    }
    this.teacher = teacher;
    this.student = student;
    this.optimizer = optimizer;
    this.lossFn = resolveLossFn(options.loss);
    const config: DistillationLossFnConfig = {
      alpha: options.alpha ?? 0.1,
      temperature: options.temperature ?? 10,
      reduction: 'mean',
    };
    // Only set when given, so that the loss function's own default applies otherwise.
    if (options.temperatureSquared !== undefined) {
      config.temperatureSquared = options.temperatureSquared;
    }
    this.lossConfig = Object.freeze(config);
    this.teacherLogitsMode = options.teacherLogits ?? 'per-step';
    if (this.teacherLogitsMode !== 'per-step' && this.teacherLogitsMode !== 'cached') {
      throw new Error(
        `Distiller: teacherLogits must be 'per-step' or 'cached', got ${String(this.teacherLogitsMode)}`,
      );
    }
    this.studentVars = trainableVariables(student);
  }

  /**
   * Phase 1: teacher logits for a batch, inference mode, outside any gradient tape.
   *
   * @param x float32 `[B, 28, 28, 1]`. @returns `[B, C]`, owned by the caller.
   */
  teacherForward(x: tf.Tensor4D): tf.Tensor2D {
    return tf.tidy(() => inferLogits(this.teacher, x));
  }

  /**
   * 'cached' mode: runs the teacher once over the whole training set, `batchSize` rows at a
   * time (bounding activation memory), and keeps the `[N, C]` logits. Replaces an earlier
   * cache. Synchronous: the result is queued on the backend, not read back.
   *
   * @param xTrain float32 `[N, 28, 28, 1]`.
   * @returns the cached logits `[N, C]` (owned by the Distiller; do not dispose).
   */
  cacheTeacherLogits(xTrain: tf.Tensor4D, batchSize = 256): tf.Tensor2D {
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new RangeError(`cacheTeacherLogits: batchSize must be a positive integer`);
    }
    this.clearCache();
    const n = xTrain.shape[0];
    const parts: tf.Tensor2D[] = [];
    try {
      for (let start = 0; start < n; start += batchSize) {
        const size = Math.min(batchSize, n - start);
        parts.push(
          tf.tidy(() =>
            inferLogits(this.teacher, tf.slice(xTrain, [start, 0, 0, 0], [size, -1, -1, -1])),
          ),
        );
      }
      this.cache = parts.length === 1 ? parts[0].clone() : tf.concat(parts, 0);
    } finally {
      tf.dispose(parts);
    }
    return this.cache;
  }

  /**
   * 'cached' mode: adopts teacher logits `[N, C]` computed by the caller, e.g. chunk by chunk
   * from images kept in host memory (60,000 MNIST images are 188 MB as float32, more than one
   * GPU storage buffer may hold on many adapters). Replaces an earlier cache; the Distiller
   * takes ownership of `logits` (disposed by {@link clearCache} / {@link dispose}).
   */
  setCachedLogits(logits: tf.Tensor2D): void {
    if (logits.rank !== 2) {
      throw new Error(`setCachedLogits: expected [N, C] logits, got shape [${logits.shape}]`);
    }
    if (logits !== this.cache) this.clearCache();
    this.cache = logits;
  }

  /** The cached teacher logits `[N, C]`, or null before {@link cacheTeacherLogits}. */
  get cachedLogits(): tf.Tensor2D | null {
    return this.cache;
  }

  /**
   * The cached teacher logits of the rows `batchIndices`.
   *
   * @returns `[B, C]`, owned by the caller.
   */
  cachedTeacherLogits(batchIndices: tf.Tensor1D | readonly number[] | Int32Array): tf.Tensor2D {
    const cache = this.cache;
    if (cache === null) {
      throw new Error('Distiller: call cacheTeacherLogits(xTrain) before cached-mode steps');
    }
    return tf.tidy(() => {
      const idx =
        batchIndices instanceof tf.Tensor
          ? tf.cast(batchIndices, 'int32')
          : tf.tensor1d(Array.from(batchIndices), 'int32');
      return tf.gather(cache, idx);
    });
  }

  /**
   * Phase 2: student forward (training mode) + distillation loss + backward, differentiating
   * the student's trainable variables only. `teacherLogits` is a constant here.
   *
   * @param x float32 `[B, 28, 28, 1]`; @param y int32 `[B]`; @param teacherLogits `[B, C]`.
   * @returns the loss, the gradients (to pass to {@link applyGradients}), and the batch
   *   accuracy when asked; all owned by the caller.
   */
  computeGradients(
    x: tf.Tensor4D,
    y: tf.Tensor1D,
    teacherLogits: tf.Tensor2D,
    opts: { accuracy?: boolean } = {},
  ): GradientsResult {
    let accuracy: tf.Scalar | undefined;
    try {
      const { value, grads } = tf.variableGrads(() => {
        const studentLogits = this.student.apply(x, { training: true }) as tf.Tensor2D;
        if (opts.accuracy) {
          // Kept out of variableGrads' internal tidy; not on the loss path, so no gradient.
          accuracy = tf.keep(batchAccuracy(y, studentLogits));
        }
        return this.lossFn(y, studentLogits, teacherLogits, this.lossConfig) as tf.Scalar;
      }, this.studentVars);
      return accuracy ? { loss: value, grads, accuracy } : { loss: value, grads };
    } catch (err) {
      accuracy?.dispose();
      throw err;
    }
  }

  /** Phase 3: the optimizer update of the student. Disposes `grads`. */
  applyGradients(grads: tf.NamedTensorMap): void {
    try {
      this.optimizer.applyGradients(grads);
    } finally {
      tf.dispose(grads);
    }
  }

  /**
   * One distillation step on a batch: {@link teacherForward} (or the cache) →
   * {@link computeGradients} → {@link applyGradients}.
   *
   * @param x float32 `[B, 28, 28, 1]`; @param y int32 `[B]` class indices.
   * @param opts `teacherLogits` to supply them, `batchIndices` in 'cached' mode,
   *   `accuracy` to get the batch accuracy too.
   * @returns the loss (and accuracy), owned by the caller; nothing else survives the step.
   */
  trainStep(x: tf.Tensor4D, y: tf.Tensor1D, opts: StepOptions = {}): StepResult {
    let teacherLogits: tf.Tensor2D;
    let owned = true;
    if (opts.teacherLogits !== undefined) {
      teacherLogits = opts.teacherLogits;
      owned = false;
    } else if (this.teacherLogitsMode === 'cached') {
      if (opts.batchIndices === undefined) {
        throw new Error("Distiller: 'cached' mode needs opts.batchIndices (or opts.teacherLogits)");
      }
      teacherLogits = this.cachedTeacherLogits(opts.batchIndices);
    } else {
      teacherLogits = this.teacherForward(x);
    }
    try {
      const { grads, ...result } = this.computeGradients(x, y, teacherLogits, opts);
      try {
        this.applyGradients(grads);
      } catch (err) {
        tf.dispose([result.loss, result.accuracy ?? []]);
        throw err;
      }
      return result;
    } finally {
      if (owned) teacherLogits.dispose();
    }
  }

  /**
   * The student's accuracy and sparse cross-entropy on `x`, `y` (what Keras' `Distiller`
   * reports at test time); see {@link evaluate}.
   */
  evaluate(x: tf.Tensor4D, y: tf.Tensor1D, batchSize?: number): Promise<EvalResult> {
    return evaluate(this.student, x, y, batchSize);
  }

  /** Frees the cached teacher logits. */
  clearCache(): void {
    this.cache?.dispose();
    this.cache = null;
  }

  /** Frees what the Distiller owns (the cache); the models and the optimizer are the caller's. */
  dispose(): void {
    this.clearCache();
  }
}

/**
 * One step of the "student from scratch" baseline: sparse softmax cross-entropy from logits
 * on the hard labels, gradients of `student`'s trainable variables, `optimizer` update
 * (use a separate `tf.train.adam()` from the distiller's: Adam keeps per-variable state).
 *
 * @param x float32 `[B, 28, 28, 1]`; @param y int32 `[B]`.
 * @returns the loss (and batch accuracy with `accuracy: true`), owned by the caller.
 */
export function trainStudentFromScratch(
  student: tfl.LayersModel,
  optimizer: tf.Optimizer,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  opts: { accuracy?: boolean } = {},
): StepResult {
  let accuracy: tf.Scalar | undefined;
  const { value, grads } = tf.variableGrads(() => {
    const logits = student.apply(x, { training: true }) as tf.Tensor2D;
    if (opts.accuracy) accuracy = tf.keep(batchAccuracy(y, logits));
    return sparseSoftmaxCrossEntropy(y, logits);
  }, trainableVariables(student));
  try {
    optimizer.applyGradients(grads);
  } finally {
    tf.dispose(grads);
  }
  return accuracy ? { loss: value, accuracy } : { loss: value };
}

/** What {@link evaluate} returns. */
export interface EvalResult {
  /** Fraction of correctly classified examples, in [0, 1]. */
  accuracy: number;
  /** Mean sparse softmax cross-entropy over all examples. */
  loss: number;
}

/**
 * Accuracy and mean sparse softmax cross-entropy of `model` (inference mode) on `x`, `y`,
 * `batchSize` examples at a time. The per-batch sums stay on the backend and are read back
 * once at the end.
 *
 * @param x float32 `[N, 28, 28, 1]`; @param y int32 `[N]`.
 */
export async function evaluate(
  model: tfl.LayersModel,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  batchSize = 1000,
): Promise<EvalResult> {
  const n = x.shape[0];
  if (n === 0) throw new Error('evaluate: empty data set');
  if (y.shape[0] !== n) {
    throw new Error(`evaluate: x has ${n} examples but y has ${y.shape[0]}`);
  }
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new RangeError('evaluate: batchSize must be a positive integer');
  }
  let sums = tf.zeros([2]); // [correct, summed loss]
  for (let start = 0; start < n; start += batchSize) {
    const size = Math.min(batchSize, n - start);
    const next = tf.tidy(() => {
      const xb = tf.slice(x, [start, 0, 0, 0], [size, -1, -1, -1]);
      const yb = tf.slice(y, [start], [size]);
      const logits = inferLogits(model, xb);
      const batch = tf.stack([
        correctCount(yb, logits),
        sparseSoftmaxCrossEntropy(yb, logits, 'sum'),
      ]);
      return tf.add(sums, batch);
    });
    sums.dispose();
    sums = next;
  }
  const [correct, lossSum] = await sums.data();
  sums.dispose();
  return { accuracy: correct / n, loss: lossSum / n };
}
