/**
 * `fusedLinearDistillationLoss`: the distillation loss of a linear head, computed from the
 * head's inputs without ever holding its `[rows, V]` logits. See docs/linear-head.md.
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkConfigForLabels } from '../config.js';
import type { DistillationLossComponents } from '../composed.js';
import { effectiveBindingLimit } from '../kernels/plan.js';
import type { RowLosses } from '../op.js';
import {
  activeTape,
  maxStorageBufferBindingSize,
  runWithGradients,
  type LazyGradients,
} from '../tfjs-internals.js';
import {
  forwardOnly,
  headGradients,
  isUnit,
  isZero,
  outputNames,
  reductionScale,
  sumOf,
  upstreamRows,
} from './chunk-loop.js';
import { planLinearChunks, type LinearGradients } from './chunks.js';
import { resolveLinearConfig } from './config.js';
import {
  argsFromTensors,
  argTensors,
  checkLinearInputs,
  toRows,
  type LinearArgs,
} from './inputs.js';
import { checkBindings } from './limits.js';
import type { FusedLinearDistillationLossConfig, LinearHead, LinearTeacher } from './types.js';

const OP = 'fusedLinearDistillationLoss';

type ComponentsConfig = FusedLinearDistillationLossConfig & { returnComponents: true };
type LossOnlyConfig = FusedLinearDistillationLossConfig & { returnComponents?: false };

/**
 * The distillation loss of a linear head (and, optionally, a teacher head), fused with the
 * head: the logits `z' = softCap(logitScale · (hidden · weight + bias))` are computed a chunk of
 * rows at a time, consumed by `distillationLoss` and dropped; under a tape the same pass adds
 * each chunk's share of the gradients of hidden, weight and bias (Liger-Kernel's scheme), so the
 * backward pass is a scaling by the upstream gradient. With `reduction: 'none'` or
 * `returnComponents`, the backward pass recomputes each chunk with its upstream gradients.
 *
 * @param labels int32 class indices in the hidden states' leading shape, or float32 one-hot /
 *   soft labels `[..., V]`; constants.
 * @param student `{ hidden [..., H], weight [H, V], bias? [V] }`, float32; differentiable.
 * @param teacher dense logits `[..., V]`, a top-K teacher, or a teacher head
 *   `{ hidden [..., Ht], weight [Ht, V], bias? [V] }`; constants.
 * @param config `distillationLoss`'s options, and `logitScale`, `softCap`, `memoryBudgetBytes`.
 */
