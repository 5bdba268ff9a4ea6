// The distillation benchmark (bench/core/protocol.ts, bench/core/presets.ts) end to end on the software
// WebGPU adapter with real MNIST: a tiny protocol run writes a complete result file, the fused
// and stock losses agree step by step from the same start, the fused step dispatches less, and
// an abort yields `complete: false` with what finished. Kept small (128 / 64 images, a [8, 16]
// teacher, batch 32: 4 steps per run) so the file runs in well under a minute on 2 cores.
import * as tf from '@tensorflow/tfjs-core';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadMnist } from '../bench/node/data/mnist-node.js';
import { buildTeacher } from '../bench/core/models.js';
import {
  PRESETS,
  choosePreset,
  describeReductions,
  resolveSettings,
  type BenchSettings,
} from '../bench/core/presets.js';
import {
  compareCurves,
  epochOrder,
  formatReport,
  limitSplit,
  runDistillBenchmark,
  speedupSpread,
  type BenchData,
  type DistillReport,
  type ProgressSink,
  type ReportMeta,
} from '../bench/core/protocol.js';
import { nodeResultMeta } from '../bench/node/lib/results.js';
import { writeReport } from '../bench/node/report-files.js';
import {
  loadTeacherCheckpoint,
  saveTeacherCheckpoint,
} from '../bench/node/teacher-checkpoint-file.js';
import { describeAdapter } from '../tools/webgpu-node.js';
import { useWebGPU } from './helpers/backend.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MNIST_DIR = path.resolve(ROOT, process.env.MNIST_DIR ?? '../shared/data/mnist');

/** The smoke preset cut down to 4 steps per run; every timing loop still runs at least twice. */
function tinySettings(): BenchSettings {
  const settings = resolveSettings(PRESETS.smoke, {
    trainLimit: 128,
    testLimit: 64,
    batchSize: 32,
    teacherFilters: [8, 16],
    epochsTeacher: 1,
    epochsDistill: 1,
    epochsScratch: 1,
    seed: 7,
  });
  settings.timing = {
    windowSteps: 2,
    warmupSteps: 1,
    lossWindows: 2,
    lossWindowMs: 10,
    phaseSamples: 2,
    curveCompareSteps: 4,
  };
  return settings;
}

let data: BenchData;
let meta: ReportMeta;
let tmp: string;
/** The report of the complete tiny run, shared by the tests that read it. */
let report: DistillReport;
let tensorsBefore: number;

beforeAll(async () => {
  await useWebGPU();
  const adapter = await navigator.gpu.requestAdapter();
  meta = {
    presetReason: 'test',
    reductions: [],
    adapter: describeAdapter(adapter?.info, process.env.VK_ICD_FILENAMES ?? 'dawn default'),
    software: true,
    flags: { test: true },
    ...nodeResultMeta(),
  };
  const mnist = await loadMnist({ dataDir: MNIST_DIR, download: false });
  data = {
    name: mnist.dataset,
    source: mnist.source,
    train: limitSplit(mnist.train, 128),
    test: limitSplit(mnist.test, 64),
  };
  tmp = mkdtempSync(path.join(os.tmpdir(), 'distill-bench-'));
  tensorsBefore = tf.memory().numTensors;
  const settings = tinySettings();
  report = await runDistillBenchmark({
    settings,
    data,
    meta: { ...meta, reductions: describeReductions(settings) },
  });
});

