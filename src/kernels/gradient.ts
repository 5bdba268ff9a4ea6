/**
 * The gradient of the fused op. The forward kernel saved per-row statistics (maxima and
 * log-sums); the backward kernel turns them, the inputs and dy into the gradients in one
 * dispatch. Which gradients: the student's always; the teacher's in the same dispatch when
 * the forward pass saw the teacher's logits on the tape, else lazily, only if asked.
 */
import * as tf from '@tensorflow/tfjs-core';
import { FUSED_DISTILLATION_LOSS, FUSED_DISTILLATION_LOSS_GRAD, type DistillAttrs } from './names.js';

function runGrad(
  inputs: Record<string, tf.Tensor>,
  attrs: DistillAttrs,
  gradients: DistillAttrs['gradients'],
): tf.Tensor[] {
  const out = tf.engine().runKernel(FUSED_DISTILLATION_LOSS_GRAD, inputs, {
    ...attrs,
    gradients,
  } as unknown as tf.NamedAttrMap);
  return Array.isArray(out) ? out : [out as tf.Tensor];
}

export const fusedDistillationGradConfig: tf.GradConfig = {
  kernelName: FUSED_DISTILLATION_LOSS,
  inputsToSave: ['labels', 'studentLogits', 'teacherLogits'],
  outputsToSave: [false, true],
  gradFunc: (dys, saved, attrs) => {
    const dy = (Array.isArray(dys) ? dys[0] : dys) as tf.Tensor;
    const [labels, studentLogits, teacherLogits, rowStats] = saved as tf.Tensor[];
    const a = attrs as unknown as DistillAttrs;
    const inputs = { dy, labels: labels!, studentLogits: studentLogits!, teacherLogits: teacherLogits!, rowStats: rowStats! };
    // Run now, outside the per-input closures, so that one dispatch serves both; an unused
    // teacher gradient is disposed with the backward pass's scope.
    const both = a.teacherGradHint ? runGrad(inputs, a, 'both') : null;
    return {
      labels: () => {
        throw new Error(
          'distillationLoss: labels are constants; no gradient flows into them (detach them with tf.stopGradient or compute them outside the tape)',
        );
      },
      studentLogits: () => (both ? both[0]! : runGrad(inputs, a, 'student')[0]!),
      teacherLogits: () => (both ? both[1]! : runGrad(inputs, a, 'teacher')[0]!),
    };
  },
};
