/**
 * The training loop shared by every run of the benchmark (teacher, both distillations, the
 * student from scratch): seeded batches, one step at a time, with its measurements.
 *
 * Timing discipline: training steps are timed in windows of N steps with ONE fence per window
 * (the read-back of the window's stacked loss and accuracy scalars, which also feeds the loss
 * curve), so the GPU queue never drains between steps. Memory is sampled after warm-up and per
 * epoch; one step after warm-up has its dispatches counted.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { DistillerStepResult } from 'tfjs-fused-distill';
import { countDispatches } from '../lib/dispatch-counter.js';
import { spread } from '../lib/stats.js';
import type { BenchSettings } from '../presets.js';
import { epochOrder, makeBatch, type Batch, type HostSplit } from './data.js';
import type { EpochProgress, ProgressSink } from './progress.js';
import type { EpochRecord, MemoryGrowth, MemorySample, RunName, RunRecord } from './report.js';

/** What {@link trainLoop} needs besides the settings. */
export interface LoopSpec {
  run: RunName;
  epochs: number;
  split: HostSplit;
  /** Seeds {@link epochOrder}. */
  orderSeed: number;
  /** One synchronous training step; returns the loss and batch accuracy (caller-owned). */
  step(batch: Batch): DistillerStepResult;
}

/** Shared state of a benchmark run. */
export interface RunContext {
  settings: BenchSettings;
  signal: AbortSignal | undefined;
  progress: ProgressSink;
  log: (line: string) => void;
  /** Resolves on a later event-loop turn, so that an abort can land between steps. */
  yieldToEventLoop: () => Promise<void>;
}

/** The parts of a {@link RunRecord} that a training loop produces. */
export type LoopRecord = Pick<
  RunRecord,
  | 'complete'
  | 'steps'
  | 'epochs'
  | 'lossCurve'
  | 'accuracyCurve'
  | 'stepMs'
  | 'stepMsSamples'
  | 'dispatchesPerStep'
  | 'memoryAfterWarmup'
  | 'memoryGrowth'
  | 'wallMs'
>;

/** Steps of one epoch: the last batch may be partial, as in Keras. */
export function stepsPerEpoch(count: number, batchSize: number): number {
  return Math.ceil(count / batchSize);
}

function memoryNow(): MemorySample {
  const { numTensors, numBytes } = tf.memory();
  return { numTensors, numBytes };
}

/**
 * Reads a window's step results with ONE read-back (stacked into one tensor) and disposes
 * them. The read-back is also the window's fence: the GPU queue runs in order, so when the
 * stacked values arrive every step of the window (optimizer updates included) has finished.
 */
async function readWindow(
  pending: DistillerStepResult[],
): Promise<{ losses: number[]; accs: number[] }> {
  const hasAcc = pending.every((r) => r.accuracy !== undefined);
  const parts = pending.flatMap((r) => (hasAcc ? [r.loss, r.accuracy as tf.Scalar] : [r.loss]));
  const packed = tf.stack(parts);
  tf.dispose(parts);
  const values = await packed.data();
  packed.dispose();
  const losses: number[] = [];
  const accs: number[] = [];
  const stride = hasAcc ? 2 : 1;
  for (let i = 0; i < pending.length; i++) {
    losses.push(values[i * stride]);
    if (hasAcc) accs.push(values[i * stride + 1]);
  }
  return { losses, accs };
}

