/**
 * The fused op with a sparse (top-K) teacher `{ indices, logProbs }` (shaders/distill-sparse.wgsl)
 * against the float64 reference (src/reference-sparse.ts), element by element: the loss value
 * (and its components) and the student's gradient, on both plans ('hardware': a workgroup per row
 * with shared-memory trees; 'software': a thread per row), over K ∈ {1, 5, 32, 256}, C up to 262,144,
 * T ∈ {0.5, 1, 4, 10}, α ∈ {0, 0.1, 1}, every reduction and both label kinds; then the special
 * entries and rows of src/sparse-teacher.ts, ignoreIndex, rank-3 inputs, row chunks past the
 * binding limit, K = C against the dense fused op ('software' plan), the components' own gradients,
 * the numerics suite's top-K family, the stock-op composition that other backends run
 * (src/composed-sparse.ts, on tfjs' cpu backend), leaks, and the named errors of bad inputs. Which combinations run on the 'hardware' plan is chosen for CI time (see "CI time"
 * below: every combination of the kernel's overrides is a pipeline compiled on lavapipe).
 *
 * Tolerances: derived per element for the kernel's own forms (float32 WGSL vs float64 truth)
 * in src/validation/tolerance-sparse.ts, whose header holds the derivation (the student's
 * sweep carries the dense bounds of tolerance.ts; the K entries' sums ZP = Σ e^v and
 * A = Σ e^v (v − u) their exponentials', roundings' and rescalings' errors, replaying the plan's
 * scan; KL = A/ZP − log ZP + log ZS the sum of those; the gradient's σ, q and each p_k their
 * arguments' errors, plus one rounding per entry subtracted at a column; SAFETY = 2). Rows with
 * −Infinity student logits take the bounds of a finite stand-in 40 T below the row's minimum;
 * special values (NaN, ±Infinity, the exact zeros of ignored rows) must match exactly. With
 * these bounds the worst element of the whole file uses about a quarter of its bound, and a
 * reference off by 1e-5 in T fails most cases.
 * K = C against the dense fused op: both ops against the same float64 truth (the references
 * agree to 1e-12, test/sparse-reference.test.ts), so |sparse − dense| ≤ the sum of the two derived
 * bounds (the dense one: src/validation/tolerance.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  distillationLoss,
  type DistillationLossConfig,
  type Reduction,
  type SparseTeacher,
} from '../src/index.js';
import {
  choosePlan,
  overrideAdapterClassForTesting,
  overrideBindingLimitForTesting,
  rowChunks,
  type AdapterClass,
} from '../src/kernels/plan.js';
import { referenceDistillationLoss } from '../src/reference.js';
import {
  referenceSparseDistillationLoss,
  type SparseReferenceResult,
} from '../src/reference-sparse.js';
import { mulberry32 } from '../src/validation/random.js';
import { countDispatches } from '../bench/core/lib/dispatch-counter.js';
import {
  sparseEntries,
  sparseTolerances,
  type SparseTolerances,
} from '../src/validation/tolerance-sparse.js';
import { useCheckedWebGPU, useCpu, useWebGPU, withValidationScope } from './helpers/backend.js';
import { checkCase, evaluateCase, tolerancesFor } from './helpers/cases.js';
import { sparseCases } from '../src/validation/suite.js';
import { expectClose } from './helpers/compare.js';

useCheckedWebGPU();

const IGNORE = -100;

// ---------------------------------------------------------------------------------------------
// Cases and inputs

interface SparseCase {
  /** The logits' leading shape. */
  leading: number[];
  classes: number;
  topK: number;
  temperature: number;
  alpha: number;
  reduction: Reduction;
  labelKind: 'index' | 'dense';
  plan: AdapterClass;
  seed: number;
  /** 'random': an explicit dy in ±[0.5, 2]; default: tfjs' implicit 1. */
  upstream?: 'unit' | 'random';
  ignoreIndex?: number;
  /** Run the op with returnComponents: loss, hardLoss and softLoss compared, the loss's gradient. */
  components?: boolean;
  /** Log-probabilities sorted in descending order per row, as a server returns them. */
  sorted?: boolean;
  /** Edits the generated inputs (special entries and rows). */
  mutate?: (x: SparseInputs, c: SparseCase) => void;
}

interface SparseInputs {
  student: Float32Array;
  indices: Int32Array;
  logProbs: Float32Array;
  labels: Int32Array | Float32Array;
}

const rowsOf = (c: SparseCase) => c.leading.reduce((a, b) => a * b, 1);

/**
 * Student logits uniform in ±6; per row K ids (distinct when K ≤ C, else drawn with
 * replacement: duplicates) with log-probabilities log_softmax of teacher logits in ±6 minus a
 * random offset (the mass outside the top K); labels as src/validation/cases.ts.
 */
function makeInputs(c: SparseCase): SparseInputs {
  const rng = mulberry32(c.seed);
  const B = rowsOf(c);
  const { classes: C, topK: K } = c;
  const student = new Float32Array(B * C).map(() => (rng() * 2 - 1) * 6);
  const { indices, logProbs } = sparseEntries(rng, B, C, K, c.sorted);
  let labels: Int32Array | Float32Array;
  if (c.labelKind === 'index') {
    labels = new Int32Array(B).map(() => Math.floor(rng() * C));
  } else {
    labels = new Float32Array(B * C).map(() => rng());
    for (let b = 0; b < B; b++) {
      let sum = 0;
      for (let j = 0; j < C; j++) sum += labels[b * C + j]!;
      for (let j = 0; j < C; j++) labels[b * C + j]! /= sum;
    }
  }
  const x = { student, indices, logProbs, labels };
  c.mutate?.(x, c);
  return x;
}

function upstreamOf(c: SparseCase): Float32Array | null {
  if (c.upstream !== 'random') return null;
  const rng = mulberry32(c.seed ^ 0x5bd1e995);
  return new Float32Array(c.reduction === 'none' ? rowsOf(c) : 1).map(
    () => (rng() < 0.5 ? -1 : 1) * (0.5 + 1.5 * rng()),
  );
}

