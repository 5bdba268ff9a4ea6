/**
 * `Distiller`: knowledge distillation of a tfjs-layers student from a frozen tfjs-layers
 * teacher with the fused loss, in the spirit of the Keras example's `Distiller`
 * (https://keras.io/examples/vision/knowledge_distillation/) and with tfjs-layers' `fit`
 * conventions. Any single-input, single-output models whose outputs are logits `[B, C]` work.
 *
 * One training step:
 *   1. teacher logits: the teacher in inference mode OUTSIDE the gradient tape (it is frozen;
 *      taping it would only cost memory), or rows of logits cached once ('cached' mode), or
 *      the teacher's top-K ids and log-probabilities cached once ('cached' + `teacherTopK`);
 *   2. student forward in training mode + loss (+ the student's regularization penalties, as
 *      `model.fit` adds them) + backward, for the student's trainable variables only;
 *   3. the optimizer update of those variables.
 * The phases are public ({@link Distiller.teacherForward}, {@link Distiller.computeGradients},
 * {@link Distiller.applyGradients}) so that a custom loop or a benchmark can time them.
 *
 * Runtime dependencies: @tensorflow/tfjs-core only. The models are used through their own
 * methods, so @tensorflow/tfjs-layers is needed for its types alone. No Node or DOM API.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel, Logs } from '@tensorflow/tfjs-layers';
import {
  DEFAULT_JSD_BETA,
  resolveConfig,
  type DistillationLossConfig,
  type Divergence,
} from './config.js';
import {
  checkBatchIndices,
  checkData,
  checkModels,
  checkPositiveInt,
  checkTeacherTopK,
  checkTensor,
  type LabelKind,
  type ModelShapes,
} from './distiller-checks.js';
import { oneHotFloat } from './composed.js';
import { distillationLoss } from './op.js';
import { checkSparseTeacher, isSparseTeacher, type SparseTeacher } from './sparse-teacher.js';
import { stockDistillationLoss } from './stock.js';
import { topKTeacher } from './topk.js';
import { isTensorLike } from './validate.js';

/** Where a step's teacher logits come from. */
export type DistillerTeacherLogits = 'per-step' | 'cached';

/** What {@link DistillerOptions} share, whichever loss the steps use. */
interface DistillerCommonOptions extends Pick<
  DistillationLossConfig,
  'alpha' | 'temperature' | 'temperatureSquared'
> {
  /** The trained model: `x` → `[B, C]` logits (no final softmax). */
  student: LayersModel;
  /** The frozen model, same input and `[B, C]` logits; its weights are never updated. */
  teacher: LayersModel;
  /**
   * Updates the student's trainable variables. Default: `tf.train.adam()` (Keras' default),
   * created and owned by the Distiller (freed by {@link Distiller.dispose}).
   */
  optimizer?: tf.Optimizer;
  /**
   * 'per-step' (default): the teacher runs on every batch, as in Keras. 'cached': `fit` runs
   * the teacher once over its whole `x` (in batches of `batchSize`) and every step gathers the
   * rows of its batch — the teacher is frozen and in inference mode, so the logits are the
   * same. Memory: N × C × 4 bytes on the backend for the length of `fit` (60,000 × 10 logits:
   * 2.4 MB), against one teacher forward per step saved; see `teacherTopK` to keep less.
   */
  teacherLogits?: DistillerTeacherLogits;
  /**
   * With `teacherLogits: 'cached'`: keep only the teacher's K most likely classes per example,
   * as a sparse teacher `{ indices, logProbs }` ({@link topKTeacher}, built one batch of logits
   * at a time, so the `[N, C]` logits never exist at once), and distil from it (the loss
   * renormalises the teacher over its K entries; forward KL only). Memory: N × K × 8 bytes
   * instead of N × C × 4 ({@link Distiller.teacherCache}). An integer in [1, C]; K = C keeps
   * the whole distribution.
   */
  teacherTopK?: number;
}

/** The fused loss ({@link distillationLoss}): the WGSL kernels on webgpu, every divergence. */
export interface DistillerFusedLossOptions extends DistillerCommonOptions {
  /** 'fused' (default). */
  loss?: 'fused';
  /** The soft term's divergence. Default 'forward-kl'; a top-K teacher takes forward KL only. */
  divergence?: Divergence;
  /** β of 'jsd', in (0, 1). Default 0.5. Only with `divergence: 'jsd'`. */
  beta?: number;
}

/**
 * The Keras formula from stock ops ({@link stockDistillationLoss}, clip included), e.g. as a
 * baseline: forward KL only.
 */
export interface DistillerStockLossOptions extends DistillerCommonOptions {
  loss: 'stock';
  divergence?: 'forward-kl';
  beta?: undefined;
}

/** Options of the {@link Distiller} constructor: exactly what it accepts. */
export type DistillerOptions = DistillerFusedLossOptions | DistillerStockLossOptions;

/** The loss configuration of every step: the options' values with the defaults filled in. */
export interface DistillerLossConfig {
  readonly alpha: number;
  readonly temperature: number;
  readonly temperatureSquared: boolean;
  /** The batch mean, as `model.fit` reports it. */
  readonly reduction: 'mean';
  readonly divergence: Divergence;
  /** β of 'jsd'; absent for the other divergences. */
  readonly beta?: number;
}

