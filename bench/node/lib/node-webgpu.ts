/**
 * Node-side start-up shared by the benchmarks: Dawn's WebGPU in Node's globals, the tfjs
 * WebGPU backend, and a description of the adapter for every result file.
 */
import * as tf from '@tensorflow/tfjs-core';
import { isSoftwareAdapter } from '../../core/lib/adapter.js';
import {
  describeAdapter,
  installNodeWebGPU,
  type NodeAdapterDescription,
} from '../../../tools/webgpu-node.js';

export interface WebGPUEnvironment {
  readonly adapter: NodeAdapterDescription;
  /** Software rasterisers (lavapipe, SwiftShader) get the reduced presets. */
  readonly software: boolean;
  readonly device: GPUDevice;
}

export async function initNodeWebGPU(): Promise<WebGPUEnvironment> {
  const icd = installNodeWebGPU();
  // The backend registers itself at import only if navigator.gpu already exists: import it now.
  await import('@tensorflow/tfjs-backend-webgpu');
  const gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  const adapter = await gpu?.requestAdapter();
  if (!adapter) {
    throw new Error(
      'No WebGPU adapter found: run `bash scripts/setup-headless.sh` (installs lavapipe)',
    );
  }
  if (!(await tf.setBackend('webgpu'))) throw new Error('tfjs could not start its webgpu backend');
  await tf.ready();
  const description = describeAdapter(adapter.info, icd);
  const software = isSoftwareAdapter(description);
  const device = (tf.backend() as unknown as { device: GPUDevice }).device;
  return { adapter: description, software, device };
}
