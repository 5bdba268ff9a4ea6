/**
 * The distillation benchmark's protocol (the Keras "Knowledge Distillation" example, run with
 * the fused loss and with the stock one), its measurements and its result file. The CLI
 * (bench/distill.ts) is a thin shell around {@link runDistillBenchmark}; tests call it directly.
 *
 * Order of a run:
 *   1. teacher: trained (hard-label cross-entropy, Adam) or loaded from a checkpoint; evaluated;
 *   2. fused distillation, then stock distillation: both from the SAME initial student weights
 *      and the SAME seeded batch order, each with a fresh Adam; evaluated; then a short sample
 *      of fenced step phases (teacher forward / student forward+loss+backward / optimizer);
 *   3. the same student from scratch (same initial weights and batch order); evaluated;
 *   4. the loss alone, forward+backward, fused vs stock, on logits captured from a real batch.
 *
 * Timing discipline: training steps are timed in windows of N steps with ONE fence per window
 * (the read-back of the window's stacked loss and accuracy scalars, which also feeds the loss
 * curve), so the GPU queue never drains between steps. Only the phase breakdown fences every
 * phase, and says so.
 *
 * Host data: images stay in host memory and each batch is uploaded as its own tensor, as a
 * Keras `fit` on NumPy arrays does. 60,000 MNIST images are 188 MB as float32, more than the
 * 128 MiB a storage buffer may hold on many adapters.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { readFileSync } from 'node:fs';
import { distillationLoss, stockDistillationLoss } from 'tfjs-fused-distill';
import {
  Distiller,
  evaluate,
  inferLogits,
  trainStudentFromScratch,
  trainableVariables,
  type DistillationLossFn,
  type EvalResult,
  type StepResult,
} from './distiller.js';
import { countDispatches, installDispatchCounter } from './lib/dispatch-counter.js';
import { mulberry32 } from './lib/random.js';
import { fileStamp, gitCommit, toCsv, versions, writeFileAtomic } from './lib/results.js';
import { formatMs, spread, type Spread } from './lib/stats.js';
import { buildConvNet, convNetParamCount, setWeightsFrom } from './models.js';
import type { BenchSettings, PresetName } from './presets.js';
import type { NodeAdapterDescription } from '../tools/webgpu-node.js';

/** Floats per MNIST image (28 × 28 × 1). */
const PIXELS = 28 * 28;

// ---------------------------------------------------------------------------------------------
// Types of the result file
// ---------------------------------------------------------------------------------------------

/** The four trained models, as keys of {@link DistillReport.runs}. */
export type RunName = 'teacher' | 'distilledFused' | 'distilledStock' | 'scratch';

/** `tf.memory()` figures at one point of a run. */
export interface MemorySample {
  numTensors: number;
  numBytes: number;
}

/** One epoch of a training run (a partial one when the run was interrupted). */
export interface EpochRecord {
  /** 1-based. */
  epoch: number;
  /** Steps done in this epoch. */
  steps: number;
  /** Mean of the per-step batch losses. */
  loss: number;
  /** Mean of the per-step batch accuracies (training mode, before the update). */
  accuracy: number;
  wallMs: number;
  /** `tf.memory()` at the end of the epoch, after the last window's read-back. */
  memory: MemorySample;
}

/** Growth of `tf.memory()` between the end of warm-up and the end of the last epoch. */
export interface MemoryGrowth {
  tensors: number;
  bytes: number;
  /** True when either grew: a leak (Adam's slots exist from the first step on). */
  flagged: boolean;
}

/** A training run and the test-set evaluation of its model. */
export interface RunRecord {
  /** 'trained' or 'loaded' (a teacher from `--teacher PATH`). */
  source: 'trained' | 'loaded';
  /** Which loss trained it: cross-entropy on hard labels, or a distillation loss. */
  loss: 'cross-entropy' | 'fused' | 'stock';
  filters: [number, number];
  params: number;
  /** False when the run was interrupted (then it has no evaluation). */
  complete: boolean;
  /** Steps done in all epochs. */
  steps: number;
  epochs: EpochRecord[];
  /** Per-step batch loss, in step order. */
  lossCurve: number[];
  /** Per-step batch accuracy, in step order. */
  accuracyCurve: number[];
  /**
   * Wall time per step: per-window means of the full-size windows after warm-up, median and
   * p20/p80; null if none.
   */
  stepMs: Spread | null;
  /** The per-window means behind {@link stepMs}. */
  stepMsSamples: number[];
  /** WebGPU dispatches of one full step after warm-up; null when none was counted. */
  dispatchesPerStep: number | null;
  /** `tf.memory()` at the first read-back after warm-up. */
  memoryAfterWarmup: MemorySample | null;
  memoryGrowth: MemoryGrowth | null;
  wallMs: number;
  testAccuracy: number | null;
  testLoss: number | null;
  /** Checkpoint path for a loaded or saved teacher. */
  checkpoint?: string;
}

/** Median and spread of each step phase, every phase fenced on its own. */
export interface PhaseTimes {
  /** Teacher forward (inference), or the gather from the cache in 'cached' mode. */
  teacherForward: Spread;
  /** Student forward (training mode) + distillation loss + backward. */
  studentForwardLossBackward: Spread;
  /** Adam's update of the student's variables. */
  optimizerApply: Spread;
}

/** The loss alone, forward + backward, on one real batch's logits. */
export interface LossOnlyTimes {
  /** `[B, C]` of the captured logits. */
  shape: [number, number];
  fused: Spread;
  stock: Spread;
  /** stock p50 / fused p50. */
  speedup: number;
  dispatches: { fused: number; stock: number };
}

/** A speedup stock/fused from two spreads: the p50 ratio and a conservative band. */
export interface SpeedupSpread {
  /** stock p50 / fused p50. */
  p50: number;
  /** stock p20 / fused p80. */
  low: number;
  /** stock p80 / fused p20. */
  high: number;
}