/** Resolves on a later macrotask turn (after pending events); works in Node and in a page. */
export function yieldByTimeout(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

function mean(values: readonly number[]): number {
  return values.length === 0 ? NaN : values.reduce((a, b) => a + b, 0) / values.length;
}

/** A record of no training at all: the start of every loop, and a loaded model's record. */
export function emptyLoopRecord(): LoopRecord {
  return {
    complete: false,
    steps: 0,
    epochs: [],
    lossCurve: [],
    accuracyCurve: [],
    stepMs: null,
    stepMsSamples: [],
    dispatchesPerStep: null,
    memoryAfterWarmup: null,
    memoryGrowth: null,
    wallMs: 0,
  };
}

/** Mutable state of {@link trainLoop}, kept in one place so the helpers stay small. */
class LoopState {
  readonly record: LoopRecord = emptyLoopRecord();
  pending: DistillerStepResult[] = [];
  /** Per-step times of the windows that started after warm-up, with their sizes. */
  readonly timed: { steps: number; perStep: number }[] = [];
  /** Global step index at which the open window started. */
  windowFirstStep = 0;
  windowStart = performance.now();

  constructor(
    readonly warmupSteps: number,
    readonly totalSteps: number,
  ) {}

  /** The step whose dispatches get counted: the first after warm-up (or the last one). */
  get countAt(): number {
    return Math.min(this.warmupSteps, this.totalSteps - 1);
  }

  /** Reads the open window; records its per-step time if it started after warm-up. */
  async flush(): Promise<{ losses: number[]; accs: number[] }> {
    const n = this.pending.length;
    const read = await readWindow(this.pending);
    const perStep = (performance.now() - this.windowStart) / n;
    if (this.windowFirstStep >= this.warmupSteps) this.timed.push({ steps: n, perStep });
    this.record.lossCurve.push(...read.losses);
    this.record.accuracyCurve.push(...read.accs);
    this.pending = [];
    this.windowFirstStep = this.record.steps;
    if (
      this.record.memoryAfterWarmup === null &&
      this.record.steps >= Math.min(this.warmupSteps, this.totalSteps)
    ) {
      this.record.memoryAfterWarmup = memoryNow();
    }
    this.windowStart = performance.now();
    return read;
  }

  /** Whether the step just done closes a window. */
  shouldFlush(windowSteps: number, lastOfEpoch: boolean): boolean {
    return (
      this.pending.length >= windowSteps || lastOfEpoch || this.record.steps === this.warmupSteps
    );
  }
}

/** Runs one step, counting its dispatches when it is the step chosen for that. */
function runStep(spec: LoopSpec, state: LoopState, batch: Batch): DistillerStepResult {
  try {
    if (state.record.steps !== state.countAt) return spec.step(batch);
    let result: DistillerStepResult | undefined;
    state.record.dispatchesPerStep = countDispatches(() => {
      result = spec.step(batch);
    });
    return result as DistillerStepResult;
  } finally {
    // Safe while the step's GPU work is queued: tfjs defers freeing buffers still in use.
    tf.dispose([batch.x, batch.y]);
  }
}

/**
 * Trains for `spec.epochs` epochs of seeded batches, timing windows of steps (one fence
 * each), reading losses per window, sampling memory per epoch, counting one step's
 * dispatches. Stops before the next step once `ctx.signal` is aborted.
 */
export async function trainLoop(spec: LoopSpec, ctx: RunContext): Promise<LoopRecord> {
  const { batchSize, timing } = ctx.settings;
  const steps = stepsPerEpoch(spec.split.count, batchSize);
  const state = new LoopState(timing.warmupSteps, steps * spec.epochs);
  const started = performance.now();
  let interrupted = false;
  for (let epoch = 1; epoch <= spec.epochs && !interrupted; epoch++) {
    const info: EpochProgress = { run: spec.run, epoch, epochs: spec.epochs, steps };
    interrupted = await trainEpoch(spec, ctx, state, info);
  }
  const record = state.record;
  record.complete = !interrupted;
  record.wallMs = performance.now() - started;
  record.stepMsSamples = stepSamples(state.timed, timing.windowSteps);
  record.stepMs = record.stepMsSamples.length > 0 ? spread(record.stepMsSamples) : null;
  record.memoryGrowth = memoryGrowth(record);
  return record;
}

/**
 * The per-step times to report: full-size windows only, since an epoch's short last window
 * spreads its fence over fewer steps (biased up where a fence is long next to a step); all
 * timed windows when no window is full-size (tiny runs).
 */
function stepSamples(timed: readonly { steps: number; perStep: number }[], size: number): number[] {
  const full = timed.filter((w) => w.steps >= size);
  return (full.length > 0 ? full : timed).map((w) => w.perStep);
}

/** One epoch of {@link trainLoop}; returns true when interrupted. */
async function trainEpoch(
  spec: LoopSpec,
  ctx: RunContext,
  state: LoopState,
  info: EpochProgress,
): Promise<boolean> {
  const { batchSize, timing } = ctx.settings;
  const order = epochOrder(spec.split.count, spec.orderSeed, info.epoch);
  const losses: number[] = [];
  const accs: number[] = [];
  const epochStart = performance.now();
  ctx.progress.epochStart(info);
  state.windowStart = epochStart;
  state.windowFirstStep = state.record.steps;
  let done = 0;
  let interrupted = false;
  while (done < info.steps) {
    if (ctx.signal?.aborted) {
      interrupted = true;
      break;
    }
    const batch = makeBatch(spec.split, order, done * batchSize, batchSize);
    state.pending.push(runStep(spec, state, batch));
    state.record.steps++;
    done++;
    // Lets a SIGINT handler (and progress rendering) run between steps without a fence: a
    // macrotask turn does not wait for the GPU, so the queue stays full.
    await ctx.yieldToEventLoop();
    const sps = (done * 1000) / (performance.now() - epochStart);
    if (!state.shouldFlush(timing.windowSteps, done === info.steps)) {
      ctx.progress.step({ ...info, done, stepsPerSecond: sps });
      continue;
    }
    const read = await state.flush();
    losses.push(...read.losses);
    accs.push(...read.accs);
    ctx.progress.step({
      ...info,
      done,
      stepsPerSecond: sps,
      loss: mean(read.losses),
      accuracy: read.accs.length > 0 ? mean(read.accs) : undefined,
    });
  }
  if (state.pending.length > 0) await state.flush();
  if (done > 0) {
    const record: EpochRecord = {
      epoch: info.epoch,
      steps: done,
      loss: mean(losses),
      accuracy: mean(accs),
      wallMs: performance.now() - epochStart,
      memory: memoryNow(),
    };
    state.record.epochs.push(record);
    ctx.progress.epochEnd({ ...info, record });
  }
  return interrupted;
}

/** Memory growth from the end of warm-up to the end of the last epoch. */
function memoryGrowth(record: LoopRecord): MemoryGrowth | null {
  const last = record.epochs.at(-1);
  if (!last || !record.memoryAfterWarmup) return null;
  const tensors = last.memory.numTensors - record.memoryAfterWarmup.numTensors;
  const bytes = last.memory.numBytes - record.memoryAfterWarmup.numBytes;
  return { tensors, bytes, flagged: tensors > 0 || bytes > 0 };
}