function configOf(c: SparseCase): DistillationLossConfig & { returnComponents?: false } {
  return {
    alpha: c.alpha,
    temperature: c.temperature,
    reduction: c.reduction,
    ...(c.ignoreIndex !== undefined ? { ignoreIndex: c.ignoreIndex } : {}),
  };
}

function describeCase(c: SparseCase): string {
  return JSON.stringify({ ...c, mutate: c.mutate ? 'yes' : undefined });
}

// ---------------------------------------------------------------------------------------------
// The fused op and the reference

interface Fused {
  value: Float32Array;
  valueShape: number[];
  gradStudent: Float32Array;
  gradShape: number[];
  components?: { hardLoss: Float32Array; softLoss: Float32Array };
}

/** The op forward and backward (student only) with the case's plan; checks for leaks. */
async function runFused(c: SparseCase, x: SparseInputs, dyValues: Float32Array | null) {
  const B = rowsOf(c);
  const shape = [...c.leading, c.classes];
  const entryShape = [...c.leading, c.topK];
  overrideAdapterClassForTesting(() => c.plan);
  const before = tf.memory().numTensors;
  // (a validation error scope on WebGPU; the cpu backend runs the composition)
  const scoped = <T>(f: () => Promise<T>) =>
    tf.getBackend() === 'webgpu' ? withValidationScope(f) : f();
  const fused = await scoped(async (): Promise<Fused> => {
    const s = tf.tensor(x.student, shape);
    const teacher: SparseTeacher = {
      indices: tf.tensor(x.indices, entryShape, 'int32'),
      logProbs: tf.tensor(x.logProbs, entryShape, 'float32'),
    };
    const y =
      c.labelKind === 'index'
        ? tf.tensor(x.labels, c.leading, 'int32')
        : tf.tensor(x.labels, shape);
    const dy = dyValues
      ? c.reduction === 'none'
        ? tf.tensor(dyValues, c.leading)
        : tf.scalar(dyValues[0]!)
      : undefined;
    try {
      const config = configOf(c);
      // With components: one pass under the tape gives all three and the loss's gradient.
      const kept: { parts?: { hardLoss: tf.Tensor; softLoss: tf.Tensor } } = {};
      const loss = (a: tf.Tensor): tf.Tensor => {
        if (!c.components) return distillationLoss(y, a, teacher, config);
        const out = distillationLoss(y, a, teacher, { ...config, returnComponents: true });
        kept.parts = { hardLoss: tf.keep(out.hardLoss), softLoss: tf.keep(out.softLoss) };
        return out.loss;
      };
      const out = tf.valueAndGrads(loss)([s], dy);
      const r: Fused = {
        value: (await out.value.data()) as Float32Array,
        valueShape: out.value.shape,
        gradStudent: (await out.grads[0]!.data()) as Float32Array,
        gradShape: out.grads[0]!.shape,
      };
      tf.dispose([out.value, ...out.grads]);
      const parts = kept.parts;
      if (parts) {
        r.components = {
          hardLoss: (await parts.hardLoss.data()) as Float32Array,
          softLoss: (await parts.softLoss.data()) as Float32Array,
        };
        tf.dispose([parts.hardLoss, parts.softLoss]);
      }
      return r;
    } finally {
      tf.dispose([s, teacher.indices, teacher.logProbs, y]);
      dy?.dispose();
    }
  });
  expect(tf.memory().numTensors, `leaked tensors — ${describeCase(c)}`).toBe(before);
  expect(fused.valueShape).toEqual(c.reduction === 'none' ? c.leading : []);
  expect(fused.gradShape).toEqual(shape);
  expect(fused.gradStudent.length).toBe(B * c.classes);
  return fused;
}

function referenceOf(
  c: SparseCase,
  x: SparseInputs,
  dyValues: Float32Array | null,
): SparseReferenceResult {
  return referenceSparseDistillationLoss(
    {
      batch: rowsOf(c),
      classes: c.classes,
      topK: c.topK,
      student: x.student,
      indices: x.indices,
      logProbs: x.logProbs,
      labels: x.labels,
      labelKind: c.labelKind,
      ...(dyValues ? { dy: dyValues } : {}),
    },
    configOf(c),
  );
}

// ---------------------------------------------------------------------------------------------
// Tolerances (derived in the header)

function tolerancesOf(
  c: SparseCase,
  x: SparseInputs,
  dyValues: Float32Array | null,
  counted: Uint8Array,
): SparseTolerances {
  return sparseTolerances(
    { batch: rowsOf(c), classes: c.classes, topK: c.topK, labelKind: c.labelKind, ...x },
    { alpha: c.alpha, temperature: c.temperature, reduction: c.reduction },
    dyValues,
    c.plan,
    counted,
  );
}

/** The whole check: the fused op vs the float64 reference, every element. */
async function checkSparse(c: SparseCase): Promise<{ fused: Fused; ref: SparseReferenceResult }> {
  const context = describeCase(c);
  const x = makeInputs(c);
  const dyValues = upstreamOf(c);
  const fused = await runFused(c, x, dyValues);
  const ref = referenceOf(c, x, dyValues);
  const tol = tolerancesOf(c, x, dyValues, ref.counted);
  expectClose('loss value', fused.value, ref.value, tol.value, context);
  expectClose(
    '∂L/∂student',
    fused.gradStudent,
    ref.gradStudent,
    tol.gradStudent,
    context,
    c.classes,
  );
  if (fused.components) {
    expectClose('hardLoss', fused.components.hardLoss, ref.hardLoss, tol.hardLoss, context);
    expectClose('softLoss', fused.components.softLoss, ref.softLoss, tol.softLoss, context);
  }
  return { fused, ref };
}

// ---------------------------------------------------------------------------------------------
// The grid: K × T, with C, α, reduction, label kind, plan, upstream and order rotated
//
// CI time. Every combination of the kernel's WGSL overrides (K, label kind, plan, C's tiling,
// the in-workgroup batch reduction, ignoreIndex, …) is its own pipeline, and on lavapipe with a
// cold shader cache a 'hardware'-plan pipeline (256 invocations per workgroup) takes ~3–15 s to
// compile, a 'software'-plan one ~1–3 s. So the 'hardware' plan runs four pipelines in all, each with a
// workgroup of 256 per row (C ≥ 4096) and rows enough that the batch is reduced across
// workgroups (B · C > 2¹⁸): K = 1 (index labels) and K = 256 (dense labels) in the grid, K = 32
// with index labels (the grid, special entries, components, rank 3), and K = 32 with
// ignoreIndex. The 'software' plan takes every other combination (the in-workgroup reduction
// included: the same WGSL with a workgroup of 64).

