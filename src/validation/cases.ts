/**
 * One fused-vs-reference case: seeded inputs, the fused op forward and backward through tfjs'
 * tape, the float64 reference, and an element-wise comparison of the value and both gradients
 * with the derived tolerances (tolerance.ts). Host-neutral: `evaluateCase` returns a report (the
 * tests assert on it, test/helpers/cases.ts; the app shows it). A case may have a top-K teacher
 * instead of dense logits (`sparse`): then its entries are seeded separately, the reference is
 * src/reference-sparse.ts, the tolerances tolerance-sparse.ts, and the student's gradient is
 * the only gradient compared. A case may name another divergence than forward KL
 * (`divergence`, `beta`), −Infinity masks (`masks`) and ignored rows (`ignoreIndex`): then its
 * tolerances are tolerance-divergence.ts's.
 *
 * The library is imported by relative path, not by its package name: the plan override
 * (src/kernels/plan.ts) must be the very module instance the op reads, under any host's
 * resolution of `tfjs-fused-distill` (Node's tsx resolves it to dist/).
 */
import * as tf from '@tensorflow/tfjs-core';
// Registers the gradients of the stock ops (the 'tape' mode multiplies the teacher by 1).
import '@tensorflow/tfjs-layers';
// The package's entry (it registers the kernels) and two of its internal modules.
import {
  distillationLoss,
  type DistillationLossConfig,
  type Divergence,
  type Reduction,
} from '../index.js';
import { referenceDistillationLoss, type ReferenceResult } from '../reference.js';
import { referenceSparseDistillationLoss } from '../reference-sparse.js';
import { klFactor, resolveConfig } from '../config.js';
import {
  classifyAdapter,
  overrideAdapterClassForTesting,
  type AdapterClass,
} from '../kernels/plan.js';
import { mulberry32 } from './random.js';
import { compareElements, type Comparison } from './compare.js';
import { captureValidationError } from './gpu-scope.js';
import { divergenceTolerances, type DivergenceToleranceInput } from './tolerance-divergence.js';
import { sparseEntries, sparseTolerances, type SparseToleranceInput } from './tolerance-sparse.js';
import {
  reducedLossTolerance,
  rowBounds,
  studentGradTolerance,
  teacherGradTolerance,
  toleranceContext,
  type RowBounds,
  type RowInputs,
} from './tolerance.js';

export interface CaseInputs {
  student: Float32Array;
  teacher: Float32Array;
  /** [B] indices or [B·C] dense labels */
  labels: Int32Array | Float32Array;
  /** A top-K teacher's entries ([B·K] ids and log-probabilities) when the case has one. */
  indices?: Int32Array;
  logProbs?: Float32Array;
}

/**
 * A top-K teacher `{ indices, logProbs }` instead of the dense teacher logits (src/sparse-teacher.ts;
 * the kernel shaders/distill-sparse.wgsl, the reference src/reference-sparse.ts, the
 * tolerances tolerance-sparse.ts). Its entries are constants: only the student's gradient is
 * compared (teacherGrad is 'none').
 */
export interface SparseTeacherSpec {
  /** K, the entries per row. */
  topK: number;
  /** Log-probabilities in descending order per row, as a server returns them. */
  sorted?: boolean;
}

/**
 * −Infinity logits (masks), per row b, as data (makeInputs applies them):
 * - 'both': column 3b mod C masked in student and teacher (a padded vocabulary entry);
 * - 'one-sided': 'both', and in rows b ≡ 1 (mod 3) (C > 2) column b + 1 mod C masked on one side
 *   where the divergence stays finite (reverse KL: the student's; forward KL: the teacher's; the
 *   JSD: the student's in even rows, the teacher's in odd ones);
 * - 'infinite': 'one-sided', and in rows b ≡ 2 (mod 3) (C > 3) column b + 2 mod C masked on the
 *   side that makes the divergence +Infinity (reverse KL: the teacher's, the student's gradient
 *   NaN; forward KL: the student's; the JSD stays finite: the teacher's).
 * Labels move off a column the student masks (index: to the next unmasked column; dense: that
 * mass set to 0 and the row renormalised), so that the cross-entropy stays finite.
 */
