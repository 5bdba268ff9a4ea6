/**
 * Presets of the distillation benchmark (bench/node/distill.ts): the same protocol code, at three
 * sizes. `full` is the Keras example's protocol exactly; `quick` and `smoke` shrink it so that
 * it fits a software WebGPU adapter, and say plainly what they shrank.
 *
 * The protocol (https://keras.io/examples/vision/knowledge_distillation/): train the teacher
 * 5 epochs, distil the student 3 epochs, train the same student from scratch 3 epochs, evaluate
 * every model on the test set; Adam (lr 1e-3), alpha 0.1, temperature 10.
 */
import type { DistillerTeacherLogits } from 'tfjs-fused-distill';
import { STUDENT_FILTERS, TEACHER_FILTERS, convNetParamCount } from './models.js';

/** The preset names, smallest last. */
export const PRESET_NAMES = ['full', 'quick', 'smoke'] as const;
/** One of {@link PRESET_NAMES}. */
export type PresetName = (typeof PRESET_NAMES)[number];

/** Epochs of each training run. */
export interface EpochCounts {
  teacher: number;
  distill: number;
  scratch: number;
}

/**
 * How step times are sampled. Every timed window ends with ONE fence (a read-back of the
 * window's stacked losses), so the GPU queue stays full between fences.
 */
export interface TimingSettings {
  /** Training steps per timed window (the last window of an epoch may be shorter). */
  windowSteps: number;
  /** Steps at the start of each run whose windows are not timed (pipeline compilation etc.). */
  warmupSteps: number;
  /** Windows of the loss-alone timing (fused vs stock forward+backward, one fence each). */
  lossWindows: number;
  /** Target length of one loss-alone window, ms (sets the calls per window). */
  lossWindowMs: number;
  /** Steps of the phase breakdown sample, each phase fenced on its own. */
  phaseSamples: number;
  /** Steps over which the fused and stock loss curves are compared (max abs/rel diff). */
  curveCompareSteps: number;
}

/** Everything a benchmark run needs besides the data and the adapter. */
export interface BenchSettings {
  preset: PresetName;
  /** Filters of the teacher's two conv layers (the Keras teacher: [256, 512]). */
  teacherFilters: [number, number];
  /** Filters of the student's two conv layers (the Keras student: [16, 32]). */
  studentFilters: [number, number];
  epochs: EpochCounts;
  /** Training images used (the first N of the training set); null: all of them. */
  trainLimit: number | null;
  /** Test images used (the first N of the test set); null: all of them. */
  testLimit: number | null;
  batchSize: number;
  /** Seeds the weight initialisers and the batch order. */
  seed: number;
  alpha: number;
  temperature: number;
  /** 'per-step' (Keras) or 'cached' teacher logits. */
  teacherLogits: DistillerTeacherLogits;
  /** Examples per evaluation batch (memory bound only: results do not depend on it). */
  evalBatchSize: number;
  timing: TimingSettings;
}

/** A preset: its settings, what it is for and how long it should take. */
export interface Preset {
  name: PresetName;
  /** One line: what the preset is for. */
  summary: string;
  /** Expected wall time on the machine it targets, and how it was estimated. */
  estimate: string;
  settings: BenchSettings;
}

/** Training and test images of MNIST and Fashion-MNIST. */
const FULL_TRAIN = 60_000;
const FULL_TEST = 10_000;
/** The protocol's epochs (teacher, distillation, scratch). */
const PROTOCOL_EPOCHS: EpochCounts = { teacher: 5, distill: 3, scratch: 3 };

/** The Keras example's hyper-parameters, shared by every preset. */
const PROTOCOL = {
  studentFilters: [STUDENT_FILTERS[0], STUDENT_FILTERS[1]] as [number, number],
  // The Keras example defines batch_size = 64 but never passes it to fit(), so Keras ran 32;
  // we default to the 64 it meant (the --batch-size flag sets either).
  batchSize: 64,
  seed: 42,
  alpha: 0.1,
  temperature: 10,
  teacherLogits: 'per-step' as DistillerTeacherLogits,
  evalBatchSize: 256,
};

