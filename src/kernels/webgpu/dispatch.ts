/**
 * Records one compute dispatch of a standalone WGSL kernel into tfjs' WebGPU command stream,
 * with any number of inputs and outputs (tfjs' own programs have exactly one output).
 */
import type { DataType, KernelBackend, TensorInfo } from '@tensorflow/tfjs-core';
import {
  bufferOf,
  deferredSubmitBatchSize,
  webgpuInternals,
  type UniformField,
  type WebGPUBackendInternals,
} from './backend_internals.js';

/** A WGSL kernel: its complete source and the override constants that specialise it. */
export interface KernelSource {
  /** Names the kernel in pipeline cache keys and error messages. */
  readonly name: string;
  readonly code: string;
  /** Pipeline-overridable constants (`override` declarations); part of the cache key. */
  readonly constants: Readonly<Record<string, number | boolean>>;
}

/** One binding of a dispatch, in binding order. */
export type Binding =
  | { readonly kind: 'input'; readonly tensor: TensorInfo }
  | { readonly kind: 'output'; readonly shape: number[]; readonly dtype: DataType }
  | { readonly kind: 'uniform'; readonly fields: UniformField[] }
  /**
   * A binding the kernel declares but this specialisation never touches. Read-only and
   * writable placeholders are distinct buffers: WebGPU forbids one buffer in both roles
   * within a dispatch.
   */
  | { readonly kind: 'placeholder'; readonly access: 'read' | 'write' };

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

function record(
  backend: WebGPUBackendInternals,
  pipeline: GPUComputePipeline,
  entries: GPUBindGroupEntry[],
  grid: readonly [number, number, number],
): void {
  const bindGroup = backend.device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries,
  });
  backend.ensureCommandEncoderReady();
  if (!backend.computePassEncoder) {
    backend.computePassEncoder = backend.commandEncoder!.beginComputePass({});
  }
  backend.computePassEncoder.setPipeline(pipeline);
  backend.computePassEncoder.setBindGroup(0, bindGroup);
  backend.computePassEncoder.dispatchWorkgroups(grid[0], grid[1], grid[2]);
  backend.dispatchCountInPass++;
  if (backend.dispatchCountInPass >= deferredSubmitBatchSize()) {
    backend.endComputePassEncoder();
    backend.submitQueue();
  }
}

/**
 * Dispatches `kernel` over `grid` workgroups and returns the output tensors (in binding
 * order). Inputs and outputs are registered with the backend so that tfjs does not recycle
 * their buffers before the queued work has been submitted.
 */
export function dispatchKernel(
  kernelBackend: KernelBackend,
  kernel: KernelSource,
  bindings: readonly Binding[],
  grid: readonly [number, number, number],
): TensorInfo[] {
  const backend = webgpuInternals(kernelBackend);
  const pipeline = pipelineFor(backend.device, kernel);
  const outputs: TensorInfo[] = [];
  const entries: GPUBindGroupEntry[] = bindings.map((binding, i) => {
    switch (binding.kind) {
      case 'input': {
        backend.commandQueueOwnedIds.add(binding.tensor.dataId);
        return { binding: i, resource: { buffer: bufferOf(backend, binding.tensor) } };
      }
      case 'output': {
        const out = backend.makeTensorInfo(binding.shape, binding.dtype);
        outputs.push(out);
        backend.commandQueueOwnedIds.add(out.dataId);
        return { binding: i, resource: { buffer: bufferOf(backend, out) } };
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
  record(backend, pipeline, entries, grid);
  return outputs;
}
