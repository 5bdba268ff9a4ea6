/**
 * Installs a WebGPU implementation (Dawn, from the `webgpu` package) into Node's globals so
 * that `@tensorflow/tfjs-backend-webgpu` finds `navigator.gpu`, and picks a software Vulkan
 * adapter without hand-set environment variables:
 *
 *   1. `VK_ICD_FILENAMES` if the caller set it (respected as is);
 *   2. otherwise `FUSED_DISTILL_ADAPTER=swiftshader|lavapipe` chooses an ICD file;
 *   3. otherwise Dawn's own search, which finds lavapipe once `scripts/setup-headless.sh`
 *      has installed Mesa's Vulkan drivers, and else falls back to Chromium's SwiftShader.
 *
 * The object that `create()` returns is kept on a global: if it is garbage collected, Dawn
 * later kills the process (see ../shared/notes/webgpu-headless.md).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describeAdapterInfo } from '../bench/core/lib/adapter-description.js';

const LAVAPIPE_ICDS = [
  '/usr/share/vulkan/icd.d/lvp_icd.json',
  '/usr/share/vulkan/icd.d/lvp_icd.x86_64.json',
];
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

export interface NodeAdapterDescription {
  /** Which software or hardware adapter Dawn handed out, e.g. "lavapipe (mesa, software)". */
  readonly description: string;
  readonly vendor: string;
  readonly architecture: string;
  readonly device: string;
  /** The Vulkan ICD file that was selected, or "dawn default". */
  readonly icd: string;
}

interface GpuGlobals {
  __fusedDistillGpu?: GPU;
  navigator?: { gpu?: GPU };
  window?: unknown;
}

function chooseIcd(): string {
  const fromEnv = process.env.VK_ICD_FILENAMES;
  if (fromEnv) return fromEnv;
  const wanted = (process.env.FUSED_DISTILL_ADAPTER ?? '').toLowerCase();
  const lavapipe = LAVAPIPE_ICDS.find((p) => existsSync(p));
  if (wanted === 'swiftshader') {
    if (!existsSync(SWIFTSHADER_ICD)) {
      throw new Error(
        `FUSED_DISTILL_ADAPTER=swiftshader but ${SWIFTSHADER_ICD} is missing: run scripts/setup-headless.sh`,
      );
    }
    return SWIFTSHADER_ICD;
  }
  if (wanted === 'lavapipe') {
    if (!lavapipe) {
      throw new Error(
        'FUSED_DISTILL_ADAPTER=lavapipe but no lavapipe ICD file was found: run scripts/setup-headless.sh',
      );
    }
    return lavapipe;
  }
  if (wanted !== '') {
    throw new Error(
      `FUSED_DISTILL_ADAPTER must be "lavapipe" or "swiftshader", got "${process.env.FUSED_DISTILL_ADAPTER}"`,
    );
  }
  if (lavapipe) return 'dawn default';
  if (existsSync(SWIFTSHADER_ICD)) return SWIFTSHADER_ICD;
  return 'dawn default';
}

/**
 * Puts Dawn's `navigator.gpu` in place (once per process) and returns the ICD chosen.
 * Must run before tfjs' WebGPU backend is initialised.
 */
export function installNodeWebGPU(): string {
  const g = globalThis as unknown as GpuGlobals;
  const icd = chooseIcd();
  if (g.__fusedDistillGpu) return icd;
  if (icd !== 'dawn default') process.env.VK_ICD_FILENAMES = icd;
  const require = createRequire(import.meta.url);
  const dawn = require('webgpu') as { create(flags: string[]): GPU; globals: object };
  Object.assign(globalThis, dawn.globals);
  const gpu = dawn.create([]);
  g.__fusedDistillGpu = gpu;
  if (!g.navigator) {
    Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true });
  } else if (!g.navigator.gpu) {
    Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true });
  }
  // tfjs' isWebGPUSupported() also looks for a window.
  g.window ??= globalThis;
  return icd;
}

/** Describes the adapter that the tfjs WebGPU backend is using. */
export function describeAdapter(
  info: Partial<GPUAdapterInfo> | undefined,
  icd: string,
): NodeAdapterDescription {
  return describeAdapterInfo(info, icd);
}