export function fusedLinearDistillationLoss(
  labels: tf.Tensor,
  student: LinearHead,
  teacher: LinearTeacher,
  config: ComponentsConfig & { reduction?: 'mean' | 'sum' },
): DistillationLossComponents<tf.Scalar>;
export function fusedLinearDistillationLoss<H extends tf.Tensor>(
  labels: tf.Tensor,
  student: LinearHead<H>,
  teacher: LinearTeacher,
  config: ComponentsConfig & { reduction: 'none' },
): DistillationLossComponents<RowLosses<H>>;
export function fusedLinearDistillationLoss(
  labels: tf.Tensor,
  student: LinearHead,
  teacher: LinearTeacher,
  config: ComponentsConfig,
): DistillationLossComponents;
export function fusedLinearDistillationLoss(
  labels: tf.Tensor,
  student: LinearHead,
  teacher: LinearTeacher,
  config?: LossOnlyConfig & { reduction?: 'mean' | 'sum' },
): tf.Scalar;
export function fusedLinearDistillationLoss<H extends tf.Tensor>(
  labels: tf.Tensor,
  student: LinearHead<H>,
  teacher: LinearTeacher,
  config: LossOnlyConfig & { reduction: 'none' },
): RowLosses<H>;
export function fusedLinearDistillationLoss(
  labels: tf.Tensor,
  student: LinearHead,
  teacher: LinearTeacher,
  config?: LossOnlyConfig,
): tf.Tensor;
export function fusedLinearDistillationLoss(
  labels: tf.Tensor,
  student: LinearHead,
  teacher: LinearTeacher,
  config?: FusedLinearDistillationLossConfig,
): tf.Tensor | DistillationLossComponents;
export function fusedLinearDistillationLoss(
  labels: tf.Tensor,
  student: LinearHead,
  teacher: LinearTeacher,
  config?: FusedLinearDistillationLossConfig,
): tf.Tensor | DistillationLossComponents {
  const shapes = checkLinearInputs(labels, student, teacher, OP);
  const cfg = resolveLinearConfig(config, OP);
  checkConfigForLabels(cfg.loss, shapes.labelKind, OP);
  if (shapes.teacherKind === 'sparse' && cfg.loss.divergence !== 'forward-kl') {
    throw new Error(
      `${OP}: a top-K teacher supports divergence 'forward-kl' only, got '${cfg.loss.divergence}'`,
    );
  }
  const webgpu = tf.getBackend() === 'webgpu';
  const bindingLimit = webgpu
    ? effectiveBindingLimit(maxStorageBufferBindingSize())
    : Number.POSITIVE_INFINITY;
  if (webgpu) checkBindings(labels, student, teacher, shapes, bindingLimit, OP);
  const taping = activeTape() !== null;
  // Gradients in the forward pass when one scalar upstream gradient scales them all.
  const eager = cfg.loss.reduction !== 'none' && !cfg.loss.returnComponents;
  const gradients: LinearGradients = !taping
    ? 'none'
    : eager
      ? 'eager'
      : cfg.loss.returnComponents
        ? 'recompute-components'
        : 'recompute';
  const plan = planLinearChunks(
    shapes,
    cfg.transform,
    gradients,
    cfg.memoryBudgetBytes,
    bindingLimit,
    OP,
  );
  const args: LinearArgs = { labels, student, teacher };
  const rowsOf = (a: LinearArgs) => toRows(a.labels, a.student, a.teacher, shapes);
  const shape = (outs: tf.Tensor[]) =>
    cfg.loss.returnComponents
      ? { loss: outs[0]!, hardLoss: outs[1]!, softLoss: outs[2]! }
      : outs[0]!;
  if (!taping) {
    return shape(tf.tidy(() => forwardOnly(rowsOf(args), cfg, shapes, plan.rowsPerChunk)));
  }

  // Under a tape: one node whose inputs are everything a gradient could be asked for.
  const inputs: tf.NamedTensorMap = { hidden: student.hidden, weight: student.weight, labels };
  if (student.bias) inputs.bias = student.bias;
  if (shapes.teacherKind === 'dense') inputs.teacher = teacher as tf.Tensor;
  else if (shapes.teacherKind === 'head') {
    const head = teacher as LinearHead;
    inputs.teacherHidden = head.hidden;
    inputs.teacherWeight = head.weight;
    if (head.bias) inputs.teacherBias = head.bias;
  } else {
    inputs.teacherLogProbs = (teacher as { logProbs: tf.Tensor }).logProbs;
  }
  const studentNames = ['hidden', 'weight', ...(student.bias ? ['bias'] : [])];
  // A refused gradient throws out of tfjs' backward pass, which then never disposes what the
  // node saved: dispose it here first.
  const refuse = (name: string, saved: tf.Tensor[]) => () => {
    tf.dispose(saved);
    throw new Error(
      `${OP}: ${name} is a constant; no gradient flows into it (labels and teachers are ` +
        'inputs of the loss, not parameters: compute them outside the tape)',
    );
  };
  const gradientMap = (grads: tf.Tensor[], saved: tf.Tensor[]): LazyGradients => {
    const map: LazyGradients = {};
    for (const name of Object.keys(inputs)) map[name] = refuse(name, saved);
    studentNames.forEach((name, i) => (map[name] = () => grads[i]!));
    return map;
  };
  const outs = runWithGradients({
    inputs,
    forward: (save) => {
      const rows = rowsOf(args);
      const scale = reductionScale(rows.labels, cfg, shapes.rows);
      if (!eager) {
        // The backward recomputes from the inputs, which tfjs may dispose before it runs (those
        // made inside the differentiated function): saved, they are kept (as clones, no copy).
        save(argTensors(args));
        return forwardOnly(rows, cfg, shapes, plan.rowsPerChunk);
      }
      const values: tf.Tensor[] = [];
      const grads = headGradients(
        rows,
        cfg,
        shapes,
        plan.rowsPerChunk,
        student.hidden.shape,
        scale,
        () => [{ output: 'loss' }],
        values,
      );
      save(grads);
      const total = sumOf(values);
      return [scale === 1 ? total : tf.mul(total, scale)];
    },
    backward: (dys, saved) => {
      const dy = dys[0]!;
      if (eager) {
        const unit = isUnit(dy);
        return gradientMap(
          saved.map((g) => (unit ? tf.clone(g) : tf.mul(g, dy))),
          saved,
        );
      }
      const rows = rowsOf(argsFromTensors(saved, args));
      const scale = reductionScale(rows.labels, cfg, shapes.rows);
      const used = outputNames(cfg)
        .map((name, i) => ({ name, dy: dys[i]! }))
        .filter((o) => !isZero(o.dy));
      const grads = headGradients(
        rows,
        cfg,
        shapes,
        plan.rowsPerChunk,
        student.hidden.shape,
        1,
        (start, count) =>
          used.map(({ name, dy: upstream }) => {
            // 'mean' / 'sum': the chunk's summed output, scaled like the op's; 'none': its rows.
            const rowsDy = upstreamRows(upstream, start, count);
            return { output: name, dy: scale === 1 ? rowsDy : tf.mul(rowsDy, scale) };
          }),
      );
      return gradientMap(grads, saved);
    },
  });
  return shape(outs);
}
