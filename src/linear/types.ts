/**
 * The public types of {@link fusedLinearDistillationLoss}: a linear head (hidden states, the
 * head's kernel and bias), the teachers it takes, and its options.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { DistillationLossConfig } from '../config.js';
import type { SparseTeacher } from '../sparse-teacher.js';

/**
 * A linear head whose logits `hidden · weight + bias` the op computes a chunk of rows at a
 * time and never holds whole.
 */
export interface LinearHead<H extends tf.Tensor = tf.Tensor> {
  /** float32 `[..., H]`: the last hidden states, rank 2 `[rows, H]` or 3 `[batch, seq, H]`. */
  readonly hidden: H;
  /** float32 `[H, V]`: the head's kernel, in the layout of a tfjs-layers Dense kernel. */
  readonly weight: tf.Tensor;
  /** float32 `[V]`: the head's bias (−Infinity entries mask their classes); default none. */
  readonly bias?: tf.Tensor;
}

/**
 * The teacher of {@link fusedLinearDistillationLoss}: dense logits `[..., V]` (the student's
 * leading shape), a top-K teacher, or a teacher head whose logits are never materialised
 * either. Teachers are constants: asking for their gradient is an error.
 */
export type LinearTeacher = tf.Tensor | SparseTeacher | LinearHead;

/** Options of {@link fusedLinearDistillationLoss}: those of `distillationLoss`, and three more. */
export interface FusedLinearDistillationLossConfig extends DistillationLossConfig {
  /**
   * Multiplies each computed head's logits before the soft cap and the temperature
   * (`logit_scale` of Cohere / MiniCPM heads). A finite number > 0; default 1.
   */
  logitScale?: number;
  /**
   * Gemma 2's final-logit soft cap: `cap · tanh(z / cap)` on each computed head's (scaled)
   * logits, before the temperature; −Infinity (a masked class) stays −Infinity. A finite
   * number > 0; default none.
   */
  softCap?: number;
  /**
   * The bytes the op may hold beyond its inputs and the gradients it returns; the rows per
   * chunk follow from it (docs/linear-head.md). Default {@link DEFAULT_LINEAR_MEMORY_BUDGET_BYTES}.
   */
  memoryBudgetBytes?: number;
}

/** The default memory budget: 256 MiB. */
export const DEFAULT_LINEAR_MEMORY_BUDGET_BYTES = 256 * 1024 * 1024;
