/**
 * GPU memory of one loss step as tfjs sees it, and the failures a step can meet on a WebGPU
 * device (out of memory, a binding past the adapter's limit, a lost device), for the kernel
 * benchmark (bench/core/kernel-bench/). Host-neutral.
 *
 * Peak bytes: the largest `tf.memory().numBytesInGPU` (bytes of tfjs' GPU buffers in use) while
 * one step is recorded and run, minus its value before the step. tfjs-backend-webgpu (4.22)
 * raises that figure only in `BufferManager.acquireBuffer`, so wrapping that method sees every
 * maximum. It counts what tfjs really holds: a buffer is released only after the command
 * buffer that uses it has been submitted (tfjs submits every 15 programs, or at a read-back),
 * so a 52-program composition holds many temporaries at once. `tf.profile()` is not used for
 * this: it times every kernel (one submit each), which releases buffers sooner than a normal
 * step does, and its `peakBytes` counts a reshape's view as new bytes.
 */
import * as tf from '@tensorflow/tfjs-core';

/** The part of tfjs-backend-webgpu's BufferManager this module reads (a tfjs internal). */
interface BufferManagerInternals {
  numBytesUsed: number;
  numBytesAllocated: number;
  numFreeBuffers: number;
  freeBuffers: Map<string, GPUBuffer[]>;
  acquireBuffer(...args: unknown[]): GPUBuffer;
}

function bufferManager(): BufferManagerInternals | null {
  if (tf.getBackend() !== 'webgpu') return null;
  const bm = (tf.backend() as unknown as { bufferManager?: BufferManagerInternals }).bufferManager;
  return bm && typeof bm.acquireBuffer === 'function' && bm.freeBuffers instanceof Map ? bm : null;
}

/**
 * Moves tensors made from CPU data onto the GPU now (tfjs uploads lazily, at their first use),
 * so that a measured step does not count its inputs' upload. A no-op off WebGPU.
 */
export function uploadToGpu(tensors: readonly tf.Tensor[]): void {
  if (tf.getBackend() !== 'webgpu') return;
  const backend = tf.backend() as unknown as { uploadToGPU?: (dataId: object) => void };
  if (typeof backend.uploadToGPU !== 'function') return;
  for (const t of tensors) backend.uploadToGPU(t.dataId);
}

/** `tf.memory().numBytesInGPU` (0 off WebGPU). */
export function gpuBytesInUse(): number {
  return (tf.memory() as { numBytesInGPU?: number }).numBytesInGPU ?? 0;
}

/**
 * Runs `fn` (which records GPU work and returns a tensor to read back), waits for it, and
 * returns the result of `fn` with the peak of `tf.memory().numBytesInGPU` above its value
 * before the call. Off WebGPU the peak is null.
 */
export async function withPeakGpuBytes<T>(
  fn: () => T,
  settle: (result: T) => Promise<void>,
): Promise<{ result: T; peakBytes: number | null }> {
  const bm = bufferManager();
  if (!bm) {
    const result = fn();
    await settle(result);
    return { result, peakBytes: null };
  }
  const base = bm.numBytesUsed;
  let peak = base;
  const own = Object.prototype.hasOwnProperty.call(bm, 'acquireBuffer');
  const original = bm.acquireBuffer;
  bm.acquireBuffer = function (this: BufferManagerInternals, ...args: unknown[]) {
    const buffer = original.apply(this, args);
    peak = Math.max(peak, bm.numBytesUsed);
    return buffer;
  };
  try {
    const result = fn();
    await settle(result);
    return { result, peakBytes: peak - base };
  } finally {
    if (own) bm.acquireBuffer = original;
    else delete (bm as Partial<BufferManagerInternals>).acquireBuffer;
  }
}

/**
 * Destroys the GPU buffers tfjs keeps in its pool for reuse (freed tensors' buffers), so that
 * one shape's buffers do not hold memory while the next shape runs. Buffers in use are not
 * touched; the pool's keys are kept (tfjs stops pooling when the pool map is empty). Returns
 * the bytes released.
 */
export function releasePooledGpuBuffers(): number {
  const bm = bufferManager();
  if (!bm) return 0;
  let bytes = 0;
  for (const list of bm.freeBuffers.values()) {
    for (const buffer of list) {
      bytes += buffer.size;
      buffer.destroy();
    }
    bm.numFreeBuffers -= list.length;
    list.length = 0;
  }
  bm.numBytesAllocated -= bytes;
  return bytes;
}

/** How a side of a shape failed, or why it was not run. */
export type FailureKind =
  'skipped' | 'out-of-memory' | 'binding-limit' | 'validation' | 'device-lost' | 'error';

export interface StepFailure {
  kind: FailureKind;
  message: string;
}

/** "binding-limit: Binding size (268435456) …" — the text of a failure, one line. */
export function failureText(f: StepFailure): string {
  return `${f.kind}: ${f.message.split('\n')[0]!.trim()}`;
}

/** A thrown error as a failure: a RangeError naming a binding limit is one, else 'error'. */
export function failureOfError(err: unknown): StepFailure {
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  if (/maxStorageBufferBindingSize|maxBufferSize|binding size/i.test(message)) {
    return { kind: 'binding-limit', message };
  }
  if (/out of memory|OOM|allocat/i.test(message)) return { kind: 'out-of-memory', message };
  return { kind: 'error', message };
}

/** A WebGPU error from an error scope as a failure. */
export function failureOfGpuError(
  err: GPUError,
  scope: 'validation' | 'out-of-memory',
): StepFailure {
  const message = err.message;
  if (scope === 'out-of-memory') return { kind: 'out-of-memory', message };
  if (/binding size|maxStorageBufferBindingSize|maxBufferSize/i.test(message)) {
    return { kind: 'binding-limit', message };
  }
  return { kind: 'validation', message };
}

/**
 * Runs `fn` inside 'out-of-memory' and 'validation' error scopes on `device`; returns the first
 * failure (a thrown error, then out-of-memory, then validation) or null, with fn's result.
 */
export async function withGpuErrorScopes<T>(
  device: GPUDevice,
  fn: () => Promise<T>,
): Promise<{ result: T | null; failure: StepFailure | null }> {
  device.pushErrorScope('out-of-memory');
  device.pushErrorScope('validation');
  let result: T | null = null;
  let thrown: StepFailure | null = null;
  try {
    result = await fn();
  } catch (err) {
    thrown = failureOfError(err);
  }
  const validation = await device.popErrorScope();
  const oom = await device.popErrorScope();
  const failure =
    thrown ??
    (oom ? failureOfGpuError(oom, 'out-of-memory') : null) ??
    (validation ? failureOfGpuError(validation, 'validation') : null);
  return { result: failure ? null : result, failure };
}
