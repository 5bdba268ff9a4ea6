/**
 * The gradient of the fused op. Under a tape the forward kernel already wrote the gradients
 * at unit upstream gradient (Liger-Kernel's scheme); here they are scaled by dy, or handed over
 * as they are when dy is known to be 1 without reading the GPU: tfjs creates the implicit
 * upstream gradient of a loss as a CPU-side tensor of ones. A gradient the forward pass did
 * not write (the teacher's, when its logits were not on the tape) is recomputed by the
 * backward kernel from the saved row statistics.
 *
 * With returnComponents the forward kernel has two more outputs, hardLoss and softLoss. Their
 * gradients are the backward kernel at α = 1 (hardLoss) and α = 0 (softLoss), the same formulas
 * that the composition and the reference use, scaled by their own upstream gradients; tfjs hands
 * a component that nothing differentiated a CPU-side zero tensor, and those (and a zero dy of the
 * loss itself) dispatch nothing. Without returnComponents nothing here changes.
 */
import * as tf from '@tensorflow/tfjs-core';
import { cpuValues, webgpuInternals } from '../tfjs-internals.js';
import {
  FUSED_DISTILLATION_LOSS,
  FUSED_DISTILLATION_LOSS_GRAD,
  FUSED_DISTILLATION_LOSS_SCALE,
  type DistillAttrs,
} from './names.js';

/** True when every entry of dy is 1 and its values still live on the CPU (no GPU read). */
export function isUnitOnCpu(dy: tf.Tensor): boolean {
  const values = cpuValues(webgpuInternals(tf.backend()), dy.dataId);
  if (!values || values.length !== dy.size) return false;
  for (let i = 0; i < values.length; i++) if (values[i] !== 1) return false;
  return true;
}

/** True when every entry of dy is 0 and its values still live on the CPU (no GPU read). */
export function isZeroOnCpu(dy: tf.Tensor): boolean {
  const values = cpuValues(webgpuInternals(tf.backend()), dy.dataId);
  if (!values || values.length !== dy.size) return false;
  for (let i = 0; i < values.length; i++) if (values[i] !== 0) return false;
  return true;
}

/** The sum of a gradient's contributions (a tensor the caller owns), or zeros when none. */
export function total(parts: (tf.Tensor | undefined)[], like: tf.Tensor): tf.Tensor {
  const present = parts.filter((p): p is tf.Tensor => p !== undefined);
  if (present.length === 0) return tf.zerosLike(like);
  return present.length === 1 ? present[0]! : tf.addN(present);
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

/** Both gradients from one backward dispatch, [student, teacher]. */
function recomputeBoth(inputs: Record<string, tf.Tensor>, attrs: DistillAttrs): tf.Tensor[] {
  const out = tf.engine().runKernel(FUSED_DISTILLATION_LOSS_GRAD, inputs, {
    ...attrs,
    gradients: 'both',
  } as unknown as tf.NamedAttrMap);
  return out as tf.Tensor[];
}

export const fusedDistillationGradConfig: tf.GradConfig = {
  kernelName: FUSED_DISTILLATION_LOSS,
  inputsToSave: ['labels', 'studentLogits', 'teacherLogits'],
  // rowStats, then whichever gradients the forward kernel wrote.
  outputsToSave: [false, true, true, true],
  gradFunc: (dys, saved, attrs) => {
    const all = (Array.isArray(dys) ? dys : [dys]) as tf.Tensor[];
    const dy = all[0]!;
    const [labels, studentLogits, teacherLogits, rowStats, ...written] = saved as tf.Tensor[];
    const a = attrs as unknown as DistillAttrs;
    const writtenCount = a.writeGradients === 'none' ? 0 : a.writeGradients === 'both' ? 2 : 1;
    const inputs = (upstream: tf.Tensor) => ({
      dy: upstream,
      labels: labels!,
      studentLogits: studentLogits!,
      teacherLogits: teacherLogits!,
      rowStats: rowStats!,
    });
    const labelsGrad = () => {
      throw new Error(
        'distillationLoss: labels are constants; no gradient flows into them (compute them outside the tape, e.g. inside tf.tidy before tf.variableGrads)',
      );
    };
    // The loss's own gradient, exactly as without components; skipped only when the loss is a
    // returned component's sibling that nothing differentiated (a CPU-side zero dy).
    const lossUsed = a.returnComponents !== true || !isZeroOnCpu(dy);
    // Scaled now, once for both: closures run one by one, and an unused result is disposed
    // with the backward pass's scope.
    const [studentGrad, teacherGrad] =
      a.writeGradients === 'none' || !lossUsed
        ? []
        : scaleWritten(written.slice(0, writtenCount), dy, a);
    const lossStudent = () =>
      lossUsed ? (studentGrad ?? recompute(inputs(dy), a, 'student')) : undefined;
    const lossTeacher = () =>
      lossUsed ? (teacherGrad ?? recompute(inputs(dy), a, 'teacher')) : undefined;
    if (a.returnComponents !== true) {
      return {
        labels: labelsGrad,
        studentLogits: () => lossStudent()!,
        teacherLogits: () => lossTeacher()!,
      };
    }
    // hardLoss (α = 1) and softLoss (α = 0): one backward dispatch each that is used, writing
    // the teacher's gradient too when the forward pass expected it to be asked for.
    const both = a.writeGradients === 'both';
    const component = (upstream: tf.Tensor | undefined, alpha: number) => {
      if (upstream === undefined || isZeroOnCpu(upstream)) return undefined;
      const attrsAt: DistillAttrs = { ...a, alpha };
      const eager = both ? recomputeBoth(inputs(upstream), attrsAt) : undefined;
      return {
        student: () => eager?.[0] ?? recompute(inputs(upstream), attrsAt, 'student'),
        teacher: () => eager?.[1] ?? recompute(inputs(upstream), attrsAt, 'teacher'),
      };
    };
    const parts = [component(all[2 + writtenCount], 1), component(all[3 + writtenCount], 0)].filter(
      (p) => p !== undefined,
    );
    return {
      labels: labelsGrad,
      studentLogits: () => total([lossStudent(), ...parts.map((p) => p.student())], studentLogits!),
      teacherLogits: () => total([lossTeacher(), ...parts.map((p) => p.teacher())], teacherLogits!),
    };
  },
};