const GRID_K = [1, 5, 32, 256] as const;
/** C and the rows at that C: few rows at large C, B · C > 2¹⁸ from C = 4096 on. */
const GRID_C: readonly [number, number][] = [
  [37, 24],
  [4096, 65],
  [32_768, 9],
  [262_144, 2],
];
const GRID_T = [0.5, 1, 4, 10] as const;
const ALPHAS = [0, 0.1, 1] as const;
const REDUCTIONS: readonly Reduction[] = ['mean', 'sum', 'none'];
/** The label kind of each K on the 'hardware' plan (the 'software' plan takes the other one); none for K = 5. */
const GPU_LABELS = ['index', null, 'index', 'dense'] as const;

function gridCases(): [string, SparseCase][] {
  const cases: [string, SparseCase][] = [];
  GRID_K.forEach((topK, ki) =>
    GRID_T.forEach((temperature, ti) => {
      const i = cases.length;
      const [classes, rows] = GRID_C[(ki + ti) % GRID_C.length]!;
      const gpuLabels = GPU_LABELS[ki]!;
      const plan: AdapterClass =
        (ki + ti) % 2 === 1 && gpuLabels !== null ? 'hardware' : 'software';
      const labelKind =
        gpuLabels === null
          ? (['index', 'dense'] as const)[ti % 2]!
          : plan === 'hardware'
            ? gpuLabels
            : gpuLabels === 'index'
              ? 'dense'
              : 'index';
      const c: SparseCase = {
        leading: [rows],
        classes,
        topK,
        temperature,
        alpha: ALPHAS[i % 3]!,
        reduction: REDUCTIONS[(ki + 2 * ti) % 3]!,
        labelKind,
        plan,
        upstream: (ki + Math.floor(ti / 2)) % 2 === 0 ? 'unit' : 'random',
        sorted: ti % 2 === 0,
        seed: 5000 + i,
      };
      const name =
        `K=${topK} C=${classes} T=${temperature} α=${c.alpha} ${c.reduction} ${c.labelKind} ` +
        `${c.plan} plan dy=${c.upstream}${c.sorted ? ' sorted' : ''}`;
      cases.push([name, c]);
    }),
  );
  return cases;
}

describe('fused sparse teacher vs float64 reference: K × T grid, both plans', () => {
  test('the grid meets every K with every C, T and both label kinds, and K ≠ 5 both plans; every α and reduction', () => {
    const cases = gridCases().map(([, c]) => c);
    expect(new Set(cases.map((c) => c.alpha))).toEqual(new Set(ALPHAS));
    expect(new Set(cases.map((c) => c.reduction))).toEqual(new Set(REDUCTIONS));
    for (const K of GRID_K) {
      const mine = cases.filter((c) => c.topK === K);
      expect(new Set(mine.map((c) => c.labelKind))).toEqual(new Set(['index', 'dense']));
      expect(new Set(mine.map((c) => c.classes)).size).toBe(GRID_C.length);
      expect(new Set(mine.map((c) => c.temperature)).size).toBe(GRID_T.length);
      if (K !== 5)
        expect(new Set(mine.map((c) => c.plan))).toEqual(new Set(['software', 'hardware']));
    }
    for (const T of GRID_T) {
      expect(new Set(cases.filter((c) => c.temperature === T).map((c) => c.plan)).size).toBe(2);
    }
    // the 'hardware' plan's cases: a workgroup per row, the batch reduced across workgroups
    for (const c of cases.filter((x) => x.plan === 'hardware')) {
      expect(c.classes * rowsOf(c)).toBeGreaterThan(2 ** 18);
      expect(choosePlan(rowsOf(c), c.classes, true, 'hardware').tileCols).toBe(256);
    }
  });

  test.each(gridCases())('%s', async (_name, c) => {
    await checkSparse(c);
  });
});

// ---------------------------------------------------------------------------------------------
// Special entries and rows (src/sparse-teacher.ts)

type Mutate = NonNullable<SparseCase['mutate']>;

/** A column of row b that no entry lists and no index label names. */
function freeColumn(x: SparseInputs, c: SparseCase, b: number): number {
  const listed = new Set(x.indices.subarray(b * c.topK, (b + 1) * c.topK));
  for (let j = 0; j < c.classes; j++) {
    if (!listed.has(j) && (c.labelKind === 'dense' || x.labels[b] !== j)) return j;
  }
  throw new Error('no free column');
}

