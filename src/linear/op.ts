/**
 * `fusedLinearDistillationLoss`: the distillation loss of a linear head, computed from the
 * head's inputs without ever holding its `[rows, V]` logits. See docs/linear-head.md.
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkConfigForLabels } from '../config.js';
import type { DistillationLossComponents } from '../composed.js';
import { isUnitOnCpu, isZeroOnCpu } from '../kernels/gradient.js';
import type { RowLosses } from '../op.js';
import {
  activeTape,
  maxStorageBufferBindingSize,
  runWithGradients,
  releaseDisposedBuffers,
  type LazyGradients,
} from '../tfjs-internals.js';
import { chunkGradient, chunkLosses, type ChunkLosses, type ChunkUpstream } from './chunk-loss.js';
import { planLinearChunks, type LinearGradients } from './chunks.js';
import { resolveLinearConfig, type ResolvedLinearConfig } from './config.js';
import { HeadGradients } from './head-gradients.js';
import {
  checkLinearInputs,
  sliceRows,
  toRows,
  type LinearShapes,
  type RowInputs,
} from './inputs.js';
import type { FusedLinearDistillationLossConfig, LinearHead, LinearTeacher } from './types.js';

const OP = 'fusedLinearDistillationLoss';

type ComponentsConfig = FusedLinearDistillationLossConfig & { returnComponents: true };
type LossOnlyConfig = FusedLinearDistillationLossConfig & { returnComponents?: false };

/** The bytes of a float32 tensor of `shape`. */
function bytesOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 4);
}

/**
 * On WebGPU every tensor the op binds whole must fit one storage binding: the head weights
 * (matMul binds them whole), and dense teacher logits or labels (sliced a chunk at a time).
 */
function checkBindings(
  labels: tf.Tensor,
  student: LinearHead,
  teacher: LinearTeacher,
  shapes: LinearShapes,
  limit: number,
): void {
  const whole: [string, tf.Tensor | undefined, string][] = [
    ['student.weight', student.weight, 'its gradient is one tensor of the same size'],
    ['labels', shapes.labelKind === 'dense' ? labels : undefined, 'pass int32 class indices'],
  ];
  if (shapes.teacherKind === 'head') {
    whole.push([
      'teacher.weight',
      (teacher as LinearHead).weight,
      'the teacher head is bound whole',
    ]);
  } else if (shapes.teacherKind === 'dense') {
    whole.push([
      'teacher',
      teacher as tf.Tensor,
      'pass the teacher as a head { hidden, weight, bias } or top-K, which are never materialised',
    ]);
  }
  for (const [name, t, hint] of whole) {
    if (t !== undefined && bytesOf(t.shape) > limit) {
      throw new RangeError(
        `${OP}: ${name} [${t.shape.join(', ')}] is ${bytesOf(t.shape)} bytes, more than this ` +
          `device's maxStorageBufferBindingSize (${limit}) (${hint})`,
      );
    }
  }
}

/** 1 / max(N, 1) for 'mean' (N: the rows not ignored), 1 otherwise. */
function reductionScale(
  labels: tf.Tensor,
  cfg: ResolvedLinearConfig,
  rows: number,
): tf.Tensor | number {
  if (cfg.loss.reduction !== 'mean') return 1;
  if (!cfg.loss.hasIgnoreIndex) return 1 / rows;
  return tf.tidy(() =>
    tf.div(1, tf.maximum(tf.sum(tf.cast(tf.notEqual(labels, cfg.loss.ignoreIndex), 'float32')), 1)),
  );
}

type OutputName = 'loss' | 'hardLoss' | 'softLoss';

function outputNames(cfg: ResolvedLinearConfig): OutputName[] {
  return cfg.loss.returnComponents ? ['loss', 'hardLoss', 'softLoss'] : ['loss'];
}

/**
 * The sum of a list of tensors, one add at a time: tf.addN binds every input at once, and a
 * long list exceeds the storage bindings a WebGPU shader may have.
 */
function sumOf(parts: tf.Tensor[]): tf.Tensor {
  return parts.reduce((total, part) => tf.add(total, part));
}

/** The op's outputs from every chunk's: summed and scaled, or per row in the leading shape. */
function joinOutputs(
  parts: ChunkLosses[],
  cfg: ResolvedLinearConfig,
  shapes: LinearShapes,
  scale: tf.Tensor | number,
): tf.Tensor[] {
  return outputNames(cfg).map((name) => {
    const pieces = parts.map((p) => p[name]!);
    if (cfg.loss.reduction === 'none') {
      return tf.reshape(pieces.length === 1 ? pieces[0]! : tf.concat(pieces, 0), [
        ...shapes.leadingShape,
      ]);
    }
    const total = sumOf(pieces);
    return scale === 1 ? total : tf.mul(total, scale);
  });
}