/** Options of {@link Distiller.trainStep}. */
export interface DistillerStepOptions {
  /**
   * Teacher logits float32 `[B, C]` for this batch, computed by the caller, or a sparse
   * teacher `{ indices, logProbs }` int32 / float32 `[B, K]` (e.g. an inference server's
   * top-K). Not disposed by the step. Takes precedence over the mode and `batchIndices`.
   */
  teacherLogits?: tf.Tensor | SparseTeacher;
  /**
   * 'cached' mode: the rows of the cache ({@link Distiller.cacheTeacherLogits} /
   * {@link Distiller.setCachedLogits}, or with `teacherTopK` {@link Distiller.cacheTeacherTopK} /
   * {@link Distiller.setCachedTopK}) that form this batch, `B` indices.
   */
  batchIndices?: tf.Tensor | readonly number[] | Int32Array;
  /** Also return the student's accuracy on the batch (from the training forward pass). */
  accuracy?: boolean;
}

/**
 * What a step returns. The caller owns the tensors: read them when convenient (`await
 * loss.data()`), then dispose them. Nothing is read back inside the step.
 */
export interface DistillerStepResult {
  /** The batch loss (mean over the batch, plus regularization penalties), float32 scalar. */
  loss: tf.Scalar;
  /** The student's accuracy on the batch in [0, 1], when `accuracy: true` was asked. */
  accuracy?: tf.Scalar;
}

/** What {@link Distiller.computeGradients} returns; the caller owns every tensor. */
export interface DistillerGradients extends DistillerStepResult {
  /** Gradients keyed by variable name: the student's trainable variables, and only those. */
  grads: tf.NamedTensorMap;
}

/**
 * Callbacks of {@link Distiller.fit}, as tfjs-layers' `CustomCallbackArgs`: epochs and batches
 * count from 0; logs hold plain numbers. Batch logs: `{batch, size}` at the start, plus `loss`
 * at the end. Epoch-end logs: `{loss}` (the size-weighted mean of the epoch's batch losses),
 * plus `val_loss` and `val_acc` with `validationData`. `onTrainEnd` gets the last epoch's logs.
 */
export interface DistillerCallbacks {
  onTrainBegin?: (logs?: Logs) => void | Promise<void>;
  onTrainEnd?: (logs?: Logs) => void | Promise<void>;
  onEpochBegin?: (epoch: number, logs?: Logs) => void | Promise<void>;
  onEpochEnd?: (epoch: number, logs?: Logs) => void | Promise<void>;
  onBatchBegin?: (batch: number, logs?: Logs) => void | Promise<void>;
  onBatchEnd?: (batch: number, logs?: Logs) => void | Promise<void>;
}

/** Options of {@link Distiller.fit}, with tfjs-layers' `model.fit` defaults. */
export interface DistillerFitArgs {
  /** Passes over the data. Default 1. */
  epochs?: number;
  /** Examples per step; the last batch of an epoch may be smaller. Default 32. */
  batchSize?: number;
  /** Shuffle the example order before every epoch (Math.random). Default true. */
  shuffle?: boolean;
  /**
   * `[x, y]` evaluated with {@link Distiller.evaluate} after every epoch: `val_loss` (the
   * student's cross-entropy on these labels) and `val_acc`.
   */
  validationData?: [tf.Tensor, tf.Tensor];
  /**
   * Called around training, epochs and batches (awaited). An `onBatchEnd` makes every step
   * read its loss back (a GPU sync per batch); without one the losses stay on the backend
   * until the epoch ends. Set {@link Distiller.stopTraining} in a callback to stop early.
   */
  callbacks?: DistillerCallbacks | DistillerCallbacks[];
}

/** What {@link Distiller.fit} returns, shaped like tfjs-layers' `History`. */
export interface DistillerHistory {
  /** The epochs run, from 0. */
  epoch: number[];
  /** Per epoch: `loss` (distillation loss), and `val_loss` / `val_acc` with validation data. */
  history: { loss: number[]; val_loss?: number[]; val_acc?: number[] };
  params: {
    epochs: number;
    batchSize: number;
    samples: number;
    /** Steps per epoch. */
    steps: number;
    doValidation: boolean;
    metrics: string[];
    /**
     * 'cached' mode only: the bytes the teacher cache kept on the backend during `fit`,
     * N × C × 4 for logits, N × K × 8 with `teacherTopK` (int32 ids + float32 log-probabilities).
     */
    cachedTeacherBytes?: number;
  };
}

/** What {@link Distiller.evaluate} returns. */
export interface DistillerEvaluation {
  /**
   * Mean softmax cross-entropy of the student's logits against the labels (the Keras
   * Distiller's `student_loss`): `−log softmax(s)[y]`, or `−Σ_c y_c log softmax(s)_c`.
   */
  loss: number;
  /** Fraction of examples whose student argmax equals the label (argmax of dense labels). */
  accuracy: number;
}

