/**
 * The pieces of the Distiller's `fit` and `evaluate` loops: the student's metrics from logits,
 * its regularization penalties, the callbacks, and one epoch of batches.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel, Logs } from '@tensorflow/tfjs-layers';
import { oneHotFloat } from './composed.js';
import type { LabelKind } from './distiller-checks.js';
import type { DistillerCallbacks, DistillerFitArgs } from './distiller-options.js';

/** Correct predictions in a batch, float32 scalar. */
export function correctCount(y: tf.Tensor, kind: LabelKind, logits: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const labels = kind === 'index' ? y : tf.argMax(y, -1);
    return tf.sum(tf.cast(tf.equal(tf.argMax(logits, -1), tf.cast(labels, 'int32')), 'float32'));
  });
}

/** Summed softmax cross-entropy of a batch from logits, float32 scalar. */
export function crossEntropySum(y: tf.Tensor, kind: LabelKind, logits: tf.Tensor): tf.Scalar {
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
 * The student's loss and accuracy on `x`, `y` in inference mode, `batchSize` examples at a
 * time; the sums stay on the backend and are read back once at the end.
 */
export async function evaluateStudent(
  student: LayersModel,
  x: tf.Tensor,
  y: tf.Tensor,
  labelKind: LabelKind,
  batchSize: number,
): Promise<{ loss: number; accuracy: number }> {
  const n = x.shape[0]!;
  let sums = tf.zeros([2]); // [correct, summed cross-entropy]
  try {
    for (let start = 0; start < n; start += batchSize) {
      const size = Math.min(batchSize, n - start);
      const next = tf.tidy(() => {
        const yb = tf.slice(y, [start], [size]);
        const logits = student.apply(tf.slice(x, [start], [size]), {
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
 * The model's weight-regularization penalties (what tfjs-layers' `fit` adds to the loss). A
 * `Sequential` reports none through its own `calculateLosses()` (its container bookkeeping
 * lives in an inner model built by `compile`), so its layers are asked, in order.
 */
export function regularizationPenalties(model: LayersModel): tf.Scalar[] {
  if (model.getClassName() === 'Sequential') {
    return model.layers.flatMap((layer) => layer.calculateLosses());
  }
  return model.calculateLosses();
}

/** `fit`'s callbacks as a list, checked to be plain objects of functions. */
export function normalizeCallbacks(callbacks: DistillerFitArgs['callbacks']): DistillerCallbacks[] {
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
export async function each(
  callbacks: readonly DistillerCallbacks[],
  fn: (cb: DistillerCallbacks) => unknown,
): Promise<void> {
  for (const cb of callbacks) await fn(cb);
}

/** What one epoch of `fit` needs. */
export interface EpochRun {
  /** The example order, shuffled in place before each epoch. */
  readonly order: Int32Array;
  readonly batchSize: number;
  readonly callbacks: readonly DistillerCallbacks[];
  /** An onBatchEnd exists: read every batch loss back. */
  readonly readBatchLoss: boolean;
  /** One training step on the examples `indices`; returns its loss (caller-owned). */
  step(indices: Int32Array): tf.Scalar;
  /** Whether to stop after the current batch. */
  stopped(): boolean;
  /** When the loop last yielded to the event loop (`tf.util.now()`). */
  lastYield: number;
}

/**
 * One epoch: the batches of `run.order` stepped in turn; the batch losses are summed, weighted
 * by batch size, on the backend and read once at the end.
 *
 * @returns the epoch's loss: the size-weighted mean of its batch losses.
 */
export async function runEpoch(run: EpochRun): Promise<number> {
  const { order, batchSize, callbacks } = run;
  let total: tf.Tensor = tf.scalar(0);
  let seen = 0;
  try {
    for (let batch = 0, start = 0; start < order.length; batch++, start += batchSize) {
      const size = Math.min(batchSize, order.length - start);
      await each(callbacks, (cb) => cb.onBatchBegin?.(batch, { batch, size }));
      const loss = run.step(order.slice(start, start + size));
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
      if (run.stopped()) break;
    }
    const [sum = NaN] = await total.data();
    return sum / seen;
  } finally {
    total.dispose();
  }
}