export type MaskKind = 'both' | 'one-sided' | 'infinite';

export interface CaseSpec {
  batch: number;
  classes: number;
  temperature: number;
  alpha: number;
  reduction: Reduction;
  labelKind: 'index' | 'dense';
  seed: number;
  /** Logits uniform in [−scale, scale]. Default 6. */
  scale?: number;
  /** 'unit': tfjs' implicit dy = 1; 'random': an explicit dy in ±[0.5, 2]. Default 'unit'. */
  upstream?: 'unit' | 'random';
  /**
   * How the teacher's gradient is asked for: 'none' (student only, as in training), 'tape'
   * (teacher logits produced on the tape: the forward kernel writes both gradients),
   * 'lazy' (plain tensor: the backward kernel recomputes the teacher's). Default 'lazy'.
   */
  teacherGrad?: 'none' | 'tape' | 'lazy';
  /** Force the plan of an adapter class instead of the running adapter's. */
  plan?: AdapterClass;
  /** A top-K teacher instead of dense teacher logits (then teacherGrad must be 'none'). */
  sparse?: SparseTeacherSpec;
  /** The soft term's divergence (default forward KL) and β of 'jsd' (default 0.5). */
  divergence?: Divergence;
  beta?: number;
  /** −Infinity logits (see MaskKind); default none. */
  masks?: MaskKind;
  /** The config's `ignoreIndex` (rows whose label equals it add nothing). Default: none. */
  ignoreIndex?: number;
  /**
   * Index labels and `ignoreIndex` only: the rows b ≡ 1 (mod 4) get the ignored label ('mean'
   * then divides by the other rows). Default false: the labels are left as generated (callers
   * such as test/components.test.ts place their ignored rows themselves).
   */
  ignoreEveryFourthRow?: boolean;
  /** Edit the generated inputs (edge cases). */
  mutate?: (inputs: CaseInputs) => void;
}

/** A case as data (what a report carries): the spec without its `mutate` function. */
export type CaseSpecData = Omit<CaseSpec, 'mutate'> & { mutated?: true };

export function specData(spec: CaseSpec): CaseSpecData {
  const data: CaseSpec & { mutated?: true } = { ...spec };
  delete data.mutate;
  if (spec.mutate) data.mutated = true;
  return data;
}

export function describeCase(spec: CaseSpec): string {
  return `seed ${spec.seed}: ${JSON.stringify({ ...spec, mutate: spec.mutate ? 'yes' : undefined })}`;
}

export function makeInputs(spec: CaseSpec): CaseInputs {
  const rng = mulberry32(spec.seed);
  const n = spec.batch * spec.classes;
  const scale = spec.scale ?? 6;
  const student = new Float32Array(n).map(() => (rng() * 2 - 1) * scale);
  const teacher = new Float32Array(n).map(() => (rng() * 2 - 1) * scale);
  let labels: Int32Array | Float32Array;
  if (spec.labelKind === 'index') {
    labels = new Int32Array(spec.batch).map(() => Math.floor(rng() * spec.classes));
  } else {
    // soft labels: a random distribution per row (one-hot rows are covered by index labels)
    labels = new Float32Array(n).map(() => rng());
    for (let b = 0; b < spec.batch; b++) {
      let sum = 0;
      for (let c = 0; c < spec.classes; c++) sum += labels[b * spec.classes + c]!;
      for (let c = 0; c < spec.classes; c++) labels[b * spec.classes + c]! /= sum;
    }
  }
  const inputs: CaseInputs = { student, teacher, labels };
  if (spec.masks) applyMasks(spec, inputs);
  if (spec.ignoreEveryFourthRow) {
    if (spec.labelKind !== 'index' || spec.ignoreIndex === undefined) {
      throw new Error('ignoreEveryFourthRow needs index labels and an ignoreIndex');
    }
    for (let b = 1; b < spec.batch; b += 4) labels[b] = spec.ignoreIndex;
  }
  if (spec.sparse) {
    // from a generator of its own: the dense inputs above are those of the same seed without it
    const { topK, sorted } = spec.sparse;
    const entries = sparseEntries(
      mulberry32(spec.seed ^ 0x2545f491),
      spec.batch,
      spec.classes,
      topK,
      sorted,
    );
    inputs.indices = entries.indices;
    inputs.logProbs = entries.logProbs;
  }
  spec.mutate?.(inputs);
  return inputs;
}