/** Per-step costs in ms (batch 64) and fixed costs, for {@link estimateSeconds}. */
export interface CostModel {
  /** A [16, 32] student train step: forward + backward + Adam. */
  studentStep: number;
  /** A teacher train step. */
  teacherStep: number;
  /** A teacher forward (inference) on one batch: the per-step extra of a distillation step. */
  teacherForward: number;
  /** Start-up, data loading, pipeline compilation, evaluations of students, phase and
   * loss-alone timing. */
  fixed: number;
}

/**
 * Lavapipe (Mesa 25, 2 cores), the quick preset's [64, 128] teacher, from the slower of two
 * sources: ../shared/notes/webgpu-headless.md (student step 176 ms, [64, 128] teacher step
 * 1,116 ms) and {@link LAVAPIPE_QUICK_COSTS_CALIBRATED}, whose teacher forward is 38 % of its
 * teacher step; scaled to the notes' slower step that is 420 ms. Fixed: ~45 s measured, 60 s.
 */
export const LAVAPIPE_QUICK_COSTS: CostModel = {
  studentStep: 180,
  teacherStep: 1_116,
  teacherForward: 420,
  fixed: 60_000,
};

/** Our calibration run on lavapipe (768 images, 1 epoch each; the machine nearly idle). */
export const LAVAPIPE_QUICK_COSTS_CALIBRATED: CostModel = {
  studentStep: 159,
  teacherStep: 628,
  teacherForward: 240,
  fixed: 45_000,
};

/**
 * A second calibration run (2,048 images, 1 epoch each) while another benchmark shared the
 * two cores: the worst case we saw.
 */
export const LAVAPIPE_QUICK_COSTS_CONTENDED: CostModel = {
  studentStep: 262,
  teacherStep: 1_549,
  teacherForward: 258,
  fixed: 70_000,
};

/**
 * Expected wall time of a run, in seconds: teacher training, both distillations (a teacher
 * forward per step unless cached), the scratch student, the teacher's evaluation and the
 * fixed costs. Student evaluations are in `fixed` (they are cheap).
 */
export function estimateSeconds(s: BenchSettings, c: CostModel): number {
  const steps = Math.ceil((s.trainLimit ?? FULL_TRAIN) / s.batchSize);
  const teacher = s.epochs.teacher * steps * c.teacherStep;
  const distillStep = c.studentStep + (s.teacherLogits === 'cached' ? 0 : c.teacherForward);
  const distill = 2 * s.epochs.distill * steps * distillStep;
  const scratch = s.epochs.scratch * steps * c.studentStep;
  const evalTeacher = Math.ceil((s.testLimit ?? FULL_TEST) / s.batchSize) * c.teacherForward;
  return (teacher + distill + scratch + evalTeacher + c.fixed) / 1000;
}

const FULL: Preset = {
  name: 'full',
  summary: 'the Keras protocol exactly: 60,000/10,000 images, full-width teacher (a real GPU)',
  estimate:
    'a few minutes on a discrete GPU; about six hours per teacher epoch on lavapipe (unusable)',
  settings: {
    ...PROTOCOL,
    preset: 'full',
    teacherFilters: [TEACHER_FILTERS[0], TEACHER_FILTERS[1]],
    epochs: { ...PROTOCOL_EPOCHS },
    trainLimit: null,
    testLimit: null,
    timing: {
      windowSteps: 25,
      warmupSteps: 25,
      lossWindows: 9,
      lossWindowMs: 200,
      phaseSamples: 20,
      curveCompareSteps: 100,
    },
  },
};

const QUICK_SETTINGS: BenchSettings = {
  ...PROTOCOL,
  preset: 'quick',
  // A quarter-width teacher: 10x fewer parameters, still 7x the student's.
  teacherFilters: [64, 128],
  epochs: { ...PROTOCOL_EPOCHS },
  // 50 steps per epoch at batch 64: what fits 15 minutes with a margin (see the estimate).
  trainLimit: 3_200,
  testLimit: 2_000,
  timing: {
    windowSteps: 8,
    warmupSteps: 8,
    lossWindows: 7,
    lossWindowMs: 150,
    phaseSamples: 6,
    curveCompareSteps: 50,
  },
};

/** The quick preset's estimated minutes under a cost model, rounded. */
function minutes(costs: CostModel): string {
  return (estimateSeconds(QUICK_SETTINGS, costs) / 60).toFixed(0);
}

