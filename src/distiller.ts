/**
 * `Distiller`: knowledge distillation of a tfjs-layers student from a frozen tfjs-layers
 * teacher with the fused loss, in the spirit of the Keras example's `Distiller`
 * (https://keras.io/examples/vision/knowledge_distillation/) and with tfjs-layers' `fit`
 * conventions. Any single-input, single-output models whose outputs are logits `[B, C]` work.
 *
 * One training step:
 *   1. teacher logits: the teacher in inference mode OUTSIDE the gradient tape (it is frozen;
 *      taping it would only cost memory), or rows of the teacher cache ('cached' mode: logits,
 *      or the teacher's top-K ids and log-probabilities with `teacherTopK`);
 *   2. student forward in training mode + loss (+ the student's regularization penalties, as
 *      `model.fit` adds them) + backward, for the student's trainable variables only;
 *   3. the optimizer update of those variables.
 * The phases are public ({@link Distiller.teacherForward}, {@link Distiller.computeGradients},
 * {@link Distiller.applyGradients}) so that a custom loop or a benchmark can time them.
 *
 * The options' types and checks are in distiller-options.ts, the teacher cache in
 * distiller-teacher-cache.ts, the loops' pieces in distiller-loop.ts.
 *
 * Runtime dependencies: @tensorflow/tfjs-core only. The models are used through their own
 * methods, so @tensorflow/tfjs-layers is needed for its types alone. No Node or DOM API.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel, Logs } from '@tensorflow/tfjs-layers';
import {
  checkData,
  checkInputs,
  checkPositiveInt,
  checkStepTeacher,
  type ModelShapes,
} from './distiller-checks.js';
import {
  correctCount,
  each,
  evaluateStudent,
  normalizeCallbacks,
  regularizationPenalties,
  runEpoch,
  type EpochRun,
} from './distiller-loop.js';
import {
  resolveDistillerOptions,
  type DistillerEvaluation,
  type DistillerExactOptions,
  type DistillerFitArgs,
  type DistillerGradients,
  type DistillerHistory,
  type DistillerLossConfig,
  type DistillerOptions,
  type DistillerStepOptions,
  type DistillerStepResult,
  type DistillerTeacherLogits,
  type DistillerTeacherValue,
  type DistillerTeacherValueOf,
} from './distiller-options.js';
import {
  disposeTeacher,
  gatherTeacherRows,
  runTeacher,
  teacherBytes,
  TeacherCache,
  type DistillerTeacherCache,
} from './distiller-teacher-cache.js';
import { distillationLoss } from './op.js';
import type { SparseTeacher } from './sparse-teacher.js';
import { stockDistillationLoss } from './stock.js';
import { isTensorLike } from './validate.js';

export type {
  DistillerCallbacks,
  DistillerEvaluation,
  DistillerExactOptions,
  DistillerFitArgs,
  DistillerFusedLossOptions,
  DistillerGradients,
  DistillerHistory,
  DistillerLossConfig,
  DistillerOptionKey,
  DistillerOptions,
  DistillerStepOptions,
  DistillerStepResult,
  DistillerStockLossOptions,
  DistillerTeacherLogits,
  DistillerTeacherValue,
  DistillerTeacherValueOf,
  UnknownDistillerOption,
} from './distiller-options.js';
export type { BatchIndices, DistillerTeacherCache } from './distiller-teacher-cache.js';

/**
 * Distils `teacher` into `student`. Owns the default optimizer (when it made one) and the
 * teacher cache; the models and a given optimizer stay the caller's.
 *
 * `O` is the type of the options it was built from; it only types {@link teacherCache}
 * (logits, or sparse teachers with `teacherTopK`). `Distiller` alone is any Distiller.
 */
export class Distiller<O extends DistillerOptions = DistillerOptions> {
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
  /**
   * The teacher's outputs for a whole data set, for steps given `batchIndices` in 'cached'
   * mode: `fill(x)`, `set(value)`, `value`, `rows(batchIndices)`, `bytes`, `clear()`. Its
   * values are `tf.Tensor2D` logits, or `SparseTeacher`s when the options' type has
   * `teacherTopK: number`. ({@link fit} keeps a cache of its own, freed when it returns.)
   */
  readonly teacherCache: DistillerTeacherCache<DistillerTeacherValueOf<O>>;
  /** Set to true (e.g. in a callback) to make {@link fit} stop after the current batch. */
  stopTraining = false;
  private readonly shapes: ModelShapes;
  /** The step's loss, its config bound: a scalar (the batch mean). */
  private readonly lossOf: (y: tf.Tensor, s: tf.Tensor, t: tf.Tensor | SparseTeacher) => tf.Scalar;
  private readonly ownsOptimizer: boolean;
  /** {@link teacherCache}, with the method steps use. */
  private readonly cache: TeacherCache<DistillerTeacherValueOf<O>>;
  private fitting = false;