/** The −Infinity masks of a case, in place (see MaskKind). */
function applyMasks(spec: CaseSpec, { student, teacher, labels }: CaseInputs): void {
  const { batch: B, classes: C } = spec;
  const divergence = spec.divergence ?? 'forward-kl';
  for (let b = 0; b < B; b++) {
    const row = b * C;
    const both = (3 * b) % C;
    student[row + both] = teacher[row + both] = -Infinity;
    if (spec.masks !== 'both' && C > 2 && b % 3 === 1) {
      const studentSide = divergence === 'reverse-kl' || (divergence === 'jsd' && b % 2 === 0);
      (studentSide ? student : teacher)[row + ((b + 1) % C)] = -Infinity;
    }
    if (spec.masks === 'infinite' && C > 3 && b % 3 === 2) {
      const studentSide = divergence === 'forward-kl';
      (studentSide ? student : teacher)[row + ((b + 2) % C)] = -Infinity;
    }
    if (spec.labelKind === 'index') {
      for (let k = 0; k < C && student[row + labels[b]!] === -Infinity; k++) {
        labels[b] = (labels[b]! + 1) % C;
      }
    } else {
      let sum = 0;
      for (let c = 0; c < C; c++) {
        if (student[row + c] === -Infinity) labels[row + c] = 0;
        sum += labels[row + c]!;
      }
      if (sum > 0) for (let c = 0; c < C; c++) labels[row + c]! /= sum;
    }
  }
}

/** The loss config of a case (the op's and, with overrides, the reference's). */
export function caseConfig(
  spec: CaseSpec,
  overrides: ReferenceConfig = {},
): DistillationLossConfig & { returnComponents?: false } {
  const divergence = overrides.divergence ?? spec.divergence ?? 'forward-kl';
  const beta = overrides.beta ?? spec.beta;
  return {
    alpha: overrides.alpha ?? spec.alpha,
    temperature: overrides.temperature ?? spec.temperature,
    reduction: spec.reduction,
    ...(divergence === 'forward-kl' ? {} : { divergence }),
    ...(divergence === 'jsd' && beta !== undefined ? { beta } : {}),
    ...(spec.ignoreIndex === undefined ? {} : { ignoreIndex: spec.ignoreIndex }),
  };
}

/** The explicit upstream gradient of a case ('random': ±[0.5, 2], seeded), or null for dy = 1. */
export function upstreamFor(spec: CaseSpec): Float32Array | null {
  if (spec.upstream !== 'random') return null;
  const rng = mulberry32(spec.seed ^ 0x5bd1e995);
  return new Float32Array(spec.reduction === 'none' ? spec.batch : 1).map(
    () => (rng() < 0.5 ? -1 : 1) * (0.5 + 1.5 * rng()),
  );
}

function rowInputs(spec: CaseSpec, inputs: CaseInputs, b: number): RowInputs {
  const C = spec.classes;
  const s = inputs.student.subarray(b * C, (b + 1) * C);
  const t = inputs.teacher.subarray(b * C, (b + 1) * C);
  let y: Float64Array | null;
  if (spec.labelKind === 'index') {
    const label = inputs.labels[b]!;
    y = label >= 0 && label < C ? new Float64Array(C) : null;
    if (y) y[label] = 1;
  } else {
    y = Float64Array.from(inputs.labels.subarray(b * C, (b + 1) * C));
  }
  return { classes: C, s, t, y };
}

