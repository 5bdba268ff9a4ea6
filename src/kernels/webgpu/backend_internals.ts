/**
 * The parts of tfjs' WebGPUBackend (4.x) that a multi-output custom kernel needs. tfjs'
 * public `runWebGPUProgram` binds exactly one output; the forward kernel writes two (losses
 * and row statistics) and the backward kernel up to two gradients, so they are recorded into
 * the backend's own command encoder the way `recordAndSubmit` does it, keeping tfjs' buffer
 * reuse, deferred submission and disposal bookkeeping intact. Checked once per backend so
 * that a tfjs version that renames these fails with a clear message, not a wrong result.
 */
import type { DataId, DataType, KernelBackend, TensorInfo } from '@tensorflow/tfjs-core';
import { env } from '@tensorflow/tfjs-core';

export interface UniformField {
  type: 'int32' | 'uint32' | 'float32';
  data: number[];
}

export interface WebGPUBackendInternals {
  readonly device: GPUDevice;
  readonly tensorMap: { get(dataId: DataId): { resource: unknown } };
  commandEncoder: GPUCommandEncoder | null;
  computePassEncoder: GPUComputePassEncoder | null;
  dispatchCountInPass: number;
  readonly commandQueueOwnedIds: WeakSet<DataId>;
  makeTensorInfo(shape: number[], dtype: DataType): TensorInfo;
  uploadToGPU(dataId: DataId): void;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  makeUniforms(uniforms: UniformField[]): GPUBufferBinding;
}

const REQUIRED_METHODS = [
  'makeTensorInfo',
  'uploadToGPU',
  'ensureCommandEncoderReady',
  'endComputePassEncoder',
  'submitQueue',
  'makeUniforms',
] as const;

const checked = new WeakSet<object>();

/** Returns the backend typed with the internals used here, after checking they exist. */
export function webgpuInternals(backend: KernelBackend): WebGPUBackendInternals {
  const b = backend as unknown as WebGPUBackendInternals & Record<string, unknown>;
  if (!checked.has(b)) {
    const missing = REQUIRED_METHODS.filter((m) => typeof b[m] !== 'function');
    if (!b.device || !b.tensorMap || !b.commandQueueOwnedIds) missing.push('device' as never);
    if (missing.length > 0) {
      throw new Error(
        `tfjs-fused-distill: this @tensorflow/tfjs-backend-webgpu lacks ${missing.join(', ')}; ` +
          'the fused kernels support tfjs-backend-webgpu 4.x (tested with 4.22)',
      );
    }
    checked.add(b);
  }
  return b;
}

/** The GPUBuffer behind a tensor, uploaded first if its data still lives on the CPU. */
export function bufferOf(backend: WebGPUBackendInternals, t: TensorInfo): GPUBuffer {
  backend.uploadToGPU(t.dataId);
  const resource = backend.tensorMap.get(t.dataId).resource;
  if (!(resource instanceof GPUBuffer)) {
    throw new Error('tfjs-fused-distill: expected a tensor stored in a GPUBuffer (not a texture)');
  }
  return resource;
}

/** tfjs' flush threshold: the queue is submitted every this many dispatches. */
export function deferredSubmitBatchSize(): number {
  return env().get('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE') as number;
}
