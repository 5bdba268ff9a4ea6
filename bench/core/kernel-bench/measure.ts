/**
 * What the kernel benchmark's dense and top-K timings share: the seeded inputs of a shape, the
 * checked first step (errors, peak memory, dispatches), and the wall-clock window schedules
 * (plain, forward/forward+backward pairs, several steps alternating).
 */
import * as tf from '@tensorflow/tfjs-core';
import { labelArray, mulberry32, uniformArray } from 'tfjs-fused-distill/validation';
import { countDispatches } from '../lib/dispatch-counter.js';
import {
  uploadToGpu,
  withGpuErrorScopes,
  withPeakGpuBytes,
  type StepFailure,
} from '../lib/gpu-memory.js';
import { timeWindow, windowCalls } from '../lib/loss-timing.js';
import { spread, type Spread } from '../lib/stats.js';

/** Windows of the stock loss at very wide shapes, where one stock window takes long. */
export const WIDE_STOCK_WINDOWS = 5;
export const WIDE_CLASSES = 8192;
/** A step longer than this gets no separate warm-up or probe (the check call warmed it). */
const LONG_STEP_MS = 1000;

/** Thrown when the signal fires before a shape's figures are complete. */
export class Aborted extends Error {}

/** The loss inputs of one shape, seeded. */
export function makeInputs(seed: number, batch: number, classes: number) {
  const rng = mulberry32(seed + batch * 7919 + classes);
  const s = tf.tensor2d(uniformArray(batch * classes, 4, rng), [batch, classes]);
  const t = tf.tensor2d(uniformArray(batch * classes, 4, rng), [batch, classes]);
  const y = tf.tensor1d(labelArray(batch, classes, rng), 'int32');
  uploadToGpu([s, t, y]);
  return { s, t, y };
}

/** What the checked first step of a side measured. */
export interface CheckedStep {
  dispatches: number;
  peakBytes: number | null;
  /** Wall time of that first step, ms (pipeline compilation included). */
  firstMs: number;
}

/**
 * One checked step of a side, before its timing: GPU errors (out of memory, a binding past the
 * adapter's limit, validation), the peak GPU bytes and the dispatches; or how it failed.
 * `announce` runs just before the step (a progress line).
 */
export async function checkStep(
  device: GPUDevice,
  stepRun: () => tf.Tensor,
  deviceLost: () => string | null,
  announce: () => void,
): Promise<CheckedStep | StepFailure> {
  const gone = deviceLost();
  if (gone) return { kind: 'device-lost', message: gone };
  announce();
  const t0 = performance.now();
  let dispatches = 0;
  const checked = await withGpuErrorScopes(device, () =>
    withPeakGpuBytes(
      () => {
        let out: tf.Tensor | undefined;
        dispatches = countDispatches(() => {
          out = stepRun();
        });
        return out!;
      },
      async (v) => {
        try {
          await v.data();
        } finally {
          v.dispose();
        }
      },
    ),
  );
  const firstMs = performance.now() - t0;
  const goneNow = deviceLost();
  if (goneNow) return { kind: 'device-lost', message: goneNow };
  if (checked.failure) return checked.failure;
  return { dispatches, peakBytes: checked.result?.peakBytes ?? null, firstMs };
}

/**
 * Per-step wall times: two fenced warm-up steps, one probe step to size the windows, then
 * `windows` windows of steps with one fence each; null if aborted before a window.
 */
export async function timeSteps(
  run: () => tf.Tensor,
  windows: number,
  windowMs: number,
  signal: AbortSignal | undefined,
  between: (() => Promise<void>) | undefined,
): Promise<Spread | null> {
  for (let i = 0; i < 2; i++) await timeWindow(run, 1);
  const calls = windowCalls(await timeWindow(run, 1), windowMs, 1);
  const samples: number[] = [];
  for (let w = 0; w < windows && !signal?.aborted; w++) {
    samples.push(await timeWindow(run, calls));
    await between?.();
  }
  return samples.length > 0 ? spread(samples) : null;
}

/**
 * Forward-only and forward+backward windows in pairs, back to back (forward first): the same
 * calls per window for both, sized on the forward+backward step. Backward = both − forward per
 * pair. null if aborted before a pair.
 */
export async function timePhases(
  step: () => tf.Tensor,
  forward: () => tf.Tensor,
  windows: number,
  windowMs: number,
  stepMs: number,
  signal: AbortSignal | undefined,
  between: (() => Promise<void>) | undefined,
): Promise<{ both: Spread; forward: Spread; backward: Spread } | null> {
  let calls = 1;
  if (stepMs < LONG_STEP_MS) {
    for (let i = 0; i < 2; i++) {
      await timeWindow(forward, 1);
      await timeWindow(step, 1);
    }
    calls = windowCalls(await timeWindow(step, 1), windowMs, 1);
  } else {
    await timeWindow(forward, 1);
  }
  const f: number[] = [];
  const b: number[] = [];
  for (let w = 0; w < windows && !signal?.aborted; w++) {
    f.push(await timeWindow(forward, calls));
    b.push(await timeWindow(step, calls));
    await between?.();
  }
  if (b.length === 0) return null;
  return { both: spread(b), forward: spread(f), backward: spread(b.map((x, i) => x - f[i]!)) };
}

/**
 * Wall times of several steps in alternating windows (one fence each): two fenced warm-ups
 * and a probe each, then `windows` rounds of one window per step, so that their ratios come
 * from the same stretch of time. null if aborted before a round.
 */
export async function timeAlternating(
  runs: readonly (() => tf.Tensor)[],
  windows: number,
  windowMs: number,
  signal: AbortSignal | undefined,
  between: (() => Promise<void>) | undefined,
): Promise<Spread[] | null> {
  const calls: number[] = [];
  for (const run of runs) {
    for (let i = 0; i < 2; i++) await timeWindow(run, 1);
    calls.push(windowCalls(await timeWindow(run, 1), windowMs, 1));
  }
  const samples: number[][] = runs.map(() => []);
  for (let w = 0; w < windows && !signal?.aborted; w++) {
    for (const [i, run] of runs.entries()) samples[i]!.push(await timeWindow(run, calls[i]!));
    await between?.();
  }
  return samples[0]!.length > 0 ? samples.map((x) => spread(x)) : null;
}

/** x, or null when x is not finite (JSON cannot hold Infinity). */
export function finite(x: number | null): number | null {
  return x !== null && Number.isFinite(x) ? x : null;
}