const OPTION_KEYS = new Set([
  'student',
  'teacher',
  'optimizer',
  'alpha',
  'temperature',
  'temperatureSquared',
  'divergence',
  'beta',
  'loss',
  'teacherLogits',
  'teacherTopK',
]);

/** What 'cached' mode keeps: the teacher's logits `[N, C]`, or its top-K `[N, K]`. */
type TeacherCache = tf.Tensor | SparseTeacher;

/** The bytes a cache holds on the backend (every dtype here is 4 bytes per element). */
function cacheBytes(cache: TeacherCache | null): number {
  if (cache === null) return 0;
  return isSparseTeacher(cache) ? (cache.indices.size + cache.logProbs.size) * 4 : cache.size * 4;
}

function disposeCache(cache: TeacherCache | null): void {
  if (cache === null) return;
  if (isSparseTeacher(cache)) tf.dispose([cache.indices, cache.logProbs]);
  else cache.dispose();
}

/** The rows `idx` of a cache, in its form; owned by the caller. */
function gatherCache(cache: TeacherCache, idx: tf.Tensor): TeacherCache {
  if (!isSparseTeacher(cache)) return tf.gather(cache, idx);
  const [indices, logProbs] = tf.tidy(() => [
    tf.gather(cache.indices, idx),
    tf.gather(cache.logProbs, idx),
  ]);
  return { indices: indices!, logProbs: logProbs! };
}

/** Correct predictions in a batch, float32 scalar. */
function correctCount(y: tf.Tensor, kind: LabelKind, logits: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const labels = kind === 'index' ? y : tf.argMax(y, -1);
    return tf.sum(tf.cast(tf.equal(tf.argMax(logits, -1), tf.cast(labels, 'int32')), 'float32'));
  });
}

/** Summed softmax cross-entropy of a batch from logits, float32 scalar. */
function crossEntropySum(y: tf.Tensor, kind: LabelKind, logits: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const classes = logits.shape[1]!;
    const logSigma = tf.logSoftmax(logits);
    if (kind !== 'index') return tf.neg(tf.sum(tf.mul(y, logSigma))) as tf.Scalar;
    // oneHotFloat takes any C ≥ 1 (tf.oneHot wants 2); an out-of-range label makes its row NaN,
    // as it does in the loss.
    const idx = tf.cast(y, 'int32');
    const valid = tf.logicalAnd(tf.greaterEqual(idx, 0), tf.less(idx, classes));
    const rows = tf.neg(tf.sum(tf.mul(oneHotFloat(idx, classes), logSigma), -1));
    return tf.sum(tf.where(valid, rows, tf.fill(rows.shape, NaN))) as tf.Scalar;
  });
}

/**
 * The model's weight-regularization penalties (what tfjs-layers' `fit` adds to the loss). A
 * `Sequential` reports none through its own `calculateLosses()` (its container bookkeeping
 * lives in an inner model built by `compile`), so its layers are asked, in order.
 */
function regularizationPenalties(model: LayersModel): tf.Scalar[] {
  if (model.getClassName() === 'Sequential') {
    return model.layers.flatMap((layer) => layer.calculateLosses());
  }
  return model.calculateLosses();
}

function normalizeCallbacks(callbacks: DistillerFitArgs['callbacks']): DistillerCallbacks[] {
  const list = callbacks === undefined ? [] : Array.isArray(callbacks) ? callbacks : [callbacks];
  for (const cb of list) {
    if (typeof cb !== 'object' || cb === null) {
      throw new TypeError(
        `Distiller.fit: callbacks must be objects of functions, got ${String(cb)}`,
      );
    }
    if (typeof (cb as { setModel?: unknown }).setModel === 'function') {
      throw new TypeError(
        'Distiller.fit: tfjs-layers Callback objects (e.g. tf.callbacks.earlyStopping) expect a ' +
          'LayersModel; pass plain callback functions and set distiller.stopTraining instead',
      );
    }
  }
  return list;
}

/** Calls `fn` on every callback in turn, awaiting each. */
async function each(
  callbacks: readonly DistillerCallbacks[],
  fn: (cb: DistillerCallbacks) => unknown,
): Promise<void> {
  for (const cb of callbacks) await fn(cb);
}

/** The state of one {@link Distiller.fit} call. */
interface EpochRun {
  x: tf.Tensor;
  y: tf.Tensor;
  /** 'cached' mode: the teacher logits (or top-K) of all of x. */
  cache: TeacherCache | null;
  /** The example order, shuffled in place before each epoch. */
  order: Int32Array;
  batchSize: number;
  callbacks: readonly DistillerCallbacks[];
  /** An onBatchEnd exists: read every batch loss back. */
  readBatchLoss: boolean;
  lastYield: number;
}

/**
 * Distils `teacher` into `student`. Owns the default optimizer (when it made one) and cached
 * teacher logits; the models and a given optimizer stay the caller's.
 */
