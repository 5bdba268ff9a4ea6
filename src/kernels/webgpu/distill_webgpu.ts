/**
 * The fused distillation kernels on tfjs' WebGPU backend: one kernel config per kernel name,
 * each turning tensors and attributes into dispatches of the WGSL in shaders/.
 */
import type { KernelBackend, KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import chunkScalarWgsl from '../../../shaders/distill_chunk_scalar.wgsl?raw';
import chunkVec4Wgsl from '../../../shaders/distill_chunk_vec4.wgsl?raw';
import commonWgsl from '../../../shaders/distill_common.wgsl?raw';
import forwardWgsl from '../../../shaders/distill_forward.wgsl?raw';
import backwardWgsl from '../../../shaders/distill_backward.wgsl?raw';
import reduceWgsl from '../../../shaders/distill_reduce.wgsl?raw';
import scaleWgsl from '../../../shaders/distill_scale.wgsl?raw';
import { klFactor } from '../../config.js';
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
  MAX_WORKGROUPS_PER_DIMENSION,
  type DistillPlan,
} from '../plan.js';
import { adapterInfo, type UniformField } from '../../tfjs_internals.js';
import { dispatchKernel, type Binding, type KernelSource } from './dispatch.js';

/** A kernel's full source: the chunk file for the plan, the shared declarations, the kernel. */
function source(kernel: string, chunk: 1 | 4): string {
  return [chunk === 4 ? chunkVec4Wgsl : chunkScalarWgsl, commonWgsl, kernel].join('\n');
}

/**
 * The fields of `struct Params` in shaders/distill_common.wgsl, in order, with their WGSL types:
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
] as const satisfies readonly { name: string; type: 'u32' | 'i32' | 'f32' }[];

type ParamsValues = Record<(typeof PARAMS_FIELDS)[number]['name'], number>;

const UNIFORM_TYPES = { u32: 'uint32', i32: 'int32', f32: 'float32' } as const;

/** The `Params` uniform: one value per field of PARAMS_FIELDS, in its order. */
function params(
  attrs: DistillAttrs,
  batch: number,
  classes: number,
  dyPerRow: boolean,
  gridRows: number,
): UniformField[] {
  const values: ParamsValues = {
    batch,
    classes,
    alpha: attrs.alpha,
    invTemperature: 1 / attrs.temperature,
    klWeight: (1 - attrs.alpha) * klFactor(attrs),
    rowWeight: attrs.reduction === 'mean' ? 1 / batch : 1,
    dyPerRow: dyPerRow ? 1 : 0,
    gridRows,
  };
  return PARAMS_FIELDS.map(({ name, type }) => ({
    type: UNIFORM_TYPES[type],
    data: [values[name]],
  }));
}

/** A float32 output when `wanted`, else a writable placeholder that is never touched. */
function optionalOutput(wanted: boolean, shape: number[]): Binding {
  return wanted
    ? { kind: 'output', shape, dtype: 'float32' }
    : { kind: 'placeholder', access: 'write' };
}

/** Bindings 2 and 3 of both kernels: int32 class indices, or float32 dense labels. */
function labelBindings(labels: TensorInfo): Binding[] {
  return labels.dtype === 'int32'
    ? [
        { kind: 'input', name: 'labels', tensor: labels, reads: 'i32' },
        { kind: 'placeholder', access: 'read' },
      ]
    : [
        { kind: 'placeholder', access: 'read' },
        { kind: 'input', name: 'labels', tensor: labels, reads: 'f32' },
      ];
}

function planFor(
  backend: KernelBackend,
  batch: number,
  classes: number,
  reduction: string,
): DistillPlan {
  return choosePlan(batch, classes, reduction !== 'none', classifyAdapter(adapterInfo(backend)));
}

function shapeOf(t: TensorInfo): [number, number] {
  return [t.shape[0]!, t.shape[1]!];
}

const forwardKernel: KernelFunc = ({ inputs, backend: b, attrs }) => {
  const backend = b as KernelBackend;
  const { labels, studentLogits, teacherLogits } = inputs as Record<string, TensorInfo>;
  const a = attrs as unknown as DistillAttrs;
  const [batch, classes] = shapeOf(studentLogits!);
  const reduceToScalar = a.reduction !== 'none';
  const plan = planFor(backend, batch, classes, a.reduction);
  const denseLabels = labels!.dtype === 'float32';
  const writeStudent = a.writeGradients !== 'none';
  const writeTeacher = a.writeGradients === 'both';
  const gradShape = [batch, classes];
  const forward: KernelSource = {
    name: `distill_forward_x${plan.chunk}`,
    code: source(forwardWgsl, plan.chunk),
    constants: {
      WORKGROUP_SIZE: plan.workgroupSize,
      TILE_COLS: plan.tileCols,
      DENSE_LABELS: denseLabels,
      BATCH_IN_WORKGROUP: plan.batchInWorkgroup,
      WRITE_STUDENT_GRAD: writeStudent,
      WRITE_TEACHER_GRAD: writeTeacher,
    },
  };
  const uniforms = params(a, batch, classes, false, plan.forwardGrid[1]);
  const [losses, stats, ...grads] = dispatchKernel(
    backend,
    forward,
    [
      { kind: 'input', name: 'studentLogits', tensor: studentLogits!, reads: 'f32' },
      { kind: 'input', name: 'teacherLogits', tensor: teacherLogits!, reads: 'f32' },
      ...labelBindings(labels!),
      { kind: 'uniform', fields: uniforms },
      { kind: 'output', shape: plan.batchInWorkgroup ? [] : [batch], dtype: 'float32' },
      { kind: 'output', shape: [batch, ROW_STATS_WIDTH], dtype: 'float32' },
      optionalOutput(writeStudent, gradShape),
      optionalOutput(writeTeacher, gradShape),
    ],
    plan.forwardGrid,
  ) as [TensorInfo, TensorInfo, ...TensorInfo[]];
  if (!reduceToScalar || plan.batchInWorkgroup) return [losses, stats, ...grads];

  const reduce: KernelSource = {
    name: 'distill_reduce',
    code: source(reduceWgsl, 1),
    constants: {},
  };
  const [value] = dispatchKernel(
    backend,
    reduce,
    [
      { kind: 'input', name: 'losses', tensor: losses, reads: 'f32' },
      { kind: 'uniform', fields: uniforms },
      { kind: 'output', shape: [], dtype: 'float32' },
    ],
    [1, 1, 1],
  );
  backend.disposeData(losses.dataId);
  return [value!, stats, ...grads];
};