/** Every chunk's losses, without gradients ('sum' or 'none' per chunk). */
function forwardOnly(
  rows: RowInputs,
  cfg: ResolvedLinearConfig,
  shapes: LinearShapes,
  rowsPerChunk: number,
): tf.Tensor[] {
  const reduction = cfg.loss.reduction === 'none' ? 'none' : 'sum';
  const parts: ChunkLosses[] = [];
  for (let start = 0; start < shapes.rows; start += rowsPerChunk) {
    const count = Math.min(rowsPerChunk, shapes.rows - start);
    parts.push(
      tf.tidy(
        () =>
          chunkLosses(
            sliceRows(rows, start, count),
            rows.weight,
            rows.bias,
            cfg,
            reduction,
          ) as unknown as tf.TensorContainer,
      ) as unknown as ChunkLosses,
    );
    releaseDisposedBuffers();
  }
  return joinOutputs(parts, cfg, shapes, reductionScale(rows.labels, cfg, shapes.rows));
}

/**
 * Every chunk's ∂/∂z folded into the head's gradients; `upstreams` gives, for a chunk's first
 * row and row count, the outputs to differentiate and their upstream gradients.
 */
function headGradients(
  rows: RowInputs,
  cfg: ResolvedLinearConfig,
  shapes: LinearShapes,
  rowsPerChunk: number,
  hiddenShape: readonly number[],
  scale: tf.Tensor | number,
  upstreams: (start: number, count: number) => ChunkUpstream[],
  values?: tf.Tensor[],
): tf.Tensor[] {
  const reduction = cfg.loss.reduction === 'none' ? 'none' : 'sum';
  const sums = new HeadGradients(rows.weight, rows.bias !== undefined);
  for (let start = 0; start < shapes.rows; start += rowsPerChunk) {
    const count = Math.min(rowsPerChunk, shapes.rows - start);
    // The chunk's temporaries go with its tidy; the running sums must outlive it.
    const { hidden, dz, value } = tf.tidy(() => {
      const chunk = sliceRows(rows, start, count);
      const grad = chunkGradient(
        chunk,
        rows.weight,
        rows.bias,
        cfg,
        reduction,
        upstreams(start, count),
      );
      return { hidden: chunk.hidden, dz: grad.dz, value: grad.value };
    });
    sums.add(hidden, dz);
    tf.dispose([hidden, dz]);
    if (values) values.push(value);
    else value.dispose();
    releaseDisposedBuffers();
  }
  return sums.finish(hiddenShape, scale);
}

/** The upstream gradient's rows [start, start + count) ('none'), or the scalar itself. */
function upstreamRows(dy: tf.Tensor, start: number, count: number): tf.Tensor {
  return dy.rank === 0 ? dy : tf.slice(tf.reshape(dy, [-1]), [start], [count]);
}

function isUnit(dy: tf.Tensor): boolean {
  return tf.getBackend() === 'webgpu' ? isUnitOnCpu(dy) : false;
}

function isZero(dy: tf.Tensor): boolean {
  if (tf.getBackend() !== 'webgpu') return false;
  return isZeroOnCpu(dy);
}

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
  const bindingLimit = webgpu ? maxStorageBufferBindingSize() : Number.POSITIVE_INFINITY;
  if (webgpu) checkBindings(labels, student, teacher, shapes, bindingLimit);
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
  const rowsOf = () => toRows(labels, student, teacher, shapes);
  const shape = (outs: tf.Tensor[]) =>
    cfg.loss.returnComponents
      ? { loss: outs[0]!, hardLoss: outs[1]!, softLoss: outs[2]! }
      : outs[0]!;
  if (!taping) {
    return shape(tf.tidy(() => forwardOnly(rowsOf(), cfg, shapes, plan.rowsPerChunk)));
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
  const refuse = (name: string) => () => {
    throw new Error(
      `${OP}: ${name} is a constant; no gradient flows into it (labels and teachers are ` +
        'inputs of the loss, not parameters: compute them outside the tape)',
    );
  };
  const gradientMap = (grads: tf.Tensor[]): LazyGradients => {
    const map: LazyGradients = {};
    for (const name of Object.keys(inputs)) map[name] = refuse(name);
    studentNames.forEach((name, i) => (map[name] = () => grads[i]!));
    return map;
  };
  const outs = runWithGradients({
    inputs,
    forward: (save) => {
      const rows = rowsOf();
      const scale = reductionScale(rows.labels, cfg, shapes.rows);
      if (!eager) return forwardOnly(rows, cfg, shapes, plan.rowsPerChunk);
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
        return gradientMap(saved.map((g) => (unit ? tf.clone(g) : tf.mul(g, dy))));
      }
      const rows = rowsOf();
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
      return gradientMap(grads);
    },
  });
  return shape(outs);
}
