/**
 * Records one compute dispatch of a standalone WGSL kernel into tfjs' WebGPU command stream,
 * with any number of inputs and outputs (tfjs' own programs have exactly one output).
 */
import type { DataType, KernelBackend, TensorInfo } from '@tensorflow/tfjs-core';
import convertToF32Wgsl from '../../../shaders/convert-to-f32.wgsl?raw';
import { MAX_WORKGROUPS_PER_DIMENSION } from '../plan.js';
import {
  activeGpuTimers,
  deferredSubmitBatchSize,
  gpuResourceOf,
  storedData,
  webgpuInternals,
  type UniformField,
  type WebGPUBackendInternals,
} from '../../tfjs-internals.js';

/** A WGSL kernel: its complete source and the override constants that specialise it. */
export interface KernelSource {
  /** Names the kernel in pipeline cache keys and error messages. */
  readonly name: string;
  readonly code: string;
  /** Pipeline-overridable constants (`override` declarations); part of the cache key. */
  readonly constants: Readonly<Record<string, number | boolean>>;
}

/** The element type a kernel's WGSL reads from an input binding. */
export type ElementType = 'f32' | 'i32';

/** One binding of a dispatch, in binding order. */
export type Binding =
  | {
      readonly kind: 'input';
      /** Names the input in error messages. */
      readonly name: string;
      readonly tensor: TensorInfo;
      /**
       * What the WGSL reads. The dtype tfjs stored the data in decides how it is bound: as it
       * is when it matches (or bool storage, 0/1 as i32, read as i32); converted on the GPU
       * into a temporary float32 tensor when f32 is read from int32/bool storage (tfjs' widening
       * casts relabel a tensor without converting its buffer); anything else throws. A value
       * is never reinterpreted.
       */
      readonly reads: ElementType;
      /** Bind only these bytes of its buffer (a chunk of rows); default: the whole tensor. */
      readonly range?: ByteRange;
    }
  | { readonly kind: 'output'; readonly shape: number[]; readonly dtype: DataType }
  /**
   * A tensor made earlier (makeOutput) that this dispatch writes, whole or a byte range of it:
   * the chunks of one `[rows, C]` output are written by successive dispatches.
   */
  | {
      readonly kind: 'target';
      readonly name: string;
      readonly tensor: TensorInfo;
      readonly range?: ByteRange;
    }
  | { readonly kind: 'uniform'; readonly fields: UniformField[] }
  /**
   * A binding the kernel declares but this specialisation never touches. Read-only and
   * writable placeholders are distinct buffers: WebGPU forbids one buffer in both roles
   * within a dispatch.
   */
  | { readonly kind: 'placeholder'; readonly access: 'read' | 'write' };

/**
 * A byte range of a buffer: `offset` a multiple of the device's
 * minStorageBufferOffsetAlignment, `size` a multiple of 4.
 */
export interface ByteRange {
  readonly offset: number;
  readonly size: number;
}

const pipelines = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();
const placeholders = new WeakMap<GPUDevice, Map<string, GPUBuffer>>();

function pipelineFor(device: GPUDevice, kernel: KernelSource): GPUComputePipeline {
  let cache = pipelines.get(device);
  if (!cache) {
    cache = new Map();
    pipelines.set(device, cache);
  }
  const constants = Object.entries(kernel.constants).sort(([a], [b]) => a.localeCompare(b));
  const key = `${kernel.name}|${JSON.stringify(constants)}`;
  let pipeline = cache.get(key);
  if (!pipeline) {
    const module = device.createShaderModule({ label: kernel.name, code: kernel.code });
    pipeline = device.createComputePipeline({
      label: key,
      layout: 'auto',
      compute: {
        module,
        entryPoint: 'main',
        constants: Object.fromEntries(constants.map(([k, v]) => [k, Number(v)])),
      },
    });
    cache.set(key, pipeline);
  }
  return pipeline;
}

/**
 * A 16-byte buffer for a binding that is never touched. All read-only bindings may share one;
 * writable ones may not alias each other, so each binding index gets its own.
 */
function placeholderBuffer(
  device: GPUDevice,
  access: 'read' | 'write',
  binding: number,
): GPUBuffer {
  let buffers = placeholders.get(device);
  if (!buffers) {
    buffers = new Map();
    placeholders.set(device, buffers);
  }
  const key = access === 'read' ? 'read' : `write:${binding}`;
  let buffer = buffers.get(key);
  if (!buffer) {
    buffer = device.createBuffer({
      label: `fused-distill placeholder (${key})`,
      size: 16,
      usage: GPUBufferUsage.STORAGE,
    });
    buffers.set(key, buffer);
  }
  return buffer;
}

