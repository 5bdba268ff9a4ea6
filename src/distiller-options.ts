/**
 * The Distiller's public types (its options, what its methods take and return) and the
 * constructor's option checks, which turn the options into the values a Distiller keeps.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { LayersModel, Logs } from '@tensorflow/tfjs-layers';
import {
  DEFAULT_JSD_BETA,
  resolveConfig,
  type DistillationLossConfig,
  type Divergence,
} from './config.js';
import { checkModels, checkTeacherTopK, type ModelShapes } from './distiller-checks.js';
import { splitDenseHead, type DenseHead } from './distiller-head.js';
import type { SparseTeacher } from './sparse-teacher.js';

/** Where a step's teacher logits come from. */
export type DistillerTeacherLogits = 'per-step' | 'cached';

/** What {@link DistillerOptions} share, whichever loss the steps use. */
interface DistillerCommonOptions extends Pick<
  DistillationLossConfig,
  'alpha' | 'temperature' | 'temperatureSquared'
> {
  /**
   * The trained model: `x` → `[B, C]` logits (no final softmax), or `[B, S, C]` for a sequence
   * model, every position a row of the loss (labels `[B, S]` or `[B, S, C]`).
   */
  student: LayersModel;
  /** The frozen model, same input and logits' shape; its weights are never updated. */
  teacher: LayersModel;
  /**
   * Updates the student's trainable variables. Default: `tf.train.adam()` (Keras' default),
   * created and owned by the Distiller (freed by `dispose`).
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
   * as a sparse teacher `{ indices, logProbs }` (`topKTeacher`, built one batch of logits at a
   * time, so the `[N, C]` logits never exist at once), and distil from it (the loss
   * renormalises the teacher over its K entries; forward KL only). Memory: N × K × 8 bytes
   * instead of N × C × 4. An integer in [1, C]; K = C keeps the whole distribution. It also
   * types the Distiller's `teacherCache` as a cache of sparse teachers.
   */
  teacherTopK?: number;
}

/** The fused loss (`distillationLoss`): the WGSL kernels on webgpu, every divergence. */
export interface DistillerFusedLossOptions extends DistillerCommonOptions {
  /** 'fused' (default). */
  loss?: 'fused';
  /**
   * Fuse the student's head into the loss (`fusedLinearDistillationLoss`): a student whose last
   * layer is a Dense with linear activation runs up to that layer (a model sharing its layers
   * and weights), and the loss computes the logits `hidden · kernel + bias` a chunk of rows at a
   * time from the head's own variables, never holding `[B, C]`. A teacher ending in such a
   * Dense likewise passes its head (per-step teacher logits only; a cache holds logits or a
   * top-K). The same loss and gradients up to float32 rounding. The op's memory budget is its
   * default for the chunks plus the head's weight and hidden gradients, which it holds anyway.
   *
   * false (default): the model's logits. true: fused, and a student without such a head is an
   * error at construction. 'auto': fused when the student has such a head.
   */
  fusedHead?: boolean | 'auto';
  /** The soft term's divergence. Default 'forward-kl'; a top-K teacher takes forward KL only. */
  divergence?: Divergence;
  /** β of 'jsd', in (0, 1). Default 0.5. Only with `divergence: 'jsd'`. */
  beta?: number;
  /**
   * A class index that marks positions to ignore (e.g. −100 for a sequence's padding), int32
   * class-index labels only, as `DistillationLossConfig.ignoreIndex`: a position whose label
   * equals it adds nothing to the loss or its gradients and is not counted by the mean; the
   * accuracy and `evaluate` skip it too. An integer in the int32 range; default none.
   */
  ignoreIndex?: number;
}

/**
 * The Keras formula from stock ops (`stockDistillationLoss`, clip included), e.g. as a
 * baseline: forward KL only.
 */
export interface DistillerStockLossOptions extends DistillerCommonOptions {
  loss: 'stock';
  divergence?: 'forward-kl';
  beta?: undefined;
  /** The Keras formula counts every position: no ignored labels. */
  ignoreIndex?: undefined;
  /** The stock formula takes logits: never fused ('auto' resolves to off). */
  fusedHead?: false | 'auto';
}

/** Options of the `Distiller` constructor: exactly what it accepts. */
export type DistillerOptions = DistillerFusedLossOptions | DistillerStockLossOptions;

/** The names of the Distiller's options. */
export type DistillerOptionKey = keyof DistillerFusedLossOptions | keyof DistillerStockLossOptions;

/** Every option name once (a `Record`, so the compiler checks the list is complete). */
const OPTION_KEY_RECORD: Record<DistillerOptionKey, true> = {
  student: true,
  teacher: true,
  optimizer: true,
  alpha: true,
  temperature: true,
  temperatureSquared: true,
  divergence: true,
  beta: true,
  loss: true,
  teacherLogits: true,
  teacherTopK: true,
  fusedHead: true,
  ignoreIndex: true,
};
const OPTION_KEYS: readonly string[] = Object.keys(OPTION_KEY_RECORD);

