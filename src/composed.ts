/**
 * The exact loss composed from stock tfjs ops, with tfjs autograd for its gradients: what
 * `distillationLoss` runs on backends without the fused kernels (cpu, webgl, wasm). Unlike
 * the Keras formula in stock.ts it has no clip, so it computes the same function as the
 * kernels and the float64 reference (up to float32 rounding).
 */
import * as tf from '@tensorflow/tfjs-core';
import { klFactor, type ResolvedConfig } from './config.js';
import type { CheckedShapes } from './validate.js';

/**
 * float32 one-hot rows for int32 class indices; any C ≥ 1 (tf.oneHot wants C ≥ 2) and an
 * out-of-range index gives a row of zeros.
 */
export function oneHotFloat(indices: tf.Tensor, classes: number): tf.Tensor {
  return tf.tidy(() =>
    classes >= 2
      ? tf.cast(tf.oneHot(indices as tf.Tensor1D, classes), 'float32')
      : tf.cast(tf.equal(tf.expandDims(indices, 1), tf.range(0, classes, 1, 'int32')), 'float32'),
  );
}

export function composedDistillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacherLogits: tf.Tensor,
  shapes: CheckedShapes,
  cfg: ResolvedConfig,
): tf.Tensor {
  return tf.tidy(() => {
    const logSigma = tf.logSoftmax(studentLogits);
    let ce: tf.Tensor;
    if (shapes.labelKind === 'index') {
      const idx = labels as tf.Tensor1D;
      const oneHot = oneHotFloat(idx, shapes.classes);
      const valid = tf.logicalAnd(tf.greaterEqual(idx, 0), tf.less(idx, shapes.classes));
      ce = tf.where(
        valid,
        tf.neg(tf.sum(tf.mul(oneHot, logSigma), -1)),
        tf.fill([shapes.batch], NaN),
      );
    } else {
      ce = tf.neg(tf.sum(tf.mul(labels, logSigma), -1));
    }
    const T = cfg.temperature;
    const logP = tf.logSoftmax(tf.div(teacherLogits, T));
    const logQ = tf.logSoftmax(tf.div(studentLogits, T));
    const kl = tf.sum(tf.mul(tf.exp(logP), tf.sub(logP, logQ)), -1);
    const rows = tf.add(tf.mul(ce, cfg.alpha), tf.mul(kl, (1 - cfg.alpha) * klFactor(cfg)));
    switch (cfg.reduction) {
      case 'none':
        return rows;
      case 'sum':
        return tf.sum(rows);
      case 'mean':
        return tf.mean(rows);
    }
  });
}