/** How an input will be bound: as it is, or after a conversion to float32. */
interface InputPlan {
  readonly name: string;
  readonly tensor: TensorInfo;
  readonly convert: boolean;
}

/**
 * Decides, from the dtype tfjs stored an input's data in, how the kernel can read it; throws
 * before anything is recorded when it cannot.
 */
function planInput(
  backend: WebGPUBackendInternals,
  kernel: KernelSource,
  input: Extract<Binding, { kind: 'input' }>,
): InputPlan {
  const { name, tensor, reads } = input;
  const stored = storedData(backend, tensor.dataId);
  const where = `tfjs-fused-distill: kernel ${kernel.name}, input '${name}' (${tensor.dtype} [${tensor.shape.join(', ')}])`;
  const integer = stored.dtype === 'int32' || stored.dtype === 'bool';
  if (reads === 'f32' && stored.dtype === 'float32') return { name, tensor, convert: false };
  if (reads === 'i32' && integer) return { name, tensor, convert: false };
  if (reads === 'f32' && integer) return { name, tensor, convert: true };
  throw new Error(
    `${where}: its data is stored as ${stored.dtype} and the kernel reads ${reads}; ` +
      (stored.dtype === 'complex64' || stored.dtype === 'string'
        ? `${stored.dtype} data cannot be bound to a WGSL kernel`
        : 'the kernel converts int32/bool storage to f32 and never reinterprets a value'),
  );
}

/** The storage binding of an input: its GPUBuffer, uploaded first if still on the CPU. */
function inputBinding(
  backend: WebGPUBackendInternals,
  kernel: KernelSource,
  { name, tensor }: InputPlan,
  range?: ByteRange,
): GPUBufferBinding {
  const where = `tfjs-fused-distill: kernel ${kernel.name}, input '${name}' (${tensor.dtype} [${tensor.shape.join(', ')}])`;
  const stored = storedData(backend, tensor.dataId);
  if (stored.values == null && stored.resource == null) {
    // uploadToGPU would hand over an uninitialised buffer.
    throw new Error(`${where}: tfjs holds no data for it, neither on the CPU nor on the GPU`);
  }
  const resource = gpuResourceOf(backend, tensor.dataId);
  if (resource.kind === 'texture') {
    throw new Error(`${where}: its data is a GPU texture; the kernels read GPUBuffers only`);
  }
  if (resource.kind === 'none') {
    throw new Error(
      `${where}: tfjs did not give it a GPUBuffer (its resource is ${resource.what})`,
    );
  }
  const { buffer } = resource;
  const whole = 4 * tensor.shape.reduce((a, b) => a * b, 1);
  const offset = range?.offset ?? 0;
  const size = range?.size ?? whole;
  if (offset + size > whole) {
    throw new Error(`${where}: bytes [${offset}, ${offset + size}) are past its ${whole} bytes`);
  }
  if (buffer.mapState !== 'unmapped') {
    throw new Error(
      `${where}: its GPUBuffer is ${buffer.mapState}; unmap it before use (tf.tensor({buffer, zeroCopy: true}) keeps the caller's buffer)`,
    );
  }
  if (buffer.size < whole) {
    throw new Error(`${where}: its GPUBuffer has ${buffer.size} bytes, fewer than ${whole}`);
  }
  if ((buffer.usage & GPUBufferUsage.STORAGE) === 0) {
    throw new Error(`${where}: its GPUBuffer lacks GPUBufferUsage.STORAGE`);
  }
  return { buffer, offset, size };
}

/** A fresh tensor for dispatches to write (as 'target' bindings); the caller owns it. */
export function makeOutput(kernelBackend: KernelBackend, shape: number[]): TensorInfo {
  return webgpuInternals(kernelBackend).makeTensorInfo(shape, 'float32');
}

/**
 * The tensor as float32 storage that a kernel can bind in byte ranges: itself when tfjs stored
 * it as float32, else a converted temporary (`temporary: true`, the caller disposes it once the
 * kernels that read it are recorded), converted in as many dispatches as `limitBytes` (one
 * storage binding) requires: one when it fits.
 */