export interface CaseResult {
  value: Float32Array;
  gradStudent: Float32Array;
  gradTeacher: Float32Array | null;
}

/** Runs the fused op forward + backward; returns what it computed (tensors disposed). */
export async function runFused(
  spec: CaseSpec,
  inputs: CaseInputs,
  dyValues: Float32Array | null,
): Promise<CaseResult> {
  const { batch: B, classes: C } = spec;
  const config = caseConfig(spec);
  const s = tf.tensor2d(inputs.student, [B, C]);
  const t = tf.tensor2d(inputs.teacher, [B, C]);
  const y =
    spec.labelKind === 'index'
      ? tf.tensor1d(inputs.labels, 'int32')
      : tf.tensor2d(inputs.labels, [B, C]);
  const dy = dyValues
    ? spec.reduction === 'none'
      ? tf.tensor1d(dyValues)
      : tf.scalar(dyValues[0]!)
    : undefined;
  const mode = spec.teacherGrad ?? 'lazy';
  const sparse = spec.sparse
    ? {
        indices: tf.tensor2d(inputs.indices!, [B, spec.sparse.topK], 'int32'),
        logProbs: tf.tensor2d(inputs.logProbs!, [B, spec.sparse.topK]),
      }
    : undefined;
  try {
    if (sparse && mode !== 'none') {
      throw new Error(`a top-K teacher has no gradient: teacherGrad must be 'none', got '${mode}'`);
    }
    const out = sparse
      ? tf.valueAndGrads((a: tf.Tensor) => distillationLoss(y, a, sparse, config))([s], dy)
      : mode === 'none'
        ? tf.valueAndGrads((a: tf.Tensor) => distillationLoss(y, a, t, config))([s], dy)
        : tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) =>
            // ×1 is exact; it puts the teacher's logits on the tape (forward writes both).
            distillationLoss(y, a, mode === 'tape' ? tf.mul(b, 1) : b, config),
          )([s, t], dy);
    const value = (await out.value.data()) as Float32Array;
    const gradStudent = (await out.grads[0]!.data()) as Float32Array;
    const gradTeacher = mode === 'none' ? null : ((await out.grads[1]!.data()) as Float32Array);
    tf.dispose([out.value, ...out.grads]);
    return { value, gradStudent, gradTeacher };
  } finally {
    tf.dispose([s, t, y]);
    if (sparse) tf.dispose([sparse.indices, sparse.logProbs]);
    if (dy) dy.dispose();
  }
}

/** A dense-teacher case's inputs as the reference and the tolerances take them (no dy). */
export function caseReferenceInput(spec: CaseSpec, inputs: CaseInputs): DivergenceToleranceInput {
  return {
    batch: spec.batch,
    classes: spec.classes,
    student: inputs.student,
    teacher: inputs.teacher,
    labels: inputs.labels,
    labelKind: spec.labelKind,
  };
}

/** A top-K teacher case's inputs as the sparse reference and tolerances take them (no dy). */
function sparseReferenceInput(spec: CaseSpec, inputs: CaseInputs): SparseToleranceInput {
  return {
    batch: spec.batch,
    classes: spec.classes,
    topK: spec.sparse!.topK,
    student: inputs.student,
    indices: inputs.indices!,
    logProbs: inputs.logProbs!,
    labels: inputs.labels,
    labelKind: spec.labelKind,
  };
}

/** Overrides of the reference's configuration (tests: a deliberately wrong reference). */
export interface ReferenceConfig {
  alpha?: number;
  temperature?: number;
  /** Another divergence (β: jsd's; ignored by the others). */
  divergence?: Divergence;
  beta?: number;
}

