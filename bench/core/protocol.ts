/**
 * The distillation benchmark's protocol (the Keras "Knowledge Distillation" example, run with
 * the fused loss and with the stock one), its measurements and its result file. The CLI
 * (bench/node/distill.ts) is a thin shell around {@link runDistillBenchmark}; tests call it
 * directly.
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
 *
 * It runs on any host that has tfjs and WebGPU: nothing here touches files, processes or the
 * environment. What only the host can do (store a teacher checkpoint, the run's provenance in
 * `meta`) comes in through {@link RunOptions}; bench/node/ is the Node host.
 *
 * This module runs the protocol; the rest lives under bench/core/protocol/:
 *   data.ts                host splits, the seeded epoch order, batches;
 *   progress.ts            progress events and their sink;
 *   train-loop.ts          the training loop and its windowed timing and memory samples;
 *   timing.ts              the fenced step phases and the loss-alone timing;
 *   teacher-checkpoint.ts  a trained teacher encoded as JSON and decoded back;
 *   report.ts              the result file's types, its empty state and derived fields;
 *   report-output.ts       the result files' rows and the printed summary.
 * It re-exports what the CLI and the tests use from them.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { Distiller } from 'tfjs-fused-distill';
import { crossEntropyStep, evaluate, inferLogits, type EvalResult } from './hard-label-training.js';
import { installDispatchCounter } from './lib/dispatch-counter.js';
import { buildConvNet, convNetParamCount, setWeightsFrom } from './models.js';
import type { BenchSettings } from './presets.js';
import { makeBatch, splitTensors, type BenchData, type HostSplit } from './protocol/data.js';
import { SILENT, type ProgressSink } from './protocol/progress.js';
import {
  emptyReport,
  finishReport,
  type DistillReport,
  type ReportMeta,
  type RunName,
  type RunRecord,
} from './protocol/report.js';
import {
  encodeTeacherCheckpoint,
  type LoadedTeacher,
  type TeacherCheckpoint,
} from './protocol/teacher-checkpoint.js';
import { captureLogits, timeLossOnly, timePhases } from './protocol/timing.js';
import {
  emptyLoopRecord,
  trainLoop,
  yieldByTimeout,
  type LoopRecord,
  type RunContext,
} from './protocol/train-loop.js';

export { epochOrder, limitSplit, type BenchData, type HostSplit } from './protocol/data.js';
export type { EpochProgress, ProgressSink, StepProgress } from './protocol/progress.js';
export {
  compareCurves,
  speedupSpread,
  type AdapterDescription,
  type CurveComparison,
  type DistillReport,
  type EpochRecord,
  type LossOnlyTimes,
  type MemoryGrowth,
  type MemorySample,
  type PhaseTimes,
  type ReportMeta,
  type RunName,
  type RunRecord,
  type SpeedupSpread,
} from './protocol/report.js';
export { csvRows, curveRows, formatReport, textTable } from './protocol/report-output.js';
export {
  TEACHER_CHECKPOINT_FORMAT,
  decodeTeacherCheckpoint,
  encodeTeacherCheckpoint,
  type LoadedTeacher,
  type TeacherCheckpoint,
  type TeacherCheckpointInfo,
} from './protocol/teacher-checkpoint.js';

/** What the protocol asks of its host beyond tfjs and WebGPU. */
export interface RunHost {
  /** Stores a trained teacher's checkpoint under `path`; needed for `saveTeacherPath`. */
  saveTeacherCheckpoint?(path: string, checkpoint: TeacherCheckpoint): void | Promise<void>;
  /** Resolves on a later event-loop turn; default: a zero-delay `setTimeout`. */
  yieldToEventLoop?(): Promise<void>;
}

/** Options of {@link runDistillBenchmark}. */
export interface RunOptions {
  settings: BenchSettings;
  /** Already limited to `settings.trainLimit` / `testLimit` (see {@link limitSplit}). */
  data: BenchData;
  meta: ReportMeta;
  /** A loaded teacher: teacher training is skipped (the run takes ownership of the model). */
  teacher?: LoadedTeacher;
  /** Stores the trained teacher there (through the host) once it is trained and evaluated. */
  saveTeacherPath?: string;
  host?: RunHost;
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
    yieldToEventLoop: options.host?.yieldToEventLoop ?? yieldByTimeout,
  };
  if (options.saveTeacherPath !== undefined && !options.host?.saveTeacherCheckpoint) {
    throw new Error('runDistillBenchmark: saveTeacherPath needs host.saveTeacherCheckpoint');
  }
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
      step: (b) => crossEntropyStep(model, optimizer, b.x, b.y, { accuracy: true }),
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
  const save = options.host?.saveTeacherCheckpoint;
  if (!save)
    throw new Error('runDistillBenchmark: saveTeacherPath needs host.saveTeacherCheckpoint');
  const checkpoint = await encodeTeacherCheckpoint(model, {
    dataset: data.name,
    filters: record.filters,
    trainImages: options.teacher?.info.trainImages ?? data.train.count,
    epochs: options.teacher?.info.epochs ?? settings.epochs.teacher,
    batchSize: options.teacher?.info.batchSize ?? settings.batchSize,
    seed: options.teacher?.info.seed ?? settings.seed,
    testAccuracy: record.testAccuracy,
  });
  await save(path, checkpoint);
  record.checkpoint = path;
  ctx.log(`teacher: saved to ${path}`);
}

function loadedTeacherRecord(teacher: LoadedTeacher, evaluation: EvalResult): RunRecord {
  return {
    source: 'loaded',
    loss: 'cross-entropy',
    filters: teacher.info.filters,
    params: convNetParamCount(teacher.info.filters),
    ...emptyLoopRecord(),
    complete: true,
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
  if (inputs.cache) distiller.teacherCache.set(inputs.cache.clone());
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
      step: (b) => crossEntropyStep(student, optimizer, b.x, b.y, { accuracy: true }),
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
