/**
 * WebGPU for Node: Dawn from the `webgpu` package as `navigator.gpu`, as the repository's own
 * tests set it up. Imported before anything touches tfjs.
 */
import { create, globals } from 'webgpu';

Object.assign(globalThis, globals); // GPUBufferUsage, GPUMapMode, …
const gpu = create([]);
// Kept reachable for the life of the process: if collected, Dawn later kills the process.
/** @type {any} */ (globalThis).__consumerGpu = gpu;
if (!globalThis.navigator) {
  Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true });
} else if (!globalThis.navigator.gpu) {
  Object.defineProperty(globalThis.navigator, 'gpu', { value: gpu, configurable: true });
}
// tfjs' isWebGPUSupported() also looks for a window.
/** @type {any} */ (globalThis).window ??= globalThis;
