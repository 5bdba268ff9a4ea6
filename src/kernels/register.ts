/** Registers the fused kernels and their gradient with tfjs (idempotent). */
import * as tf from '@tensorflow/tfjs-core';
import { fusedDistillationGradConfig } from './gradient.js';
import { webgpuKernelConfigs } from './webgpu/distill_webgpu.js';

let registered = false;

export function registerFusedDistillation(): void {
  if (registered) return;
  registered = true;
  for (const config of webgpuKernelConfigs) {
    if (!tf.getKernel(config.kernelName, config.backendName)) tf.registerKernel(config);
  }
  if (!tf.getGradient(fusedDistillationGradConfig.kernelName)) {
    tf.registerGradient(fusedDistillationGradConfig);
  }
}
