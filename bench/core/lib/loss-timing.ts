/**
 * Timing the distillation loss alone, forward + backward, as both the kernel benchmark
 * (bench/node/kernel.ts) and the distillation protocol's loss-alone timing
 * (bench/core/protocol/timing.ts) do: one step, windows of steps with ONE fence each (the
 * read-back of the last loss), the window size, and the dispatch count of one step.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { distillationLoss } from 'tfjs-fused-distill';
import { countDispatches } from './dispatch-counter.js';

/** The fused loss or the stock one: they share a signature. */
export type LossFn = typeof distillationLoss;

/**
 * One forward+backward of `loss` w.r.t. the student logits (the gradient training needs,
 * implicit dy); returns the loss value to fence on, the gradient disposed.
 */
export function lossStep(
  loss: LossFn,
  labels: tf.Tensor,
  student: tf.Tensor,
  teacher: tf.Tensor,
  config: object,
): tf.Tensor {
  return tf.tidy(() => {
    const f = (s: tf.Tensor) => loss(labels, s, teacher, config) as tf.Scalar;
    const { value, grads } = tf.valueAndGrads(f)([student]);
    tf.dispose(grads);
    return value;
  });
}

/** `calls` runs of `run` and ONE fence (the last result's read-back); returns ms per call. */
export async function timeWindow(run: () => tf.Tensor, calls: number): Promise<number> {
  const start = performance.now();
  let last: tf.Tensor | null = null;
  for (let i = 0; i < calls; i++) {
    last?.dispose();
    last = run();
  }
  await last?.data();
  last?.dispose();
  return (performance.now() - start) / calls;
}

/** Calls per window so that one window lasts about `windowMs`: at least `min`, at most 500. */
export function windowCalls(onceMs: number, windowMs: number, min: number): number {
  return Math.max(min, Math.min(500, Math.round(windowMs / Math.max(onceMs, 0.01))));
}

/** GPU dispatches of one `run`, its result disposed. */
export function stepDispatches(run: () => tf.Tensor): number {
  let out: tf.Tensor | undefined;
  const n = countDispatches(() => {
    out = run();
  });
  out?.dispose();
  return n;
}