/** Fused and stock loss curves side by side over their first steps. */
export interface CurveComparison {
  /** Steps compared (the first K of both curves). */
  steps: number;
  maxAbsDiff: number;
  maxRelDiff: number;
  /** A few (1-based) steps with both losses, for the printed table. */
  points: { step: number; fused: number; stock: number }[];
}

/** The settings' provenance and the environment, filled in by the caller. */
export interface ReportMeta {
  /** Why this preset (e.g. "--preset quick", or the adapter rule). */
  presetReason: string;
  /** What the preset reduced relative to the Keras protocol. */
  reductions: string[];
  adapter: NodeAdapterDescription;
  software: boolean;
  /** The command-line flags as parsed (all of them, defaults included). */
  flags: Record<string, unknown>;
}

/** The result file of one benchmark run (JSON). */
export interface DistillReport {
  kind: 'distill-benchmark';
  schemaVersion: 1;
  /** False when the run was interrupted (SIGINT) or a run was cut short. */
  complete: boolean;
  /** Where an interrupted run stopped; null when complete. */
  interrupted: { during: string; afterSteps: number } | null;
  preset: PresetName;
  presetReason: string;
  reductions: string[];
  adapter: NodeAdapterDescription;
  software: boolean;
  timestamp: string;
  commit: string;
  versions: Record<string, string>;
  flags: Record<string, unknown>;
  settings: BenchSettings;
  dataset: { name: string; source: string; trainImages: number; testImages: number };
  runs: {
    teacher: RunRecord | null;
    distilledFused: RunRecord | null;
    distilledStock: RunRecord | null;
    scratch: RunRecord | null;
  };
  /** One full step after warm-up, counted with bench/lib/dispatch-counter.ts. */
  dispatchesPerStep: {
    fused: number | null;
    stock: number | null;
    scratch: number | null;
    teacher: number | null;
    /** What a counted step contains. */
    note: string;
  };
  /** Step wall time stock/fused; null until both distillation runs have step times. */
  speedup: SpeedupSpread | null;
  lossOnly: LossOnlyTimes | null;
  phases: { method: string; fused: PhaseTimes | null; stock: PhaseTimes | null };
  curves: CurveComparison | null;
  /** True when any run's tfjs memory grew after warm-up. */
  memoryGrowthFlagged: boolean;
  totalWallMs: number;
}

// ---------------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------------

/** One split in host memory: `count × 784` floats in [0, 1] and `count` int32 labels. */
export interface HostSplit {
  images: Float32Array;
  labels: Int32Array;
  count: number;
}

/** The data of a run, already limited to the preset's subsets. */
export interface BenchData {
  /** Dataset name, e.g. 'mnist'. */
  name: string;
  /** Where the files came from (for the report). */
  source: string;
  train: HostSplit;
  test: HostSplit;
}

/**
 * The first `limit` examples of `split` (views, no copy); the whole split for null.
 * MNIST's files are already in random order, so a prefix is a fair sample.
 *
 * @throws RangeError when the split holds fewer than `limit` examples.
 */
export function limitSplit(split: HostSplit, limit: number | null): HostSplit {
  if (limit === null || limit === split.count) return split;
  if (limit > split.count) {
    throw new RangeError(`asked for ${limit} examples but the split holds ${split.count}`);
  }
  return {
    images: split.images.subarray(0, limit * PIXELS),
    labels: split.labels.subarray(0, limit),
    count: limit,
  };
}

/**
 * The example order of one epoch: a Fisher–Yates shuffle seeded by (`seed`, `epoch`), so
 * every run given the same seed sees the same batches in the same order.
 */
export function epochOrder(count: number, seed: number, epoch: number): Int32Array {
  const order = new Int32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  const rng = mulberry32(Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(epoch, 0xc2b2ae35));
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const tmp = order[i];
    order[i] = order[j];
    order[j] = tmp;
  }
  return order;
}

/** A batch on the backend, with the example indices it was gathered from. */
interface Batch {
  x: tf.Tensor4D;
  y: tf.Tensor1D;
  indices: Int32Array;
}

/** Gathers `order[start .. start + batchSize)` (fewer at the end) and uploads it. */
function makeBatch(split: HostSplit, order: Int32Array, start: number, batchSize: number): Batch {
  const size = Math.min(batchSize, order.length - start);
  const indices = order.subarray(start, start + size);
  const pixels = new Float32Array(size * PIXELS);
  const labels = new Int32Array(size);
  for (let i = 0; i < size; i++) {
    const j = indices[i];
    pixels.set(split.images.subarray(j * PIXELS, (j + 1) * PIXELS), i * PIXELS);
    labels[i] = split.labels[j];
  }
  return {
    x: tf.tensor4d(pixels, [size, 28, 28, 1]),
    y: tf.tensor1d(labels, 'int32'),
    indices,
  };
}

/** The whole split as tensors (the test set: 10,000 images are 31 MB). */
function splitTensors(split: HostSplit): { x: tf.Tensor4D; y: tf.Tensor1D } {
  return {
    x: tf.tensor4d(split.images, [split.count, 28, 28, 1]),
    y: tf.tensor1d(split.labels, 'int32'),
  };
}

// ---------------------------------------------------------------------------------------------
// Progress
// ---------------------------------------------------------------------------------------------

/** Where an epoch stands, for progress displays. */
export interface EpochProgress {
  run: RunName;
  epoch: number;
  epochs: number;
  /** Steps in this epoch. */
  steps: number;
}

/** One step's progress; loss and accuracy come at window read-backs only. */
export interface StepProgress extends EpochProgress {
  /** Steps done in this epoch. */
  done: number;
  /** Mean loss of the last read-back window, when one was just read. */
  loss?: number;
  accuracy?: number;
  /** Steps per second so far in this epoch. */
  stepsPerSecond: number;
}

