/**
 * The gradient of the fused op with a sparse (top-K) teacher. As for dense teachers
 * (gradient.ts): under a tape the forward kernel wrote the student's gradient at unit upstream
 * gradient, scaled here by dy (one dispatch, none when dy is tfjs' CPU-side implicit 1). The
 * components' gradients (returnComponents) are the backward kernel at α = 1 and α = 0. The
 * teacher's entries and the labels are constants: asking for their gradient is an error.
 */
import * as tf from '@tensorflow/tfjs-core';
import { isUnitOnCpu, isZeroOnCpu, total } from './gradient.js';
import {
  FUSED_DISTILLATION_LOSS_SCALE,
  FUSED_SPARSE_DISTILLATION_LOSS,
  FUSED_SPARSE_DISTILLATION_LOSS_GRAD,
  type DistillAttrs,
} from './names.js';

function constant(what: string): () => never {
  return () => {
    throw new Error(
      `distillationLoss: ${what} ${what === 'labels' ? 'are' : 'is'} a constant; no gradient flows into ` +
        (what === 'labels'
          ? 'them (compute them outside the tape)'
          : 'it (a top-K teacher is data, not a differentiable input; use dense teacher logits to differentiate the teacher)'),
    );
  };
}

export const fusedSparseDistillationGradConfig: tf.GradConfig = {
  kernelName: FUSED_SPARSE_DISTILLATION_LOSS,
  inputsToSave: ['labels', 'studentLogits', 'teacherIds', 'teacherLogProbs'],
  // rowStats, then the student's gradient when the forward kernel wrote it.
  outputsToSave: [false, true, true],
  gradFunc: (dys, saved, attrs) => {
    const all = (Array.isArray(dys) ? dys : [dys]) as tf.Tensor[];
    const dy = all[0]!;
    const [labels, studentLogits, teacherIds, teacherLogProbs, rowStats, written] =
      saved as tf.Tensor[];
    const a = attrs as unknown as DistillAttrs;
    const wrote = a.writeGradients !== 'none';
    const first = (out: tf.Tensor | tf.Tensor[]) => (Array.isArray(out) ? out[0]! : out);
    const backward = (upstream: tf.Tensor, alpha: number) =>
      first(
        tf.engine().runKernel(
          FUSED_SPARSE_DISTILLATION_LOSS_GRAD,
          {
            dy: upstream,
            labels: labels!,
            studentLogits: studentLogits!,
            teacherIds: teacherIds!,
            teacherLogProbs: teacherLogProbs!,
            rowStats: rowStats!,
          },
          { ...a, alpha } as unknown as tf.NamedAttrMap,
        ) as tf.Tensor | tf.Tensor[],
      );
    const lossGrad = (): tf.Tensor | undefined => {
      if (a.returnComponents === true && isZeroOnCpu(dy)) return undefined;
      if (!wrote) return backward(dy, a.alpha);
      if (isUnitOnCpu(dy)) return tf.clone(written!);
      return first(
        tf
          .engine()
          .runKernel(
            FUSED_DISTILLATION_LOSS_SCALE,
            { dy, studentGrad: written! },
            a as unknown as tf.NamedAttrMap,
          ) as tf.Tensor | tf.Tensor[],
      );
    };
    // hardLoss (α = 1) and softLoss (α = 0): after the gradients written, if any.
    const componentGrad = (upstream: tf.Tensor | undefined, alpha: number) =>
      upstream === undefined || isZeroOnCpu(upstream) ? undefined : backward(upstream, alpha);
    const firstComponent = wrote ? 3 : 2;
    return {
      labels: constant('labels'),
      teacherIds: constant('teacher.indices'),
      teacherLogProbs: constant('teacher.logProbs'),
      studentLogits: () =>
        a.returnComponents === true
          ? total(
              [
                lossGrad(),
                componentGrad(all[firstComponent], 1),
                componentGrad(all[firstComponent + 1], 0),
              ],
              studentLogits!,
            )
          : lossGrad()!,
    };
  },
};
