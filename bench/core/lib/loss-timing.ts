/**
 * Timing the distillation loss alone, forward + backward, as both the kernel benchmark
 * (bench/core/kernel-bench/) and the distillation protocol's loss-alone timing
 * (bench/core/protocol/timing.ts) do: one step, windows of steps with ONE fence each (the
 * read-back of the last loss), the window size, and the dispatch count of one step; and, where
 * the device has 'timestamp-query', the GPU time of one step from tfjs' own timestamp queries.
 *
 * Two clocks, and every figure says which:
 *   - wall: `performance.now()` around a window of steps, ONE fence per window; ms per step.
 *     Includes the host's work (tfjs' op dispatch, the tape, recording) wherever it is not
 *     hidden behind the GPU's.
 *   - GPU: `tf.time(step)`'s `kernelMs`. Inside tf.time, tfjs-backend-webgpu (4.22) runs every
 *     program in a compute pass of its own with timestampWrites, submits after each, and sums
 *     the pass times; the fused op's passes join that list (src/kernels/webgpu/dispatch.ts).
 *     So: the sum of the GPU time of the step's passes, without the gaps between them.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  stockDistillationLoss,
  type DistillationLossConfig,
  type SparseTeacher,
} from 'tfjs-fused-distill';
import { countDispatches } from './dispatch-counter.js';
import { spread, type Spread } from './stats.js';

/** The wall clock, as figures name it. */
export const WALL_CLOCK = 'wall, one fence per window';
/** The GPU clock, as figures name it. */
export const GPU_CLOCK = 'GPU timestamps';

/** What the wall-clock figures are. */
export const WALL_CLOCK_TEXT =
  `${WALL_CLOCK}: performance.now() around a window of steps with one read-back (fence) at ` +
  'its end, divided by the steps in the window; host work included where the GPU does not hide it';
/** What the GPU-clock figures are. */
export const GPU_CLOCK_TEXT =
  `${GPU_CLOCK}: tf.time(step).kernelMs, the sum of the GPU time of every compute pass of one ` +
  "step (tfjs times each program in a pass of its own with the device's timestamp-query; the " +
  'fused passes are timed the same way), gaps between passes excluded; one step per sample';

/**
 * The settings of a timed loss: the loss alone, reduced to a scalar by its default mean (no
 * `reduction`, `returnComponents` or `ignoreIndex`).
 */
export type TimedLossConfig = Pick<
  DistillationLossConfig,
  'alpha' | 'temperature' | 'divergence' | 'beta'
>;

/**
 * A loss the benchmarks time: distillationLoss, {@link kerasStockLoss}, or the kernel
 * benchmark's exact composition; a dense or top-K teacher, a scalar loss.
 */
export type LossFn = (
  labels: tf.Tensor,
  student: tf.Tensor,
  teacher: tf.Tensor | SparseTeacher,
  config: TimedLossConfig,
) => tf.Scalar;

/**
 * stockDistillationLoss as a {@link LossFn}. The Keras formula has forward KL only: another
 * divergence, or a β, is refused here, before the call.
 */
export const kerasStockLoss: LossFn = (labels, student, teacher, config) => {
  const { divergence, beta, ...keras } = config;
  if ((divergence !== undefined && divergence !== 'forward-kl') || beta !== undefined) {
    throw new Error(
      "stockDistillationLoss has the Keras formula's forward KL only, got " +
        `divergence ${divergence ?? 'forward-kl'}${beta === undefined ? '' : `, beta ${beta}`}`,
    );
  }
  return stockDistillationLoss(labels, student, teacher, keras);
};

/**
 * One forward+backward of `loss` w.r.t. the student logits (the gradient training needs,
 * implicit dy); returns the loss value to fence on, the gradient disposed.
 */
export function lossStep(
  loss: LossFn,
  labels: tf.Tensor,
  student: tf.Tensor,
  teacher: tf.Tensor | SparseTeacher,
  config: TimedLossConfig,
): tf.Tensor {
  return tf.tidy(() => {
    const f = (s: tf.Tensor) => loss(labels, s, teacher, config);
    const { value, grads } = tf.valueAndGrads(f)([student]);
    tf.dispose(grads);
    return value;
  });
}

/** `calls` runs of `run` and ONE fence (the last result's read-back); returns ms per call. */
export async function timeWindow(run: () => tf.Tensor, calls: number): Promise<number> {
  const start = performance.now();
  let last: tf.Tensor | null = null;
  for (let i = 0; i < calls; i++) {
    last?.dispose();
    last = run();
  }
  await last?.data();
  last?.dispose();
  return (performance.now() - start) / calls;
}