/** Receives progress events; the CLI draws bars or prints a line per epoch. */
export interface ProgressSink {
  epochStart(info: EpochProgress): void;
  step(info: StepProgress): void;
  epochEnd(info: EpochProgress & { record: EpochRecord }): void;
}

const SILENT: ProgressSink = {
  epochStart: () => undefined,
  step: () => undefined,
  epochEnd: () => undefined,
};

// ---------------------------------------------------------------------------------------------
// The training loop
// ---------------------------------------------------------------------------------------------

/** What {@link trainLoop} needs besides the settings. */
interface LoopSpec {
  run: RunName;
  epochs: number;
  split: HostSplit;
  /** Seeds {@link epochOrder}. */
  orderSeed: number;
  /** One synchronous training step; returns the loss and batch accuracy (caller-owned). */
  step(batch: Batch): StepResult;
}

/** Shared state of a benchmark run. */
interface RunContext {
  settings: BenchSettings;
  signal: AbortSignal | undefined;
  progress: ProgressSink;
  log: (line: string) => void;
}

/** The parts of a {@link RunRecord} that a training loop produces. */
type LoopRecord = Pick<
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
function stepsPerEpoch(count: number, batchSize: number): number {
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
async function readWindow(pending: StepResult[]): Promise<{ losses: number[]; accs: number[] }> {
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

/** Resolves on the next macrotask turn (after pending I/O and signal callbacks). */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function mean(values: readonly number[]): number {
  return values.length === 0 ? NaN : values.reduce((a, b) => a + b, 0) / values.length;
}

/** Mutable state of {@link trainLoop}, kept in one place so the helpers stay small. */
class LoopState {
  readonly record: LoopRecord = {
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
  pending: StepResult[] = [];
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
function runStep(spec: LoopSpec, state: LoopState, batch: Batch): StepResult {
  try {
    if (state.record.steps !== state.countAt) return spec.step(batch);
    let result: StepResult | undefined;
    state.record.dispatchesPerStep = countDispatches(() => {
      result = spec.step(batch);
    });
    return result as StepResult;
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
async function trainLoop(spec: LoopSpec, ctx: RunContext): Promise<LoopRecord> {
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
    await yieldToEventLoop();
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

// ---------------------------------------------------------------------------------------------
// Separate timings: step phases, the loss alone
// ---------------------------------------------------------------------------------------------

/**
 * Times each phase of a distillation step on its own, fencing after every phase (a read-back
 * of the phase's smallest output). The fences drain the queue, so the phases add up to more
 * than a windowed step: this is a breakdown of where the time goes, not the step time.
 * Runs after the run's evaluation: its steps do update the student.
 */
async function timePhases(
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
      ? distiller.cachedTeacherLogits(batch.indices)
      : distiller.teacherForward(batch.x);
  await teacherLogits.data();
  const t1 = performance.now();
  const { loss, grads, accuracy } = distiller.computeGradients(batch.x, batch.y, teacherLogits);
  // The backward pass was queued before this read, so it has finished when the loss arrives.
  await loss.data();
  const t2 = performance.now();
  distiller.applyGradients(grads);
  await probe.data();
  const t3 = performance.now();
  tf.dispose([teacherLogits, loss, accuracy ?? []]);
  return [t1 - t0, t2 - t1, t3 - t2];
}

/** Real logits of one batch, captured for the loss-alone timing. */
interface CapturedLogits {
  labels: tf.Tensor1D;
  student: tf.Tensor2D;
  teacher: tf.Tensor2D;
}

/** One forward+backward of `loss` w.r.t. the student logits; returns the loss to fence on. */
function lossStep(loss: DistillationLossFn, c: CapturedLogits, config: object): tf.Tensor {
  return tf.tidy(() => {
    const f = (s: tf.Tensor) => loss(c.labels, s, c.teacher, config) as tf.Scalar;
    const { value, grads } = tf.valueAndGrads(f)([c.student]);
    tf.dispose(grads);
    return value;
  });
}

/** `calls` runs of `run` and ONE fence; returns ms per call. */
async function timeWindow(run: () => tf.Tensor, calls: number): Promise<number> {
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

/**
 * The loss alone, forward + backward, fused vs stock, on the same captured logits: windows
 * of calls with one fence each, fused and stock windows interleaved so that drift in the
 * machine's speed hits both alike.
 */
async function timeLossOnly(
  captured: CapturedLogits,
  settings: BenchSettings,
  signal: AbortSignal | undefined,
): Promise<LossOnlyTimes | null> {
  const config = { alpha: settings.alpha, temperature: settings.temperature };
  const fusedRun = (): tf.Tensor => lossStep(distillationLoss, captured, config);
  const stockRun = (): tf.Tensor => lossStep(stockDistillationLoss, captured, config);
  // Warm-up (pipeline compilation), then one probe call to size the windows.
  await timeWindow(fusedRun, 2);
  await timeWindow(stockRun, 2);
  const once = Math.max(await timeWindow(stockRun, 1), 0.01);
  const calls = Math.max(2, Math.min(500, Math.round(settings.timing.lossWindowMs / once)));
  const fused: number[] = [];
  const stock: number[] = [];
  for (let w = 0; w < settings.timing.lossWindows && !signal?.aborted; w++) {
    fused.push(await timeWindow(fusedRun, calls));
    stock.push(await timeWindow(stockRun, calls));
  }
  if (fused.length === 0) return null;
  const count = (run: () => tf.Tensor): number => {
    let out: tf.Tensor | undefined;
    const n = countDispatches(() => {
      out = run();
    });
    out?.dispose();
    return n;
  };
  const f = spread(fused);
  const s = spread(stock);
  return {
    shape: [captured.student.shape[0], captured.student.shape[1]],
    fused: f,
    stock: s,
    speedup: s.p50 / f.p50,
    dispatches: { fused: count(fusedRun), stock: count(stockRun) },
  };
}

/** Student and teacher logits of the first batch of the epoch-1 order. */
function captureLogits(
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

// ---------------------------------------------------------------------------------------------
// Teacher checkpoints
// ---------------------------------------------------------------------------------------------

/** The `format` field of a teacher checkpoint file. */
export const TEACHER_CHECKPOINT_FORMAT = 'tfjs-fused-distill/teacher-weights@1';

/** What a checkpoint records about how its teacher was trained. */
export interface TeacherCheckpointInfo {
  dataset: string;
  filters: [number, number];
  trainImages: number;
  epochs: number;
  batchSize: number;
  seed: number;
  testAccuracy: number | null;
}

/**
 * A teacher checkpoint: JSON with the architecture (the convnet's filters), the weight shapes
 * in `getWeights()` order and the float32 weights, little-endian, concatenated, base64. tfjs'
 * own `file://` IO handlers need tfjs-node, which does not install on these machines.
 */
export interface TeacherCheckpoint extends TeacherCheckpointInfo {
  format: typeof TEACHER_CHECKPOINT_FORMAT;
  savedAt: string;
  weights: { name: string; shape: number[] }[];
  byteOrder: 'little-endian';
  data: string;
}

/** A teacher loaded from a checkpoint. */
export interface LoadedTeacher {
  model: tfl.Sequential;
  info: TeacherCheckpointInfo;
  path: string;
}

/** Writes `model`'s weights as a {@link TeacherCheckpoint}, atomically (temp file + rename). */
export async function saveTeacherCheckpoint(
  path: string,
  model: tfl.LayersModel,
  info: TeacherCheckpointInfo,
): Promise<void> {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    throw new Error('saveTeacherCheckpoint: only little-endian hosts are supported');
  }
  const values = model.getWeights();
  const arrays = await Promise.all(values.map((w) => w.data() as Promise<Float32Array>));
  const total = arrays.reduce((n, a) => n + a.length, 0);
  const flat = new Float32Array(total);
  let offset = 0;
  for (const a of arrays) {
    flat.set(a, offset);
    offset += a.length;
  }
  const file: TeacherCheckpoint = {
    format: TEACHER_CHECKPOINT_FORMAT,
    ...info,
    savedAt: new Date().toISOString(),
    weights: model.weights.map((w, i) => ({ name: w.originalName, shape: [...values[i].shape] })),
    byteOrder: 'little-endian',
    data: Buffer.from(flat.buffer, flat.byteOffset, flat.byteLength).toString('base64'),
  };
  writeFileAtomic(path, JSON.stringify(file) + '\n');
}

/**
 * Reads a {@link TeacherCheckpoint} and rebuilds the teacher with its weights.
 *
 * @throws Error when the file is not such a checkpoint or its shapes do not match the
 *   architecture it names.
 */
export function loadTeacherCheckpoint(path: string): LoadedTeacher {
  const file = JSON.parse(readFileSync(path, 'utf8')) as Partial<TeacherCheckpoint>;
  if (file.format !== TEACHER_CHECKPOINT_FORMAT || !file.filters || !file.weights || !file.data) {
    throw new Error(`${path}: not a teacher checkpoint (format ${String(file.format)})`);
  }
  const bytes = Buffer.from(file.data, 'base64');
  const flat = new Float32Array(
    bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length),
  );
  const model = buildConvNet({ filters: file.filters, name: 'teacher' });
  try {
    const expected = model.getWeights().map((w) => w.shape);
    const shapes = file.weights.map((w) => w.shape);
    const same =
      expected.length === shapes.length &&
      expected.every((s, i) => tf.util.arraysEqual(s, shapes[i]));
    const needed = shapes.reduce((n, s) => n + tf.util.sizeFromShape(s), 0);
    if (!same || needed !== flat.length) {
      throw new Error(`${path}: weight shapes do not match a [${file.filters}] teacher`);
    }
    let offset = 0;
    const tensors = shapes.map((s) => {
      const size = tf.util.sizeFromShape(s);
      const t = tf.tensor(flat.subarray(offset, offset + size), s, 'float32');
      offset += size;
      return t;
    });
    model.setWeights(tensors);
    tf.dispose(tensors);
  } catch (err) {
    model.dispose();
    throw err;
  }
  const info: TeacherCheckpointInfo = {
    dataset: file.dataset ?? 'unknown',
    filters: [file.filters[0], file.filters[1]],
    trainImages: file.trainImages ?? NaN,
    epochs: file.epochs ?? NaN,
    batchSize: file.batchSize ?? NaN,
    seed: file.seed ?? NaN,
    testAccuracy: file.testAccuracy ?? null,
  };
  return { model, info, path };
}

// ---------------------------------------------------------------------------------------------
// The benchmark run
// ---------------------------------------------------------------------------------------------

/** Options of {@link runDistillBenchmark}. */
export interface RunOptions {
  settings: BenchSettings;
  /** Already limited to `settings.trainLimit` / `testLimit` (see {@link limitSplit}). */
  data: BenchData;
  meta: ReportMeta;
  /** A loaded teacher: teacher training is skipped (the run takes ownership of the model). */
  teacher?: LoadedTeacher;
  /** Writes the trained teacher there (atomically) once it is trained and evaluated. */
  saveTeacherPath?: string;
  /** Aborting stops after the current step; the report then has `complete: false`. */
  signal?: AbortSignal;
  progress?: ProgressSink;
  /** One-line notices; default: none. */
  log?: (line: string) => void;
}

/** Everything a run allocates, disposed at the end whatever happens. */
class Owned {
  private readonly items: { dispose(): void }[] = [];
  add<T extends { dispose(): void }>(item: T): T {
    this.items.push(item);
    return item;
  }
  dispose(): void {
    for (const item of this.items.reverse()) item.dispose();
  }
}

/** Marks `report` as interrupted at the first incomplete run. */
function noteInterrupt(report: DistillReport, during: string, record: LoopRecord): void {
  if (report.interrupted === null) report.interrupted = { during, afterSteps: record.steps };
}

/**
 * Runs the whole protocol and returns its report. Interrupted (via `signal`): stops after the
 * current step, skips everything after that run, and returns what finished with
 * `complete: false`. Every tensor it creates is disposed before it returns.
 */
export async function runDistillBenchmark(options: RunOptions): Promise<DistillReport> {
  const { settings } = options;
  const ctx: RunContext = {
    settings,
    signal: options.signal,
    progress: options.progress ?? SILENT,
    log: options.log ?? (() => undefined),
  };
  installDispatchCounter();
  const report = emptyReport(options);
  const started = performance.now();
  const owned = new Owned();
  try {
    await runProtocol(options, ctx, report, owned);
  } finally {
    owned.dispose();
    report.totalWallMs = performance.now() - started;
  }
  finishReport(report);
  return report;
}

/** The steps of the protocol, in order; returns early when interrupted. */
async function runProtocol(
  options: RunOptions,
  ctx: RunContext,
  report: DistillReport,
  owned: Owned,
): Promise<void> {
  const { settings, data } = options;
  const test = splitTensors(data.test);
  owned.add({ dispose: () => tf.dispose([test.x, test.y]) });
  const teacher = await teacherPhase(options, ctx, report, owned, test);
  if (!teacher) return;
  // The students' shared initial weights: every run copies them from this template.
  const template = owned.add(
    buildConvNet({ filters: settings.studentFilters, seed: settings.seed + 1, name: 'student0' }),
  );
  const cache =
    settings.teacherLogits === 'cached' ? cacheLogits(teacher, data.train, settings) : null;
  if (cache) owned.add(cache);
  const inputs: DistillInputs = { teacher, template, cache, test };
  const fused = await distillPhase('fused', options, ctx, report, owned, inputs);
  if (!fused) return;
  const captured = captureLogits(fused.student, teacher, data.train, settings);
  owned.add({ dispose: () => tf.dispose([captured.labels, captured.student, captured.teacher]) });
  const stock = await distillPhase('stock', options, ctx, report, owned, inputs);
  if (!stock) return;
  if (!(await scratchPhase(ctx, report, owned, template, data.train, test))) return;
  ctx.log('timing the loss alone (forward + backward), fused vs stock');
  report.lossOnly = await timeLossOnly(captured, settings, ctx.signal);
  if (!report.lossOnly) report.interrupted ??= { during: 'loss-alone timing', afterSteps: 0 };
}

/** Trains (or takes the loaded) teacher and evaluates it; null when interrupted. */
async function teacherPhase(
  options: RunOptions,
  ctx: RunContext,
  report: DistillReport,
  owned: Owned,
  test: { x: tf.Tensor4D; y: tf.Tensor1D },
): Promise<tfl.LayersModel | null> {
  const { settings, data } = options;
  if (options.teacher) {
    const model = owned.add(options.teacher.model);
    const filters = options.teacher.info.filters;
    ctx.log(`teacher: loaded from ${options.teacher.path} (filters [${filters}]), not trained`);
    const evaluation = await evaluate(model, test.x, test.y, settings.evalBatchSize);
    report.runs.teacher = loadedTeacherRecord(options.teacher, evaluation);
    await maybeSaveTeacher(options, ctx, model, report.runs.teacher);
    return model;
  }
  const filters = settings.teacherFilters;
  const model = owned.add(buildConvNet({ filters, seed: settings.seed, name: 'teacher' }));
  const optimizer = owned.add(tf.train.adam());
  ctx.log(`teacher: training [${filters}] (${convNetParamCount(filters)} parameters)`);
  const loop = await trainLoop(
    {
      run: 'teacher',
      epochs: settings.epochs.teacher,
      split: data.train,
      // Its own batch order: the teacher's data order is not part of the comparison.
      orderSeed: settings.seed + 7919,
      step: (b) => trainStudentFromScratch(model, optimizer, b.x, b.y, { accuracy: true }),
    },
    ctx,
  );
  const record = runRecord('trained', 'cross-entropy', filters, loop);
  report.runs.teacher = record;
  report.dispatchesPerStep.teacher = loop.dispatchesPerStep;
  if (!loop.complete) {
    noteInterrupt(report, 'teacher training', loop);
    return null;
  }
  await evaluateInto(record, model, test, settings);
  await maybeSaveTeacher(options, ctx, model, record);
  return model;
}

async function maybeSaveTeacher(
  options: RunOptions,
  ctx: RunContext,
  model: tfl.LayersModel,
  record: RunRecord,
): Promise<void> {
  const path = options.saveTeacherPath;
  if (path === undefined) return;
  const { settings, data } = options;
  await saveTeacherCheckpoint(path, model, {
    dataset: data.name,
    filters: record.filters,
    trainImages: options.teacher?.info.trainImages ?? data.train.count,
    epochs: options.teacher?.info.epochs ?? settings.epochs.teacher,
    batchSize: options.teacher?.info.batchSize ?? settings.batchSize,
    seed: options.teacher?.info.seed ?? settings.seed,
    testAccuracy: record.testAccuracy,
  });
  record.checkpoint = path;
  ctx.log(`teacher: saved to ${path}`);
}

function loadedTeacherRecord(teacher: LoadedTeacher, evaluation: EvalResult): RunRecord {
  return {
    source: 'loaded',
    loss: 'cross-entropy',
    filters: teacher.info.filters,
    params: convNetParamCount(teacher.info.filters),
    complete: true,
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
    testAccuracy: evaluation.accuracy,
    testLoss: evaluation.loss,
    checkpoint: teacher.path,
  };
}

function runRecord(
  source: RunRecord['source'],
  loss: RunRecord['loss'],
  filters: [number, number],
  loop: LoopRecord,
): RunRecord {
  return {
    source,
    loss,
    filters: [filters[0], filters[1]],
    params: convNetParamCount(filters),
    ...loop,
    testAccuracy: null,
    testLoss: null,
  };
}

async function evaluateInto(
  record: RunRecord,
  model: tfl.LayersModel,
  test: { x: tf.Tensor4D; y: tf.Tensor1D },
  settings: BenchSettings,
): Promise<void> {
  const { accuracy, loss } = await evaluate(model, test.x, test.y, settings.evalBatchSize);
  record.testAccuracy = accuracy;
  record.testLoss = loss;
}

/**
 * 'cached' mode: the teacher's logits for the whole training set, computed chunk by chunk
 * from host memory (see the module header on buffer sizes).
 */
function cacheLogits(
  teacher: tfl.LayersModel,
  split: HostSplit,
  settings: BenchSettings,
): tf.Tensor2D {
  const order = Int32Array.from({ length: split.count }, (_, i) => i);
  const parts: tf.Tensor2D[] = [];
  try {
    for (let start = 0; start < split.count; start += settings.evalBatchSize) {
      const batch = makeBatch(split, order, start, settings.evalBatchSize);
      parts.push(inferLogits(teacher, batch.x));
      tf.dispose([batch.x, batch.y]);
    }
    return tf.concat(parts, 0);
  } finally {
    tf.dispose(parts);
  }
}

/** What both distillation runs share. */
interface DistillInputs {
  teacher: tfl.LayersModel;
  template: tfl.LayersModel;
  cache: tf.Tensor2D | null;
  test: { x: tf.Tensor4D; y: tf.Tensor1D };
}

/**
 * One distillation run (fused or stock) from the template's weights, its evaluation and its
 * phase breakdown; returns the distiller, or null when interrupted.
 */
async function distillPhase(
  which: 'fused' | 'stock',
  options: RunOptions,
  ctx: RunContext,
  report: DistillReport,
  owned: Owned,
  inputs: DistillInputs,
): Promise<Distiller | null> {
  const { settings, data } = options;
  const runName: RunName = which === 'fused' ? 'distilledFused' : 'distilledStock';
  const student = owned.add(
    buildConvNet({ filters: settings.studentFilters, name: `student_${which}` }),
  );
  setWeightsFrom(student, inputs.template);
  const distiller = owned.add(
    new Distiller({
      teacher: inputs.teacher,
      student,
      optimizer: owned.add(tf.train.adam()),
      alpha: settings.alpha,
      temperature: settings.temperature,
      loss: which,
      teacherLogits: settings.teacherLogits,
    }),
  );
  // Each Distiller owns its cache: a clone shares the data (reference-counted).
  if (inputs.cache) distiller.setCachedLogits(inputs.cache.clone());
  ctx.log(`distillation (${which} loss): ${settings.epochs.distill} epochs`);
  const loop = await trainLoop(
    {
      run: runName,
      epochs: settings.epochs.distill,
      split: data.train,
      orderSeed: settings.seed,
      step: (b) => distiller.trainStep(b.x, b.y, { batchIndices: b.indices, accuracy: true }),
    },
    ctx,
  );
  const record = runRecord('trained', which, settings.studentFilters, loop);
  report.runs[runName] = record;
  report.dispatchesPerStep[which] = loop.dispatchesPerStep;
  if (!loop.complete) {
    noteInterrupt(report, `distillation (${which})`, loop);
    return null;
  }
  await evaluateInto(record, student, inputs.test, settings);
  report.phases[which] = await timePhases(distiller, data.train, settings, ctx.signal);
  if (!report.phases[which]) {
    report.interrupted ??= { during: `phase timing (${which})`, afterSteps: 0 };
    return null;
  }
  return distiller;
}

/** The student from scratch, same initial weights and batch order; false when interrupted. */
async function scratchPhase(
  ctx: RunContext,
  report: DistillReport,
  owned: Owned,
  template: tfl.LayersModel,
  train: HostSplit,
  test: { x: tf.Tensor4D; y: tf.Tensor1D },
): Promise<boolean> {
  const { settings } = ctx;
  const student = owned.add(
    buildConvNet({ filters: settings.studentFilters, name: 'student_scratch' }),
  );
  setWeightsFrom(student, template);
  const optimizer = owned.add(tf.train.adam());
  ctx.log(`student from scratch: ${settings.epochs.scratch} epochs`);
  const loop = await trainLoop(
    {
      run: 'scratch',
      epochs: settings.epochs.scratch,
      split: train,
      orderSeed: settings.seed,
      step: (b) => trainStudentFromScratch(student, optimizer, b.x, b.y, { accuracy: true }),
    },
    ctx,
  );
  const record = runRecord('trained', 'cross-entropy', settings.studentFilters, loop);
  report.runs.scratch = record;
  report.dispatchesPerStep.scratch = loop.dispatchesPerStep;
  if (!loop.complete) {
    noteInterrupt(report, 'student from scratch', loop);
    return false;
  }
  await evaluateInto(record, student, test, settings);
  return true;
}

function emptyReport(options: RunOptions): DistillReport {
  const { settings, data, meta } = options;
  return {
    kind: 'distill-benchmark',
    schemaVersion: 1,
    complete: false,
    interrupted: null,
    preset: settings.preset,
    presetReason: meta.presetReason,
    reductions: meta.reductions,
    adapter: meta.adapter,
    software: meta.software,
    timestamp: new Date().toISOString(),
    commit: gitCommit(),
    versions: versions(),
    flags: meta.flags,
    settings,
    dataset: {
      name: data.name,
      source: data.source,
      trainImages: data.train.count,
      testImages: data.test.count,
    },
    runs: { teacher: null, distilledFused: null, distilledStock: null, scratch: null },
    dispatchesPerStep: {
      fused: null,
      stock: null,
      scratch: null,
      teacher: null,
      note:
        'one full training step after warm-up: batch upload, teacher forward (per-step mode) ' +
        'or cache gather, student forward + loss + backward, batch-accuracy metric, Adam update',
    },
    speedup: null,
    lossOnly: null,
    phases: {
      method:
        'a separate short sample after evaluation; EACH PHASE FENCED (a read-back after ' +
        'it), so the phases sum to more than a windowed step: a breakdown, not the step time',
      fused: null,
      stock: null,
    },
    curves: null,
    memoryGrowthFlagged: false,
    totalWallMs: 0,
  };
}

/** Derived fields: speedup, curve comparison, memory flag, completeness. */
function finishReport(report: DistillReport): void {
  const { distilledFused: fused, distilledStock: stock } = report.runs;
  if (fused?.stepMs && stock?.stepMs) report.speedup = speedupSpread(fused.stepMs, stock.stepMs);
  if (fused && stock) {
    report.curves = compareCurves(
      fused.lossCurve,
      stock.lossCurve,
      report.settings.timing.curveCompareSteps,
    );
  }
  const runs = Object.values(report.runs).filter((r): r is RunRecord => r !== null);
  report.memoryGrowthFlagged = runs.some((r) => r.memoryGrowth?.flagged === true);
  report.complete =
    report.interrupted === null && runs.length === 4 && runs.every((r) => r.complete);
}

/** stock/fused per step: the p50 ratio, and [stock p20 / fused p80, stock p80 / fused p20]. */
export function speedupSpread(fused: Spread, stock: Spread): SpeedupSpread {
  return { p50: stock.p50 / fused.p50, low: stock.p20 / fused.p80, high: stock.p80 / fused.p20 };
}

/**
 * The max absolute and relative differences of the first `steps` losses of two curves, and
 * a few points for display (steps 1, 2, 5, 10, 20, 50, … up to `steps`).
 */
export function compareCurves(
  fused: readonly number[],
  stock: readonly number[],
  steps: number,
): CurveComparison {
  const k = Math.min(steps, fused.length, stock.length);
  let maxAbsDiff = 0;
  let maxRelDiff = 0;
  for (let i = 0; i < k; i++) {
    const abs = Math.abs(fused[i] - stock[i]);
    maxAbsDiff = Math.max(maxAbsDiff, abs);
    maxRelDiff = Math.max(maxRelDiff, abs / Math.max(Math.abs(stock[i]), 1e-30));
  }
  const marks = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000].filter((s) => s < k);
  const points = [...marks, k]
    .filter((s) => s >= 1)
    .map((step) => ({ step, fused: fused[step - 1], stock: stock[step - 1] }));
  return { steps: k, maxAbsDiff, maxRelDiff, points };
}

// ---------------------------------------------------------------------------------------------
// Output: files and the printed table
// ---------------------------------------------------------------------------------------------

/** Where {@link writeReport} put the files. */
export interface WrittenFiles {
  json: string;
  csv: string;
  curvesCsv: string;
}

/**
 * Writes the report atomically: JSON (`jsonPath`, else `<outDir>/distill-<preset>-<stamp>.json`),
 * a CSV with one row per run, and a CSV of the per-step loss curves.
 */
export function writeReport(
  report: DistillReport,
  outDir: string,
  jsonPath?: string,
): WrittenFiles {
  const base = `${outDir}/distill-${report.preset}-${fileStamp(new Date(report.timestamp))}`;
  const files: WrittenFiles = {
    json: jsonPath ?? `${base}.json`,
    csv: `${base}.csv`,
    curvesCsv: `${base}-curves.csv`,
  };
  writeFileAtomic(files.json, JSON.stringify(report, null, 2) + '\n');
  writeFileAtomic(files.csv, toCsv(csvRows(report)));
  writeFileAtomic(files.curvesCsv, toCsv(curveRows(report)));
  return files;
}

/** One CSV row per run that started. */
export function csvRows(report: DistillReport): Record<string, string | number | boolean>[] {
  const rows: Record<string, string | number | boolean>[] = [];
  for (const [name, r] of Object.entries(report.runs) as [RunName, RunRecord | null][]) {
    if (!r) continue;
    rows.push({
      preset: report.preset,
      adapter: report.adapter.description,
      complete: report.complete,
      run: name,
      loss: r.loss,
      filters: r.filters.join('x'),
      params: r.params,
      epochs: r.epochs.length,
      steps: r.steps,
      test_accuracy: r.testAccuracy ?? '',
      test_loss: r.testLoss ?? '',
      step_p20_ms: r.stepMs?.p20 ?? '',
      step_p50_ms: r.stepMs?.p50 ?? '',
      step_p80_ms: r.stepMs?.p80 ?? '',
      dispatches_per_step: r.dispatchesPerStep ?? '',
      end_tensors: r.epochs.at(-1)?.memory.numTensors ?? '',
      memory_growth_flagged: r.memoryGrowth?.flagged ?? '',
      wall_ms: r.wallMs,
    });
  }
  return rows;
}

/** One CSV row per distillation step: fused and stock loss side by side (and scratch). */
function curveRows(report: DistillReport): Record<string, string | number>[] {
  const f = report.runs.distilledFused?.lossCurve ?? [];
  const s = report.runs.distilledStock?.lossCurve ?? [];
  const c = report.runs.scratch?.lossCurve ?? [];
  const n = Math.max(f.length, s.length, c.length);
  return Array.from({ length: n }, (_, i) => ({
    step: i + 1,
    fused_loss: f[i] ?? '',
    stock_loss: s[i] ?? '',
    scratch_loss: c[i] ?? '',
  }));
}

/** Left-aligned text columns with a header rule. */
export function textTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

const RUN_LABELS: Record<RunName, string> = {
  teacher: 'teacher',
  distilledFused: 'student, distilled (fused loss)',
  distilledStock: 'student, distilled (stock loss)',
  scratch: 'student from scratch',
};

function pct(x: number | null): string {
  return x === null ? '—' : `${(100 * x).toFixed(2)} %`;
}

function num(x: number | null | undefined, digits = 4): string {
  return x === null || x === undefined || Number.isNaN(x) ? '—' : x.toFixed(digits);
}

function memoryCell(r: RunRecord): string {
  const end = r.epochs.at(-1)?.memory;
  if (!end) return '—';
  const g = r.memoryGrowth;
  const growth = !g ? '' : g.flagged ? ` GREW +${g.tensors} t/+${g.bytes} B` : ' (flat)';
  return `${end.numTensors} t, ${(end.numBytes / 1e6).toFixed(1)} MB${growth}`;
}

function runsTable(report: DistillReport): string {
  const rows = (Object.keys(RUN_LABELS) as RunName[]).map((name) => {
    const r = report.runs[name];
    if (!r) return [RUN_LABELS[name], '—', 'not run', '—', '—', '—', '—', '—'];
    const done = r.complete ? `${r.epochs.length} ep / ${r.steps}` : `${r.steps} (cut)`;
    return [
      RUN_LABELS[name],
      `${r.params}`,
      r.source === 'loaded' ? 'loaded' : done,
      pct(r.testAccuracy),
      num(r.testLoss),
      r.stepMs ? formatMs(r.stepMs) : '—',
      r.dispatchesPerStep === null ? '—' : `${r.dispatchesPerStep}`,
      memoryCell(r),
    ];
  });
  const header = ['model', 'params', 'epochs/steps', 'test acc', 'test loss'];
  return textTable([...header, 'step [p20–p80]', 'dispatches/step', 'tfjs memory at end'], rows);
}

function phaseLines(report: DistillReport): string[] {
  const { fused, stock } = report.phases;
  if (!fused && !stock) return [];
  const row = (label: string, p: PhaseTimes | null): string[] =>
    p
      ? [
          label,
          formatMs(p.teacherForward),
          formatMs(p.studentForwardLossBackward),
          formatMs(p.optimizerApply),
        ]
      : [label, '—', '—', '—'];
  const tableText = textTable(
    ['loss', 'teacher forward', 'student fwd + loss + bwd', 'optimizer apply'],
    [row('fused', fused), row('stock', stock)],
  );
  return [
    '',
    'Where a step goes (each phase fenced on its own: a breakdown, not the step time):',
    tableText,
  ];
}

function curveLines(report: DistillReport): string[] {
  const c = report.curves;
  if (!c || c.steps === 0) return [];
  const rows = c.points.map((p) => [
    `${p.step}`,
    num(p.fused, 6),
    num(p.stock, 6),
    Math.abs(p.fused - p.stock).toExponential(2),
  ]);
  return [
    '',
    `Distillation loss per step, same start and batches (max |fused − stock| over the first ` +
      `${c.steps} steps: ${c.maxAbsDiff.toExponential(2)}, relative ${c.maxRelDiff.toExponential(2)}):`,
    textTable(['step', 'fused', 'stock', '|diff|'], rows),
  ];
}

function timingLines(report: DistillReport): string[] {
  const lines: string[] = [''];
  const s = report.speedup;
  if (s) {
    lines.push(
      `Step speedup stock/fused: ×${s.p50.toFixed(3)} [${s.low.toFixed(3)}–${s.high.toFixed(3)}] ` +
        `(p50 ratio; band = stock p20/fused p80 … stock p80/fused p20)`,
    );
  }
  const d = report.dispatchesPerStep;
  lines.push(`Dispatches per step: fused ${d.fused ?? '—'}, stock ${d.stock ?? '—'}`);
  const l = report.lossOnly;
  if (l) {
    lines.push(
      `Loss alone, forward + backward, ${l.shape[0]}×${l.shape[1]}: fused ${formatMs(l.fused)} ` +
        `(${l.dispatches.fused} dispatches), stock ${formatMs(l.stock)} ` +
        `(${l.dispatches.stock} dispatches), ×${l.speedup.toFixed(1)}`,
    );
  }
  return lines;
}

/** The printed summary: header, the runs table, timings, phases, loss curves, memory. */
export function formatReport(report: DistillReport): string {
  const st = report.settings;
  const lines = [
    `Distillation benchmark, preset '${report.preset}' (${report.presetReason})`,
    `adapter: ${report.adapter.description}; dataset: ${report.dataset.name}, ` +
      `${report.dataset.trainImages} train / ${report.dataset.testImages} test images; ` +
      `batch ${st.batchSize}; alpha ${st.alpha}, T ${st.temperature}; teacher logits ${st.teacherLogits}`,
    ...report.reductions.map((r) => `  reduced: ${r}`),
    '',
    runsTable(report),
    ...timingLines(report),
    ...phaseLines(report),
    ...curveLines(report),
    '',
    report.memoryGrowthFlagged
      ? 'WARNING: tfjs memory grew during a run after warm-up (see "tfjs memory at end")'
      : 'tfjs memory: no growth after warm-up in any run',
    report.complete
      ? `complete in ${(report.totalWallMs / 1000).toFixed(1)} s`
      : `INCOMPLETE (interrupted during ${report.interrupted?.during ?? 'a run'}); ` +
        `what finished is recorded`,
  ];
  return lines.join('\n');
}