/** The type a field the Distiller does not take must have: none (the compiler names it). */
export interface UnknownDistillerOption {
  readonly 'not a Distiller option': never;
}

/**
 * The constructor's argument type: `O`, with every field that is not a Distiller option typed
 * {@link UnknownDistillerOption}, so that a misspelt or foreign option (`reduction`,
 * `returnComponents`) fails to compile although the options' type is inferred.
 */
export type DistillerExactOptions<O> = O & {
  [K in Exclude<keyof O, DistillerOptionKey>]: UnknownDistillerOption;
};

/**
 * What a teacher cache holds: the teacher's logits float32 `[N, C]`, or its top-K as a
 * sparse teacher `{ indices, logProbs }` int32 / float32 `[N, K]`.
 */
export type DistillerTeacherValue = tf.Tensor2D | SparseTeacher;

/**
 * The form of the teacher cache of a Distiller built from options of type `O`: a sparse
 * teacher when `teacherTopK` is a number, logits when it is absent or undefined, and either
 * (narrow with `isSparseTeacher`) when the type does not say, as for `DistillerOptions`.
 */
export type DistillerTeacherValueOf<O> = O extends { teacherTopK: number }
  ? SparseTeacher
  : O extends { student: unknown; teacherTopK?: undefined }
    ? tf.Tensor2D
    : DistillerTeacherValue;

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
  /** The ignored class index (`ignoreIndex`); absent when none is. */
  readonly ignoreIndex?: number;
}

/** Options of `Distiller.trainStep`. */
export interface DistillerStepOptions {
  /**
   * Teacher logits float32 `[B, C]` for this batch, computed by the caller, or a sparse
   * teacher `{ indices, logProbs }` int32 / float32 `[B, K]` (e.g. an inference server's
   * top-K). Not disposed by the step. Takes precedence over the mode and `batchIndices`.
   */
  teacherLogits?: tf.Tensor | SparseTeacher;
  /**
   * 'cached' mode: the rows of `distiller.teacherCache` (filled with `fill(x)` or `set(value)`)
   * that form this batch, `B` indices.
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
  /**
   * The student's accuracy on the batch in [0, 1], when `accuracy: true` was asked: over the
   * positions not ignored (`ignoreIndex`; 0 when every one is).
   */
  accuracy?: tf.Scalar;
}

/** What `Distiller.computeGradients` returns; the caller owns every tensor. */
export interface DistillerGradients extends DistillerStepResult {
  /** Gradients keyed by variable name: the student's trainable variables, and only those. */
  grads: tf.NamedTensorMap;
}

/**
 * Callbacks of `Distiller.fit`, as tfjs-layers' `CustomCallbackArgs`: epochs and batches
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

/** Options of `Distiller.fit`, with tfjs-layers' `model.fit` defaults. */
export interface DistillerFitArgs {
  /** Passes over the data. Default 1. */
  epochs?: number;
  /** Examples per step; the last batch of an epoch may be smaller. Default 32. */
  batchSize?: number;
  /** Shuffle the example order before every epoch (Math.random). Default true. */
  shuffle?: boolean;
  /**
   * `[x, y]` evaluated with `Distiller.evaluate` after every epoch: `val_loss` (the student's
   * cross-entropy on these labels) and `val_acc`.
   */
  validationData?: [tf.Tensor, tf.Tensor];
  /**
   * Called around training, epochs and batches (awaited). An `onBatchEnd` makes every step
   * read its loss back (a GPU sync per batch); without one the losses stay on the backend
   * until the epoch ends. Set `distiller.stopTraining` in a callback to stop early.
   */
  callbacks?: DistillerCallbacks | DistillerCallbacks[];
}

/** What `Distiller.fit` returns, shaped like tfjs-layers' `History`. */
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
     * 'cached' mode only: the bytes fit's teacher cache kept on the backend while it ran,
     * N × C × 4 for logits, N × K × 8 with `teacherTopK` (int32 ids + float32 log-probabilities).
     */
    cachedTeacherBytes?: number;
  };
}

/** What `Distiller.evaluate` returns. */
export interface DistillerEvaluation {
  /**
   * Mean softmax cross-entropy of the student's logits against the labels (the Keras
   * Distiller's `student_loss`): `−log softmax(s)[y]`, or `−Σ_c y_c log softmax(s)_c`. With
   * `ignoreIndex`, the mean over the positions not ignored (0 when every one is).
   */
  loss: number;
  /**
   * Fraction of examples (positions) whose student argmax equals the label (argmax of dense
   * labels); with `ignoreIndex`, of the positions not ignored (0 when every one is).
   */
  accuracy: number;
}

/** The options, checked, with the defaults filled in: what a Distiller keeps. */
export interface ResolvedDistillerOptions {
  readonly student: LayersModel;
  readonly teacher: LayersModel;
  readonly shapes: ModelShapes;
  readonly loss: 'fused' | 'stock';
  readonly lossConfig: DistillerLossConfig;
  readonly teacherLogitsMode: DistillerTeacherLogits;
  /** K of a top-K cache, or null for a cache of logits. */
  readonly teacherTopK: number | null;
  /** The caller's optimizer, or undefined for the Distiller's own default. */
  readonly optimizer: tf.Optimizer | undefined;
  /** The student split at its head when the steps fuse it (`fusedHead`), else null. */
  readonly studentHead: DenseHead | null;
  /** The teacher split at its head when per-step steps pass it as a teacher head, else null. */
  readonly teacherHead: DenseHead | null;
}