export class Distiller {
  readonly student: LayersModel;
  readonly teacher: LayersModel;
  readonly optimizer: tf.Optimizer;
  /** Which loss the steps use. */
  readonly loss: 'fused' | 'stock';
  /** The loss configuration of every step: the library's defaults filled in. */
  readonly lossConfig: DistillerLossConfig;
  readonly teacherLogitsMode: DistillerTeacherLogits;
  /** K when the cache keeps the teacher's top-K per example (`teacherTopK`), else null. */
  readonly teacherTopK: number | null;
  /** Set to true (e.g. in a callback) to make {@link fit} stop after the current batch. */
  stopTraining = false;
  private readonly shapes: ModelShapes;
  /** The step's loss, its config bound: a scalar (the batch mean). */
  private readonly lossOf: (y: tf.Tensor, s: tf.Tensor, t: tf.Tensor | SparseTeacher) => tf.Scalar;
  private readonly ownsOptimizer: boolean;
  private cache: TeacherCache | null = null;
  /** The cache of the running fit (freed when it returns), for {@link cachedTeacherBytes}. */
  private fitCache: TeacherCache | null = null;
  private fitting = false;

  constructor(options: DistillerOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new TypeError(`Distiller: options must be an object, got ${String(options)}`);
    }
    for (const key of Object.keys(options)) {
      if (!OPTION_KEYS.has(key)) {
        throw new Error(
          `Distiller: unknown option '${key}' (expected one of ${[...OPTION_KEYS].join(', ')})`,
        );
      }
    }
    const { student, teacher, alpha, temperature, temperatureSquared, divergence, beta } = options;
    this.shapes = checkModels(student, teacher);
    const loss = options.loss ?? 'fused';
    if (loss !== 'fused' && loss !== 'stock') {
      throw new Error(`Distiller: loss must be 'fused' or 'stock', got ${String(loss)}`);
    }
    const resolved = resolveConfig(
      { alpha, temperature, temperatureSquared, divergence, beta },
      'Distiller',
    );
    if (loss === 'stock' && resolved.divergence !== 'forward-kl') {
      throw new Error(
        `Distiller: loss 'stock' is the Keras formula (forward KL); divergence ` +
          `'${resolved.divergence}' needs loss 'fused'`,
      );
    }
    this.lossConfig = Object.freeze({
      alpha: resolved.alpha,
      temperature: resolved.temperature,
      temperatureSquared: resolved.temperatureSquared,
      reduction: 'mean',
      divergence: resolved.divergence,
      ...(resolved.divergence === 'jsd' ? { beta: beta ?? DEFAULT_JSD_BETA } : {}),
    });
    const mode = options.teacherLogits ?? 'per-step';
    if (mode !== 'per-step' && mode !== 'cached') {
      throw new Error(
        `Distiller: teacherLogits must be 'per-step' or 'cached', got ${String(mode)}`,
      );
    }
    const topK = checkTeacherTopK(options.teacherTopK, mode, this.shapes.classes);
    if (topK !== null && resolved.divergence !== 'forward-kl') {
      throw new Error(
        `Distiller: a top-K teacher (teacherTopK) takes divergence 'forward-kl' only, got ` +
          `'${resolved.divergence}'`,
      );
    }
    // Duck-typed: an optimizer from another copy of tfjs-core would fail an instanceof.
    const optimizer = options.optimizer as { applyGradients?: unknown } | undefined;
    if (optimizer !== undefined && typeof optimizer?.applyGradients !== 'function') {
      throw new TypeError('Distiller: optimizer must be a tf.Optimizer (e.g. tf.train.adam())');
    }
    this.student = student;
    this.teacher = teacher;
    this.loss = loss;
    const config = this.lossConfig;
    const { alpha: a, temperature: T, temperatureSquared: squared } = config;
    const keras = {
      alpha: a,
      temperature: T,
      temperatureSquared: squared,
      reduction: 'mean',
    } as const;
    this.lossOf =
      loss === 'fused'
        ? (y, s, t) => distillationLoss(y, s, t, config)
        : (y, s, t) => stockDistillationLoss(y, s, t, keras);
    this.teacherLogitsMode = mode;
    this.teacherTopK = topK;
    this.ownsOptimizer = options.optimizer === undefined;
    this.optimizer = options.optimizer ?? tf.train.adam();
  }

  /** The student's trainable variables, read at each step (`layer.trainable` may change). */
  private studentVariables(): tf.Variable[] {
    // LayerVariable.read() is the backing tf.Variable itself (typed as a Tensor).
    return this.student.trainableWeights.map((w) => w.read() as tf.Variable);
  }

  private checkTeacherLogits(t: unknown, batch: number, op: string): tf.Tensor | SparseTeacher {
    const C = this.shapes.classes;
    if (isSparseTeacher(t)) {
      checkSparseTeacher(t, [batch, C], op);
      return t;
    }
    const logits = checkTensor(t, 'teacherLogits', op);
    if (
      logits.dtype !== 'float32' ||
      logits.rank !== 2 ||
      logits.shape[0] !== batch ||
      logits.shape[1] !== C
    ) {
      throw new Error(
        `${op}: teacherLogits must be float32 [${batch}, ${C}], got ${logits.dtype} ` +
          `[${logits.shape.join(', ')}] (or a sparse teacher { indices, logProbs } [${batch}, K])`,
      );
    }
    return logits;
  }

  /**
   * Phase 1: the teacher's logits for `x`, in inference mode, outside any gradient tape.
   *
   * @returns float32 `[B, C]`, owned by the caller.
   */
  teacherForward(x: tf.Tensor): tf.Tensor2D {
    const op = 'Distiller.teacherForward';
    checkTensor(x, 'x', op);
    return tf.tidy(() => this.teacher.apply(x, { training: false }) as tf.Tensor2D);
  }

  /**
   * What 'cached' mode keeps for all of `x`, `batchSize` rows of teacher logits at a time: the
   * `[N, C]` logits, or with `teacherTopK` the top-K of each batch of logits (the logits of one
   * batch at a time exist); owned by the caller.
   */
  private teacherCacheOf(x: tf.Tensor, batchSize: number): TeacherCache {
    const n = x.shape[0]!;
    const k = this.teacherTopK;
    const parts: TeacherCache[] = [];
    try {
      for (let start = 0; start < n; start += batchSize) {
        const size = Math.min(batchSize, n - start);
        const logits = tf.tidy(
          () =>
            this.teacher.apply(tf.slice(x, [start], [size]), { training: false }) as tf.Tensor2D,
        );
        if (k === null) {
          parts.push(logits);
        } else {
          try {
            parts.push(topKTeacher(logits, k));
          } finally {
            logits.dispose();
          }
        }
      }
      if (k === null) {
        const dense = parts as tf.Tensor2D[];
        return dense.length === 1 ? dense[0]!.clone() : tf.concat(dense, 0);
      }
      const sparse = parts as SparseTeacher[];
      const [indices, logProbs] = tf.tidy(() => [
        tf.concat(
          sparse.map((p) => p.indices),
          0,
        ),
        tf.concat(
          sparse.map((p) => p.logProbs),
          0,
        ),
      ]);
      return { indices: indices!, logProbs: logProbs! };
    } finally {
      parts.forEach(disposeCache);
    }
  }

  /** Throws unless the cache keeps the form `want`, naming the method to use instead. */
  private checkCacheForm(want: 'logits' | 'topK', op: string): void {
    if (want === 'logits' && this.teacherTopK !== null) {
      throw new Error(
        `${op}: this Distiller caches the teacher's top-K (teacherTopK: ${this.teacherTopK}); ` +
          'use cacheTeacherTopK / setCachedTopK / cachedTeacherTopK',
      );
    }
    if (want === 'topK' && this.teacherTopK === null) {
      throw new Error(
        `${op}: this Distiller caches teacher logits; construct it with teacherLogits: 'cached' ` +
          'and teacherTopK: K to cache the top-K (or use cacheTeacherLogits)',
      );
    }
  }

  /**
   * Runs the teacher once over `x` (`batchSize` rows at a time, which bounds the teacher's
   * activation memory) and keeps the `[N, C]` logits for steps given `batchIndices`. Replaces
   * an earlier cache. Nothing is read back. (With `teacherTopK`: {@link cacheTeacherTopK}.)
   *
   * @returns the cached logits (owned by the Distiller: do not dispose).
   */
  cacheTeacherLogits(x: tf.Tensor, batchSize = 256): tf.Tensor2D {
    const op = 'Distiller.cacheTeacherLogits';
    this.checkCacheForm('logits', op);
    checkTensor(x, 'x', op);
    checkPositiveInt(batchSize, 'batchSize', op);
    const logits = this.teacherCacheOf(x, batchSize) as tf.Tensor2D;
    this.clearCache();
    this.cache = logits;
    return logits;
  }

  /**
   * With `teacherTopK`: runs the teacher once over `x`, `batchSize` rows at a time, and keeps
   * the top-K of each row (`{ indices, logProbs }`, `[N, K]`, from {@link topKTeacher}; the
   * `[N, C]` logits never exist at once) for steps given `batchIndices`. Replaces an earlier
   * cache. Nothing is read back.
   *
   * @returns the cached sparse teacher (owned by the Distiller: do not dispose).
   */
  cacheTeacherTopK(x: tf.Tensor, batchSize = 256): SparseTeacher {
    const op = 'Distiller.cacheTeacherTopK';
    this.checkCacheForm('topK', op);
    checkTensor(x, 'x', op);
    checkPositiveInt(batchSize, 'batchSize', op);
    const topK = this.teacherCacheOf(x, batchSize) as SparseTeacher;
    this.clearCache();
    this.cache = topK;
    return topK;
  }

  /**
   * Adopts teacher logits float32 `[N, C]` computed by the caller (e.g. chunk by chunk from
   * data kept in host memory) as the cache; the Distiller takes ownership of `logits`.
   */
  setCachedLogits(logits: tf.Tensor2D): void {
    const op = 'Distiller.setCachedLogits';
    this.checkCacheForm('logits', op);
    checkTensor(logits, 'logits', op);
    const C = this.shapes.classes;
    if (logits.dtype !== 'float32' || logits.rank !== 2 || logits.shape[1] !== C) {
      throw new Error(
        `${op}: expected float32 [N, ${C}] logits, got ${logits.dtype} [${logits.shape.join(', ')}]`,
      );
    }
    if (logits !== this.cache) this.clearCache();
    this.cache = logits;
  }

  /**
   * With `teacherTopK`: adopts a sparse teacher `{ indices, logProbs }`, int32 / float32
   * `[N, K]` (any K in [1, C]: e.g. the top-K log-probabilities an inference server returned,
   * padded with index −1), as the cache; the Distiller takes ownership of both tensors.
   */
  setCachedTopK(teacher: SparseTeacher): void {
    const op = 'Distiller.setCachedTopK';
    this.checkCacheForm('topK', op);
    if (!isSparseTeacher(teacher)) {
      throw new TypeError(
        `${op}: teacher must be { indices, logProbs } (int32 / float32 [N, K]), got ${typeof teacher}`,
      );
    }
    // The rows N come from the ids; their rank, dtype and K are checked against [N, C] next.
    const n = isTensorLike(teacher.indices) ? (teacher.indices.shape[0] ?? 0) : 0;
    checkSparseTeacher(teacher, [n, this.shapes.classes], op);
    const { indices, logProbs } = teacher;
    if (indices.shape[1]! > this.shapes.classes) {
      throw new RangeError(
        `${op}: K = ${indices.shape[1]} entries per example, more than the C = ` +
          `${this.shapes.classes} classes`,
      );
    }
    const current = this.cache;
    if (!isSparseTeacher(current) || current.indices !== indices || current.logProbs !== logProbs) {
      this.clearCache();
    }
    this.cache = { indices, logProbs };
  }

  /** The cached teacher logits `[N, C]`, or null (also with `teacherTopK`: see cachedTopK). */
  get cachedLogits(): tf.Tensor2D | null {
    const cache = this.cache;
    return cache === null || isSparseTeacher(cache) ? null : (cache as tf.Tensor2D);
  }

  /** With `teacherTopK`: the cached sparse teacher `[N, K]`, or null. */
  get cachedTopK(): SparseTeacher | null {
    const cache = this.cache;
    return cache !== null && isSparseTeacher(cache) ? cache : null;
  }

  /**
   * The bytes the teacher caches hold on the backend now: N × C × 4 for cached logits, N × K × 8
   * for a cached top-K (int32 ids and float32 log-probabilities), the cache of a running
   * {@link fit} included; 0 without a cache.
   */
  get cachedTeacherBytes(): number {
    return cacheBytes(this.cache) + cacheBytes(this.fitCache);
  }

  /** The cache, checked to exist and hold `want`, and `batchIndices` checked against it. */
  private cacheRows(
    want: 'logits' | 'topK',
    batchIndices: unknown,
    op: string,
  ): { cache: TeacherCache; idx: tf.Tensor | readonly number[] | Int32Array } {
    this.checkCacheForm(want, op);
    const cache = this.cache;
    if (cache === null) {
      const call = want === 'topK' ? 'cacheTeacherTopK' : 'cacheTeacherLogits';
      throw new Error(`${op}: no cached teacher ${want}; call ${call}(x) first`);
    }
    const rows = isSparseTeacher(cache) ? cache.indices.shape[0]! : cache.shape[0];
    return { cache, idx: checkBatchIndices(batchIndices, rows, op) };
  }

  /** The cache's rows `batchIndices`, in its form; owned by the caller. */
  private gatherRows(
    cache: TeacherCache,
    batchIndices: tf.Tensor | readonly number[] | Int32Array,
  ): TeacherCache {
    const idx =
      batchIndices instanceof tf.Tensor
        ? tf.cast(batchIndices, 'int32')
        : tf.tensor1d(Array.from(batchIndices), 'int32');
    try {
      return gatherCache(cache, idx);
    } finally {
      idx.dispose();
    }
  }

  /**
   * The cached teacher logits of the rows `batchIndices`.
   *
   * @returns float32 `[B, C]`, owned by the caller.
   */
  cachedTeacherLogits(batchIndices: tf.Tensor | readonly number[] | Int32Array): tf.Tensor2D {
    const op = 'Distiller.cachedTeacherLogits';
    const { cache, idx } = this.cacheRows('logits', batchIndices, op);
    return this.gatherRows(cache, idx) as tf.Tensor2D;
  }

  /**
   * With `teacherTopK`: the cached top-K of the rows `batchIndices`.
   *
   * @returns `{ indices, logProbs }` int32 / float32 `[B, K]`, owned by the caller.
   */
  cachedTeacherTopK(batchIndices: tf.Tensor | readonly number[] | Int32Array): SparseTeacher {
    const op = 'Distiller.cachedTeacherTopK';
    const { cache, idx } = this.cacheRows('topK', batchIndices, op);
    return this.gatherRows(cache, idx) as SparseTeacher;
  }

  /**
   * Phase 2: student forward (training mode) + loss + backward, differentiating the student's
   * trainable variables only; `teacherLogits` is a constant.
   *
   * @param x a batch of the models' input shape; @param y int32 `[B]` class indices or float32
   *   `[B, C]` one-hot / soft labels; @param teacherLogits float32 `[B, C]`, or a sparse teacher
   *   `{ indices, logProbs }` int32 / float32 `[B, K]`.
   * @returns the loss, the gradients (for {@link applyGradients}) and the batch accuracy when
   *   asked; all owned by the caller.
   */
  computeGradients(
    x: tf.Tensor,
    y: tf.Tensor,
    teacherLogits: tf.Tensor | SparseTeacher,
    opts: { accuracy?: boolean } = {},
  ): DistillerGradients {
    const op = 'Distiller.computeGradients';
    const { batch, labelKind } = checkData(x, y, this.shapes, op);
    this.checkTeacherLogits(teacherLogits, batch, op);
    let accuracy: tf.Scalar | undefined;
    try {
      const { value, grads } = tf.variableGrads(() => {
        const studentLogits = this.student.apply(x, { training: true }) as tf.Tensor2D;
        if (opts.accuracy) {
          // Kept out of variableGrads' tidy; not on the loss path, so no gradient flows.
          accuracy = tf.keep(tf.div<tf.Scalar>(correctCount(y, labelKind, studentLogits), batch));
        }
        let loss = this.lossOf(y, studentLogits, teacherLogits);
        for (const penalty of regularizationPenalties(this.student)) {
          loss = tf.add(loss, penalty);
        }
        return loss;
      }, this.studentVariables());
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
   * One distillation step on a batch: teacher logits (teacher forward, the cache, or
   * `opts.teacherLogits`) → {@link computeGradients} → {@link applyGradients}.
   *
   * @param x a batch of the models' input shape.
   * @param y int32 `[B]` class indices or float32 `[B, C]` one-hot / soft labels.
   * @returns the loss (and accuracy), owned by the caller; nothing else survives the step.
   */
  trainStep(x: tf.Tensor, y: tf.Tensor, opts: DistillerStepOptions = {}): DistillerStepResult {
    const op = 'Distiller.trainStep';
    const { batch } = checkData(x, y, this.shapes, op);
    let teacherLogits: tf.Tensor | SparseTeacher;
    let owned = true;
    if (opts.teacherLogits !== undefined) {
      teacherLogits = this.checkTeacherLogits(opts.teacherLogits, batch, op);
      owned = false;
    } else if (this.teacherLogitsMode === 'cached') {
      const indices = opts.batchIndices;
      if (indices === undefined) {
        throw new Error(`${op}: 'cached' mode needs opts.batchIndices (or opts.teacherLogits)`);
      }
      const count = indices instanceof tf.Tensor ? indices.shape[0] : indices.length;
      if (count !== batch) {
        throw new Error(`${op}: x has ${batch} examples but batchIndices has ${String(count)}`);
      }
      teacherLogits =
        this.teacherTopK === null
          ? this.cachedTeacherLogits(indices)
          : this.cachedTeacherTopK(indices);
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
      if (owned) disposeCache(teacherLogits);
    }
  }

  /**
   * The student's loss and accuracy on `x`, `y` in inference mode (what the Keras Distiller
   * reports at test time), `batchSize` examples at a time; one read-back at the end.
   *
   * @param y int32 `[N]` class indices or float32 `[N, C]` one-hot / soft labels.
   */
  async evaluate(
    x: tf.Tensor,
    y: tf.Tensor,
    args: { batchSize?: number } = {},
  ): Promise<DistillerEvaluation> {
    const op = 'Distiller.evaluate';
    const { batch: n, labelKind } = checkData(x, y, this.shapes, op);
    const batchSize = checkPositiveInt(args.batchSize ?? 32, 'batchSize', op);
    let sums = tf.zeros([2]); // [correct, summed cross-entropy]
    try {
      for (let start = 0; start < n; start += batchSize) {
        const size = Math.min(batchSize, n - start);
        const next = tf.tidy(() => {
          const yb = tf.slice(y, [start], [size]);
          const logits = this.student.apply(tf.slice(x, [start], [size]), {
            training: false,
          }) as tf.Tensor2D;
          const batch = tf.stack([
            correctCount(yb, labelKind, logits),
            crossEntropySum(yb, labelKind, logits),
          ]);
          return tf.add(sums, batch);
        });
        sums.dispose();
        sums = next;
      }
      const [correct = NaN, lossSum = NaN] = await sums.data();
      return { loss: lossSum / n, accuracy: correct / n };
    } finally {
      sums.dispose();
    }
  }

  /**
   * Trains the student on `x`, `y` for `epochs` epochs of `batchSize` examples, following
   * tfjs-layers' `model.fit`: shuffled every epoch by default, callbacks awaited, a `History`
   * returned. In 'cached' mode the teacher runs once over `x` first (see
   * {@link DistillerOptions.teacherLogits}, {@link DistillerOptions.teacherTopK}); the cache is
   * freed when `fit` returns, and its size is in `history.params.cachedTeacherBytes`.
   *
   * @param x all training examples, of the models' input shape `[N, …]`.
   * @param y int32 `[N]` class indices or float32 `[N, C]` one-hot / soft labels.
   */
  async fit(x: tf.Tensor, y: tf.Tensor, args: DistillerFitArgs = {}): Promise<DistillerHistory> {
    const op = 'Distiller.fit';
    const { batch: n } = checkData(x, y, this.shapes, op);
    const epochs = checkPositiveInt(args.epochs ?? 1, 'epochs', op);
    const batchSize = checkPositiveInt(args.batchSize ?? 32, 'batchSize', op);
    const shuffle = args.shuffle ?? true;
    const validation = args.validationData;
    if (validation !== undefined) {
      if (!Array.isArray(validation) || validation.length !== 2) {
        throw new TypeError(`${op}: validationData must be [x, y]`);
      }
      checkData(validation[0], validation[1], this.shapes, op, [
        'validationData[0]',
        'validationData[1]',
      ]);
    }
    const callbacks = normalizeCallbacks(args.callbacks);
    if (this.fitting) throw new Error(`${op}: another fit() of this Distiller is running`);
    const steps = Math.ceil(n / batchSize);
    const history: DistillerHistory = {
      epoch: [],
      history: { loss: [] },
      params: {
        epochs,
        batchSize,
        samples: n,
        steps,
        doValidation: validation !== undefined,
        metrics: validation !== undefined ? ['loss', 'val_loss', 'val_acc'] : ['loss'],
      },
    };
    const run: EpochRun = {
      x,
      y,
      cache: null,
      order: Int32Array.from({ length: n }, (_, i) => i),
      batchSize,
      callbacks,
      readBatchLoss: callbacks.some((cb) => cb.onBatchEnd !== undefined),
      lastYield: tf.util.now(),
    };
    this.fitting = true;
    this.stopTraining = false;
    let lastLogs: Logs = {};
    try {
      if (this.teacherLogitsMode === 'cached') {
        run.cache = this.teacherCacheOf(x, batchSize);
        this.fitCache = run.cache;
        history.params.cachedTeacherBytes = cacheBytes(run.cache);
      }
      await each(callbacks, (cb) => cb.onTrainBegin?.({}));
      for (let epoch = 0; epoch < epochs; epoch++) {
        await each(callbacks, (cb) => cb.onEpochBegin?.(epoch, {}));
        if (shuffle) tf.util.shuffle(run.order);
        const logs: Logs = { loss: await this.fitEpoch(run) };
        history.history.loss.push(logs.loss!);
        if (validation !== undefined) {
          const v = await this.evaluate(validation[0], validation[1], { batchSize });
          logs.val_loss = v.loss;
          logs.val_acc = v.accuracy;
          (history.history.val_loss ??= []).push(v.loss);
          (history.history.val_acc ??= []).push(v.accuracy);
        }
        history.epoch.push(epoch);
        lastLogs = logs;
        await each(callbacks, (cb) => cb.onEpochEnd?.(epoch, { ...logs }));
        if (this.stopTraining) break;
      }
      await each(callbacks, (cb) => cb.onTrainEnd?.({ ...lastLogs }));
    } finally {
      disposeCache(run.cache);
      this.fitCache = null;
      this.fitting = false;
    }
    return history;
  }

  /**
   * One epoch of {@link fit}: each batch gathered by index and stepped; the batch losses are
   * summed, weighted by batch size, on the backend and read once at the end.
   *
   * @returns the epoch's loss: the size-weighted mean of its batch losses.
   */
  private async fitEpoch(run: EpochRun): Promise<number> {
    const { order, batchSize, callbacks } = run;
    let total: tf.Tensor = tf.scalar(0);
    let seen = 0;
    try {
      for (let batch = 0, start = 0; start < order.length; batch++, start += batchSize) {
        const size = Math.min(batchSize, order.length - start);
        await each(callbacks, (cb) => cb.onBatchBegin?.(batch, { batch, size }));
        const loss = this.fitStep(run, order.slice(start, start + size));
        const logs: Logs = { batch, size };
        try {
          const next = tf.tidy(() => tf.add(total, tf.mul(loss, size)));
          total.dispose();
          total = next;
          if (run.readBatchLoss) logs.loss = (await loss.data())[0]!;
        } finally {
          loss.dispose();
        }
        seen += size;
        await each(callbacks, (cb) => cb.onBatchEnd?.(batch, logs));
        if (tf.util.now() - run.lastYield > 100) {
          await tf.nextFrame(); // keeps a page responsive, as tfjs-layers' fit does
          run.lastYield = tf.util.now();
        }
        if (this.stopTraining) break;
      }
      const [sum = NaN] = await total.data();
      return sum / seen;
    } finally {
      total.dispose();
    }
  }

  /** One step of {@link fit} on the examples `indices`; returns the loss (caller-owned). */
  private fitStep(run: EpochRun, indices: Int32Array): tf.Scalar {
    const idx = tf.tensor1d(indices, 'int32');
    const xb = tf.gather(run.x, idx);
    const yb = tf.gather(run.y, idx);
    const tb = run.cache ? gatherCache(run.cache, idx) : null;
    try {
      return this.trainStep(xb, yb, tb ? { teacherLogits: tb } : {}).loss;
    } finally {
      tf.dispose([idx, xb, yb]);
      disposeCache(tb);
    }
  }

  /** Frees the cached teacher logits (or top-K). */
  clearCache(): void {
    disposeCache(this.cache);
    this.cache = null;
  }

  /** Frees what the Distiller owns: the cache and the default optimizer. */
  dispose(): void {
    this.clearCache();
    if (this.ownsOptimizer) this.optimizer.dispose();
  }
}
