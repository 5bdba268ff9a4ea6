/**
 * A head's logits for a chunk of rows, z' = softCap(logitScale · (h · W + b)), the transform
 * alone, and its gradient written out (no autograd, so no core-op gradients are needed):
 *   ∂z'/∂z = logitScale · (1 − tanh²(y / cap)) = logitScale · (1 − (z' / cap)²),  y = logitScale · z,
 * and 0 where z is −Infinity (a masked class).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { HeadTransform } from './config.js';

/** The raw logits h · W + b of a `[c, H]` chunk: `[c, V]`, one matMul with the bias fused. */
export function rawLogits(
  hidden: tf.Tensor2D,
  weight: tf.Tensor2D,
  bias?: tf.Tensor1D,
): tf.Tensor2D {
  return bias === undefined
    ? tf.matMul(hidden, weight)
    : (tf.fused.matMul({ a: hidden, b: weight, bias }) as tf.Tensor2D);
}

/**
 * logitScale, then Gemma 2's soft cap `cap · tanh(z / cap)`. A masked class (−Infinity) stays
 * −Infinity rather than becoming −cap, so that masks given through the bias survive the cap;
 * its gradient is 0 on both branches.
 */
export function transformLogits(
  z: tf.Tensor,
  transform: HeadTransform,
  masked: tf.Tensor | null = maskOf(z, transform),
): tf.Tensor {
  const scale = transform.logitScale;
  if (transform.softCap === null || masked === null) return scale === 1 ? z : tf.mul(z, scale);
  const cap = transform.softCap;
  return tf.tidy(() => {
    const scaled = scale === 1 ? z : tf.mul(z, scale);
    return tf.where(masked, scaled, tf.mul(tf.tanh(tf.div(scaled, cap)), cap));
  });
}

/** ∂L/∂z from ∂L/∂z' (`transformed` is z', `masked` where z is −Infinity). */
export function transformGradient(
  gradient: tf.Tensor,
  transformed: tf.Tensor,
  masked: tf.Tensor | null,
  transform: HeadTransform,
): tf.Tensor {
  const scale = transform.logitScale;
  if (transform.softCap === null || masked === null) {
    return scale === 1 ? gradient : tf.mul(gradient, scale);
  }
  const cap = transform.softCap;
  return tf.tidy(() => {
    const slope = tf.mul(tf.sub(1, tf.square(tf.div(transformed, cap))), scale);
    return tf.where(masked, tf.zerosLike(gradient), tf.mul(gradient, slope));
  });
}

/**
 * Where the raw logits are −Infinity, for the soft cap (null without one). Computed off the
 * tape by the caller that differentiates: a comparison has no gradient.
 */
export function maskOf(z: tf.Tensor, transform: HeadTransform): tf.Tensor | null {
  return transform.softCap === null ? null : tf.equal(z, Number.NEGATIVE_INFINITY);
}

/** A teacher head's logits for a chunk, transformed: constants, no tape involved. */
export function teacherHeadLogits(
  hidden: tf.Tensor2D,
  weight: tf.Tensor2D,
  bias: tf.Tensor1D | undefined,
  transform: HeadTransform,
): tf.Tensor {
  return tf.tidy(() => transformLogits(rawLogits(hidden, weight, bias), transform));
}