export function asFloat32Storage(
  kernelBackend: KernelBackend,
  kernel: KernelSource,
  name: string,
  tensor: TensorInfo,
  limitBytes: number,
  alignmentBytes: number,
): { tensor: TensorInfo; temporary: boolean } {
  const backend = webgpuInternals(kernelBackend);
  const plan = planInput(backend, kernel, { kind: 'input', name, tensor, reads: 'f32' });
  if (!plan.convert) return { tensor, temporary: false };
  const n = tensor.shape.reduce((a, b) => a * b, 1);
  const out = makeOutput(kernelBackend, [...tensor.shape]);
  // Element ranges that start at aligned offsets in both arrays (same element size).
  const step = Math.max(1, Math.floor(limitBytes / alignmentBytes)) * (alignmentBytes / 4);
  try {
    for (let first = 0; first < n; first += step) {
      const count = Math.min(step, n - first);
      const range = { offset: 4 * first, size: 4 * count };
      convertToF32(
        backend,
        name,
        tensor,
        { kind: 'target', name, tensor: out, range },
        range,
        count,
      );
    }
  } catch (err) {
    backend.disposeData(out.dataId);
    throw err;
  }
  return { tensor: out, temporary: true };
}

/** The GPUBuffer tfjs allocates for a fresh output. */
function outputBuffer(
  backend: WebGPUBackendInternals,
  kernel: KernelSource,
  out: TensorInfo,
): GPUBuffer {
  const resource = gpuResourceOf(backend, out.dataId);
  if (resource.kind !== 'buffer') {
    throw new Error(`tfjs-fused-distill: kernel ${kernel.name}: tfjs gave an output no GPUBuffer`);
  }
  return resource.buffer;
}

const CONVERT_WORKGROUP_SIZE = 64;
const convertKernel: KernelSource = {
  name: 'convert_to_f32',
  code: convertToF32Wgsl,
  constants: { WORKGROUP_SIZE: CONVERT_WORKGROUP_SIZE },
};

/**
 * out = f32(x) for int32 or bool storage, one dispatch into a fresh float32 tensor (the
 * caller disposes it once the kernel that reads it is recorded).
 */
function convertToF32(
  backend: WebGPUBackendInternals,
  name: string,
  tensor: TensorInfo,
  target?: Binding,
  range?: ByteRange,
  count?: number,
): TensorInfo {
  const n = count ?? tensor.shape.reduce((a, b) => a * b, 1);
  const groups = Math.max(1, Math.ceil(n / CONVERT_WORKGROUP_SIZE));
  const gridX = Math.min(groups, MAX_WORKGROUPS_PER_DIMENSION);
  const gridY = Math.min(Math.ceil(groups / gridX), MAX_WORKGROUPS_PER_DIMENSION);
  const [out] = dispatchKernel(
    backend as unknown as KernelBackend,
    convertKernel,
    [
      { kind: 'input', name, tensor, reads: 'i32', ...(range ? { range } : {}) },
      { kind: 'uniform', fields: [{ type: 'uint32', data: [n] }] },
      target ?? { kind: 'output', shape: [...tensor.shape], dtype: 'float32' },
    ],
    [gridX, gridY, 1],
  );
  return out ?? (target as Extract<Binding, { kind: 'target' }>).tensor;
}

/**
 * Records one dispatch into tfjs' current compute pass, as tfjs records its own programs
 * (WebGPUBackend.recordAndSubmit, 4.22), including inside `tf.time()`: there the dispatch gets
 * a pass of its own with timestampWrites into tfjs' query set, and its time joins tfjs' timer
 * list, so that `kernelMs` counts the fused kernels like any tfjs program.
 */