const QUICK: Preset = {
  name: 'quick',
  summary: 'the same code on a reduced problem, sized for lavapipe on 2 cores (≤ 15 min)',
  estimate:
    `~${minutes(LAVAPIPE_QUICK_COSTS)} min on ` +
    `lavapipe with the slower measured step costs (student ${LAVAPIPE_QUICK_COSTS.studentStep} ms, ` +
    `teacher step ${LAVAPIPE_QUICK_COSTS.teacherStep} ms, teacher forward ` +
    `${LAVAPIPE_QUICK_COSTS.teacherForward} ms, ${LAVAPIPE_QUICK_COSTS.fixed / 1000} s fixed); ` +
    `~${minutes(LAVAPIPE_QUICK_COSTS_CALIBRATED)} min ` +
    `with our calibration run's, ~${minutes(LAVAPIPE_QUICK_COSTS_CONTENDED)} min with the ` +
    `costs measured while another benchmark shared the 2 cores`,
  settings: QUICK_SETTINGS,
};

const SMOKE: Preset = {
  name: 'smoke',
  summary: 'a CI check of the whole pipeline in under 2 minutes; its accuracies mean little',
  estimate: '10–30 s on lavapipe (measured), mostly pipeline compilation',
  settings: {
    ...PROTOCOL,
    preset: 'smoke',
    teacherFilters: [8, 16],
    epochs: { teacher: 1, distill: 1, scratch: 1 },
    trainLimit: 512,
    testLimit: 256,
    timing: {
      windowSteps: 2,
      warmupSteps: 2,
      lossWindows: 3,
      lossWindowMs: 50,
      phaseSamples: 2,
      curveCompareSteps: 8,
    },
  },
};

/** The presets by name. */
export const PRESETS: Readonly<Record<PresetName, Preset>> = {
  full: FULL,
  quick: QUICK,
  smoke: SMOKE,
};

/** True when `name` is a preset name. */
export function isPresetName(name: string): name is PresetName {
  return (PRESET_NAMES as readonly string[]).includes(name);
}

/** Which preset a run uses, and a sentence saying why (printed and recorded). */
export interface PresetChoice {
  preset: Preset;
  reason: string;
}

/**
 * The preset for this run: the `--preset` flag when given; otherwise `quick` on a software
 * adapter (the full teacher would take hours per epoch there) and `full` on hardware.
 *
 * @param flag the `--preset` value, if any. @param software whether the adapter is a
 * software rasteriser. @param adapter the adapter's description, for the reason.
 */
export function choosePreset(
  flag: string | undefined,
  software: boolean,
  adapter: string,
): PresetChoice {
  if (flag !== undefined) {
    if (!isPresetName(flag)) {
      throw new Error(`--preset must be one of ${PRESET_NAMES.join(', ')}; got "${flag}"`);
    }
    return { preset: PRESETS[flag], reason: `--preset ${flag}` };
  }
  if (software) {
    return {
      preset: QUICK,
      reason:
        `no --preset given and ${adapter} is a software adapter: using 'quick' ` +
        `(the full protocol would take hours per teacher epoch here)`,
    };
  }
  return {
    preset: FULL,
    reason: `no --preset given and ${adapter} is a hardware adapter: using 'full'`,
  };
}

/** Command-line overrides of a preset's settings; undefined: keep the preset's value. */
export interface SettingOverrides {
  batchSize?: number;
  epochsTeacher?: number;
  epochsDistill?: number;
  epochsScratch?: number;
  trainLimit?: number;
  testLimit?: number;
  seed?: number;
  teacherLogits?: DistillerTeacherLogits;
  /** Teacher conv filters, e.g. [64, 128]. */
  teacherFilters?: [number, number];
}

/**
 * The preset's settings with the overrides applied (a fresh object; presets stay untouched).
 *
 * @throws RangeError on a non-positive batch size or limit, or a negative epoch count.
 */
