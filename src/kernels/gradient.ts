/**
 * The gradient of the fused op. Under a tape the forward kernel already wrote the gradients
 * at unit upstream gradient (Liger-Kernel's scheme); here they are scaled by dy, or handed over
 * as they are when dy is known to be 1 without reading the GPU: tfjs creates the implicit
 * upstream gradient of a loss as a CPU-side tensor of ones. A gradient the forward pass did
 * not write (the teacher's, when its logits were not on the tape) is recomputed by the
 * backward kernel from the saved row statistics.
 */
import * as tf from '@tensorflow/tfjs-core';
import { FUSED_DISTILLATION_LOSS, FUSED_DISTILLATION_LOSS_GRAD, type DistillAttrs } from './names.js';

/** True when every entry of dy is 1 and its values still live on the CPU (no GPU read). */
function isUnitOnCpu(dy: tf.Tensor): boolean {
  const backend = tf.backend() as unknown as {
    tensorMap?: { get(dataId: object): { values?: ArrayLike<number> | null } | undefined };
  };
  const values = backend.tensorMap?.get(dy.dataId)?.values;
  if (!values || values.length !== dy.size) return false;
  for (let i = 0; i < values.length; i++) if (values[i] !== 1) return false;
  return true;
}

/** dy · g, with dy a scalar or one entry per row. */
function scale(g: tf.Tensor, dy: tf.Tensor): tf.Tensor {
  if (isUnitOnCpu(dy)) return tf.clone(g);
  return dy.rank === 0 ? tf.mul(g, dy) : tf.mul(g, tf.reshape(dy, [g.shape[0]!, 1]));
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
    const studentGrad = a.writeGradients !== 'none' ? written[0] : undefined;
    const teacherGrad = a.writeGradients === 'both' ? written[1] : undefined;
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
          'distillationLoss: labels are constants; no gradient flows into them (compute them outside the tape or wrap them in tf.stopGradient)',
        );
      },
      studentLogits: () =>
        studentGrad ? scale(studentGrad, dy) : recompute(inputs(), a, 'student'),
      teacherLogits: () =>
        teacherGrad ? scale(teacherGrad, dy) : recompute(inputs(), a, 'teacher'),
    };
  },
};