/** The float64 reference for a case (config overridable, e.g. to perturb it on purpose). */
export function referenceFor(
  spec: CaseSpec,
  inputs: CaseInputs,
  dyValues: Float32Array | null,
  config: ReferenceConfig = {},
): ReferenceResult {
  if (spec.sparse) {
    const r = referenceSparseDistillationLoss(
      { ...sparseReferenceInput(spec, inputs), ...(dyValues ? { dy: dyValues } : {}) },
      { alpha: spec.alpha, temperature: spec.temperature, reduction: spec.reduction, ...config },
    );
    return { ...r, gradTeacher: new Float64Array(0) }; // constants: no teacher gradient
  }
  return referenceDistillationLoss(
    { ...caseReferenceInput(spec, inputs), ...(dyValues ? { dy: dyValues } : {}) },
    caseConfig(spec, config),
  );
}

export interface CaseTolerances {
  value: number[];
  gradStudent: Float64Array;
  gradTeacher: Float64Array;
}

/** The derived per-element tolerances of a case (tolerance.ts). */
export function tolerancesFor(
  spec: CaseSpec,
  inputs: CaseInputs,
  dyValues: Float32Array | null,
  adapter: AdapterClass,
): CaseTolerances {
  if (spec.sparse) {
    const t = sparseTolerances(
      sparseReferenceInput(spec, inputs),
      { alpha: spec.alpha, temperature: spec.temperature, reduction: spec.reduction },
      dyValues,
      adapter,
    );
    return { value: t.value, gradStudent: t.gradStudent, gradTeacher: new Float64Array(0) };
  }
  const divergence = spec.divergence ?? 'forward-kl';
  if (divergence !== 'forward-kl') {
    return divergenceTolerances(
      caseReferenceInput(spec, inputs),
      {
        alpha: spec.alpha,
        temperature: spec.temperature,
        reduction: spec.reduction,
        divergence,
        ...(spec.beta === undefined ? {} : { beta: spec.beta }),
        ...(spec.ignoreIndex === undefined ? {} : { ignoreIndex: spec.ignoreIndex }),
      },
      dyValues,
      adapter,
    );
  }
  if (spec.masks) {
    // tolerance.ts assumes finite logits (test/masks.test.ts bounds forward KL's masked rows
    // from a finite stand-in instead)
    throw new Error(
      "masks have derived tolerances for 'reverse-kl' and 'jsd' only (tolerance-divergence.ts)",
    );
  }
  // (ignoreIndex: tolerance.ts counts every row; a caller with ignored rows rescales the bounds
  // to the counted rows, as test/masks.test.ts does with boundsOverCounted)
  const cfg = resolveConfig({
    alpha: spec.alpha,
    temperature: spec.temperature,
    reduction: spec.reduction,
  });
  const ctx = toleranceContext(spec.batch, spec.classes, spec, klFactor(cfg), adapter);
  const rowWeight = spec.reduction === 'mean' ? 1 / spec.batch : 1;
  const C = spec.classes;
  const bounds: RowBounds[] = [];
  const gradStudent = new Float64Array(spec.batch * C);
  const gradTeacher = new Float64Array(spec.batch * C);
  for (let b = 0; b < spec.batch; b++) {
    const row = rowInputs(spec, inputs, b);
    const rb = rowBounds(row, ctx);
    bounds.push(rb);
    const dy = dyValues ? dyValues[spec.reduction === 'none' ? b : 0]! : 1;
    gradStudent.set(studentGradTolerance(rb, row, ctx, dy * rowWeight), b * C);
    gradTeacher.set(teacherGradTolerance(rb, row, ctx, dy * rowWeight), b * C);
  }
  const value =
    spec.reduction === 'none'
      ? bounds.map((r) => r.dLoss)
      : [reducedLossTolerance(bounds, rowWeight, ctx)];
  return { value, gradStudent, gradTeacher };
}

/** The plan class of the adapter tfjs runs on ('hardware' when tfjs' backend has no adapter info). */
export function adapterPlan(): AdapterClass {
  const info = (
    tf.backend() as unknown as { adapterInfo?: { vendor?: string; architecture?: string } }
  ).adapterInfo;
  return classifyAdapter(info);
}

/** The plan class a case runs: the one it forces, else the adapter's. */
export function adapterOf(spec: CaseSpec): AdapterClass {
  return spec.plan ?? adapterPlan();
}

