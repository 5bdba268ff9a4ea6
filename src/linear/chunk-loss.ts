/**
 * One chunk of rows through the loss: the head's logits are transformed and handed to
 * `distillationLoss` (the fused kernels on WebGPU, the exact composition elsewhere); under a
 * tape of the chunk's own, autograd gives ∂objective/∂z' for the transformed logits, and the
 * transform's own derivative takes it to the raw logits z.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { DistillationLossComponents } from '../composed.js';
import { distillationLoss } from '../op.js';
import type { SparseTeacher } from '../sparse-teacher.js';
import { withOwnTape } from '../tfjs-internals.js';
import { chunkLossConfig, type ResolvedLinearConfig } from './config.js';
import {
  maskOf,
  rawLogits,
  teacherHeadLogits,
  transformGradient,
  transformLogits,
} from './head-logits.js';
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

/** An output of the chunk's losses to differentiate, and its upstream gradient. */
export interface ChunkUpstream {
  readonly output: keyof ChunkLosses;
  /** Shaped like the output; none for the implicit 1 of a loss (the fast path). */
  readonly dy?: tf.Tensor;
}

/**
 * ∂/∂z of Σ_o ⟨dy_o, output_o⟩ for the chunk's raw logits z = h · W + b, and the first output's
 * value. Only the loss runs on a tape (of the chunk's own): its gradient is the fused kernel's,
 * or the composition's; the transform's derivative is written out. Each output is one backward
 * pass with its own upstream gradient, so no op of the objective needs a gradient of its own.
 */
export function chunkGradient(
  rows: ChunkRows,
  weight: tf.Tensor2D,
  bias: tf.Tensor1D | undefined,
  cfg: ResolvedLinearConfig,
  reduction: 'sum' | 'none',
  upstreams: readonly ChunkUpstream[],
): { value: tf.Tensor; dz: tf.Tensor2D } {
  return tf.tidy(() => {
    const z = rawLogits(rows.hidden, weight, bias);
    const teacher = teacherInput(rows.teacher, cfg);
    const masked = maskOf(z, cfg.transform);
    const transformed = transformLogits(z, cfg.transform, masked);
    let value: tf.Tensor | null = null;
    let total: tf.Tensor | null = null;
    for (const { output, dy } of upstreams) {
      const result = withOwnTape(() =>
        tf.valueAndGrads(
          (logits: tf.Tensor) => lossesOf(rows, logits, teacher, cfg, reduction)[output]!,
        )([transformed], dy),
      );
      value ??= result.value;
      total = total === null ? result.grads[0]! : tf.add(total, result.grads[0]!);
    }
    const gradient = total ?? tf.zerosLike(transformed);
    const dz = transformGradient(gradient, transformed, masked, cfg.transform);
    return { value: value ?? tf.scalar(0), dz: dz as tf.Tensor2D };
  });
}
