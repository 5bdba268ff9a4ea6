/**
 * The gradient of the fused op. Under a tape the forward kernel already wrote the gradients
 * at unit upstream gradient (Liger-Kernel's scheme); here they are scaled by dy, or handed over
 * as they are when dy is known to be 1 without reading the GPU: tfjs creates the implicit
 * upstream gradient of a loss as a CPU-side tensor of ones. A gradient the forward pass did
 * not write (the teacher's, when its logits were not on the tape) is recomputed by the
 * backward kernel from the saved row statistics.
 */
import * as tf from '@tensorflow/tfjs-core';
import { cpuValues, webgpuInternals } from '../tfjs_internals.js';
import {
  FUSED_DISTILLATION_LOSS,
  FUSED_DISTILLATION_LOSS_GRAD,
  FUSED_DISTILLATION_LOSS_SCALE,
  type DistillAttrs,
} from './names.js';

/** True when every entry of dy is 1 and its values still live on the CPU (no GPU read). */
function isUnitOnCpu(dy: tf.Tensor): boolean {
  const values = cpuValues(webgpuInternals(tf.backend()), dy.dataId);
  if (!values || values.length !== dy.size) return false;
  for (let i = 0; i < values.length; i++) if (values[i] !== 1) return false;
  return true;
}

/**
 * dy · each written gradient, in one dispatch whether one or two were written (or none when dy
 * is a CPU-side 1). Returns tensors that the caller owns.
 */
function scaleWritten(written: tf.Tensor[], dy: tf.Tensor, attrs: DistillAttrs): tf.Tensor[] {
  if (isUnitOnCpu(dy)) return written.map((g) => tf.clone(g));
  const inputs: Record<string, tf.Tensor> = { dy, studentGrad: written[0]! };
  if (written[1]) inputs.teacherGrad = written[1];
  const out = tf
    .engine()
    .runKernel(FUSED_DISTILLATION_LOSS_SCALE, inputs, attrs as unknown as tf.NamedAttrMap);
  return Array.isArray(out) ? out : [out as tf.Tensor];
}

function recompute(
  inputs: Record<string, tf.Tensor>,
  attrs: DistillAttrs,
  gradients: DistillAttrs['gradients'],
): tf.Tensor {
  const out = tf.engine().runKernel(FUSED_DISTILLATION_LOSS_GRAD, inputs, {
    ...attrs,
    gradients,
  } as unknown as tf.NamedAttrMap);
  return Array.isArray(out) ? out[0]! : (out as tf.Tensor);
}

export const fusedDistillationGradConfig: tf.GradConfig = {
  kernelName: FUSED_DISTILLATION_LOSS,
  inputsToSave: ['labels', 'studentLogits', 'teacherLogits'],
  // rowStats, then whichever gradients the forward kernel wrote.
  outputsToSave: [false, true, true, true],
  gradFunc: (dys, saved, attrs) => {
    const dy = (Array.isArray(dys) ? dys[0] : dys) as tf.Tensor;
    const [labels, studentLogits, teacherLogits, rowStats, ...written] = saved as tf.Tensor[];
    const a = attrs as unknown as DistillAttrs;
    // Scaled now, once for both: closures run one by one, and an unused result is disposed
    // with the backward pass's scope.
    const [studentGrad, teacherGrad] =
      a.writeGradients === 'none'
        ? []
        : scaleWritten(written.slice(0, a.writeGradients === 'both' ? 2 : 1), dy, a);
    const inputs = () => ({
      dy,
      labels: labels!,
      studentLogits: studentLogits!,
      teacherLogits: teacherLogits!,
      rowStats: rowStats!,
    });
    return {
      labels: () => {
        throw new Error(
          'distillationLoss: labels are constants; no gradient flows into them (compute them outside the tape, e.g. inside tf.tidy before tf.variableGrads)',
        );
      },
      studentLogits: () => studentGrad ?? recompute(inputs(), a, 'student'),
      teacherLogits: () => teacherGrad ?? recompute(inputs(), a, 'teacher'),
    };
  },
};