/** Calls per window so that one window lasts about `windowMs`: at least `min`, at most 500. */
export function windowCalls(onceMs: number, windowMs: number, min: number): number {
  return Math.max(min, Math.min(500, Math.round(windowMs / Math.max(onceMs, 0.01))));
}

/** GPU dispatches of one `run`, its result disposed. */
export function stepDispatches(run: () => tf.Tensor): number {
  let out: tf.Tensor | undefined;
  const n = countDispatches(() => {
    out = run();
  });
  out?.dispose();
  return n;
}

/** Whether tfjs' backend can time passes with timestamp queries, and if not, why. */
export interface GpuClockAvailability {
  readonly available: boolean;
  /** Why not (or which device does), in words. */
  readonly reason: string;
}

/** Whether `tf.time()` on the current backend reports GPU timestamps ('timestamp-query'). */
export function gpuClockAvailability(): GpuClockAvailability {
  const backend = tf.getBackend();
  if (backend !== 'webgpu') {
    return { available: false, reason: `the tfjs backend is '${backend}', not 'webgpu'` };
  }
  const device = (tf.backend() as unknown as { device?: GPUDevice }).device;
  if (!device?.features.has('timestamp-query')) {
    return {
      available: false,
      reason:
        "the WebGPU device lacks the 'timestamp-query' feature (tfjs requests it when the " +
        'adapter offers it; a browser may need it enabled)',
    };
  }
  return { available: true, reason: "the WebGPU device has 'timestamp-query'" };
}

/** One GPU-clock sample: a step's `kernelMs` and the time of each of its passes. */
export interface GpuStepSample {
  /** Sum of the step's pass times, ms. */
  readonly ms: number;
  /** Each timed pass, in order, ms (from tfjs' getExtraProfileInfo). */
  readonly passes: readonly number[];
}

/** Parses tfjs' `getExtraProfileInfo()` text, "name: ms, name: ms". */
function passTimes(info: tf.TimingInfo): number[] {
  const extra = (info as { getExtraProfileInfo?: () => string }).getExtraProfileInfo?.();
  if (typeof extra !== 'string' || extra === '') return [];
  return extra.split(', ').map((entry) => Number(entry.slice(entry.lastIndexOf(':') + 1)));
}

/** The GPU time of one `run` by tf.time(): kernelMs and the pass times; the result disposed. */
export async function gpuStepTime(run: () => tf.Tensor): Promise<GpuStepSample> {
  let out: tf.Tensor | undefined;
  try {
    const info = await tf.time(() => {
      out = run();
    });
    return { ms: info.kernelMs as number, passes: passTimes(info) };
  } finally {
    out?.dispose();
  }
}

/** GPU-clock step times: the spread, and what the passes looked like. */
export interface GpuStepTimes {
  /** ms per step, median and p20–p80. */
  readonly step: Spread;
  /** Passes timed in one step (the last sample): the step's dispatches when all were timed. */
  readonly passes: number;
  /**
   * The clock's apparent resolution in ms: the greatest common divisor of all non-zero pass
   * times (in whole ns); e.g. 0.065536 where Dawn quantizes timestamps to 2^16 ns. null when
   * no pass read above zero.
   */
  readonly resolutionMs: number | null;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/**
 * `samples` GPU-clock samples of `run` (one step each, after one discarded sample), stopping
 * early on abort; null when none was taken. `between` runs after each sample (e.g. to yield).
 */
export async function timeStepsGpu(
  run: () => tf.Tensor,
  samples: number,
  signal?: AbortSignal,
  between?: () => Promise<void>,
): Promise<GpuStepTimes | null> {
  await gpuStepTime(run);
  const ms: number[] = [];
  let passes = 0;
  let quantumNs = 0;
  for (let i = 0; i < samples && !signal?.aborted; i++) {
    const sample = await gpuStepTime(run);
    ms.push(sample.ms);
    passes = sample.passes.length;
    for (const p of sample.passes) {
      const ns = Math.round(p * 1e6);
      if (ns > 0) quantumNs = gcd(ns, quantumNs);
    }
    await between?.();
  }
  if (ms.length === 0) return null;
  return { step: spread(ms), passes, resolutionMs: quantumNs > 0 ? quantumNs / 1e6 : null };
}
