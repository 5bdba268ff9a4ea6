/**
 * One chunk of rows through the loss: the head's logits are transformed and handed to
 * `distillationLoss` (the fused kernels on WebGPU, the exact composition elsewhere); under a
 * tape of the chunk's own, autograd gives ∂objective/∂z for the chunk's raw logits z.
 */
import * as tf from '@tensorflow/tfjs-core';
// The transform's ops (mul, tanh, where) are differentiated by autograd: their gradients are
// registered by this tfjs-core module (as @tensorflow/tfjs does), whatever the app imports.
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import type { DistillationLossComponents } from '../composed.js';
import { distillationLoss } from '../op.js';
import type { SparseTeacher } from '../sparse-teacher.js';
import { withOwnTape } from '../tfjs-internals.js';
import { chunkLossConfig, type ResolvedLinearConfig } from './config.js';
import { maskOf, rawLogits, teacherHeadLogits, transformLogits } from './head-logits.js';
import type { RowTeacher } from './inputs.js';

/** A chunk's losses: scalars summed over its rows ('sum'), or per row `[c]` ('none'). */
export interface ChunkLosses {
  readonly loss: tf.Tensor;
  readonly hardLoss?: tf.Tensor;
  readonly softLoss?: tf.Tensor;
}

/** A chunk's rows: its labels, hidden states and teacher. */
export interface ChunkRows {
  readonly labels: tf.Tensor;
  readonly hidden: tf.Tensor2D;
  readonly teacher: RowTeacher;
}

/** What `distillationLoss` takes as the chunk's teacher: logits (a head's, computed) or top-K. */
function teacherInput(teacher: RowTeacher, cfg: ResolvedLinearConfig): tf.Tensor | SparseTeacher {
  switch (teacher.kind) {
    case 'dense':
      return teacher.logits;
    case 'sparse':
      return { indices: teacher.indices, logProbs: teacher.logProbs };
    case 'head':
      return teacherHeadLogits(teacher.hidden, teacher.weight, teacher.bias, cfg.transform);
  }
}

function lossesOf(
  rows: ChunkRows,
  studentLogits: tf.Tensor,
  teacher: tf.Tensor | SparseTeacher,
  cfg: ResolvedLinearConfig,
  reduction: 'sum' | 'none',
): ChunkLosses {
  const lossConfig = chunkLossConfig(cfg.loss, reduction, cfg.loss.returnComponents);
  const out = distillationLoss(rows.labels, studentLogits, teacher, lossConfig);
  if (out instanceof tf.Tensor) return { loss: out };
  const parts = out as DistillationLossComponents;
  return { loss: parts.loss, hardLoss: parts.hardLoss, softLoss: parts.softLoss };
}

/** The chunk's losses, without gradients. */
export function chunkLosses(
  rows: ChunkRows,
  weight: tf.Tensor2D,
  bias: tf.Tensor1D | undefined,
  cfg: ResolvedLinearConfig,
  reduction: 'sum' | 'none',
): ChunkLosses {
  return tf.tidy(() => {
    const z = transformLogits(rawLogits(rows.hidden, weight, bias), cfg.transform);
    const losses = lossesOf(rows, z, teacherInput(rows.teacher, cfg), cfg, reduction);
    return { ...losses } as unknown as tf.TensorContainer;
  }) as unknown as ChunkLosses;
}

/**
 * ∂objective/∂z for the chunk's raw logits z = h · W + b, and the objective's value: the
 * transform and the loss run on a tape of their own; `objective` turns the chunk's losses into
 * the scalar to differentiate (the summed loss, or the upstream gradients' weighted sum).
 */
export function chunkGradient(
  rows: ChunkRows,
  weight: tf.Tensor2D,
  bias: tf.Tensor1D | undefined,
  cfg: ResolvedLinearConfig,
  reduction: 'sum' | 'none',
  objective: (losses: ChunkLosses) => tf.Scalar,
): { value: tf.Scalar; dz: tf.Tensor2D } {
  return tf.tidy(() => {
    const z = rawLogits(rows.hidden, weight, bias);
    const teacher = teacherInput(rows.teacher, cfg);
    const masked = maskOf(z, cfg.transform);
    const { value, grads } = withOwnTape(() =>
      tf.valueAndGrads((logits: tf.Tensor) =>
        objective(
          lossesOf(rows, transformLogits(logits, cfg.transform, masked), teacher, cfg, reduction),
        ),
      )([z]),
    );
    return { value: value as tf.Scalar, dz: grads[0] as tf.Tensor2D };
  });
}
