/**
 * The benchmark's separate timings, outside the training loop: the phases of a distillation
 * step, each fenced on its own (a breakdown, not the step time), and the loss alone, forward +
 * backward, fused vs stock on logits captured from a real batch (the step and the windowed
 * timing shared with the kernel benchmark: bench/core/lib/loss-timing.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { distillationLoss, isSparseTeacher, type Distiller } from 'tfjs-fused-distill';
import { inferLogits, trainableVariables } from '../hard-label-training.js';
import {
  GPU_CLOCK,
  gpuClockAvailability,
  gpuStepTime,
  kerasStockLoss,
  lossStep,
  stepDispatches,
  timeWindow,
  WALL_CLOCK,
  windowCalls,
} from '../lib/loss-timing.js';
import { spread, type Spread } from '../lib/stats.js';
import type { BenchSettings } from '../presets.js';
import { epochOrder, makeBatch, type Batch, type HostSplit } from './data.js';
import type { LossOnlyTimes, PhaseTimes } from './report.js';
import { stepsPerEpoch } from './train-loop.js';

/**
 * Times each phase of a distillation step on its own, fencing after every phase (a read-back
 * of the phase's smallest output). The fences drain the queue, so the phases add up to more
 * than a windowed step: this is a breakdown of where the time goes, not the step time.
 * Runs after the run's evaluation: its steps do update the student.
 */
export async function timePhases(
  distiller: Distiller,
  split: HostSplit,
  settings: BenchSettings,
  signal: AbortSignal | undefined,
): Promise<PhaseTimes | null> {
  const order = epochOrder(split.count, settings.seed, 0);
  // The smallest student variable: reading it fences the optimizer update cheaply.
  const probe = trainableVariables(distiller.student).reduce((a, b) => (b.size < a.size ? b : a));
  const phases = { teacher: [] as number[], student: [] as number[], apply: [] as number[] };
  const samples = settings.timing.phaseSamples;
  const batches = stepsPerEpoch(split.count, settings.batchSize);
  // One extra leading sample, discarded: the first read-backs of a phase are slower.
  for (let i = 0; i <= samples && !signal?.aborted; i++) {
    const start = ((i % batches) * settings.batchSize) % split.count;
    const batch = makeBatch(split, order, start, settings.batchSize);
    try {
      const t = await timeOnePhaseStep(distiller, batch, probe);
      if (i === 0) continue;
      phases.teacher.push(t[0]);
      phases.student.push(t[1]);
      phases.apply.push(t[2]);
    } finally {
      tf.dispose([batch.x, batch.y]);
    }
  }
  if (phases.teacher.length === 0) return null;
  return {
    teacherForward: spread(phases.teacher),
    studentForwardLossBackward: spread(phases.student),
    optimizerApply: spread(phases.apply),
  };
}

/** One step through the Distiller's split methods, each phase fenced; returns 3 times in ms. */
async function timeOnePhaseStep(
  distiller: Distiller,
  batch: Batch,
  probe: tf.Variable,
): Promise<[number, number, number]> {
  const t0 = performance.now();
  const teacherLogits =
    distiller.teacherLogitsMode === 'cached'
      ? distiller.teacherCache.rows(batch.indices)
      : distiller.teacherForward(batch.x);
  const teacherTensors = isSparseTeacher(teacherLogits)
    ? [teacherLogits.indices, teacherLogits.logProbs]
    : [teacherLogits];
  await Promise.all(teacherTensors.map((t) => t.data()));
  const t1 = performance.now();
  const { loss, grads, accuracy } = distiller.computeGradients(batch.x, batch.y, teacherLogits);
  // The backward pass was queued before this read, so it has finished when the loss arrives.
  await loss.data();
  const t2 = performance.now();
  distiller.applyGradients(grads);
  await probe.data();
  const t3 = performance.now();
  tf.dispose([...teacherTensors, loss, accuracy ?? []]);
  return [t1 - t0, t2 - t1, t3 - t2];
}

/** Real logits of one batch, captured for the loss-alone timing. */
export interface CapturedLogits {
  labels: tf.Tensor1D;
  student: tf.Tensor2D;
  teacher: tf.Tensor2D;
}

/**
 * The loss alone, forward + backward, fused vs stock, on the same captured logits: windows
 * of calls with one fence each, fused and stock windows interleaved so that drift in the
 * machine's speed hits both alike; then, where the device has 'timestamp-query', as many
 * GPU-clock samples of one step each (tf.time's kernelMs), interleaved the same way.
 */
export async function timeLossOnly(
  captured: CapturedLogits,
  settings: BenchSettings,
  signal: AbortSignal | undefined,
): Promise<LossOnlyTimes | null> {
  const config = { alpha: settings.alpha, temperature: settings.temperature };
  const { labels, student, teacher } = captured;
  const fusedRun = (): tf.Tensor => lossStep(distillationLoss, labels, student, teacher, config);
  const stockRun = (): tf.Tensor => lossStep(kerasStockLoss, labels, student, teacher, config);
  // Warm-up (pipeline compilation), then one probe call to size the windows.
  await timeWindow(fusedRun, 2);
  await timeWindow(stockRun, 2);
  const once = await timeWindow(stockRun, 1);
  const calls = windowCalls(once, settings.timing.lossWindowMs, 2);
  const fused: number[] = [];
  const stock: number[] = [];
  for (let w = 0; w < settings.timing.lossWindows && !signal?.aborted; w++) {
    fused.push(await timeWindow(fusedRun, calls));
    stock.push(await timeWindow(stockRun, calls));
  }
  if (fused.length === 0) return null;
  const f = spread(fused);
  const s = spread(stock);
  const availability = gpuClockAvailability();
  let gpu: { fused: Spread; stock: Spread } | null = null;
  if (availability.available) {
    const gpuFused: number[] = [];
    const gpuStock: number[] = [];
    // One discarded step each (tfjs' timed path submits per pass), then alternating samples.
    await gpuStepTime(fusedRun);
    await gpuStepTime(stockRun);
    for (let i = 0; i < settings.timing.lossWindows && !signal?.aborted; i++) {
      gpuFused.push((await gpuStepTime(fusedRun)).ms);
      gpuStock.push((await gpuStepTime(stockRun)).ms);
    }
    if (gpuFused.length > 0) gpu = { fused: spread(gpuFused), stock: spread(gpuStock) };
  }
  const clock =
    `fused, stock: ${WALL_CLOCK}; gpu: ` +
    (gpu
      ? `${GPU_CLOCK} (tf.time kernelMs, sum of one step's pass times)`
      : availability.available
        ? 'not measured (stopped early)'
        : `none, ${availability.reason}`);
  return {
    shape: [captured.student.shape[0], captured.student.shape[1]],
    fused: f,
    stock: s,
    speedup: s.p50 / f.p50,
    dispatches: { fused: stepDispatches(fusedRun), stock: stepDispatches(stockRun) },
    gpu,
    clock,
  };
}

/** Student and teacher logits of the first batch of the epoch-1 order. */
export function captureLogits(
  student: tfl.LayersModel,
  teacher: tfl.LayersModel,
  split: HostSplit,
  settings: BenchSettings,
): CapturedLogits {
  const batch = makeBatch(split, epochOrder(split.count, settings.seed, 1), 0, settings.batchSize);
  try {
    return {
      labels: batch.y.clone(),
      student: inferLogits(student, batch.x),
      teacher: inferLogits(teacher, batch.x),
    };
  } finally {
    tf.dispose([batch.x, batch.y]);
  }
}