function record(
  backend: WebGPUBackendInternals,
  kernel: KernelSource,
  pipeline: GPUComputePipeline,
  entries: GPUBindGroupEntry[],
  grid: readonly [number, number, number],
): void {
  const bindGroup = backend.device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries,
  });
  const timers = activeGpuTimers(backend);
  backend.ensureCommandEncoderReady();
  if (timers && timers.supportTimestampQuery) {
    backend.endComputePassEncoder();
    backend.computePassEncoder = backend.commandEncoder!.beginComputePass({
      timestampWrites: {
        querySet: timers.querySet(),
        beginningOfPassWriteIndex: 0,
        endOfPassWriteIndex: 1,
      },
    });
  } else if (!backend.computePassEncoder) {
    backend.computePassEncoder = backend.commandEncoder!.beginComputePass({});
  }
  backend.computePassEncoder.setPipeline(pipeline);
  backend.computePassEncoder.setBindGroup(0, bindGroup);
  backend.computePassEncoder.dispatchWorkgroups(grid[0], grid[1], grid[2]);
  backend.dispatchCountInPass++;
  if (timers || backend.dispatchCountInPass >= deferredSubmitBatchSize()) {
    backend.endComputePassEncoder();
    // getQueryTime() submits the queue (synchronously, before its first await).
    if (timers) timers.activeTimers.push({ name: kernel.name, query: timers.getQueryTime() });
    else backend.submitQueue();
  }
}

/**
 * Dispatches `kernel` over `grid` workgroups and returns the output tensors (in binding
 * order), preceded by one conversion dispatch per input that the kernel reads as f32 from
 * int32/bool storage. Inputs and outputs are registered with the backend so that tfjs does not
 * recycle their buffers before the queued work has been submitted.
 */
export function dispatchKernel(
  kernelBackend: KernelBackend,
  kernel: KernelSource,
  bindings: readonly Binding[],
  grid: readonly [number, number, number],
): TensorInfo[] {
  const backend = webgpuInternals(kernelBackend);
  // Every input is checked (and uploaded if still on the CPU) before anything is dispatched;
  // then the conversions are recorded ahead of the kernel, into temporaries released once the
  // kernel is recorded.
  const plans = bindings.map((b) => (b.kind === 'input' ? planInput(backend, kernel, b) : null));
  const inputs = new Map<number, { tensor: TensorInfo; binding: GPUBufferBinding }>();
  plans.forEach((plan, i) => {
    if (!plan) return;
    const { range } = bindings[i] as Extract<Binding, { kind: 'input' }>;
    inputs.set(i, { tensor: plan.tensor, binding: inputBinding(backend, kernel, plan, range) });
  });
  const pipeline = pipelineFor(backend.device, kernel);
  const temporaries: TensorInfo[] = [];
  const outputs: TensorInfo[] = [];
  let recorded = false;
  try {
    plans.forEach((plan, i) => {
      if (!plan?.convert) return;
      const converted = convertToF32(backend, plan.name, plan.tensor);
      temporaries.push(converted);
      const { range } = bindings[i] as Extract<Binding, { kind: 'input' }>;
      const binding = inputBinding(backend, kernel, { ...plan, tensor: converted }, range);
      inputs.set(i, { tensor: converted, binding });
    });
    // Marked just before recording (a conversion may have submitted the queue, which starts a
    // new set): tfjs then defers releasing these buffers until the kernel is submitted.
    for (const { tensor } of inputs.values()) backend.commandQueueOwnedIds.add(tensor.dataId);
    const entries: GPUBindGroupEntry[] = bindings.map((binding, i) => {
      switch (binding.kind) {
        case 'input':
          return { binding: i, resource: inputs.get(i)!.binding };
        case 'output': {
          const out = backend.makeTensorInfo(binding.shape, binding.dtype);
          outputs.push(out);
          backend.commandQueueOwnedIds.add(out.dataId);
          return { binding: i, resource: { buffer: outputBuffer(backend, kernel, out) } };
        }
        case 'target': {
          const whole = 4 * binding.tensor.shape.reduce((a, b) => a * b, 1);
          backend.commandQueueOwnedIds.add(binding.tensor.dataId);
          return {
            binding: i,
            resource: {
              buffer: outputBuffer(backend, kernel, binding.tensor),
              offset: binding.range?.offset ?? 0,
              size: binding.range?.size ?? whole,
            },
          };
        }
        case 'uniform':
          return { binding: i, resource: backend.makeUniforms(binding.fields) };
        case 'placeholder':
          return {
            binding: i,
            resource: { buffer: placeholderBuffer(backend.device, binding.access, i) },
          };
      }
    });
    record(backend, kernel, pipeline, entries, grid);
    recorded = true;
  } finally {
    // Owned by the command queue (bound above): tfjs releases their buffers after the submit.
    // On a failure before recording, the outputs made so far are released too (no leak).
    for (const t of temporaries) backend.disposeData(t.dataId);
    if (!recorded) for (const t of outputs) backend.disposeData(t.dataId);
  }
  return outputs;
}