const backwardKernel: KernelFunc = ({ inputs, backend: b, attrs }) => {
  const backend = b as KernelBackend;
  const { dy, labels, studentLogits, teacherLogits, rowStats } = inputs as Record<
    string,
    TensorInfo
  >;
  const a = attrs as unknown as DistillAttrs;
  const [batch, classes] = shapeOf(studentLogits!);
  const plan = planFor(backend, batch, classes, a.reduction);
  const writeStudent = a.gradients !== 'teacher';
  const writeTeacher = a.gradients !== 'student';
  const backward: KernelSource = {
    name: `distill_backward_x${plan.chunk}`,
    code: source(backwardWgsl, plan.chunk),
    constants: {
      WORKGROUP_SIZE: plan.workgroupSize,
      CHUNKS_PER_THREAD: plan.chunksPerThread,
      TILE_COLS: plan.tileCols,
      DENSE_LABELS: labels!.dtype === 'float32',
      WRITE_STUDENT_GRAD: writeStudent,
      WRITE_TEACHER_GRAD: writeTeacher,
    },
  };
  const dyPerRow = dy!.shape.length === 1 && batch > 1;
  const gradShape = [batch, classes];
  return dispatchKernel(
    backend,
    backward,
    [
      { kind: 'input', name: 'studentLogits', tensor: studentLogits!, reads: 'f32' },
      { kind: 'input', name: 'teacherLogits', tensor: teacherLogits!, reads: 'f32' },
      ...labelBindings(labels!),
      { kind: 'uniform', fields: params(a, batch, classes, dyPerRow, plan.backwardGrid[1]) },
      { kind: 'input', name: 'rowStats', tensor: rowStats!, reads: 'f32' },
      { kind: 'input', name: 'dy', tensor: dy!, reads: 'f32' },
      optionalOutput(writeStudent, gradShape),
      optionalOutput(writeTeacher, gradShape),
    ],
    plan.backwardGrid,
  );
};

const scaleKernel: KernelFunc = ({ inputs, backend: b, attrs }) => {
  const backend = b as KernelBackend;
  const { dy, studentGrad, teacherGrad } = inputs as Record<string, TensorInfo | undefined>;
  const a = attrs as unknown as DistillAttrs;
  const [batch, classes] = shapeOf(studentGrad!);
  const plan = planFor(backend, batch, classes, a.reduction);
  const chunks = (batch * classes) / plan.chunk;
  const groups = Math.ceil(chunks / (plan.workgroupSize * plan.chunksPerThread));
  const gridX = Math.min(groups, MAX_WORKGROUPS_PER_DIMENSION);
  const gridY = Math.min(Math.ceil(groups / gridX), MAX_WORKGROUPS_PER_DIMENSION);
  const dyPerRow = dy!.shape.length === 1 && batch > 1;
  const shape = [batch, classes];
  return dispatchKernel(
    backend,
    {
      name: `distill_scale_x${plan.chunk}`,
      code: source(scaleWgsl, plan.chunk),
      constants: { WORKGROUP_SIZE: plan.workgroupSize, SCALE_TEACHER: teacherGrad !== undefined },
    },
    [
      { kind: 'input', name: 'studentGrad', tensor: studentGrad!, reads: 'f32' },
      teacherGrad
        ? { kind: 'input', name: 'teacherGrad', tensor: teacherGrad, reads: 'f32' }
        : { kind: 'placeholder', access: 'read' },
      { kind: 'input', name: 'dy', tensor: dy!, reads: 'f32' },
      { kind: 'uniform', fields: params(a, batch, classes, dyPerRow, gridY) },
      { kind: 'output', shape, dtype: 'float32' },
      optionalOutput(teacherGrad !== undefined, shape),
    ],
    [gridX, gridY, 1],
  );
};

export const webgpuKernelConfigs: KernelConfig[] = [
  { kernelName: FUSED_DISTILLATION_LOSS_SCALE, backendName: 'webgpu', kernelFunc: scaleKernel },
  { kernelName: FUSED_DISTILLATION_LOSS, backendName: 'webgpu', kernelFunc: forwardKernel },
  { kernelName: FUSED_DISTILLATION_LOSS_GRAD, backendName: 'webgpu', kernelFunc: backwardKernel },
];
