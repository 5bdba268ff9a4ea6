/**
 * `distillationLoss` with a sparse (top-K) teacher (src/sparse-teacher.ts): input checks, then
 * the fused kernel where it is registered (webgpu, shaders/distill-sparse.wgsl) and the exact
 * stock-op composition elsewhere (src/composed-sparse.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkConfigForLabels, resolveConfig, type DistillationLossConfig } from './config.js';
import { composedSparseDistillationLoss } from './composed-sparse.js';
import type { DistillationLossComponents } from './composed.js';
import { FUSED_SPARSE_DISTILLATION_LOSS, type DistillAttrs } from './kernels/names.js';
import { runFusedForward } from './kernels/run.js';
import { checkDeviceLimits } from './limits.js';
import { checkSparseTeacher, type SparseTeacher } from './sparse-teacher.js';
import { activeTape, maxStorageBufferBindingSize } from './tfjs-internals.js';
import { checkInputs, MAX_CLASSES } from './validate.js';

/** The op's checks for a sparse teacher, then the fused kernel or the composition. */
export function sparseDistillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacher: SparseTeacher,
  config: DistillationLossConfig | undefined,
): tf.Tensor | DistillationLossComponents {
  const op = 'distillationLoss';
  const shapes = checkInputs(labels, studentLogits, null, op, MAX_CLASSES);
  const { topK } = checkSparseTeacher(teacher, studentLogits.shape, op);
  const cfg = resolveConfig(config, op);
  checkConfigForLabels(cfg, shapes.labelKind, op);
  if (cfg.divergence !== 'forward-kl') {
    throw new Error(
      `${op}: a top-K teacher supports divergence 'forward-kl' only (KL of the teacher's listed ` +
        `support against the student's full softmax), got '${cfg.divergence}'`,
    );
  }
  if (!tf.getKernel(FUSED_SPARSE_DISTILLATION_LOSS, tf.getBackend())) {
    return composedSparseDistillationLoss(labels, studentLogits, teacher, shapes, cfg);
  }
  checkDeviceLimits(shapes, op);
  // The entries are bound whole (per-row arrays): one binding must hold [rows, K].
  const entryBytes = shapes.batch * topK * 4;
  const limit = maxStorageBufferBindingSize();
  if (entryBytes > limit) {
    throw new RangeError(
      `${op}: teacher.indices [${teacher.indices.shape.join(', ')}] needs ${entryBytes} bytes, ` +
        `more than this device's maxStorageBufferBindingSize (${limit}); split the rows into ` +
        `calls of at most ${Math.floor(limit / (topK * 4))}`,
    );
  }
  const attrs: DistillAttrs = {
    ...cfg,
    writeGradients: activeTape() === null ? 'none' : 'student',
    gradients: 'student',
  };
  return runFusedForward(
    FUSED_SPARSE_DISTILLATION_LOSS,
    { labels, studentLogits, teacherIds: teacher.indices, teacherLogProbs: teacher.logProbs },
    attrs,
  );
}
