/**
 * The kernel benchmark's plan: which sides of which shapes run within the memory budget and
 * the adapter's buffer limits, and how long the run will take, from a memory model measured on
 * one calibration shape.
 */
import * as tf from '@tensorflow/tfjs-core';
import { distillationLoss } from 'tfjs-fused-distill';
import { releasePooledGpuBuffers, withPeakGpuBytes } from '../lib/gpu-memory.js';
import { lossStep, timeWindow, type LossFn } from '../lib/loss-timing.js';
import { formatBytes } from '../lib/stats.js';
import { kernelLossConfig, stockLossFor } from './losses.js';
import { makeInputs } from './measure.js';
import type { KernelBenchOptions } from './options.js';
import type { KernelMemoryModel, KernelRunPlan, ShapePlan, SidePlan } from './report.js';

/** The default memory budget of a sweep, GiB (`--memory-budget`). */
export const DEFAULT_MEMORY_BUDGET_GIB = 8;
/** The shape whose steps calibrate the memory model and the time estimate. */
export const CALIBRATION_SHAPE: readonly [number, number] = [128, 16384];

export const GiB = 1024 ** 3;

/**
 * Calls per measured side, for the time estimate: the check call, a warm-up, `windows` windows
 * of about `windowMs` (one call at least; twice with the forward-only windows) and `gpuSamples`
 * + 1 GPU-clock steps.
 */
function sideSeconds(
  stepMs: number,
  windows: number,
  windowMs: number,
  phases: boolean,
  gpuSamples: number,
): number {
  const window = Math.max(windowMs, stepMs);
  const perWindow = phases ? window * 1.6 : window;
  return (2 * stepMs * (phases ? 1.6 : 1) + windows * perWindow + (gpuSamples + 1) * stepMs) / 1000;
}

/** Windows actually measured for a side whose step takes `stepMs` (see maxSideMs). */
export function windowsFor(
  stepMs: number,
  windows: number,
  maxSideMs: number | null,
  phases: boolean,
): number {
  if (maxSideMs === null) return windows;
  const perWindow = stepMs * (phases ? 2.6 : 2);
  return Math.max(
    Math.min(MIN_WINDOWS, windows),
    Math.min(windows, Math.floor(maxSideMs / perWindow)),
  );
}

/** Fewest windows a long side is cut to. */
const MIN_WINDOWS = 3;

/**
 * Which sides of which shapes run, from the memory model and the limits: a side is skipped when
 * its inputs (on the host and on the GPU) plus its measured peak (scaled from the calibration
 * shape) exceed the budget, or
 * when one `[rows, C]` array is larger than the adapter's maxBufferSize (it cannot be created).
 * The ceiling needs three arrays. Without a model (no budget), nothing is skipped.
 */
export function planKernelRun(
  shapes: readonly (readonly [number, number])[],
  memory: KernelMemoryModel | null,
  limits: {
    budgetBytes: number | null;
    maxBufferSize: number;
    maxStorageBufferBindingSize: number;
    windows: number;
    windowMs: number;
    phases: boolean;
    gpuClock: boolean;
    maxSideMs: number | null;
  },
): KernelRunPlan {
  const plans = shapes.map(([batch, classes]): ShapePlan => {
    const arrayBytes = batch * classes * 4;
    const elements = batch * classes;
    // A loss side: its inputs on the host (made there, then uploaded) and on the GPU, and the
    // step's peak; the ceiling: its three GPU arrays.
    const side = (arrays: number, live: number, msPerElement: number | null): SidePlan => {
      const estimatedBytes = Math.ceil((arrays + live) * arrayBytes);
      let skip: string | null = null;
      if (arrayBytes > limits.maxBufferSize) {
        skip =
          `one [${batch}, ${classes}] float32 array (${formatBytes(arrayBytes)}) exceeds the ` +
          `adapter's maxBufferSize (${formatBytes(limits.maxBufferSize)})`;
      } else if (limits.budgetBytes !== null && estimatedBytes > limits.budgetBytes) {
        skip =
          `estimated ${formatBytes(estimatedBytes)} (${arrays} [rows, C] arrays of inputs + ` +
          `${live.toFixed(1)} at the peak) exceeds the memory budget of ` +
          formatBytes(limits.budgetBytes);
      }
      let estimatedSeconds = 0;
      if (skip === null && msPerElement !== null) {
        const stepMs = msPerElement * elements;
        const w = windowsFor(stepMs, limits.windows, limits.maxSideMs, limits.phases);
        estimatedSeconds = sideSeconds(
          stepMs,
          w,
          limits.windowMs,
          limits.phases,
          limits.gpuClock ? w : 0,
        );
      }
      return { estimatedBytes, skip, estimatedSeconds };
    };
    const fused = side(4, memory?.fusedLiveArrays ?? 1, memory?.fusedMsPerElement ?? null);
    const stock = side(4, memory?.stockLiveArrays ?? 1, memory?.stockMsPerElement ?? null);
    const ceiling = side(3, 0, memory ? memory.fusedMsPerElement / 3 : null);
    return { batch, classes, arrayBytes, fused, stock, ceiling };
  });
  return {
    shapes: plans,
    memory,
    budgetBytes: limits.budgetBytes,
    maxBufferSize: limits.maxBufferSize,
    maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
    estimatedSeconds: memory
      ? plans.reduce(
          (a, p) =>
            a + p.fused.estimatedSeconds + p.stock.estimatedSeconds + p.ceiling.estimatedSeconds,
          0,
        )
      : null,
  };
}

/**
 * Measures the memory model on {@link CALIBRATION_SHAPE}: one step of each loss for the peak
 * bytes, and one more (warm) for the time per element.
 */
export async function calibrateKernelBench(
  options: Pick<KernelBenchOptions, 'alpha' | 'temperature' | 'seed' | 'divergence' | 'beta'>,
): Promise<KernelMemoryModel> {
  const [batch, classes] = CALIBRATION_SHAPE;
  const config = kernelLossConfig(options);
  const { s, t, y } = makeInputs(options.seed, batch, classes);
  const arrayBytes = batch * classes * 4;
  try {
    const one = async (loss: LossFn) => {
      const run = () => lossStep(loss, y, s, t, config);
      const { peakBytes } = await withPeakGpuBytes(run, async (v) => {
        await v.data();
        v.dispose();
      });
      const ms = await timeWindow(run, 1);
      return { live: (peakBytes ?? arrayBytes) / arrayBytes, msPerElement: ms / (batch * classes) };
    };
    const fused = await one(distillationLoss);
    const stock = await one(stockLossFor(options.divergence ?? 'forward-kl'));
    return {
      shape: [batch, classes],
      fusedLiveArrays: fused.live,
      stockLiveArrays: stock.live,
      fusedMsPerElement: fused.msPerElement,
      stockMsPerElement: stock.msPerElement,
    };
  } finally {
    tf.dispose([s, t, y]);
    releasePooledGpuBuffers();
  }
}
