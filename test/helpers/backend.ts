/**
 * Backend selection for tests. `useWebGPU()` fails loudly when no WebGPU adapter exists:
 * CI always has a software one (lavapipe or SwiftShader), so a missing adapter is a defect,
 * never a reason to skip. `useCheckedWebGPU()` is the prologue of every test file that runs
 * the kernels.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgpu';
import { afterAll, afterEach, beforeAll, expect } from 'vitest';
import {
  overrideAdapterClassForTesting,
  overrideBindingLimitForTesting,
} from '../../src/kernels/plan.js';
import { describeAdapter } from '../../tools/webgpu-node.js';
import { tfDevice } from '../../src/validation/gpu-scope.js';

// Host-neutral (the app uses them too): tfjs' device and a validation error scope on it.
export { tfDevice, withValidationScope } from '../../src/validation/gpu-scope.js';

let printed = false;
const recordedGpuErrors: string[] = [];
const watchedDevices = new WeakSet<GPUDevice>();

/** WebGPU errors that no error scope caught since the process started (validation, OOM…). */
export function uncapturedGpuErrors(): readonly string[] {
  return recordedGpuErrors;
}

export async function useWebGPU(): Promise<void> {
  const gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (!gpu) throw new Error('navigator.gpu is missing: test/setup/webgpu.ts did not run');
  const adapter = await gpu.requestAdapter();
  if (!adapter) {
    throw new Error(
      'No WebGPU adapter: install the software stack with `bash scripts/setup-headless.sh`',
    );
  }
  const ok = await tf.setBackend('webgpu');
  if (!ok || tf.getBackend() !== 'webgpu') {
    throw new Error('tfjs could not initialise its webgpu backend on this adapter');
  }
  const device = tfDevice();
  if (!watchedDevices.has(device)) {
    watchedDevices.add(device);
    device.addEventListener('uncapturederror', (event) => {
      recordedGpuErrors.push((event as GPUUncapturedErrorEvent).error.message);
    });
  }
  if (!printed) {
    printed = true;
    const info = describeAdapter(adapter.info, process.env.VK_ICD_FILENAMES ?? 'dawn default');
    console.log(`[webgpu] adapter: ${info.description}`);
  }
}

export async function useCpu(): Promise<void> {
  await tf.setBackend('cpu');
}

/**
 * The prologue of a test file on the WebGPU backend; call once, at its top level. Before its
 * tests, the backend (useWebGPU); after each test, the plan's test hooks (adapter class,
 * binding limit) back to the device's own; after all of them, no WebGPU error that an error
 * scope did not catch.
 */
export function useCheckedWebGPU(): void {
  beforeAll(useWebGPU);
  afterEach(() => {
    overrideAdapterClassForTesting(null);
    overrideBindingLimitForTesting(null);
  });
  afterAll(() => expect(uncapturedGpuErrors()).toEqual([]));
}
