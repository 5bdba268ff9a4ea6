/**
 * Training and evaluating a classifier on hard labels, for the distillation benchmark: the
 * cross-entropy step that trains the teacher and the "student from scratch" baseline, and the
 * evaluation that every model of the comparison goes through (teacher, both distilled students,
 * the scratch student), so that the four test-set figures come from one piece of code.
 *
 * The distillation itself is the library's `Distiller` (imported by package name, as an app
 * would); nothing here is specific to it.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
// By package name, as an app would: under tsx this is the built dist/ (the sources' `?raw` WGSL
// imports need Vite), under vitest an alias of src/index.ts.
import type { DistillerStepResult } from 'tfjs-fused-distill';

/** A model's trainable variables (the backing tf.Variables, not copies). */
export function trainableVariables(model: tfl.LayersModel): tf.Variable[] {
  return model.trainableWeights.map((w) => w.read() as tf.Variable);
}

/**
 * Runs `model` in inference mode (no dropout, frozen batch norm).
 *
 * @param x `[B, …]` of the model's input shape. @returns `[B, classes]` logits.
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

/**
 * One step of training on the hard labels alone (the teacher's training and the "student from
 * scratch" baseline): sparse softmax cross-entropy from logits, gradients of `model`'s trainable
 * variables, `optimizer` update (use its own `tf.train.adam()`: Adam keeps per-variable state).
 *
 * @param x `[B, …]`; @param y int32 `[B]`.
 * @returns the loss (and batch accuracy with `accuracy: true`), owned by the caller.
 */
export function crossEntropyStep(
  model: tfl.LayersModel,
  optimizer: tf.Optimizer,
  x: tf.Tensor,
  y: tf.Tensor1D,
  opts: { accuracy?: boolean } = {},
): DistillerStepResult {
  let accuracy: tf.Scalar | undefined;
  const { value, grads } = tf.variableGrads(() => {
    const logits = model.apply(x, { training: true }) as tf.Tensor2D;
    if (opts.accuracy) accuracy = tf.keep(batchAccuracy(y, logits));
    return sparseSoftmaxCrossEntropy(y, logits);
  }, trainableVariables(model));
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
 * once at the end. (The library's `Distiller.evaluate` computes the same for its student.)
 *
 * @param x `[N, …]`; @param y int32 `[N]`.
 */
export async function evaluate(
  model: tfl.LayersModel,
  x: tf.Tensor,
  y: tf.Tensor1D,
  batchSize = 1000,
): Promise<EvalResult> {
  const n = x.shape[0] ?? 0;
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
      // Shorter begin/size than the rank: the other axes are taken whole.
      const xb = tf.slice(x, [start], [size]);
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