afterAll(() => {
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('distillation benchmark, a complete tiny run', () => {
  it('writes a result JSON with every required field, finite accuracies and complete: true', () => {
    const files = writeReport(report, tmp, path.join(tmp, 'chosen.json'));
    expect(files.json).toBe(path.join(tmp, 'chosen.json'));
    for (const file of Object.values(files)) expect(existsSync(file)).toBe(true);
    const json = JSON.parse(readFileSync(files.json, 'utf8')) as DistillReport;
    expect(json.complete).toBe(true);
    expect(json.interrupted).toBeNull();
    expect(json.preset).toBe('smoke');
    expect(json.adapter.description).toMatch(/\S/);
    for (const run of ['teacher', 'distilledFused', 'distilledStock', 'scratch'] as const) {
      const r = json.runs[run];
      expect(r, run).not.toBeNull();
      expect(r!.complete).toBe(true);
      expect(Number.isFinite(r!.testAccuracy)).toBe(true);
      expect(r!.testAccuracy).toBeGreaterThanOrEqual(0);
      expect(r!.testAccuracy).toBeLessThanOrEqual(1);
      expect(r!.steps).toBe(4);
      expect(r!.lossCurve).toHaveLength(4);
      // Memory must not grow after warm-up (Adam's slots exist from the first step on).
      expect(r!.memoryGrowth?.flagged).toBe(false);
    }
    for (const run of [json.runs.distilledFused!, json.runs.distilledStock!]) {
      expect(run.stepMs!.p50).toBeGreaterThan(0);
      expect(run.stepMs!.p20).toBeLessThanOrEqual(run.stepMs!.p80);
    }
    expect(Number.isInteger(json.dispatchesPerStep.fused)).toBe(true);
    expect(Number.isInteger(json.dispatchesPerStep.stock)).toBe(true);
    expect(json.speedup!.p50).toBeGreaterThan(0);
    expect(json.lossOnly!.shape).toEqual([32, 10]);
    expect(json.phases.fused!.teacherForward.n).toBe(2);
    expect(json.memoryGrowthFlagged).toBe(false);
    expect(readFileSync(files.csv, 'utf8').split('\n')[0]).toContain('test_accuracy');
    expect(formatReport(json)).toContain('student, distilled (fused loss)');
  });

  it('disposes every tensor it created', () => {
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });

  it('fused and stock distillation losses agree step by step from the same start', () => {
    // Same initial weights, same batches, same Adam: the runs differ only by the loss. The
    // stock (Keras) formula clips probabilities to [1e-7, 1]; at T = 10 MNIST-sized logits
    // give softened probabilities far above 1e-7, so the clip never bites and the two losses
    // are the same function. What differs is float32 rounding (fused reductions vs tfjs'
    // op-by-op ones), ~1e-6 relative, which Adam's normalised updates keep at that order over
    // a few steps: 1e-4 relative leaves two orders of headroom and still catches any real
    // difference in the formula (alpha, T² or the clip would move the loss by > 1e-3).
    const fused = report.runs.distilledFused!.lossCurve;
    const stock = report.runs.distilledStock!.lossCurve;
    expect(fused).toHaveLength(4);
    for (let i = 0; i < fused.length; i++) {
      expect(Number.isFinite(fused[i])).toBe(true);
      expect(Math.abs(fused[i] - stock[i])).toBeLessThanOrEqual(1e-4 * Math.abs(stock[i]));
    }
    expect(report.curves!.steps).toBe(4);
    expect(report.curves!.maxRelDiff).toBeLessThanOrEqual(1e-4);
  });

  it('dispatches fewer WebGPU programs per step with the fused loss', () => {
    const d = report.dispatchesPerStep;
    expect(d.fused!).toBeLessThan(d.stock!);
    // The loss alone: 1 to 3 fused dispatches (forward + backward) against ~52 stock ones.
    expect(report.lossOnly!.dispatches.fused).toBeLessThanOrEqual(3);
    expect(report.lossOnly!.dispatches.fused).toBeLessThan(report.lossOnly!.dispatches.stock);
  });
});

describe('distillation benchmark, interrupted', () => {
  it('stops after the current step on abort and reports what finished, complete: false', async () => {
    const before = tf.memory().numTensors;
    // A saved teacher also covers the checkpoint path: the run must load it, not train one.
    const teacher = buildTeacher({ filters: [8, 16], seed: 3 });
    const checkpoint = path.join(tmp, 'teacher.json');
    await saveTeacherCheckpoint(checkpoint, teacher, {
      dataset: 'mnist',
      filters: [8, 16],
      trainImages: 0,
      epochs: 0,
      batchSize: 32,
      seed: 3,
      testAccuracy: null,
    });
    const loaded = loadTeacherCheckpoint(checkpoint);
    const original = teacher.getWeights().map((w) => w.dataSync().slice());
    const reread = loaded.model.getWeights().map((w) => w.dataSync().slice());
    expect(reread).toEqual(original);
    teacher.dispose();

    const controller = new AbortController();
    // Abort from inside the first fused distillation step's progress event, as SIGINT would.
    const progress: ProgressSink = {
      epochStart: () => undefined,
      epochEnd: () => undefined,
      step: (info) => {
        if (info.run === 'distilledFused' && info.done === 1) controller.abort();
      },
    };
    const partial = await runDistillBenchmark({
      settings: tinySettings(),
      data,
      meta,
      teacher: loaded,
      signal: controller.signal,
      progress,
    });
    expect(partial.complete).toBe(false);
    expect(partial.interrupted?.during).toMatch(/fused/);
    expect(partial.runs.teacher?.source).toBe('loaded');
    expect(Number.isFinite(partial.runs.teacher?.testAccuracy)).toBe(true);
    const fused = partial.runs.distilledFused!;
    expect(fused.complete).toBe(false);
    expect(fused.steps).toBe(1);
    expect(fused.lossCurve).toHaveLength(1);
    expect(fused.testAccuracy).toBeNull();
    expect(partial.runs.distilledStock).toBeNull();
    expect(partial.runs.scratch).toBeNull();
    const files = writeReport(partial, tmp);
    expect(JSON.parse(readFileSync(files.json, 'utf8')).complete).toBe(false);
    expect(formatReport(partial)).toContain('INCOMPLETE');
    // The run took ownership of the loaded teacher and disposed it with everything else.
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects a file that is not a teacher checkpoint', () => {
    const bogus = path.join(tmp, 'chosen.json');
    expect(() => loadTeacherCheckpoint(bogus)).toThrow(/not a teacher checkpoint/);
  });
});

describe('presets and helpers', () => {
  it('picks quick on a software adapter, full on hardware, and the flag over both', () => {
    expect(choosePreset(undefined, true, 'lavapipe').preset.name).toBe('quick');
    expect(choosePreset(undefined, true, 'lavapipe').reason).toMatch(/software/);
    expect(choosePreset(undefined, false, 'NVIDIA').preset.name).toBe('full');
    expect(choosePreset('smoke', false, 'NVIDIA').preset.name).toBe('smoke');
    expect(() => choosePreset('huge', false, 'NVIDIA')).toThrow(/--preset/);
  });

  it('describes what a preset reduces, and nothing for the full protocol', () => {
    expect(describeReductions(PRESETS.full.settings)).toEqual([]);
    const quick = describeReductions(PRESETS.quick.settings).join('\n');
    expect(quick).toMatch(/teacher filters \[64, 128\]/);
    expect(quick).toMatch(/training set/);
    expect(describeReductions(PRESETS.smoke.settings).join('\n')).toMatch(/epochs/);
  });

  it('applies overrides without touching the preset, and rejects bad values', () => {
    const s = resolveSettings(PRESETS.quick, { batchSize: 32, epochsDistill: 1 });
    expect(s.batchSize).toBe(32);
    expect(s.epochs.distill).toBe(1);
    expect(PRESETS.quick.settings.batchSize).toBe(64);
    expect(() => resolveSettings(PRESETS.quick, { batchSize: 0 })).toThrow(RangeError);
    expect(() => resolveSettings(PRESETS.quick, { trainLimit: 1.5 })).toThrow(RangeError);
  });

  it('shuffles each epoch into a seeded permutation', () => {
    const a = epochOrder(100, 5, 1);
    expect(Array.from(a).sort((x, y) => x - y)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(epochOrder(100, 5, 1)).toEqual(a);
    expect(epochOrder(100, 5, 2)).not.toEqual(a);
  });

  it('compares curves and spreads', () => {
    const c = compareCurves([1, 2, 3], [1, 2.5, 3], 10);
    expect(c.steps).toBe(3);
    expect(c.maxAbsDiff).toBeCloseTo(0.5);
    expect(c.maxRelDiff).toBeCloseTo(0.2);
    const s = speedupSpread({ p20: 1, p50: 2, p80: 4, n: 5 }, { p20: 4, p50: 6, p80: 8, n: 5 });
    expect(s).toEqual({ p50: 3, low: 1, high: 8 });
  });
});
