/**
 * The fused distillation kernels for a sparse (top-K) teacher on tfjs' WebGPU backend:
 * shaders/distill-sparse.wgsl for the forward pass (and, BACKWARD, the gradient at an upstream
 * dy), the dense kernels' reduction and components kernels for what follows the row statistics
 * (the sparse kernel writes them in the same layout).
 */
import type { KernelBackend, KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import sparseWgsl from '../../../shaders/distill-sparse.wgsl?raw';
import {
  FUSED_SPARSE_DISTILLATION_LOSS,
  FUSED_SPARSE_DISTILLATION_LOSS_GRAD,
  ROW_STATS_WIDTH,
  type DistillAttrs,
} from '../names.js';
import type { DistillPlan, RowChunk } from '../plan.js';
import {
  dispatchKernel,
  makeOutput,
  type Binding,
  type ByteRange,
  type KernelSource,
} from './dispatch.js';
import {
  componentsFrom,
  disposingOnFailure,
  floatInputs,
  gradientBinding,
  gridRowsFor,
  params,
  planFor,
  problemOf,
  rangeOf,
  reduceLosses,
  source,
  withRows,
  type Problem,
} from './distill-webgpu.js';

/** Bindings 1–4 of the sparse kernel: the teacher's entries, then the labels. */
function entryAndLabelBindings(
  ids: TensorInfo,
  logProbs: TensorInfo,
  labels: TensorInfo,
  range: ByteRange | undefined,
): Binding[] {
  const dense = labels.dtype === 'float32';
  return [
    { kind: 'input', name: 'teacher.indices', tensor: ids, reads: 'i32' },
    { kind: 'input', name: 'teacher.logProbs', tensor: logProbs, reads: 'f32' },
    dense
      ? { kind: 'placeholder', access: 'read' }
      : { kind: 'input', name: 'labels', tensor: labels, reads: 'i32' },
    dense
      ? { kind: 'input', name: 'labels', tensor: labels, reads: 'f32', ...(range ? { range } : {}) }
      : { kind: 'placeholder', access: 'read' },
  ];
}

function sparseKernel(
  backend: KernelBackend,
  problem: Problem,
  a: DistillAttrs,
  topK: number,
  labels: TensorInfo,
  mode: { backward: boolean; writeStudent: boolean },
): { kernel: KernelSource; plan: DistillPlan; batchInWorkgroup: boolean } {
  const plan = planFor(backend, problem, mode.backward ? 'none' : a.reduction);
  const denseLabels = labels.dtype === 'float32';
  return {
    kernel: {
      name: `distill_sparse_x${plan.chunk}`,
      code: source(withRows(sparseWgsl), plan.chunk),
      constants: {
        WORKGROUP_SIZE: plan.workgroupSize,
        TILE_COLS: plan.tileCols,
        TOP_K: topK,
        DENSE_LABELS: denseLabels,
        BATCH_IN_WORKGROUP: plan.batchInWorkgroup && !mode.backward,
        WRITE_STUDENT_GRAD: mode.writeStudent,
        IGNORE_INDEX: a.hasIgnoreIndex === true && !denseLabels,
        BACKWARD: mode.backward,
      },
    },
    plan,
    batchInWorkgroup: plan.batchInWorkgroup && !mode.backward,
  };
}

/** How one sparse kernel is dispatched over the row chunks. */
interface SparseDispatch {
  readonly kernel: KernelSource;
  readonly plan: DistillPlan;
  readonly problem: Problem;
  readonly attrs: DistillAttrs;
  /** The kernel counts the rows not ignored itself (the grid is capped, gridRowsFor). */
  readonly counting: boolean;
  readonly dyPerRow: boolean;
  /** One workgroup visits every row (BATCH_IN_WORKGROUP). */
  readonly oneWorkgroup: boolean;
}

/**
 * One dispatch per row chunk: the student's and dense labels' rows of the chunk, the entries
 * and per-row arrays whole, bindings 6 and 7 as given (losses and statistics written forward;
 * dy and statistics read backward), the gradient's rows of the chunk.
 */
function dispatchChunks(
  backend: KernelBackend,
  d: SparseDispatch,
  inputs: { student: TensorInfo; ids: TensorInfo; logProbs: TensorInfo; labels: TensorInfo },
  perRow: [Binding, Binding],
  grad: TensorInfo | undefined,
): void {
  for (const chunk of d.problem.chunks) {
    const range = rangeOf(d.problem, chunk);
    const gridRows = gridRowsFor(d.plan, chunk.rows, d.counting);
    dispatchKernel(
      backend,
      d.kernel,
      [
        {
          kind: 'input',
          name: 'studentLogits',
          tensor: inputs.student,
          reads: 'f32',
          ...(range ? { range } : {}),
        },
        ...entryAndLabelBindings(inputs.ids, inputs.logProbs, inputs.labels, range),
        {
          kind: 'uniform',
          fields: params(d.attrs, d.problem, chunk, d.plan.chunk, d.dyPerRow, gridRows),
        },
        ...perRow,
        gradientBinding('gradStudent', grad, range),
      ],
      d.oneWorkgroup ? [1, 1, 1] : [1, gridRows, 1],
    );
  }
}

/** The whole batch as one "chunk" for the per-row kernels (reduction, components). */
function wholeBatch(problem: Problem): RowChunk {
  return problem.chunks.length === 1
    ? problem.chunks[0]!
    : { firstRow: 0, rows: problem.batch, offsetBytes: 0, sizeBytes: 0, headElements: 0 };
}

const forwardKernel: KernelFunc = ({ inputs, backend: b, attrs }) => {
  const backend = b as KernelBackend;
  const {
    labels: rawLabels,
    studentLogits: rawStudent,
    teacherIds,
    teacherLogProbs,
  } = inputs as Record<string, TensorInfo>;
  const a = attrs as unknown as DistillAttrs;
  const problem = problemOf(backend, rawStudent!);
  const topK = teacherIds!.shape[teacherIds!.shape.length - 1]!;
  const writeStudent = a.writeGradients !== 'none';
  const { kernel, plan, batchInWorkgroup } = sparseKernel(backend, problem, a, topK, rawLabels!, {
    backward: false,
    writeStudent,
  });
  const denseLabels = rawLabels!.dtype === 'float32';
  const ignoring = a.hasIgnoreIndex === true && !denseLabels;
  const counting = ignoring && a.reduction === 'mean';
  const floats = floatInputs(backend, kernel, {
    studentLogits: rawStudent!,
    ...(denseLabels ? { labels: rawLabels! } : {}),
  });
  const student = floats.tensors.studentLogits!;
  const labels = floats.tensors.labels ?? rawLabels!;
  const leading = rawStudent!.shape.slice(0, -1);
  const losses = makeOutput(backend, batchInWorkgroup ? [] : leading);
  const stats = makeOutput(backend, [problem.batch, ROW_STATS_WIDTH]);
  const grad = writeStudent ? makeOutput(backend, [...rawStudent!.shape]) : undefined;
  const made = [losses, stats, grad];
  try {
    disposingOnFailure(backend, made, () => {
      dispatchChunks(
        backend,
        {
          kernel,
          plan,
          problem,
          attrs: a,
          counting,
          dyPerRow: false,
          oneWorkgroup: batchInWorkgroup,
        },
        { student, ids: teacherIds!, logProbs: teacherLogProbs!, labels },
        [
          { kind: 'target', name: 'losses', tensor: losses },
          { kind: 'target', name: 'rowStats', tensor: stats },
        ],
        grad,
      );
    });
  } finally {
    floats.release();
  }
  const whole = wholeBatch(problem);
  const components =
    a.returnComponents === true
      ? disposingOnFailure(backend, made, () =>
          componentsFrom(backend, a, problem, whole, stats, labels, ignoring, leading),
        )
      : [];
  made.push(...components);
  const grads = grad ? [grad] : [];
  if (a.reduction === 'none' || batchInWorkgroup) return [losses, stats, ...grads, ...components];
  const value = disposingOnFailure(backend, made, () =>
    reduceLosses(backend, a, problem, whole, losses, labels, ignoring),
  );
  backend.disposeData(losses.dataId);
  return [value, stats, ...grads, ...components];
};

const backwardKernel: KernelFunc = ({ inputs, backend: b, attrs }) => {
  const backend = b as KernelBackend;
  const {
    dy,
    labels: rawLabels,
    studentLogits: rawStudent,
    teacherIds,
    teacherLogProbs,
    rowStats,
  } = inputs as Record<string, TensorInfo>;
  const a = attrs as unknown as DistillAttrs;
  const problem = problemOf(backend, rawStudent!);
  const topK = teacherIds!.shape[teacherIds!.shape.length - 1]!;
  const { kernel, plan } = sparseKernel(backend, problem, a, topK, rawLabels!, {
    backward: true,
    writeStudent: true,
  });
  const denseLabels = rawLabels!.dtype === 'float32';
  const counting = a.hasIgnoreIndex === true && !denseLabels && a.reduction === 'mean';
  const dyPerRow = a.reduction === 'none' && problem.batch > 1;
  const floats = floatInputs(backend, kernel, {
    studentLogits: rawStudent!,
    ...(denseLabels ? { labels: rawLabels! } : {}),
  });
  const student = floats.tensors.studentLogits!;
  const labels = floats.tensors.labels ?? rawLabels!;
  const grad = makeOutput(backend, [...rawStudent!.shape]);
  try {
    disposingOnFailure(backend, [grad], () => {
      dispatchChunks(
        backend,
        { kernel, plan, problem, attrs: a, counting, dyPerRow, oneWorkgroup: false },
        { student, ids: teacherIds!, logProbs: teacherLogProbs!, labels },
        [
          // binding 6 holds dy in the backward pass (shaders/distill-sparse.wgsl)
          { kind: 'input', name: 'dy', tensor: dy!, reads: 'f32' },
          { kind: 'input', name: 'rowStats', tensor: rowStats!, reads: 'f32' },
        ],
        grad,
      );
    });
  } finally {
    floats.release();
  }
  return [grad];
};

export const sparseKernelConfigs: KernelConfig[] = [
  { kernelName: FUSED_SPARSE_DISTILLATION_LOSS, backendName: 'webgpu', kernelFunc: forwardKernel },
  {
    kernelName: FUSED_SPARSE_DISTILLATION_LOSS_GRAD,
    backendName: 'webgpu',
    kernelFunc: backwardKernel,
  },
];
