/** Registers the fused kernels and their gradients with tfjs (idempotent). */
import * as tf from '@tensorflow/tfjs-core';
import { fusedDistillationGradConfig } from './gradient.js';
import { fusedSparseDistillationGradConfig } from './sparse-gradient.js';
import { webgpuKernelConfigs } from './webgpu/distill-webgpu.js';
import { sparseKernelConfigs } from './webgpu/sparse-webgpu.js';

let registered = false;

export function registerFusedDistillation(): void {
  if (registered) return;
  registered = true;
  for (const config of [...webgpuKernelConfigs, ...sparseKernelConfigs]) {
    if (!tf.getKernel(config.kernelName, config.backendName)) tf.registerKernel(config);
  }
  for (const gradient of [fusedDistillationGradConfig, fusedSparseDistillationGradConfig]) {
    if (!tf.getGradient(gradient.kernelName)) tf.registerGradient(gradient);
  }
}