const SPECIALS: [string, Mutate, (ref: SparseReferenceResult, c: SparseCase) => void][] = [
  [
    'padding (−1) with any log-probability',
    (x, c) => {
      const K = c.topK;
      for (let b = 0; b < rowsOf(c); b++) {
        for (let k = K - Math.max(1, Math.floor(K / 3)); k < K; k++) {
          x.indices[b * K + k] = -1;
          x.logProbs[b * K + k] = [NaN, Infinity, 3, -Infinity][k % 4]!;
        }
      }
    },
    (ref) => expect(Array.from(ref.rowLosses).every(Number.isFinite)).toBe(true),
  ],
  [
    'out-of-range ids (C, −2, 2³¹ − 1) make their rows NaN',
    (x, c) => {
      const K = c.topK;
      x.indices[1 * K + K - 1] = c.classes;
      x.indices[2 * K] = -2;
      x.indices[3 * K + 1] = 2 ** 31 - 1;
      x.logProbs[3 * K + 1] = -Infinity; // out of range even where its probability is 0
    },
    (ref) => {
      expect([1, 2, 3].every((b) => Number.isNaN(ref.rowLosses[b]))).toBe(true);
      expect([0, 4, 5].every((b) => Number.isFinite(ref.rowLosses[b]))).toBe(true);
    },
  ],
  [
    'duplicate ids count on their own',
    (x, c) => {
      const K = c.topK;
      x.indices[K + 1] = x.indices[K]!; // row 1: one duplicate
      for (let k = 0; k < K; k++) x.indices[2 * K + k] = x.indices[2 * K]!; // row 2: one id K times
    },
    (ref) => expect(Array.from(ref.rowLosses).every(Number.isFinite)).toBe(true),
  ],
  [
    '−Infinity log-probabilities; a row of only −Infinity is NaN',
    (x, c) => {
      const K = c.topK;
      for (let k = 1; k < K; k += 2) x.logProbs[k] = -Infinity;
      for (let k = 0; k < K; k++) x.logProbs[5 * K + k] = -Infinity;
    },
    (ref) => {
      expect(Number.isFinite(ref.rowLosses[0])).toBe(true);
      expect(ref.rowLosses[5]).toBeNaN();
    },
  ],
  [
    'no entry (all padding), NaN and +Infinity log-probabilities: NaN rows',
    (x, c) => {
      const K = c.topK;
      x.indices.fill(-1, 0, K);
      x.logProbs[2 * K + 1] = NaN;
      x.logProbs[4 * K] = Infinity;
    },
    (ref) => {
      expect([0, 2, 4].every((b) => Number.isNaN(ref.rowLosses[b]))).toBe(true);
      expect([1, 3, 5].every((b) => Number.isFinite(ref.rowLosses[b]))).toBe(true);
    },
  ],
  [
    'extreme values: ℓ shifted by −1e4 or spread to −1e4 (p underflows), student logits ±100',
    (x, c) => {
      const K = c.topK;
      for (let i = 0; i < x.student.length; i++) x.student[i] = Math.fround(x.student[i]! * 16);
      for (let k = 0; k < K; k++) x.logProbs[K + k] = Math.fround(x.logProbs[K + k]! - 1e4);
      x.logProbs[2 * K + 1] = -1e4;
      x.logProbs[3 * K] = -3e4;
    },
    (ref) => expect(Array.from(ref.rowLosses).every(Number.isFinite)).toBe(true),
  ],
  [
    'student masks: a listed id (KL = +Infinity), unlisted ids (finite)',
    (x, c) => {
      const { classes: C, topK: K } = c;
      const id = x.indices[0]!;
      if (c.labelKind === 'index' && x.labels[0] === id) x.labels[0] = (id + 1) % C;
      if (c.labelKind === 'dense') x.labels[id] = 0;
      x.student[id] = -Infinity;
      for (let b = 1; b < 4; b++) {
        const j = freeColumn(x, c, b);
        x.student[b * C + j] = -Infinity;
        if (c.labelKind === 'dense') x.labels[b * C + j] = 0;
      }
      // row 4: the masked listed id has ℓ = −Infinity: not listed, finite
      x.student[4 * C + x.indices[4 * K]!] = -Infinity;
      x.logProbs[4 * K] = -Infinity;
      if (c.labelKind === 'index' && x.labels[4] === x.indices[4 * K]) {
        x.labels[4] = freeColumn(x, c, 4);
      }
      if (c.labelKind === 'dense') x.labels[4 * C + x.indices[4 * K]!] = 0;
    },
    (ref, c) => {
      expect(ref.kl[0]).toBe(Infinity);
      expect(ref.rowLosses[0]).toBe(c.alpha === 1 ? ref.crossEntropy[0] : Infinity);
      expect([1, 2, 3, 4].every((b) => Number.isFinite(ref.rowLosses[b]))).toBe(true);
      expect(ref.gradStudent.every(Number.isFinite)).toBe(true);
    },
  ],
];

describe('special entries and rows, both plans', () => {
  const cases: [string, SparseCase, (typeof SPECIALS)[number][2]][] = [];
  SPECIALS.forEach(([name, mutate, expectRef], si) => {
    for (const [classes, topK, plans] of [
      [10, 5, ['software']],
      [4096, 32, ['software']],
      // (the 'hardware' plan: index labels, the batch reduced across workgroups; see "CI time")
      [65_536, 32, ['hardware']],
    ] as const) {
      for (const plan of plans) {
        const i = cases.length;
        const labelKind = plan === 'hardware' ? 'index' : i % 4 < 2 ? 'dense' : 'index';
        const c: SparseCase = {
          leading: [6],
          classes,
          topK,
          temperature: [1, 4, 0.5, 10][i % 4]!,
          alpha: ALPHAS[i % 3]!,
          reduction: REDUCTIONS[(si + i) % 3]!,
          labelKind,
          plan,
          upstream: i % 3 === 0 ? 'random' : 'unit',
          seed: 7000 + i,
          mutate,
        };
        cases.push([
          `${name}: C=${classes} K=${topK} ${plan} plan ${c.reduction} ${labelKind}`,
          c,
          expectRef,
        ]);
      }
    }
  });
  test.each(cases)('%s', async (_name, c, expectRef) => {
    const { ref } = await checkSparse(c);
    expectRef(ref, c); // the case holds what it claims to (the comparison above is the test)
  });
});

// ---------------------------------------------------------------------------------------------
// ignoreIndex, components, rank 3, row chunks