/**
 * Resolves `fusedHead`: the student's split when the steps fuse its head, the teacher's when
 * per-step teacher logits can come from its head too.
 */
function resolveFusedHead(
  value: unknown,
  loss: 'fused' | 'stock',
  mode: DistillerTeacherLogits,
  student: LayersModel,
  teacher: LayersModel,
): { studentHead: DenseHead | null; teacherHead: DenseHead | null } {
  const op = 'Distiller';
  const none = { studentHead: null, teacherHead: null };
  if (value === undefined || value === false) return none;
  if (value !== true && value !== 'auto') {
    throw new TypeError(`${op}: fusedHead must be true, false or 'auto', got ${String(value)}`);
  }
  if (loss === 'stock') {
    if (value === 'auto') return none;
    throw new Error(
      `${op}: fusedHead: true needs loss 'fused' (loss 'stock' is the Keras formula on logits)`,
    );
  }
  const studentHead = splitDenseHead(student);
  if (typeof studentHead === 'string') {
    if (value === 'auto') return none;
    throw new Error(
      `${op}: fusedHead: true needs a student whose last layer is a Dense with linear ` +
        `activation, but the student '${student.name}' does not qualify: ${studentHead} ` +
        `(use fusedHead: 'auto' to fuse only when it does)`,
    );
  }
  const teacherHead = mode === 'per-step' ? splitDenseHead(teacher) : null;
  return {
    studentHead,
    teacherHead: typeof teacherHead === 'string' ? null : teacherHead,
  };
}

/** Checks the constructor's options, in order, with errors that name the option. */
export function resolveDistillerOptions(options: DistillerOptions): ResolvedDistillerOptions {
  const op = 'Distiller';
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`${op}: options must be an object, got ${String(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.includes(key)) {
      throw new Error(`${op}: unknown option '${key}' (expected one of ${OPTION_KEYS.join(', ')})`);
    }
  }
  const {
    student,
    teacher,
    alpha,
    temperature,
    temperatureSquared,
    divergence,
    beta,
    ignoreIndex,
  } = options;
  const shapes = checkModels(student, teacher);
  const loss = options.loss ?? 'fused';
  if (loss !== 'fused' && loss !== 'stock') {
    throw new Error(`${op}: loss must be 'fused' or 'stock', got ${String(loss)}`);
  }
  const resolved = resolveConfig(
    { alpha, temperature, temperatureSquared, divergence, beta, ignoreIndex },
    op,
  );
  if (loss === 'stock' && resolved.divergence !== 'forward-kl') {
    throw new Error(
      `${op}: loss 'stock' is the Keras formula (forward KL); divergence ` +
        `'${resolved.divergence}' needs loss 'fused'`,
    );
  }
  if (loss === 'stock' && resolved.hasIgnoreIndex) {
    throw new Error(
      `${op}: loss 'stock' is the Keras formula (every position counted); ignoreIndex ` +
        `(${resolved.ignoreIndex}) needs loss 'fused'`,
    );
  }
  const lossConfig: DistillerLossConfig = Object.freeze({
    alpha: resolved.alpha,
    temperature: resolved.temperature,
    temperatureSquared: resolved.temperatureSquared,
    reduction: 'mean',
    divergence: resolved.divergence,
    ...(resolved.divergence === 'jsd' ? { beta: beta ?? DEFAULT_JSD_BETA } : {}),
    ...(resolved.hasIgnoreIndex ? { ignoreIndex: resolved.ignoreIndex } : {}),
  });
  const mode = options.teacherLogits ?? 'per-step';
  if (mode !== 'per-step' && mode !== 'cached') {
    throw new Error(`${op}: teacherLogits must be 'per-step' or 'cached', got ${String(mode)}`);
  }
  const topK = checkTeacherTopK(options.teacherTopK, mode, shapes.classes);
  if (topK !== null && resolved.divergence !== 'forward-kl') {
    throw new Error(
      `${op}: a top-K teacher (teacherTopK) takes divergence 'forward-kl' only, got ` +
        `'${resolved.divergence}'`,
    );
  }
  // Duck-typed: an optimizer from another copy of tfjs-core would fail an instanceof.
  const optimizer = options.optimizer as { applyGradients?: unknown } | undefined;
  if (optimizer !== undefined && typeof optimizer?.applyGradients !== 'function') {
    throw new TypeError(`${op}: optimizer must be a tf.Optimizer (e.g. tf.train.adam())`);
  }
  const heads = resolveFusedHead(options.fusedHead, loss, mode, student, teacher);
  return {
    student,
    teacher,
    shapes,
    loss,
    lossConfig,
    teacherLogitsMode: mode,
    teacherTopK: topK,
    optimizer: options.optimizer,
    ...heads,
  };
}