  constructor(options: DistillerExactOptions<O>) {
    const resolved = resolveDistillerOptions(options);
    this.student = resolved.student;
    this.teacher = resolved.teacher;
    this.shapes = resolved.shapes;
    this.loss = resolved.loss;
    this.lossConfig = resolved.lossConfig;
    this.teacherLogitsMode = resolved.teacherLogitsMode;
    this.teacherTopK = resolved.teacherTopK;
    const config = this.lossConfig;
    const keras = {
      alpha: config.alpha,
      temperature: config.temperature,
      temperatureSquared: config.temperatureSquared,
      reduction: 'mean',
    } as const;
    this.lossOf =
      this.loss === 'fused'
        ? (y, s, t) => distillationLoss(y, s, t, config)
        : (y, s, t) => stockDistillationLoss(y, s, t, keras);
    this.cache = new TeacherCache(this.teacher, this.shapes, this.teacherTopK);
    this.teacherCache = this.cache;
    this.ownsOptimizer = resolved.optimizer === undefined;
    this.optimizer = resolved.optimizer ?? tf.train.adam();
  }

  /** The student's trainable variables, read at each step (`layer.trainable` may change). */
  private studentVariables(): tf.Variable[] {
    // LayerVariable.read() is the backing tf.Variable itself (typed as a Tensor).
    return this.student.trainableWeights.map((w) => w.read() as tf.Variable);
  }

  /**
   * Phase 1: the teacher's logits for `x`, in inference mode, outside any gradient tape.
   *
   * @returns float32 `[B, C]`, owned by the caller.
   */
  teacherForward(x: tf.Tensor): tf.Tensor2D {
    checkInputs(x, this.shapes, 'Distiller.teacherForward');
    return tf.tidy(() => this.teacher.apply(x, { training: false }) as tf.Tensor2D);
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
    checkStepTeacher(teacherLogits, batch, this.shapes.classes, op);
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
   * One distillation step on a batch: teacher logits (teacher forward, rows of
   * {@link teacherCache}, or `opts.teacherLogits`) → {@link computeGradients} →
   * {@link applyGradients}.
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
      teacherLogits = checkStepTeacher(opts.teacherLogits, batch, this.shapes.classes, op);
      owned = false;
    } else if (this.teacherLogitsMode === 'cached') {
      const indices = opts.batchIndices;
      if (indices === undefined) {
        throw new Error(`${op}: 'cached' mode needs opts.batchIndices (or opts.teacherLogits)`);
      }
      const count = isTensorLike(indices) ? indices.shape[0] : indices.length;
      if (count !== batch) {
        throw new Error(`${op}: x has ${batch} examples but batchIndices has ${String(count)}`);
      }
      teacherLogits = this.cache.rowsFor(indices, op);
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
      if (owned) disposeTeacher(teacherLogits);
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
    const { labelKind } = checkData(x, y, this.shapes, op);
    const batchSize = checkPositiveInt(args.batchSize ?? 32, 'batchSize', op);
    return evaluateStudent(this.student, x, y, labelKind, batchSize);
  }

  /**
   * Trains the student on `x`, `y` for `epochs` epochs of `batchSize` examples, following
   * tfjs-layers' `model.fit`: shuffled every epoch by default, callbacks awaited, a `History`
   * returned. In 'cached' mode the teacher runs once over `x` first (see the options
   * `teacherLogits` and `teacherTopK`) into a cache of fit's own (not {@link teacherCache}),
   * freed when `fit` returns; its size is in `history.params.cachedTeacherBytes`.
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
    const history: DistillerHistory = {
      epoch: [],
      history: { loss: [] },
      params: {
        epochs,
        batchSize,
        samples: n,
        steps: Math.ceil(n / batchSize),
        doValidation: validation !== undefined,
        metrics: validation !== undefined ? ['loss', 'val_loss', 'val_acc'] : ['loss'],
      },
    };
    this.fitting = true;
    this.stopTraining = false;
    let cache: DistillerTeacherValue | null = null;
    let lastLogs: Logs = {};
    try {
      if (this.teacherLogitsMode === 'cached') {
        cache = runTeacher(this.teacher, x, batchSize, this.teacherTopK);
        history.params.cachedTeacherBytes = teacherBytes(cache);
      }
      const run: EpochRun = {
        order: Int32Array.from({ length: n }, (_, i) => i),
        batchSize,
        callbacks,
        readBatchLoss: callbacks.some((cb) => cb.onBatchEnd !== undefined),
        step: (indices) => this.fitStep(x, y, cache, indices),
        stopped: () => this.stopTraining,
        lastYield: tf.util.now(),
      };
      await each(callbacks, (cb) => cb.onTrainBegin?.({}));
      for (let epoch = 0; epoch < epochs; epoch++) {
        await each(callbacks, (cb) => cb.onEpochBegin?.(epoch, {}));
        if (shuffle) tf.util.shuffle(run.order);
        const logs: Logs = { loss: await runEpoch(run) };
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
      disposeTeacher(cache);
      this.fitting = false;
    }
    return history;
  }

  /** One step of {@link fit} on the examples `indices`; returns the loss (caller-owned). */
  private fitStep(
    x: tf.Tensor,
    y: tf.Tensor,
    cache: DistillerTeacherValue | null,
    indices: Int32Array,
  ): tf.Scalar {
    const idx = tf.tensor1d(indices, 'int32');
    const xb = tf.gather(x, idx);
    const yb = tf.gather(y, idx);
    const tb = cache ? gatherTeacherRows(cache, idx) : null;
    try {
      return this.trainStep(xb, yb, tb ? { teacherLogits: tb } : {}).loss;
    } finally {
      tf.dispose([idx, xb, yb]);
      disposeTeacher(tb);
    }
  }

  /** Frees what the Distiller owns: the teacher cache and the default optimizer. */
  dispose(): void {
    this.cache.clear();
    if (this.ownsOptimizer) this.optimizer.dispose();
  }
}
