/**
 * The page's WebGPU: starts tfjs' WebGPU backend, describes the adapter it runs on (vendor,
 * architecture, limits, features) for the adapter panel and the result files, and watches the
 * device so that a lost device (driver reset, GPU process crash, another tab's hang) is
 * reported instead of leaving a run waiting forever.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-webgpu';
import { describeAdapterInfo, isSoftwareAdapter } from '../core/lib/adapter.js';
import type { AdapterDescription } from '../core/protocol.js';

/** Features worth naming in the panel, in this order. */
export const NOTABLE_FEATURES = ['timestamp-query', 'shader-f16', 'subgroups'] as const;

/** Limits worth showing (the ones a distillation loss at language-model scale meets first). */
export const NOTABLE_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupsPerDimension',
  'maxStorageBuffersPerShaderStage',
] as const;

/** What the page knows about its GPU once the backend runs. */
export interface PageGpu {
  description: AdapterDescription;
  software: boolean;
  info: GPUAdapterInfo;
  /** The limits and features of tfjs' device (what the kernels can use). */
  limits: Record<string, number>;
  features: string[];
  device: GPUDevice;
}

/** Why the page has no usable WebGPU, in words a visitor can act on. */
export class NoWebGPUError extends Error {
  override name = 'NoWebGPUError';
}

/** Starts tfjs on WebGPU; throws {@link NoWebGPUError} when the browser has none. */
export async function startWebGPU(): Promise<PageGpu> {
  if (!('gpu' in navigator) || !navigator.gpu) {
    throw new NoWebGPUError(
      'This browser has no WebGPU (navigator.gpu is missing). Use a current Chrome, Edge or ' +
        'Safari, or Firefox with WebGPU enabled, over https or on localhost.',
    );
  }
  if (!(await tf.setBackend('webgpu'))) {
    throw new NoWebGPUError('tfjs could not start its WebGPU backend (no adapter was granted).');
  }
  await tf.ready();
  const backend = tf.backend() as unknown as { device: GPUDevice; adapterInfo?: GPUAdapterInfo };
  const device = backend.device;
  const info = device.adapterInfo ?? backend.adapterInfo;
  const description = describeAdapterInfo(info, 'browser');
  const limits: Record<string, number> = {};
  for (const name of NOTABLE_LIMITS) limits[name] = device.limits[name];
  return {
    description,
    software: isSoftwareAdapter(
      description,
      info as GPUAdapterInfo & { isFallbackAdapter?: boolean },
    ),
    info,
    limits,
    features: [...device.features].sort(),
    device,
  };
}

/**
 * Calls `onLost` once when tfjs' device is lost, whatever the reason: the page never destroys
 * the device itself, so even a 'destroyed' loss means the device went away under a run (the
 * page tests simulate a loss that way). WebGPU never recovers a lost device: reload the page.
 */
export function watchDeviceLoss(
  device: GPUDevice,
  onLost: (info: GPUDeviceLostInfo) => void,
): void {
  void device.lost.then(onLost);
  device.addEventListener('uncapturederror', (ev) => {
    console.error(`WebGPU error: ${(ev as GPUUncapturedErrorEvent).error.message}`);
  });
}
