/**
 * `Distiller`: knowledge distillation of a tfjs-layers student from a frozen tfjs-layers
 * teacher with the fused loss, in the spirit of the Keras example's `Distiller`
 * (https://keras.io/examples/vision/knowledge_distillation/) and with tfjs-layers' `fit`
 * conventions. Any single-input, single-output models whose outputs are logits `[B, C]` work,
 * or `[B, S, C]` (a sequence model: every position is a row of the loss and of the metrics).
 * With `fusedHead`, a student ending in a linear Dense runs up to that layer and the loss
 * (`fusedLinearDistillationLoss`) takes the head's kernel and bias, never the whole logits.
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
  checkIgnoredLabels,
  checkInputs,
  checkPositiveInt,
  checkStepTeacher,
  checkTeacherHead,
  type ModelShapes,
} from './distiller-checks.js';
import { isLinearHead, type DenseHead } from './distiller-head.js';
import {
  batchAccuracy,
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
import { fusedLinearDistillationLoss } from './linear/op.js';
import { DEFAULT_LINEAR_MEMORY_BUDGET_BYTES } from './linear/types.js';
import type { LinearHead } from './linear/types.js';
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
   * Whether the steps fuse the student's Dense head into the loss (the option `fusedHead`,
   * resolved): the student runs up to its head and the loss takes the head's kernel and bias.
   */
  readonly fusedHead: boolean;
  /**
   * Whether per-step teacher logits come from the teacher's head (a teacher head
   * `{ hidden, weight, bias }`, {@link teacherHeadForward}) rather than its logits: with
   * {@link fusedHead}, 'per-step' teacher logits and a teacher ending in a linear Dense.
   */
  readonly fusedTeacherHead: boolean;
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
  /** The student and teacher split at their heads (`fusedHead`), or null. */
  private readonly studentHead: DenseHead | null;
  private readonly teacherHead: DenseHead | null;
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
    this.studentHead = resolved.studentHead;
    this.teacherHead = resolved.teacherHead;
    this.fusedHead = this.studentHead !== null;
    this.fusedTeacherHead = this.teacherHead !== null;
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

  /**
   * {@link checkData}, and with `ignoreIndex` int32 class-index labels (the loss's own error,
   * named by the Distiller's method before anything runs).
   */
  private checkBatch(
    x: tf.Tensor,
    y: tf.Tensor,
    op: string,
    names?: readonly [string, string],
  ): ReturnType<typeof checkData> {
    const data = checkData(x, y, this.shapes, op, names);
    checkIgnoredLabels(this.lossConfig.ignoreIndex, data.labelKind, op, names?.[1]);
    return data;
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
   * Phase 1 with {@link fusedTeacherHead}: the teacher up to its Dense head, in inference mode,
   * outside any gradient tape, as a teacher head for the fused loss: `hidden` `[B, H_t]`, and
   * the head's `weight` `[H_t, C]` and `bias` `[C]` as constants (new tensors sharing the
   * variables' data, not the variables, so the loss sees no trainable teacher weight).
   *
   * @returns tensors owned by the caller (dispose all three).
   */
  teacherHeadForward(x: tf.Tensor): LinearHead {
    const op = 'Distiller.teacherHeadForward';
    const head = this.teacherHead;
    if (head === null) {
      throw new Error(
        `${op}: this Distiller passes no teacher head (it needs fusedHead, 'per-step' teacher ` +
          `logits and a teacher whose last layer is a Dense with linear activation)`,
      );
    }
    checkInputs(x, this.shapes, op);
    return tf.tidy(() => {
      const hidden = head.body.apply(x, { training: false }) as tf.Tensor;
      const weight = tf.clone(head.kernel.read());
      return head.bias === null
        ? { hidden, weight }
        : { hidden, weight, bias: tf.clone(head.bias.read()) };
    });
  }

  /**
   * Phase 2: student forward (training mode) + loss + backward, differentiating the student's
   * trainable variables only; `teacherLogits` is a constant.
   *
   * @param x a batch of the models' input shape; @param y int32 `[B]` class indices or float32
   *   `[B, C]` one-hot / soft labels; @param teacherLogits float32 `[B, C]`, or a sparse teacher
   *   `{ indices, logProbs }` int32 / float32 `[B, K]`, or with {@link fusedHead} a teacher
   *   head `{ hidden, weight, bias? }` ({@link teacherHeadForward}).
   * @returns the loss, the gradients (for {@link applyGradients}) and the batch accuracy when
   *   asked; all owned by the caller.
   */
  computeGradients(
    x: tf.Tensor,
    y: tf.Tensor,
    teacherLogits: tf.Tensor | SparseTeacher | LinearHead,
    opts: { accuracy?: boolean } = {},
  ): DistillerGradients {
    const op = 'Distiller.computeGradients';
    const { batch, rows, labelKind } = this.checkBatch(x, y, op);
    const head = this.studentHead;
    if (isLinearHead(teacherLogits)) {
      if (head === null) {
        throw new Error(
          `${op}: a teacher head { hidden, weight, bias } needs fusedHead (this Distiller's ` +
            `loss takes teacher logits or a sparse teacher)`,
        );
      }
      checkTeacherHead(teacherLogits, batch, this.shapes, op);
    } else {
      checkStepTeacher(teacherLogits, batch, this.shapes, op);
    }
    let accuracy: tf.Scalar | undefined;
    const keepAccuracy = (studentLogits: tf.Tensor) => {
      // Kept out of variableGrads' tidy; not on the loss path, so no gradient flows.
      const ignoreIndex = this.lossConfig.ignoreIndex;
      accuracy = tf.keep(batchAccuracy(y, labelKind, studentLogits, rows, ignoreIndex));
    };
    try {
      const { value, grads } = tf.variableGrads(() => {
        let loss: tf.Scalar;
        if (head !== null) {
          // The student up to its head, then the loss on the head's own variables: the
          // gradients reach the kernel and bias through the loss, the body's weights through
          // the hidden states, as through the model's logits.
          const hidden = head.body.apply(x, { training: true }) as tf.Tensor;
          // The logits only for the accuracy asked for (they are what fusing avoids).
          if (opts.accuracy) keepAccuracy(head.layer.apply(hidden) as tf.Tensor);
          const studentHead: LinearHead =
            head.bias === null
              ? { hidden, weight: head.kernel.read() }
              : { hidden, weight: head.kernel.read(), bias: head.bias.read() };
          // The op's default budget for its chunks, on top of what it must hold whatever the
          // budget (the weight and hidden gradients' partial sums), so that no head that the
          // unfused step could train is refused for memory.
          const held = (studentHead.weight.size + hidden.size) * 4;
          loss = fusedLinearDistillationLoss(y, studentHead, teacherLogits, {
            ...this.lossConfig,
            memoryBudgetBytes: DEFAULT_LINEAR_MEMORY_BUDGET_BYTES + held,
          }) as tf.Scalar;
        } else {
          const studentLogits = this.student.apply(x, { training: true }) as tf.Tensor2D;
          if (opts.accuracy) keepAccuracy(studentLogits);
          // A teacher head was refused above without a fused student head.
          loss = this.lossOf(y, studentLogits, teacherLogits as tf.Tensor | SparseTeacher);
        }
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
    const { batch } = this.checkBatch(x, y, op);
    let teacherLogits: tf.Tensor | SparseTeacher | LinearHead;
    let owned = true;
    if (opts.teacherLogits !== undefined) {
      teacherLogits = checkStepTeacher(opts.teacherLogits, batch, this.shapes, op);
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
      teacherLogits = this.teacherHead ? this.teacherHeadForward(x) : this.teacherForward(x);
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
    const { rows, labelKind } = this.checkBatch(x, y, op);
    const batchSize = checkPositiveInt(args.batchSize ?? 32, 'batchSize', op);
    const ignoreIndex = this.lossConfig.ignoreIndex;
    return evaluateStudent(this.student, x, y, labelKind, batchSize, rows, ignoreIndex);
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
    const { batch: n } = this.checkBatch(x, y, op);
    const epochs = checkPositiveInt(args.epochs ?? 1, 'epochs', op);
    const batchSize = checkPositiveInt(args.batchSize ?? 32, 'batchSize', op);
    const shuffle = args.shuffle ?? true;
    const validation = args.validationData;
    if (validation !== undefined) {
      if (!Array.isArray(validation) || validation.length !== 2) {
        throw new TypeError(`${op}: validationData must be [x, y]`);
      }
      this.checkBatch(validation[0], validation[1], op, ['validationData[0]', 'validationData[1]']);
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
