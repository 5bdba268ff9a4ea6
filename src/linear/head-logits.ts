/**
 * A head's logits for a chunk of rows, z' = softCap(logitScale · (h · W + b)), and the
 * transform alone (differentiated by autograd on the chunk's own tape).
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
  const scaled = transform.logitScale === 1 ? z : tf.mul(z, transform.logitScale);
  if (transform.softCap === null || masked === null) return scaled;
  const cap = transform.softCap;
  const capped = tf.mul(tf.tanh(tf.div(scaled, cap)), cap);
  return tf.where(masked, scaled, capped);
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
