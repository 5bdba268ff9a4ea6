/**
 * The pieces of the Distiller's `fit` and `evaluate` loops: the student's metrics from logits,
 * its regularization penalties, the callbacks, and one epoch of batches.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel, Logs } from '@tensorflow/tfjs-layers';
import { oneHotFloat } from './composed.js';
import type { LabelKind } from './distiller-checks.js';
import type { DistillerCallbacks, DistillerFitArgs } from './distiller-options.js';

/**
 * The positions a metric counts: a bool mask in the labels' leading shape, false where an int32
 * label equals `ignoreIndex`; null when every position counts (no ignoreIndex, dense labels).
 */
function keptMask(y: tf.Tensor, kind: LabelKind, ignoreIndex?: number): tf.Tensor | null {
  return ignoreIndex === undefined || kind !== 'index' ? null : tf.notEqual(y, ignoreIndex);
}

/**
 * Correct predictions in a batch, float32 scalar; with `ignoreIndex`, among the positions whose
 * label is not it.
 */
export function correctCount(
  y: tf.Tensor,
  kind: LabelKind,
  logits: tf.Tensor,
  ignoreIndex?: number,
): tf.Scalar {
  return tf.tidy(() => {
    const labels = kind === 'index' ? y : tf.argMax(y, -1);
    const correct = tf.equal(tf.argMax(logits, -1), tf.cast(labels, 'int32'));
    const kept = keptMask(y, kind, ignoreIndex);
    return tf.sum(tf.cast(kept === null ? correct : tf.logicalAnd(correct, kept), 'float32'));
  });
}

/**
 * The positions the metrics of a batch count, float32 scalar: `rows`, or with `ignoreIndex`
 * those whose label is not it.
 */
export function keptCount(
  y: tf.Tensor,
  kind: LabelKind,
  rows: number,
  ignoreIndex?: number,
): tf.Scalar {
  return tf.tidy(() => {
    const kept = keptMask(y, kind, ignoreIndex);
    return kept === null ? tf.scalar(rows) : tf.sum(tf.cast(kept, 'float32'));
  });
}

/**
 * The student's accuracy on a batch of `rows` positions, float32 scalar: with `ignoreIndex`,
 * over the positions not ignored, and 0 when every one is (as the loss's mean).
 */
export function batchAccuracy(
  y: tf.Tensor,
  kind: LabelKind,
  logits: tf.Tensor,
  rows: number,
  ignoreIndex?: number,
): tf.Scalar {
  return tf.tidy(() =>
    tf.div<tf.Scalar>(
      correctCount(y, kind, logits, ignoreIndex),
      tf.maximum(keptCount(y, kind, rows, ignoreIndex), 1),
    ),
  );
}

/**
 * Summed softmax cross-entropy of a batch from logits, float32 scalar; a position whose int32
 * label is `ignoreIndex` adds 0.
 */
export function crossEntropySum(
  y: tf.Tensor,
  kind: LabelKind,
  logits: tf.Tensor,
  ignoreIndex?: number,
): tf.Scalar {
  return tf.tidy(() => {
    const classes = logits.shape.at(-1)!;
    const logSigma = tf.logSoftmax(logits);
    if (kind !== 'index') return tf.neg(tf.sum(tf.mul(y, logSigma))) as tf.Scalar;
    // oneHotFloat takes any C ≥ 1 (tf.oneHot wants 2); an out-of-range label makes its row NaN,
    // as it does in the loss, unless it is the ignored index (0).
    const idx = tf.cast(y, 'int32');
    const valid = tf.logicalAnd(tf.greaterEqual(idx, 0), tf.less(idx, classes));
    const rows = tf.neg(tf.sum(tf.mul(oneHotFloat(idx, classes), logSigma), -1));
    const checked = tf.where(valid, rows, tf.fill(rows.shape, NaN));
    const kept = keptMask(idx, kind, ignoreIndex);
    return tf.sum(kept === null ? checked : tf.where(kept, checked, tf.zerosLike(checked)));
  });
}

/**
 * The student's loss and accuracy on `x`, `y` in inference mode, `batchSize` examples at a
 * time; the sums stay on the backend and are read back once at the end. Both are means over
 * `rows`: the examples, or every position of a sequence model's `[B, S, C]` logits; with
 * `ignoreIndex`, over the positions whose int32 label is not it (both 0 when none is left).
 */
export async function evaluateStudent(
  student: LayersModel,
  x: tf.Tensor,
  y: tf.Tensor,
  labelKind: LabelKind,
  batchSize: number,
  rows = x.shape[0]!,
  ignoreIndex?: number,
): Promise<{ loss: number; accuracy: number }> {
  const n = x.shape[0]!;
  const perBatch = rows / n;
  let sums = tf.zeros([3]); // [correct, summed cross-entropy, positions counted]
  try {
    for (let start = 0; start < n; start += batchSize) {
      const size = Math.min(batchSize, n - start);
      const next = tf.tidy(() => {
        const yb = tf.slice(y, [start], [size]);
        const logits = student.apply(tf.slice(x, [start], [size]), {
          training: false,
        }) as tf.Tensor2D;
        const batch = tf.stack([
          correctCount(yb, labelKind, logits, ignoreIndex),
          crossEntropySum(yb, labelKind, logits, ignoreIndex),
          keptCount(yb, labelKind, size * perBatch, ignoreIndex),
        ]);
        return tf.add(sums, batch);
      });
      sums.dispose();
      sums = next;
    }
    const [correct = NaN, lossSum = NaN, kept = NaN] = await sums.data();
    const counted = ignoreIndex === undefined ? rows : Math.max(kept, 1);
    return { loss: lossSum / counted, accuracy: correct / counted };
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