export function resolveSettings(preset: Preset, overrides: SettingOverrides = {}): BenchSettings {
  const base = preset.settings;
  const settings: BenchSettings = {
    ...base,
    teacherFilters: overrides.teacherFilters
      ? [...overrides.teacherFilters]
      : [...base.teacherFilters],
    studentFilters: [...base.studentFilters],
    epochs: {
      teacher: overrides.epochsTeacher ?? base.epochs.teacher,
      distill: overrides.epochsDistill ?? base.epochs.distill,
      scratch: overrides.epochsScratch ?? base.epochs.scratch,
    },
    timing: { ...base.timing },
    batchSize: overrides.batchSize ?? base.batchSize,
    trainLimit: overrides.trainLimit ?? base.trainLimit,
    testLimit: overrides.testLimit ?? base.testLimit,
    seed: overrides.seed ?? base.seed,
    teacherLogits: overrides.teacherLogits ?? base.teacherLogits,
  };
  validateSettings(settings);
  return settings;
}

function thousands(n: number): string {
  return n.toLocaleString('en-US');
}

/**
 * What `s` changes relative to the Keras protocol, in plain words (printed and recorded);
 * empty when it is the protocol. Computed from the resolved settings, so command-line
 * overrides are described too.
 */
export function describeReductions(s: BenchSettings): string[] {
  const out: string[] = [];
  const [t1, t2] = s.teacherFilters;
  if (t1 !== TEACHER_FILTERS[0] || t2 !== TEACHER_FILTERS[1]) {
    const ratio = convNetParamCount(TEACHER_FILTERS) / convNetParamCount(s.teacherFilters);
    const fewer = ratio >= 1 ? `${ratio.toFixed(0)}x fewer` : `${(1 / ratio).toFixed(1)}x more`;
    out.push(`teacher filters [${t1}, ${t2}] instead of [256, 512] (${fewer} parameters)`);
  }
  if (s.studentFilters[0] !== STUDENT_FILTERS[0] || s.studentFilters[1] !== STUDENT_FILTERS[1]) {
    out.push(`student filters [${s.studentFilters}] instead of [16, 32]`);
  }
  if (s.trainLimit !== null && s.trainLimit < FULL_TRAIN) {
    const steps = Math.ceil(s.trainLimit / s.batchSize);
    out.push(
      `training set: the first ${thousands(s.trainLimit)} of ${thousands(FULL_TRAIN)} images ` +
        `(${steps} steps per epoch at batch ${s.batchSize})`,
    );
  }
  if (s.testLimit !== null && s.testLimit < FULL_TEST) {
    out.push(`test set: the first ${thousands(s.testLimit)} of ${thousands(FULL_TEST)} images`);
  }
  const e = s.epochs;
  const p = PROTOCOL_EPOCHS;
  if (e.teacher !== p.teacher || e.distill !== p.distill || e.scratch !== p.scratch) {
    out.push(
      `epochs: teacher ${e.teacher}, distillation ${e.distill} (each loss), scratch ` +
        `${e.scratch} instead of ${p.teacher} / ${p.distill} / ${p.scratch}`,
    );
  }
  if (s.teacherLogits === 'cached') {
    out.push('teacher logits computed once up front, not by a teacher forward per step');
  }
  return out;
}

/** Throws a RangeError naming the first invalid setting. */
export function validateSettings(s: BenchSettings): void {
  const positive = (name: string, v: number | null): void => {
    if (v !== null && (!Number.isInteger(v) || v < 1)) {
      throw new RangeError(`${name} must be a positive integer, got ${String(v)}`);
    }
  };
  const nonNegative = (name: string, v: number): void => {
    if (!Number.isInteger(v) || v < 0) {
      throw new RangeError(`${name} must be a non-negative integer, got ${String(v)}`);
    }
  };
  positive('batch size', s.batchSize);
  for (const f of [...s.teacherFilters, ...s.studentFilters]) positive('filters', f);
  positive('train limit', s.trainLimit);
  positive('test limit', s.testLimit);
  nonNegative('teacher epochs', s.epochs.teacher);
  nonNegative('distillation epochs', s.epochs.distill);
  nonNegative('scratch epochs', s.epochs.scratch);
  if (!Number.isInteger(s.seed)) throw new RangeError(`seed must be an integer, got ${s.seed}`);
  if (s.teacherLogits !== 'per-step' && s.teacherLogits !== 'cached') {
    throw new RangeError(`teacher logits must be 'per-step' or 'cached', got ${s.teacherLogits}`);
  }
  for (const [name, v] of Object.entries(s.timing)) positive(`timing.${name}`, v);
}
