/** Kernel names and attributes of the fused op, shared by the op, its gradient and backends. */
import type { ResolvedConfig } from '../config.js';

/**
 * Forward: inputs {labels, studentLogits, teacherLogits}; outputs [value, rowStats [B, 12]]
 * followed, when `writeGradients` asks, by the student's and the teacher's gradients at unit
 * upstream gradient (`[B, C]` each), then, when `returnComponents`, by hardLoss and softLoss
 * (each shaped like value).
 */
export const FUSED_DISTILLATION_LOSS = 'FusedDistillationLoss';
/** Backward: inputs {dy, labels, studentLogits, teacherLogits, rowStats}; outputs the gradients asked for. */
export const FUSED_DISTILLATION_LOSS_GRAD = 'FusedDistillationLossGrad';

/** Scale: inputs {dy, studentGrad, teacherGrad?}; outputs dy · each gradient given. */
export const FUSED_DISTILLATION_LOSS_SCALE = 'FusedDistillationLossScale';

/**
 * Floats of row statistics per row: the f32 fields of `struct StoredRowStats` in
 * shaders/distill-common.wgsl (test/row-stats-layout.test.ts checks the two agree).
 */
export const ROW_STATS_WIDTH = 12;

/**
 * Attributes of the kernels (a flat record, as tfjs kernel attributes must be): the resolved
 * config, plus which gradients to write.
 */
export interface DistillAttrs extends ResolvedConfig {
  /**
   * Forward: which gradients to write alongside the loss. 'none' without a tape; 'student'
   * under a tape; 'both' when the teacher's logits are on the tape too.
   */
  writeGradients: 'none' | 'student' | 'both';
  /** Backward: which gradients to write. */
  gradients: 'student' | 'teacher' | 'both';
}

/**
 * Forward, sparse (top-K) teacher: inputs {labels, studentLogits, teacherIds, teacherLogProbs};
 * outputs [value, rowStats [B, 12]], then the student's gradient at unit upstream gradient when
 * `writeGradients` is 'student', then hardLoss and softLoss when `returnComponents`.
 */
export const FUSED_SPARSE_DISTILLATION_LOSS = 'FusedSparseDistillationLoss';
/**
 * Backward, sparse teacher: inputs {dy, labels, studentLogits, teacherIds, teacherLogProbs,
 * rowStats}; output the student's gradient (the teacher's entries are constants).
 */
export const FUSED_SPARSE_DISTILLATION_LOSS_GRAD = 'FusedSparseDistillationLossGrad';