describe('ignoreIndex: ignored rows add nothing (whatever their entries hold) and are not counted', () => {
  const cases: [string, SparseCase][] = [];
  const mutate: Mutate = (x, c) => {
    const K = c.topK;
    x.labels[0] = IGNORE;
    x.labels[3] = IGNORE;
    x.indices[0] = c.classes + 5; // out of range, but ignored
    x.logProbs[3 * K] = NaN;
    x.student[3 * c.classes + 1] = NaN;
  };
  for (const reduction of REDUCTIONS) {
    // 'software' plan: the batch reduced in the workgroup (7 · 300 ≤ 2¹⁸; 'mean' and 'sum' only);
    // 'hardware' plan: a workgroup per row (C = 65536, the batch reduced across workgroups)
    for (const [plan, classes, topK] of [
      ['software', 300, 16],
      ['hardware', 65_536, 32],
    ] as const) {
      if (plan === 'software' && reduction === 'none') continue; // the 'hardware' plan's pipeline: CI time
      cases.push([
        `${reduction} ${plan} plan C=${classes} K=${topK}`,
        {
          leading: [7],
          classes,
          topK,
          temperature: 4,
          alpha: 0.1,
          reduction,
          labelKind: 'index',
          plan,
          ignoreIndex: IGNORE,
          upstream: reduction === 'none' ? 'random' : 'unit',
          components: true,
          seed: 8100 + cases.length,
          mutate,
        },
      ]);
    }
    for (const [plan, classes, topK] of [
      ['software', 300, 16],
      ['hardware', 65_536, 32],
    ] as const) {
      if (plan === 'software' && reduction === 'none') continue;
      cases.push([
        `${reduction} ${plan} plan C=${classes} K=${topK}, every row ignored`,
        {
          leading: [5],
          classes,
          topK,
          temperature: 2,
          alpha: 0.5,
          reduction,
          labelKind: 'index',
          plan,
          ignoreIndex: IGNORE,
          components: true,
          seed: 8200 + cases.length,
          mutate: (x) => x.labels.fill(IGNORE),
        },
      ]);
    }
  }
  test.each(cases)('%s', async (_name, c) => {
    const { fused, ref } = await checkSparse(c);
    const all = Array.from(c.mutate === mutate ? [0, 3] : ref.counted.keys());
    expect(Array.from(ref.counted.keys()).filter((b) => !ref.counted[b])).toEqual(all);
    if (ref.counted.every((v) => v === 0)) {
      // 'mean' of nothing is 0 with zero gradients (not NaN)
      expect(Array.from(fused.value).every((v) => v === 0)).toBe(true);
      expect(fused.gradStudent.every((g) => g === 0)).toBe(true);
    }
  });
});

describe('returnComponents: loss, hardLoss and softLoss from the same pass, and its gradient', () => {
  const cases: [string, SparseCase][] = [];
  for (const reduction of REDUCTIONS) {
    for (const labelKind of ['index', 'dense'] as const) {
      const i = cases.length;
      cases.push([
        `${reduction} ${labelKind}`,
        {
          leading: [5],
          // the 'hardware' plan (index labels) at B · C > 2¹⁸: see "CI time" above
          classes: labelKind === 'index' ? 65_536 : 4096,
          topK: 32,
          temperature: [1, 4, 10][i % 3]!,
          alpha: 0.1,
          reduction,
          labelKind,
          plan: labelKind === 'index' ? 'hardware' : 'software',
          upstream: i % 3 === 0 ? 'random' : 'unit',
          components: true,
          sorted: true,
          seed: 8300 + i,
        },
      ]);
    }
  }
  test.each(cases)('%s', async (_name, c) => {
    await checkSparse(c);
  });
});

describe("the components' own gradients: the backward kernel at α = 1 (hardLoss) and α = 0 (softLoss)", () => {
  // d/ds of (w_h · Σ hardLoss + w_s · Σ softLoss): the reference at α = 1 and α = 0 with those
  // upstream weights, within the sum of their derived bounds ('software' plan: see "CI time" above)
  const cases: [string, SparseCase][] = REDUCTIONS.map((reduction, i) => [
    `${reduction} ${i % 2 === 0 ? 'index' : 'dense'}`,
    {
      leading: [5],
      classes: 4096,
      topK: 32,
      temperature: [4, 1, 10][i]!,
      alpha: 0.1,
      reduction,
      labelKind: i % 2 === 0 ? 'index' : 'dense',
      plan: 'software',
      seed: 8350 + i,
      mutate: (x, c) => {
        x.indices[c.topK + 1] = x.indices[c.topK]!; // a duplicate
        x.indices[2 * c.topK] = -1; // a padding entry
      },
    },
  ]);
  test.each(cases)('%s', async (_name, c) => {
    const B = rowsOf(c);
    const C = c.classes;
    const x = makeInputs(c);
    const [wh, ws] = [0.75, -0.5];
    overrideAdapterClassForTesting(() => c.plan);
    const before = tf.memory().numTensors;
    const s = tf.tensor2d(x.student, [B, C]);
    const teacher = {
      indices: tf.tensor2d(x.indices, [B, c.topK], 'int32'),
      logProbs: tf.tensor2d(x.logProbs, [B, c.topK]),
    };
    const y =
      c.labelKind === 'index' ? tf.tensor1d(x.labels, 'int32') : tf.tensor2d(x.labels, [B, C]);
    const g = await withValidationScope(async () => {
      const grad = tf.grad((a: tf.Tensor) => {
        const parts = distillationLoss(y, a, teacher, { ...configOf(c), returnComponents: true });
        return tf.add(tf.mul(tf.sum(parts.hardLoss), wh), tf.mul(tf.sum(parts.softLoss), ws));
      })(s);
      const data = (await grad.data()) as Float32Array;
      grad.dispose();
      return data;
    });
    tf.dispose([s, teacher.indices, teacher.logProbs, y]);
    expect(tf.memory().numTensors, 'leaked tensors').toBe(before);
    const dyOf = (w: number) =>
      c.reduction === 'none' ? new Float32Array(B).fill(w) : Float32Array.of(w);
    const hard = referenceOf({ ...c, alpha: 1 }, x, dyOf(wh));
    const soft = referenceOf({ ...c, alpha: 0 }, x, dyOf(ws));
    const expected = hard.gradStudent.map((v, i) => v + soft.gradStudent[i]!);
    const tolHard = tolerancesOf({ ...c, alpha: 1 }, x, dyOf(wh), hard.counted).gradStudent;
    const tolSoft = tolerancesOf({ ...c, alpha: 0 }, x, dyOf(ws), soft.counted).gradStudent;
    const tol = tolHard.map((v, i) => v + tolSoft[i]!);
    expectClose('∂(w_h hardLoss + w_s softLoss)/∂student', g, expected, tol, describeCase(c), C);
  });
});

describe('rank-3 inputs [batch, seq, C] with entries [batch, seq, K]', () => {
  const cases: [string, SparseCase][] = [];
  for (const plan of ['software', 'hardware'] as const) {
    for (const reduction of REDUCTIONS) {
      const labelKind = plan === 'software' && reduction === 'sum' ? 'dense' : 'index';
      cases.push([
        `${plan} plan ${reduction} ${labelKind}`,
        {
          leading: [2, 3],
          // the 'hardware' plan at B · C > 2¹⁸: see "CI time" above
          classes: plan === 'hardware' ? 65_536 : 4096,
          topK: 32,
          temperature: 4,
          alpha: 0.1,
          reduction,
          labelKind,
          plan,
          upstream: 'random',
          seed: 8400 + cases.length,
          mutate: (x, c) => {
            x.indices[c.topK - 1] = -1; // a padding entry
            x.indices[c.topK + 1] = x.indices[c.topK]!; // a duplicate
          },
        },
      ]);
    }
  }
  test.each(cases)('%s', async (_name, c) => {
    await checkSparse(c);
  });
});

