/** Runs a fused forward kernel (dense or sparse teacher) and shapes what the op returns. */
import * as tf from '@tensorflow/tfjs-core';
import type { DistillationLossComponents } from '../composed.js';
import type { DistillAttrs } from './names.js';

/**
 * The op's result from a fused forward kernel: its first output (the loss), or, with
 * `returnComponents`, `{ loss, hardLoss, softLoss }` from the same forward pass (the kernel's
 * last two outputs, src/kernels/names.ts), each differentiable through the kernel's gradient.
 */
export function runFusedForward(
  kernelName: string,
  inputs: tf.NamedTensorMap,
  attrs: DistillAttrs,
): tf.Tensor | DistillationLossComponents {
  const run = () =>
    tf.engine().runKernel(kernelName, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
  if (attrs.returnComponents) {
    return tf.tidy(() => {
      const out = run();
      const [hardLoss, softLoss] = out.slice(-2);
      return { loss: out[0]!, hardLoss: hardLoss!, softLoss: softLoss! };
    });
  }
  return tf.tidy(() => run()[0]!);
}
