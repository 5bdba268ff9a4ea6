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

/** Horner: Σ_k coefficients[k] · x^k, highest coefficient last. */
function polynomial(x: tf.Tensor, coefficients: readonly number[]): tf.Tensor {
  let r: tf.Tensor = tf.scalar(coefficients[coefficients.length - 1]!);
  for (let k = coefficients.length - 2; k >= 0; k--) r = tf.add(coefficients[k]!, tf.mul(x, r));
  return r;
}

/** (−1)^k / (k + 2)!: g(x) = e^−x − 1 + x = x² Σ_k (−1)^k x^k / (k + 2)!, |x| < 1. */
const G_SERIES = Array.from({ length: 10 }, (_, k) => {
  let f = 1;
  for (let i = 2; i <= k + 2; i++) f *= i;
  return (k % 2 === 0 ? 1 : -1) / f;
});
/** 1 / (2k + 3): h(y) = y − log(1 + y) = y z − 2 z³ Σ_k z^{2k} / (2k + 3), z = y / (2 + y). */
const H_SERIES = Array.from({ length: 6 }, (_, k) => 1 / (2 * k + 3));
/** Above this centre p e^−x may overflow float32; KL is then large and the direct sum exact. */
const CENTRE_LIMIT = 60;

/**
 * KL(softmax(t/T) ‖ softmax(s/T)) per row, without the cancellation that T² would magnify:
 * the centred form of shaders/distill_common.wgsl (KL = E_p[g(x)] − h(y) around c = E_p[δ]),
 * with exact gradients (1/T)(q − p) and (1/T) p (x − E_p[x]), q − p = p expm1(E_p[x] − x − KL)
 * where |log q − log p| < 1.
 */
function centredKl(studentLogits: tf.Tensor, teacherLogits: tf.Tensor, T: number): tf.Tensor {
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [s, t, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    // relative to the row maxima, as the kernels do: v − u keeps its relative precision
    const v = tf.div(tf.sub(t, tf.max(t, -1, true)), T);
    const u = tf.div(tf.sub(s, tf.max(s, -1, true)), T);
    const logZT = tf.log(tf.sum(tf.exp(v), -1, true));
    const logZS = tf.log(tf.sum(tf.exp(u), -1, true));
    const logP = tf.sub(v, logZT);
    const logQ = tf.sub(u, logZS);
    const p = tf.exp(logP);
    const delta = tf.sub(v, u);
    const centre = tf.sum(tf.mul(p, delta), -1, true);
    const x = tf.sub(delta, centre);
    const sumP = tf.sum(p, -1, true);
    const meanX = tf.div(tf.sum(tf.mul(p, x), -1, true), sumP);
    const near = tf.less(tf.abs(x), 1);
    const pg = tf.where(
      near,
      tf.mul(p, tf.mul(tf.square(x), polynomial(x, G_SERIES))),
      // p e^−x − p + p x, p e^−x = exp(u − log ZT + c); clamped where the result is not used
      tf.add(tf.sub(tf.exp(tf.minimum(tf.add(tf.sub(u, logZT), centre), 80)), p), tf.mul(p, x)),
    );
    const meanG = tf.div(tf.sum(pg, -1, true), sumP);
    const y = tf.sub(meanG, meanX);
    const z = tf.div(y, tf.add(y, 2));
    const h = tf.sub(
      tf.mul(y, z),
      tf.mul(tf.mul(2, tf.pow(z, 3)), polynomial(tf.square(z), H_SERIES)),
    );
    const refined = tf.where(tf.greater(y, 1), tf.add(meanX, tf.log1p(y)), tf.sub(meanG, h));
    const direct = tf.add(tf.sub(centre, logZT), logZS);
    const kl = tf.where(tf.less(centre, CENTRE_LIMIT), refined, direct);
    save([logP, logQ, p, x, meanX, kl]);
    return {
      value: tf.squeeze(kl, [-1]),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [logP_, logQ_, p_, x_, meanX_, kl_] = saved as [
          tf.Tensor,
          tf.Tensor,
          tf.Tensor,
          tf.Tensor,
          tf.Tensor,
          tf.Tensor,
        ];
        const w = tf.div(tf.expandDims(dy, -1), T);
        const logRatio = tf.sub(tf.sub(meanX_, x_), kl_);
        const qMinusP = tf.where(
          tf.less(tf.abs(logRatio), 1),
          tf.mul(p_, tf.expm1(logRatio)),
          tf.sub(tf.exp(logQ_), tf.exp(logP_)),
        );
        return [tf.mul(w, qMinusP), tf.mul(w, tf.mul(p_, tf.sub(x_, meanX_)))];
      },
    };
  });
  return f(studentLogits, teacherLogits);
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
    const kl = centredKl(studentLogits, teacherLogits, cfg.temperature);
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