describe('row chunks past the binding limit (test-only limit), both plans at C = 4096', () => {
  const shapes: [string, number[], number, number, number, 'index' | 'dense'][] = [
    ['C=10 K=5 (40-byte rows, heads everywhere)', [300], 10, 5, 4096, 'index'],
    ['C=37 K=32 (odd C, scalar chunks)', [5, 11], 37, 32, 4096, 'dense'],
    // 16 KiB rows: three to a binding
    ['C=4096 K=256 (vec4 rows, 48 KiB bindings)', [13], 4096, 256, 3 * 4 * 4096, 'dense'],
  ];
  const cases: [string, SparseCase, number][] = [];
  for (const plan of ['software', 'hardware'] as const) {
    for (const [name, leading, classes, topK, limit, labelKind] of shapes) {
      if (plan === 'hardware' && classes <= 64) continue; // see "CI time" above
      const i = cases.length;
      cases.push([
        `${plan} plan, ${name}`,
        {
          leading,
          classes,
          topK,
          temperature: 4,
          alpha: 0.3,
          reduction: REDUCTIONS[i % 3]!,
          labelKind,
          plan,
          upstream: 'random',
          seed: 8500 + i,
          mutate: (x, c) => {
            x.indices[2 * c.topK] = c.classes; // a NaN row behind a chunk boundary or two
          },
        },
        limit,
      ]);
    }
  }
  test.each(cases)('%s', async (_name, c, limit) => {
    expect(rowChunks(rowsOf(c), c.classes, limit, 256).length).toBeGreaterThan(2);
    overrideBindingLimitForTesting(limit);
    const { ref } = await checkSparse(c);
    expect(ref.rowLosses[2]).toBeNaN();
  });
});

// ---------------------------------------------------------------------------------------------
// K = C, every index listed once: the dense fused op's result

describe('K = C with every index listed once equals the dense fused op (teacher logits = ℓ)', () => {
  const cases: [number, number, number, Reduction, 'index' | 'dense', AdapterClass][] = [
    // (the 'software' plan: K = C is a new pipeline of each op; see "CI time" above)
    [7, 10, 0.5, 'none', 'index', 'software'],
    [6, 64, 4, 'mean', 'dense', 'software'],
    [3, 4096, 1, 'sum', 'index', 'software'],
  ];
  test.each(cases)(
    'B=%s C=%s T=%s %s %s labels, %s plan',
    async (B, C, T, reduction, labelKind, plan) => {
      const alpha = 0.1;
      // ids: a permutation per row; ℓ at those ids; the dense teacher holds ℓ at each id
      const c: SparseCase = {
        leading: [B],
        classes: C,
        topK: C,
        temperature: T,
        alpha,
        reduction,
        labelKind,
        plan,
        upstream: 'random',
        seed: 9000 + C + B,
      };
      const x = makeInputs(c);
      const rng = mulberry32(c.seed);
      const teacher = new Float32Array(B * C);
      for (let b = 0; b < B; b++) {
        const perm = Array.from({ length: C }, (_, j) => j);
        for (let j = C - 1; j > 0; j--) {
          const r = Math.floor(rng() * (j + 1));
          [perm[j], perm[r]] = [perm[r]!, perm[j]!];
        }
        for (let k = 0; k < C; k++) {
          x.indices[b * C + k] = perm[k]!;
          teacher[b * C + perm[k]!] = x.logProbs[b * C + k]!;
        }
      }
      const dyValues = upstreamOf(c);
      const sparse = await runFused(c, x, dyValues);
      const sparseRef = referenceOf(c, x, dyValues);
      // the dense fused op on the same plan, its gradient w.r.t. the student only
      overrideAdapterClassForTesting(() => plan);
      const s = tf.tensor2d(x.student, [B, C]);
      const t = tf.tensor2d(teacher, [B, C]);
      const y =
        labelKind === 'index' ? tf.tensor1d(x.labels, 'int32') : tf.tensor2d(x.labels, [B, C]);
      const dy = reduction === 'none' ? tf.tensor1d(dyValues!) : tf.scalar(dyValues![0]!);
      const out = tf.valueAndGrads((a: tf.Tensor) =>
        distillationLoss(y, a, t, { alpha, temperature: T, reduction }),
      )([s], dy);
      const denseValue = await out.value.data();
      const denseGrad = await out.grads[0]!.data();
      tf.dispose([s, t, y, dy, out.value, ...out.grads]);
      // the two references describe the same maths (test/sparse-reference.test.ts)
      const denseRef = referenceDistillationLoss(
        {
          batch: B,
          classes: C,
          student: x.student,
          teacher,
          labels: x.labels,
          labelKind,
          dy: dyValues!,
        },
        { alpha, temperature: T, reduction },
      );
      const tight = (v: ArrayLike<number>) =>
        Array.from(v, (e) => 1e-11 * (1 + T * T) * (1 + Math.abs(e)));
      expectClose('references', sparseRef.value, denseRef.value, tight(denseRef.value), 'K = C');
      expectClose(
        'reference grads',
        sparseRef.gradStudent,
        denseRef.gradStudent,
        tight(denseRef.gradStudent),
        'K = C',
        C,
      );
      // |sparse − dense| ≤ both ops' derived bounds against that truth
      const sparseTol = tolerancesOf(c, x, dyValues, sparseRef.counted);
      const denseTol = tolerancesFor(
        { batch: B, classes: C, temperature: T, alpha, reduction, labelKind, seed: c.seed },
        { student: x.student, teacher, labels: x.labels },
        dyValues,
        plan,
      );
      const context = describeCase(c);
      const sum = (a: ArrayLike<number>, b: ArrayLike<number>) =>
        Array.from(a, (v, i) => v + b[i]!);
      expectClose(
        'sparse vs dense: value',
        sparse.value,
        denseValue,
        sum(sparseTol.value, denseTol.value),
        context,
      );
      expectClose(
        'sparse vs dense: ∂L/∂student',
        sparse.gradStudent,
        denseGrad,
        sum(sparseTol.gradStudent, denseTol.gradStudent),
        context,
        C,
      );
      // and each against the float64 truth
      expectClose('sparse vs reference', sparse.value, sparseRef.value, sparseTol.value, context);
      expectClose('dense vs reference', denseValue, denseRef.value, denseTol.value, context);
    },
  );
});

