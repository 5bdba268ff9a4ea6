/**
 * `distillationLoss(…, { returnComponents: true })` for a reduction known only at run time (a
 * loop over every reduction): the overloads type 'none' and 'mean' | 'sum' apart, so the
 * reduction is narrowed before the call and the result needs no cast.
 */
import type * as tf from '@tensorflow/tfjs-core';
import {
  distillationLoss,
  type DistillationLossComponents,
  type DistillationLossConfig,
  type SparseTeacher,
} from '../../src/index.js';

export function lossComponents(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacher: tf.Tensor | SparseTeacher,
  config: DistillationLossConfig = {},
): DistillationLossComponents {
  const { reduction = 'mean' } = config;
  return reduction === 'none'
    ? distillationLoss(labels, studentLogits, teacher, {
        ...config,
        reduction,
        returnComponents: true,
      })
    : distillationLoss(labels, studentLogits, teacher, {
        ...config,
        reduction,
        returnComponents: true,
      });
}