export type CheckName = 'loss value' | '∂L/∂student' | '∂L/∂teacher';

/** One compared output of a case. */
export interface CheckReport extends Comparison {
  what: CheckName;
  /** Row length of the output (1 for the loss value), for row / column indices. */
  columns: number;
}

export interface CaseReport {
  name: string;
  spec: CaseSpecData;
  /** describeCase(spec): the seed and the spec, for failure messages. */
  context: string;
  /** The plan class the case ran (and whose tolerances it used). */
  plan: AdapterClass;
  /** No exception, no validation error, no leaked tensor, every element within tolerance. */
  pass: boolean;
  /** Tensors alive after the case minus before it (0 when nothing leaked). */
  leakedTensors: number;
  /** The message of a WebGPU validation error reported while the op ran. */
  gpuValidationError?: string;
  /** An exception thrown while the case ran (the op, a read-back, the comparison). */
  error?: string;
  /** The exception's stack, where the host gives one. */
  errorStack?: string;
  /** Value, ∂L/∂student and (unless teacherGrad is 'none') ∂L/∂teacher, in that order. */
  checks: CheckReport[];
  /** Wall time of the whole case (inputs, op, reference, tolerances, comparison). */
  ms: number;
}

export interface EvaluateOptions {
  /** The report's name. Default: describeCase(spec). */
  name?: string;
  /** Tests only: compare against a reference computed with this configuration instead. */
  referenceConfig?: ReferenceConfig;
}

/**
 * Runs a case on tfjs' active WebGPU backend and compares it with the float64 reference:
 * inside a validation error scope, with the case's plan forced if it names one, counting the
 * tensors it leaks. Never throws for a failing case: an exception is reported in `error`.
 */
export async function evaluateCase(
  spec: CaseSpec,
  options: EvaluateOptions = {},
): Promise<CaseReport> {
  const start = performance.now();
  const context = describeCase(spec);
  const report: CaseReport = {
    name: options.name ?? context,
    spec: specData(spec),
    context,
    plan: 'hardware',
    pass: false,
    leakedTensors: 0,
    checks: [],
    ms: 0,
  };
  const before = tf.memory().numTensors;
  try {
    report.plan = adapterOf(spec);
    const inputs = makeInputs(spec);
    const dyValues = upstreamFor(spec);
    overrideAdapterClassForTesting(spec.plan ? () => spec.plan! : null);
    let fused: CaseResult;
    try {
      const run = await captureValidationError(() => runFused(spec, inputs, dyValues));
      fused = run.result;
      if (run.validationError !== null) report.gpuValidationError = run.validationError;
    } finally {
      overrideAdapterClassForTesting(null);
    }
    report.leakedTensors = tf.memory().numTensors - before;

    const ref = referenceFor(spec, inputs, dyValues, options.referenceConfig);
    const tol = tolerancesFor(spec, inputs, dyValues, report.plan);
    const C = spec.classes;
    const check = (
      what: CheckName,
      actual: Float32Array,
      expected: Float64Array,
      tolerance: ArrayLike<number>,
      columns: number,
    ): CheckReport => ({
      what,
      columns,
      ...compareElements(actual, expected, tolerance, columns),
    });
    report.checks.push(check('loss value', fused.value, ref.value, tol.value, 1));
    report.checks.push(
      check('∂L/∂student', fused.gradStudent, ref.gradStudent, tol.gradStudent, C),
    );
    if (fused.gradTeacher) {
      report.checks.push(
        check('∂L/∂teacher', fused.gradTeacher, ref.gradTeacher, tol.gradTeacher, C),
      );
    }
    report.pass =
      report.gpuValidationError === undefined &&
      report.leakedTensors === 0 &&
      report.checks.every((c) => c.mismatches === 0);
  } catch (err) {
    report.error = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    if (err instanceof Error && err.stack) report.errorStack = err.stack;
    report.leakedTensors = tf.memory().numTensors - before;
    report.pass = false;
  }
  report.ms = performance.now() - start;
  return report;
}
