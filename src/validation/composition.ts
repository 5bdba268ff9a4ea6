/**
 * The exact loss composed from stock tfjs ops (no clip, every option, a custom gradient with the
 * exact gradients): what `distillationLoss` runs on backends without the fused kernels, here
 * callable on any backend, e.g. as a WebGPU baseline for the divergences the Keras formula of
 * `stockDistillationLoss` does not have.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { composedDistillationLoss } from '../composed.js';
import { checkConfigForLabels, resolveConfig, type DistillationLossConfig } from '../config.js';
import { checkInputs, MAX_CLASSES } from '../validate.js';

/**
 * {@link distillationLoss}'s value and gradients from stock ops, dense teacher logits only; the
 * loss alone (a scalar for 'mean' / 'sum', the leading shape for 'none').
 */
export function exactStockOpsDistillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacherLogits: tf.Tensor,
  config?: DistillationLossConfig & { returnComponents?: false },
): tf.Tensor {
  const op = 'exactStockOpsDistillationLoss';
  const shapes = checkInputs(labels, studentLogits, teacherLogits, op, MAX_CLASSES);
  const cfg = resolveConfig(config, op);
  checkConfigForLabels(cfg, shapes.labelKind, op);
  if (cfg.returnComponents) {
    throw new Error(`${op}: returns the loss alone; config.returnComponents must be false`);
  }
  return composedDistillationLoss(labels, studentLogits, teacherLogits, shapes, cfg);
}
