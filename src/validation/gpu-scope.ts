/**
 * WebGPU error scopes on tfjs' own device, for the numerics checks: the same in a test (Node
 * with Dawn) and in a page. Needs tfjs' 'webgpu' backend to be the active one.
 */
import * as tf from '@tensorflow/tfjs-core';

/** The GPUDevice of tfjs' WebGPU backend (undefined when the active backend is not 'webgpu'). */
export function tfDevice(): GPUDevice {
  return (tf.backend() as unknown as { device: GPUDevice }).device;
}

/**
 * Runs `fn` inside a validation error scope on tfjs' device (fn should fence with tfjs' own
 * reads, e.g. `await tensor.data()`) and returns its result with the validation error's message,
 * if WebGPU reported one. An exception thrown by fn is rethrown once the scope is popped.
 */
export async function captureValidationError<T>(
  fn: () => Promise<T>,
): Promise<{ result: T; validationError: string | null }> {
  const device = tfDevice();
  device.pushErrorScope('validation');
  let result: T;
  try {
    result = await fn();
  } catch (err) {
    await device.popErrorScope();
    throw err;
  }
  const error = await device.popErrorScope();
  return { result, validationError: error ? error.message : null };
}

/**
 * Runs `fn` inside a validation error scope on tfjs' device (and fences with tfjs' own reads
 * inside fn) and throws if WebGPU reported a validation error.
 */
export async function withValidationScope<T>(fn: () => Promise<T>): Promise<T> {
  const { result, validationError } = await captureValidationError(fn);
  if (validationError !== null) throw new Error(`WebGPU validation error: ${validationError}`);
  return result;
}
