/**
 * The fused distillation kernels on tfjs' WebGPU backend: one kernel config per kernel name,
 * each turning tensors and attributes into dispatches of the WGSL in shaders/.
 */
import type { KernelBackend, KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import chunkScalarWgsl from '../../../shaders/distill-chunk-scalar.wgsl?raw';
import chunkVec4Wgsl from '../../../shaders/distill-chunk-vec4.wgsl?raw';
import commonWgsl from '../../../shaders/distill-common.wgsl?raw';
import divergenceWgsl from '../../../shaders/distill-divergence.wgsl?raw';
import forwardWgsl from '../../../shaders/distill-forward.wgsl?raw';
import rowsWgsl from '../../../shaders/distill-rows.wgsl?raw';
import backwardWgsl from '../../../shaders/distill-backward.wgsl?raw';
import componentsWgsl from '../../../shaders/distill-components.wgsl?raw';
import reduceWgsl from '../../../shaders/distill-reduce.wgsl?raw';
import scaleWgsl from '../../../shaders/distill-scale.wgsl?raw';
import { klFactor } from '../../config.js';
import { divergenceConstants } from '../../divergences.js';
import {
  FUSED_DISTILLATION_LOSS,
  FUSED_DISTILLATION_LOSS_GRAD,
  FUSED_DISTILLATION_LOSS_SCALE,
  ROW_STATS_WIDTH,
  type DistillAttrs,
} from '../names.js';
import {
  choosePlan,
  classifyAdapter,
  effectiveBindingLimit,
  MAX_WORKGROUPS_PER_DIMENSION,
  rowChunks,
  type DistillPlan,
  type RowChunk,
} from '../plan.js';
import { adapterInfo, deviceLimit, type UniformField } from '../../tfjs-internals.js';
import {
  asFloat32Storage,
  dispatchKernel,
  makeOutput,
  type Binding,
  type ByteRange,
  type KernelSource,
} from './dispatch.js';

/** A kernel's full source: the chunk file for the plan, the shared declarations, the kernel. */
export function source(kernel: string, chunk: 1 | 4): string {
  return [chunk === 4 ? chunkVec4Wgsl : chunkScalarWgsl, commonWgsl, kernel].join('\n');
}

/**
 * The source of a kernel that computes a divergence (the forward and backward kernels): as
 * `source`, with shaders/distill-divergence.wgsl after the shared declarations. Its override
 * constants come from the config's entry in src/divergences.ts (divergenceConstants).
 */
function divergenceSource(kernel: string, chunk: 1 | 4): string {
  return [chunk === 4 ? chunkVec4Wgsl : chunkScalarWgsl, commonWgsl, divergenceWgsl, kernel].join(
    '\n',
  );
}

/**
 * The fields of `struct Params` in shaders/distill-common.wgsl, in order, with their WGSL types:
 * the one description that `params()` builds the uniform from (test/params.test.ts checks it
 * against the WGSL source).
 */
export const PARAMS_FIELDS = [
  { name: 'batch', type: 'u32' },
  { name: 'classes', type: 'u32' },
  { name: 'alpha', type: 'f32' },
  { name: 'invTemperature', type: 'f32' },
  { name: 'klWeight', type: 'f32' },
  { name: 'rowWeight', type: 'f32' },
  { name: 'dyPerRow', type: 'u32' },
  { name: 'gridRows', type: 'u32' },
  { name: 'firstRow', type: 'u32' },
  { name: 'rows', type: 'u32' },
  { name: 'headChunks', type: 'u32' },
  { name: 'ignoreIndex', type: 'i32' },
  { name: 'countRows', type: 'u32' },
  { name: 'klFactor', type: 'f32' },
] as const satisfies readonly { name: string; type: 'u32' | 'i32' | 'f32' }[];

type ParamsValues = Record<(typeof PARAMS_FIELDS)[number]['name'], number>;

const UNIFORM_TYPES = { u32: 'uint32', i32: 'int32', f32: 'float32' } as const;

/** The problem as the kernels see it: rows (the leading dimensions' product) × classes. */
export interface Problem {
  readonly batch: number;
  readonly classes: number;
  /** The chunks of rows that dispatches cover, one dispatch each (rowChunks()). */
  readonly chunks: readonly RowChunk[];
}

/** The `Params` uniform of one chunk: one value per field of PARAMS_FIELDS, in its order. */
export function params(
  attrs: DistillAttrs,
  problem: Problem,
  chunk: RowChunk,
  chunkClasses: 1 | 4,
  dyPerRow: boolean,
  gridRows: number,
): UniformField[] {
  const values: ParamsValues = {
    batch: problem.batch,
    classes: problem.classes,
    alpha: attrs.alpha,
    invTemperature: 1 / attrs.temperature,
    klWeight: (1 - attrs.alpha) * klFactor(attrs),
    rowWeight: attrs.reduction === 'mean' ? 1 / problem.batch : 1,
    dyPerRow: dyPerRow ? 1 : 0,
    gridRows,
    firstRow: chunk.firstRow,
    rows: chunk.rows,
    headChunks: chunk.headElements / chunkClasses,
    ignoreIndex: attrs.hasIgnoreIndex ? attrs.ignoreIndex : 0,
    countRows: attrs.hasIgnoreIndex && attrs.reduction === 'mean' ? 1 : 0,
    klFactor: klFactor(attrs),
  };
  return PARAMS_FIELDS.map(({ name, type }) => ({
    type: UNIFORM_TYPES[type],
    data: [values[name]],
  }));
}

/** A range of a `[rows, C]` array for one chunk (undefined: the whole array, one chunk). */
export function rangeOf(problem: Problem, chunk: RowChunk): ByteRange | undefined {
  return problem.chunks.length === 1
    ? undefined
    : { offset: chunk.offsetBytes, size: chunk.sizeBytes };
}

/** Bindings 2 and 3 of both kernels: int32 class indices, or float32 dense labels. */
export function labelBindings(labels: TensorInfo, range: ByteRange | undefined): Binding[] {
  return labels.dtype === 'int32'
    ? [
        { kind: 'input', name: 'labels', tensor: labels, reads: 'i32' },
        { kind: 'placeholder', access: 'read' },
      ]
    : [
        { kind: 'placeholder', access: 'read' },
        {
          kind: 'input',
          name: 'labels',
          tensor: labels,
          reads: 'f32',
          ...(range ? { range } : {}),
        },
      ];
}

/** A gradient output written chunk by chunk, or a placeholder when not written. */
export function gradientBinding(
  name: string,
  out: TensorInfo | undefined,
  range: ByteRange | undefined,
): Binding {
  return out
    ? { kind: 'target', name, tensor: out, ...(range ? { range } : {}) }
    : { kind: 'placeholder', access: 'write' };
}

function sizeOf(t: TensorInfo): number {
  return t.shape.reduce((a, b) => a * b, 1);
}

/**
 * Rows × classes of a `[..., C]` tensor, and its chunks under the device's binding limit
 * (or the test override). The op has checked what can be checked before dispatching
 * (src/op.ts, checkDeviceLimits); this throws only if a kernel is run directly.
 */
export function problemOf(backend: KernelBackend, logits: TensorInfo): Problem {
  const classes = logits.shape[logits.shape.length - 1]!;
  const batch = sizeOf(logits) / classes;
  const limit = effectiveBindingLimit(deviceLimit('maxStorageBufferBindingSize', backend));
  const alignment = deviceLimit('minStorageBufferOffsetAlignment', backend);
  return { batch, classes, chunks: rowChunks(batch, classes, limit, alignment) };
}

export function planFor(backend: KernelBackend, problem: Problem, reduction: string): DistillPlan {
  return choosePlan(
    problem.batch,
    problem.classes,
    reduction !== 'none',
    classifyAdapter(adapterInfo(backend)),
  );
}

/**
 * A kernel that counts the rows not ignored itself (shaders/distill-rows.wgsl): every workgroup
 * reads the B labels, so the grid is capped at this many workgroups (each then visits several
 * rows): the count costs at most this many times B label reads per dispatch instead of B² / rows
 * per workgroup, and 1024 workgroups of 256 invocations still fill a large GPU.
 */
export const COUNTING_MAX_WORKGROUPS = 1024;

/**
 * Workgroups along y for a chunk of `rows` rows (`counting`: the kernel counts the rows not
 * ignored in every workgroup, see COUNTING_MAX_WORKGROUPS).
 */
export function gridRowsFor(plan: DistillPlan, rows: number, counting = false): number {
  const cap = counting ? COUNTING_MAX_WORKGROUPS : MAX_WORKGROUPS_PER_DIMENSION;
  return Math.min(Math.ceil(rows / plan.tileRows), cap);
}

/** A kernel's own file with shaders/distill-rows.wgsl (ignored rows and their count) before it. */
export function withRows(kernel: string): string {
  return [rowsWgsl, kernel].join('\n');
}

/**
 * Inputs read as f32 from int32/bool storage, converted once for all the chunks of a kernel
 * (a temporary the caller disposes with `release`).
 */
export function floatInputs(
  backend: KernelBackend,
  kernel: KernelSource,
  tensors: Record<string, TensorInfo>,
): { tensors: Record<string, TensorInfo>; release: () => void } {
  const limit = effectiveBindingLimit(deviceLimit('maxStorageBufferBindingSize', backend));
  const alignment = deviceLimit('minStorageBufferOffsetAlignment', backend);
  const out: Record<string, TensorInfo> = {};
  const temporaries: TensorInfo[] = [];
  const release = () => {
    for (const t of temporaries) backend.disposeData(t.dataId);
  };
  try {
    for (const [name, tensor] of Object.entries(tensors)) {
      const converted = asFloat32Storage(backend, kernel, name, tensor, limit, alignment);
      if (converted.temporary) temporaries.push(converted.tensor);
      out[name] = converted.tensor;
    }
  } catch (err) {
    release();
    throw err;
  }
  return { tensors: out, release };
}

/** Runs `record` and disposes `made` if it throws (nothing leaks on a failed dispatch). */
export function disposingOnFailure<T>(
  backend: KernelBackend,
  made: (TensorInfo | undefined)[],
  record: () => T,
): T {
  try {
    return record();
  } catch (err) {
    for (const t of made) if (t) backend.disposeData(t.dataId);
    throw err;
  }
}

const forwardKernel: KernelFunc = ({ inputs, backend: b, attrs }) => {
  const backend = b as KernelBackend;
  const {
    labels: rawLabels,
    studentLogits: rawStudent,
    teacherLogits: rawTeacher,
  } = inputs as Record<string, TensorInfo>;
  const a = attrs as unknown as DistillAttrs;
  const problem = problemOf(backend, rawStudent!);
  const { batch, chunks } = problem;
  const reduceToScalar = a.reduction !== 'none';
  const plan = planFor(backend, problem, a.reduction);
  const denseLabels = rawLabels!.dtype === 'float32';
  const ignoring = a.hasIgnoreIndex === true && !denseLabels;
  const writeStudent = a.writeGradients !== 'none';
  const writeTeacher = a.writeGradients === 'both';
  const forward: KernelSource = {
    name: `distill_forward_x${plan.chunk}`,
    code: divergenceSource(withRows(forwardWgsl), plan.chunk),
    constants: {
      ...divergenceConstants(a),
      WORKGROUP_SIZE: plan.workgroupSize,
      TILE_COLS: plan.tileCols,
      DENSE_LABELS: denseLabels,
      BATCH_IN_WORKGROUP: plan.batchInWorkgroup,
      WRITE_STUDENT_GRAD: writeStudent,
      WRITE_TEACHER_GRAD: writeTeacher,
      IGNORE_INDEX: ignoring,
    },
  };
  const floats = floatInputs(backend, forward, {
    studentLogits: rawStudent!,
    teacherLogits: rawTeacher!,
    ...(denseLabels ? { labels: rawLabels! } : {}),
  });
  const { studentLogits, teacherLogits } = floats.tensors;
  const labels = floats.tensors.labels ?? rawLabels!;
  const leading = rawStudent!.shape.slice(0, -1);
  const losses = makeOutput(backend, plan.batchInWorkgroup ? [] : leading);
  const stats = makeOutput(backend, [batch, ROW_STATS_WIDTH]);
  const gradStudent = writeStudent ? makeOutput(backend, [...rawStudent!.shape]) : undefined;
  const gradTeacher = writeTeacher ? makeOutput(backend, [...rawTeacher!.shape]) : undefined;
  const made = [losses, stats, gradStudent, gradTeacher];
  try {
    disposingOnFailure(backend, made, () => {
      for (const chunk of chunks) {
        const range = rangeOf(problem, chunk);
        const gridRows = gridRowsFor(plan, chunk.rows, ignoring && a.reduction === 'mean');
        const r = range ? { range } : {};
        dispatchKernel(
          backend,
          forward,
          [
            { kind: 'input', name: 'studentLogits', tensor: studentLogits!, reads: 'f32', ...r },
            { kind: 'input', name: 'teacherLogits', tensor: teacherLogits!, reads: 'f32', ...r },
            ...labelBindings(labels, range),
            { kind: 'uniform', fields: params(a, problem, chunk, plan.chunk, false, gridRows) },
            { kind: 'target', name: 'losses', tensor: losses },
            { kind: 'target', name: 'rowStats', tensor: stats },
            gradientBinding('gradStudent', gradStudent, range),
            gradientBinding('gradTeacher', gradTeacher, range),
          ],
          plan.batchInWorkgroup ? [1, 1, 1] : [1, gridRows, 1],
        );
      }
    });
  } finally {
    floats.release();
  }
  const grads = [gradStudent, gradTeacher].filter((g): g is TensorInfo => g !== undefined);
  const whole =
    chunks.length === 1
      ? chunks[0]!
      : { firstRow: 0, rows: batch, offsetBytes: 0, sizeBytes: 0, headElements: 0 };
  // returnComponents: hardLoss and softLoss from the statistics just written, one dispatch.
  const components =
    a.returnComponents === true
      ? disposingOnFailure(backend, made, () =>
          componentsFrom(backend, a, problem, whole, stats, labels, ignoring, leading),
        )
      : [];
  made.push(...components);
  if (!reduceToScalar || plan.batchInWorkgroup) return [losses, stats, ...grads, ...components];

  const value = disposingOnFailure(backend, made, () =>
    reduceLosses(backend, a, problem, whole, losses, labels, ignoring),
  );
  backend.disposeData(losses.dataId);
  return [value, stats, ...grads, ...components];
};

/**
 * The op's scalar from the per-row losses ('mean' / 'sum', when the forward kernel did not
 * reduce the batch itself): shaders/distill-reduce.wgsl, one dispatch.
 */
export function reduceLosses(
  backend: KernelBackend,
  a: DistillAttrs,
  problem: Problem,
  whole: RowChunk,
  losses: TensorInfo,
  labels: TensorInfo,
  ignoring: boolean,
): TensorInfo {
  const reduce: KernelSource = {
    name: 'distill_reduce',
    code: source(reduceWgsl, 1),
    constants: { IGNORE_INDEX: ignoring },
  };
  const [value] = dispatchKernel(
    backend,
    reduce,
    [
      { kind: 'input', name: 'losses', tensor: losses, reads: 'f32' },
      { kind: 'uniform', fields: params(a, problem, whole, 1, false, 1) },
      { kind: 'output', shape: [], dtype: 'float32' },
      ignoring
        ? { kind: 'input', name: 'labels', tensor: labels, reads: 'i32' }
        : { kind: 'placeholder', access: 'read' },
    ],
    [1, 1, 1],
  );
  return value!;
}

/**
 * hardLoss and softLoss (`[]` each, or the leading shape for 'none') from the row statistics:
 * shaders/distill-components.wgsl, one dispatch for both.
 */
export function componentsFrom(
  backend: KernelBackend,
  a: DistillAttrs,
  problem: Problem,
  whole: RowChunk,
  stats: TensorInfo,
  labels: TensorInfo,
  ignoring: boolean,
  leading: number[],
): TensorInfo[] {
  const reduceToScalar = a.reduction !== 'none';
  const kernel: KernelSource = {
    name: 'distill_components',
    code: source(componentsWgsl, 1),
    constants: { IGNORE_INDEX: ignoring && reduceToScalar, REDUCE: reduceToScalar },
  };
  const shape = reduceToScalar ? [] : leading;
  const groups = reduceToScalar
    ? 1
    : Math.min(Math.max(Math.ceil(problem.batch / 256), 1), MAX_WORKGROUPS_PER_DIMENSION);
  return dispatchKernel(
    backend,
    kernel,
    [
      { kind: 'input', name: 'rowStats', tensor: stats, reads: 'f32' },
      { kind: 'uniform', fields: params(a, problem, whole, 1, false, 1) },
      { kind: 'output', shape, dtype: 'float32' },
      { kind: 'output', shape, dtype: 'float32' },
      ignoring && reduceToScalar
        ? { kind: 'input', name: 'labels', tensor: labels, reads: 'i32' }
        : { kind: 'placeholder', access: 'read' },
    ],
    [groups, 1, 1],
  );
}

const backwardKernel: KernelFunc = ({ inputs, backend: b, attrs }) => {
  const backend = b as KernelBackend;
  const {
    dy,
    labels: rawLabels,
    studentLogits: rawStudent,
    teacherLogits: rawTeacher,
    rowStats,
  } = inputs as Record<string, TensorInfo>;
  const a = attrs as unknown as DistillAttrs;
  const problem = problemOf(backend, rawStudent!);
  const plan = planFor(backend, problem, a.reduction);
  const writeStudent = a.gradients !== 'teacher';
  const writeTeacher = a.gradients !== 'student';
  const denseLabels = rawLabels!.dtype === 'float32';
  const backward: KernelSource = {
    name: `distill_backward_x${plan.chunk}`,
    code: divergenceSource(backwardWgsl, plan.chunk),
    constants: {
      ...divergenceConstants(a),
      WORKGROUP_SIZE: plan.workgroupSize,
      CHUNKS_PER_THREAD: plan.chunksPerThread,
      TILE_COLS: plan.tileCols,
      DENSE_LABELS: denseLabels,
      WRITE_STUDENT_GRAD: writeStudent,
      WRITE_TEACHER_GRAD: writeTeacher,
    },
  };
  const dyPerRow = a.reduction === 'none' && problem.batch > 1;
  const floats = floatInputs(backend, backward, {
    studentLogits: rawStudent!,
    teacherLogits: rawTeacher!,
    ...(denseLabels && writeStudent ? { labels: rawLabels! } : {}),
  });
  const { studentLogits, teacherLogits } = floats.tensors;
  const labels = floats.tensors.labels ?? rawLabels!;
  const gradStudent = writeStudent ? makeOutput(backend, [...rawStudent!.shape]) : undefined;
  const gradTeacher = writeTeacher ? makeOutput(backend, [...rawTeacher!.shape]) : undefined;
  try {
    disposingOnFailure(backend, [gradStudent, gradTeacher], () => {
      for (const chunk of problem.chunks) {
        const range = rangeOf(problem, chunk);
        const r = range ? { range } : {};
        const gridRows = gridRowsFor(plan, chunk.rows);
        const colSpans = Math.ceil(
          problem.classes / plan.chunk / (plan.tileCols * plan.chunksPerThread),
        );
        dispatchKernel(
          backend,
          backward,
          [
            { kind: 'input', name: 'studentLogits', tensor: studentLogits!, reads: 'f32', ...r },
            { kind: 'input', name: 'teacherLogits', tensor: teacherLogits!, reads: 'f32', ...r },
            ...labelBindings(labels, range),
            {
              kind: 'uniform',
              fields: params(a, problem, chunk, plan.chunk, dyPerRow, gridRows),
            },
            { kind: 'input', name: 'rowStats', tensor: rowStats!, reads: 'f32' },
            { kind: 'input', name: 'dy', tensor: dy!, reads: 'f32' },
            gradientBinding('gradStudent', gradStudent, range),
            gradientBinding('gradTeacher', gradTeacher, range),
          ],
          [colSpans, gridRows, 1],
        );
      }
    });
  } finally {
    floats.release();
  }
  return [gradStudent, gradTeacher].filter((g): g is TensorInfo => g !== undefined);
};

const scaleKernel: KernelFunc = ({ inputs, backend: b, attrs }) => {
  const backend = b as KernelBackend;
  const { dy, studentGrad, teacherGrad } = inputs as Record<string, TensorInfo | undefined>;
  const a = attrs as unknown as DistillAttrs;
  const problem = problemOf(backend, studentGrad!);
  const plan = planFor(backend, problem, a.reduction);
  const dyPerRow = a.reduction === 'none' && problem.batch > 1;
  const outStudent = makeOutput(backend, [...studentGrad!.shape]);
  const outTeacher = teacherGrad ? makeOutput(backend, [...teacherGrad.shape]) : undefined;
  const kernel: KernelSource = {
    name: `distill_scale_x${plan.chunk}`,
    code: source(scaleWgsl, plan.chunk),
    constants: { WORKGROUP_SIZE: plan.workgroupSize, SCALE_TEACHER: teacherGrad !== undefined },
  };
  disposingOnFailure(backend, [outStudent, outTeacher], () => {
    for (const chunk of problem.chunks) {
      const range = rangeOf(problem, chunk);
      const r = range ? { range } : {};
      const chunks = (chunk.rows * problem.classes) / plan.chunk;
      const groups = Math.ceil(chunks / (plan.workgroupSize * plan.chunksPerThread));
      const gridX = Math.min(groups, MAX_WORKGROUPS_PER_DIMENSION);
      const gridY = Math.min(Math.ceil(groups / gridX), MAX_WORKGROUPS_PER_DIMENSION);
      dispatchKernel(
        backend,
        kernel,
        [
          { kind: 'input', name: 'studentGrad', tensor: studentGrad!, reads: 'f32', ...r },
          teacherGrad
            ? { kind: 'input', name: 'teacherGrad', tensor: teacherGrad, reads: 'f32', ...r }
            : { kind: 'placeholder', access: 'read' },
          { kind: 'input', name: 'dy', tensor: dy!, reads: 'f32' },
          { kind: 'uniform', fields: params(a, problem, chunk, plan.chunk, dyPerRow, gridY) },
          gradientBinding('outStudent', outStudent, range),
          gradientBinding('outTeacher', outTeacher, range),
        ],
        [gridX, gridY, 1],
      );
    }
  });
  return [outStudent, outTeacher].filter((g): g is TensorInfo => g !== undefined);
};

export const webgpuKernelConfigs: KernelConfig[] = [
  { kernelName: FUSED_DISTILLATION_LOSS_SCALE, backendName: 'webgpu', kernelFunc: scaleKernel },
  { kernelName: FUSED_DISTILLATION_LOSS, backendName: 'webgpu', kernelFunc: forwardKernel },
  { kernelName: FUSED_DISTILLATION_LOSS_GRAD, backendName: 'webgpu', kernelFunc: backwardKernel },
];