// ---------------------------------------------------------------------------------------------
// The numerics suite's top-K family (src/validation/suite.ts: the app's "Validate kernels")

describe("the shared numerics suite's top-K teacher cases (the app runs the same)", () => {
  test.each(sparseCases().map((c) => [c.name, c.spec] as const))('%s', async (_name, spec) => {
    const report = await checkCase(spec);
    expect(report.checks.map((c) => c.what)).toEqual(['loss value', '∂L/∂student']);
  });

  test('a wrong reference (T × 1.001) fails a top-K case, and a teacher gradient is refused', async () => {
    const spec = sparseCases()[1]!.spec; // α = 0: the soft term alone
    const wrong = await evaluateCase(spec, {
      referenceConfig: { temperature: spec.temperature * 1.001 },
    });
    expect(wrong.pass).toBe(false);
    expect(wrong.error).toBeUndefined();
    expect(wrong.checks.filter((c) => c.mismatches > 0).map((c) => c.what)).toContain('loss value');
    const taped = await evaluateCase({ ...spec, teacherGrad: 'tape' });
    expect(taped.pass).toBe(false);
    expect(taped.error).toMatch(/top-K teacher has no gradient/);
    expect(taped.leakedTensors).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// The stock-op composition (src/composed-sparse.ts: backends without the fused kernels)

describe("other backends: the composition on tfjs' cpu backend vs the reference", () => {
  // float32 tfjs ops, as test/divergences.test.ts bounds the dense composition: every result
  // passes through ≤ ~30 float32 operations on terms of a known size, so |tfjs − ref| ≤ 1e-5 ·
  // (|ref| + the terms' size): the value's α · 2L (CE) + (1 − α) k · 2L (KL: log p and log q),
  // L = (2 max|s| + the listed ℓ's spread) / T + log C, the student gradient's
  // w (2α |Σy| + 2 (1 − α) k / T).
  beforeAll(useCpu);
  afterAll(useWebGPU);
  const cases: [string, SparseCase][] = [];
  SPECIALS.forEach(([name, mutate], si) => {
    const i = cases.length;
    cases.push([
      name,
      {
        leading: [6],
        classes: 1000,
        topK: 32,
        temperature: [1, 4, 0.5, 10][si % 4]!,
        alpha: ALPHAS[si % 3]!,
        reduction: REDUCTIONS[si % 3]!,
        labelKind: si % 2 === 0 ? 'index' : 'dense',
        plan: 'software',
        upstream: si % 2 === 0 ? 'random' : 'unit',
        seed: 9500 + i,
        mutate,
      },
    ]);
  });
  cases.push([
    'ignoreIndex',
    {
      leading: [5],
      classes: 300,
      topK: 16,
      temperature: 2,
      alpha: 0.1,
      reduction: 'mean',
      labelKind: 'index',
      plan: 'software',
      ignoreIndex: IGNORE,
      components: true,
      seed: 9600,
      mutate: (x) => {
        x.labels[1] = IGNORE;
        x.indices[16] = 999; // out of range, ignored
      },
    },
  ]);
  for (const [topK, T, reduction, labelKind] of [
    [1, 0.5, 'none', 'dense'],
    [256, 10, 'sum', 'index'],
  ] as const) {
    cases.push([
      `K=${topK} T=${T} ${reduction} ${labelKind}`,
      {
        leading: [2, 2],
        classes: 1000,
        topK,
        temperature: T,
        alpha: 0.1,
        reduction,
        labelKind,
        plan: 'software',
        upstream: 'random',
        components: true,
        seed: 9700 + topK,
      },
    ]);
  }
  test.each(cases)('%s', async (_name, c) => {
    expect(tf.getBackend()).toBe('cpu');
    const x = makeInputs(c);
    const dyValues = upstreamOf(c);
    const fused = await runFused(c, x, dyValues);
    const ref = referenceOf(c, x, dyValues);
    const B = rowsOf(c);
    const C = c.classes;
    const k = c.temperature ** 2;
    // the terms' size from the inputs: the logits' and the listed ℓ's spreads
    let maxS = 0;
    for (const v of x.student) if (Number.isFinite(v)) maxS = Math.max(maxS, Math.abs(v));
    let spread = 0;
    for (let b = 0; b < B; b++) {
      const listed = Array.from(x.logProbs.subarray(b * c.topK, (b + 1) * c.topK)).filter(
        (v, k) => Number.isFinite(v) && x.indices[b * c.topK + k]! >= 0,
      );
      if (listed.length) spread = Math.max(spread, Math.max(...listed) - Math.min(...listed));
    }
    const L = (2 * maxS + spread) / c.temperature + Math.log(C);
    const termValue = c.alpha * 2 * L + (1 - c.alpha) * k * 2 * L;
    const rowWeight =
      c.reduction === 'mean'
        ? 1 /
          Math.max(
            1,
            ref.counted.reduce((a, v) => a + v, 0),
          )
        : 1;
    const rowsTerm = c.reduction === 'none' ? termValue : termValue * B * rowWeight;
    const context = describeCase(c);
    expectClose(
      'loss value',
      fused.value,
      ref.value,
      Array.from(ref.value, (v) => 1e-5 * (Math.abs(v) + rowsTerm)),
      context,
    );
    const gradTol = Float64Array.from({ length: B * C }, (_, i) => {
      const b = Math.floor(i / C);
      const dy = dyValues ? Math.abs(dyValues[c.reduction === 'none' ? b : 0]!) : 1;
      return (
        1e-5 *
        (Math.abs(ref.gradStudent[i]!) +
          dy * rowWeight * (2 * c.alpha * 1 + (2 * (1 - c.alpha) * k) / c.temperature))
      );
    });
    expectClose('∂L/∂student', fused.gradStudent, ref.gradStudent, gradTol, context, C);
    if (fused.components) {
      const tolOf = (r: Float64Array, term: number) =>
        Array.from(r, (v) => 1e-5 * (Math.abs(v) + term));
      const scale = c.reduction === 'none' ? 1 : B * rowWeight;
      expectClose(
        'hardLoss',
        fused.components.hardLoss,
        ref.hardLoss,
        tolOf(ref.hardLoss, 2 * L * scale),
        context,
      );
      expectClose(
        'softLoss',
        fused.components.softLoss,
        ref.softLoss,
        tolOf(ref.softLoss, k * 2 * L * scale),
        context,
      );
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Bad inputs: named errors before anything is dispatched, nothing leaked; no teacher gradient

describe('bad inputs throw named errors before dispatch; the teacher gets no gradient', () => {
  const B = 3;
  const C = 20;
  const K = 4;
  function setup() {
    const rng = mulberry32(1);
    const s = tf.tensor2d(
      Float32Array.from({ length: B * C }, () => rng() * 2 - 1),
      [B, C],
    );
    const y = tf.tensor1d([1, 2, 3], 'int32');
    const indices = tf.tensor2d([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [B, K], 'int32');
    const logProbs = tf.tensor2d(new Float32Array(B * K).fill(Math.log(0.2)), [B, K]);
    return { s, y, indices, logProbs };
  }

  const bad: [string, (t: ReturnType<typeof setup>) => SparseTeacher, RegExp][] = [
    [
      'float32 indices',
      (t) => ({
        indices: tf.tensor2d([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [B, K]),
        logProbs: t.logProbs,
      }),
      /teacher\.indices must be int32 \[3, K\], got float32 \[3, 4\] \(cast vocabulary ids/,
    ],
    [
      'indices cast to float32',
      (t) => ({ indices: tf.cast(t.indices, 'float32'), logProbs: t.logProbs }),
      /teacher\.indices must be int32/,
    ],
    [
      'int32 log-probabilities',
      (t) => ({ indices: t.indices, logProbs: tf.cast(t.logProbs, 'int32') }),
      /teacher\.logProbs must be float32 \[3, K\], got int32/,
    ],
    [
      'indices of the wrong rank',
      (t) => ({ indices: tf.reshape(t.indices, [B * K]), logProbs: t.logProbs }),
      /teacher\.indices must have shape \[3, K\] \(the student's leading shape, then K\), got int32 \[12\]/,
    ],
    [
      'log-probabilities of another leading shape',
      (t) => ({ indices: t.indices, logProbs: tf.reshape(t.logProbs, [K, B]) }),
      /teacher\.logProbs must have shape \[3, K\]/,
    ],
    [
      'K mismatch between indices and logProbs',
      (t) => ({ indices: t.indices, logProbs: tf.slice(t.logProbs, [0, 0], [B, 3]) }),
      /must have the same K \(one log-probability per id\)/,
    ],
    [
      'K = 0',
      () => ({ indices: tf.zeros([B, 0], 'int32'), logProbs: tf.zeros([B, 0]) }),
      /teacher K must be in \[1, 262144\], got K = 0/,
    ],
    [
      'an array instead of a tensor',
      (t) => ({ indices: [0, 1, 2] as unknown as tf.Tensor, logProbs: t.logProbs }),
      /teacher\.indices must be a tf\.Tensor/,
    ],
    [
      'disposed indices',
      (t) => {
        const i = tf.clone(t.indices);
        i.dispose();
        return { indices: i, logProbs: t.logProbs };
      },
      /teacher\.indices has been disposed/,
    ],
    [
      'disposed log-probabilities',
      (t) => {
        const l = tf.clone(t.logProbs);
        l.dispose();
        return { indices: t.indices, logProbs: l };
      },
      /teacher\.logProbs has been disposed/,
    ],
  ];
  test.each(bad)('%s', (_name, make, message) => {
    const t = setup();
    const teacher = make(t);
    const before = tf.memory().numTensors;
    let dispatches = -1;
    expect(() => {
      dispatches = countDispatches(() => distillationLoss(t.y, t.s, teacher).dispose());
    }).toThrow(message);
    expect(dispatches, 'nothing dispatched').toBe(-1);
    expect(tf.memory().numTensors, 'leaked tensors').toBe(before);
    const extra = [teacher.indices, teacher.logProbs].filter(
      (x) => x instanceof tf.Tensor && x !== t.indices && x !== t.logProbs && !x.isDisposed,
    );
    tf.dispose([t.s, t.y, t.indices, t.logProbs, ...extra]);
  });

  test("divergences other than 'forward-kl' are refused before dispatch", () => {
    const t = setup();
    for (const divergence of ['reverse-kl', 'jsd'] as const) {
      let dispatches = -1;
      expect(() => {
        dispatches = countDispatches(() =>
          distillationLoss(
            t.y,
            t.s,
            { indices: t.indices, logProbs: t.logProbs },
            { divergence },
          ).dispose(),
        );
      }).toThrow(new RegExp(`'forward-kl' only.*got '${divergence}'`));
      expect(dispatches).toBe(-1);
    }
    tf.dispose([t.s, t.y, t.indices, t.logProbs]);
  });

  test('asking for the teacher entries’ gradient is an error; the student’s gradient alone works', async () => {
    const t = setup();
    expect(() =>
      tf.grads((s: tf.Tensor, lp: tf.Tensor) =>
        distillationLoss(t.y, s, { indices: t.indices, logProbs: lp }),
      )([t.s, t.logProbs]),
    ).toThrow(/teacher\.logProbs is a constant/);
    // (tfjs' engine.gradients keeps the tape's saved tensors when a gradient function throws:
    // they are not counted here; the student's gradient below is.)
    const before = tf.memory().numTensors;
    const g = tf.grad((s: tf.Tensor) =>
      distillationLoss(t.y, s, { indices: t.indices, logProbs: t.logProbs }),
    )(t.s);
    expect(g.shape).toEqual([B, C]);
    expect(Array.from(await g.data()).every(Number.isFinite)).toBe(true);
    expect(tf.memory().numTensors).toBe(before + 1);
    tf.dispose([g, t.s, t.y, t.indices, t.logProbs]);
  });
});
