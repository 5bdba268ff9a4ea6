/**
 * The float64 reference for sparse (top-K) teachers (src/reference-sparse.ts) on its own:
 * against finite differences of itself, against the dense reference (src/reference.ts) where
 * the two describe the same teacher, and against closed forms for the special entries and rows
 * of src/sparse-teacher.ts.
 *
 * Tolerances.
 * - Finite differences (float64), as test/divergences.test.ts: central differences with step h
 *   have truncation error h² |f'''| / 6 and rounding error ~ 1e-16 |f| / h. The loss is a
 *   smooth function of s / T whose third derivative w.r.t. a logit is ≤ ~(1 + k) / min(T, 1)³
 *   on these inputs (rows of C = 7, K ≤ 6, |logits| ≤ 3); h = 1e-4 · min(T, 1) makes both
 *   ≤ 1e-8 · (1 + k), and the bound used is 1e-6 · (1 + k) · (1 + |g|).
 * - Sparse vs dense reference (both float64) with K = C, every id listed once and
 *   ℓ = log_softmax(t): the same maths by two routes (the dense one in its centred form, the
 *   sparse one summed directly, each ≤ ~10 C operations on terms of size ≤ L = log C + 2 ·
 *   scale / T ≤ 20), so they agree to ≤ 10 C · 2⁻⁵³ · L ≈ 2e-13 per unit of k (C ≤ 9):
 *   bound 1e-12 · (1 + k) · (1 + |x|) on every value, component and student gradient.
 * - Closed forms: the same float64 expression by hand, ≤ 1e-13 · (1 + |x|).
 */
import { describe, expect, test } from 'vitest';
import { mulberry32 } from '../src/validation/random.js';
import type { DistillationLossConfig, Reduction } from '../src/config.js';
import { referenceDistillationLoss } from '../src/reference.js';
import {
  referenceSparseDistillationLoss,
  type SparseReferenceInput,
  type SparseReferenceResult,
} from '../src/reference-sparse.js';
import { expectClose } from './helpers/compare.js';

interface Rows {
  B: number;
  C: number;
  K: number;
  s: Float64Array;
  indices: Float64Array;
  logProbs: Float64Array;
  labels: Float64Array;
  labelKind: 'index' | 'dense';
}

function logSoftmax(x: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < x.length; i++) m = Math.max(m, x[i]!);
  let z = 0;
  for (let i = 0; i < x.length; i++) z += Math.exp(x[i]! - m);
  const lse = m + Math.log(z);
  return Float64Array.from(x, (v) => v - lse);
}

function randomLabels(rng: () => number, B: number, C: number, dense: boolean): Float64Array {
  if (!dense) return Float64Array.from({ length: B }, () => Math.floor(rng() * C));
  const labels = new Float64Array(B * C);
  for (let b = 0; b < B; b++) {
    let sum = 0;
    for (let c = 0; c < C; c++) sum += labels[b * C + c] = rng();
    for (let c = 0; c < C; c++) labels[b * C + c]! /= sum;
  }
  return labels;
}

/**
 * Random rows: student logits in ±scale, K distinct ids per row drawn from [0, C) (a shuffled
 * prefix), log-probabilities log_softmax of random teacher logits over those K (a top-K
 * server's output renormalised or not does not matter: p is renormalised over the support).
 */
function randomRows(B: number, C: number, K: number, seed: number, dense = false): Rows {
  const rng = mulberry32(seed);
  const s = Float64Array.from({ length: B * C }, () => (rng() * 2 - 1) * 3);
  const indices = new Float64Array(B * K);
  const logProbs = new Float64Array(B * K);
  for (let b = 0; b < B; b++) {
    const ids = Array.from({ length: C }, (_, c) => c);
    for (let i = C - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1));
      [ids[i], ids[j]] = [ids[j]!, ids[i]!];
    }
    const t = Array.from({ length: K }, () => (rng() * 2 - 1) * 3);
    const lp = logSoftmax(t);
    for (let k = 0; k < K; k++) {
      indices[b * K + k] = ids[k]!;
      logProbs[b * K + k] = lp[k]! - 0.3; // a top-K slice: Σ p < 1 before renormalising
    }
  }
  return {
    B,
    C,
    K,
    s,
    indices,
    logProbs,
    labels: randomLabels(rng, B, C, dense),
    labelKind: dense ? 'dense' : 'index',
  };
}

function input(r: Rows, dy?: SparseReferenceInput['dy']): SparseReferenceInput {
  return {
    batch: r.B,
    classes: r.C,
    topK: r.K,
    student: r.s,
    indices: r.indices,
    logProbs: r.logProbs,
    labels: r.labels,
    labelKind: r.labelKind,
    ...(dy === undefined ? {} : { dy }),
  };
}

function sparse(
  r: Rows,
  config: DistillationLossConfig,
  dy?: SparseReferenceInput['dy'],
): SparseReferenceResult {
  return referenceSparseDistillationLoss(input(r, dy), config);
}

const rel = (x: ArrayLike<number>, r = 1e-13) => Array.from(x, (v) => r * (1 + Math.abs(v)));

describe('sparse reference: gradients against finite differences', () => {
  const cases: [number, number, boolean, string][] = [];
  for (const T of [0.5, 1, 4, 20]) {
    for (const K of [1, 3, 6]) {
      cases.push([T, K, cases.length % 2 === 0, ['plain', 'special'][cases.length % 2]!]);
      cases.push([T, K, cases.length % 2 === 0, ['plain', 'special'][cases.length % 2]!]);
    }
  }
  test.each(cases)('T=%s K=%s dense=%s %s entries', (T, K, dense, kind) => {
    const C = 7;
    const r = randomRows(3, C, K, 31 + Math.round(T * 10) + K, dense);
    if (kind === 'special') {
      // K > 1: row 0 a padding entry (its log-probability is never read: NaN), row 1 a
      // −Infinity entry, row 2 a duplicate of its first id; every K: a column of row 0 masked
      // in the student where no entry and no label is
      if (K > 1) {
        r.indices[0] = -1;
        r.logProbs[0] = NaN;
        r.logProbs[K] = -Infinity;
        r.indices[2 * K + 1] = r.indices[2 * K]!;
      }
      const listed = new Set(Array.from(r.indices.subarray(0, K)));
      const free = Array.from({ length: C }, (_, c) => c).find(
        (c) => !listed.has(c) && (dense || r.labels[0] !== c),
      );
      expect(free).toBeDefined();
      r.s[free!] = -Infinity;
      if (dense) r.labels[free!] = 0;
    }
    const config: DistillationLossConfig = { temperature: T, alpha: 0.3, reduction: 'sum' };
    const exact = sparse(r, config);
    expect(Number.isFinite(exact.value[0])).toBe(true);
    const h = 1e-4 * Math.min(T, 1);
    const f = (s: Float64Array) => sparse({ ...r, s }, config).value[0]!;
    const fd = Float64Array.from(r.s, (v, i) => {
      if (v === -Infinity) return 0;
      const plus = Float64Array.from(r.s);
      const minus = Float64Array.from(r.s);
      plus[i] = v + h;
      minus[i] = v - h;
      return (f(plus) - f(minus)) / (2 * h);
    });
    const k = T * T;
    const tol = Array.from(exact.gradStudent, (g) => 1e-6 * (1 + k) * (1 + Math.abs(g)));
    expectClose('∂/∂s', exact.gradStudent, fd, tol, `T=${T} K=${K} ${kind}`, C);
    r.s.forEach((v, i) => {
      if (v === -Infinity) expect(exact.gradStudent[i]).toBe(0);
    });
  });
});

/** K = C: each row lists every id once (shuffled) with ℓ = log_softmax(t). */
function asFullTeacher(B: number, C: number, t: Float64Array, seed: number) {
  const rng = mulberry32(seed);
  const indices = new Float64Array(B * C);
  const logProbs = new Float64Array(B * C);
  for (let b = 0; b < B; b++) {
    const lp = logSoftmax(t.subarray(b * C, (b + 1) * C));
    const ids = Array.from({ length: C }, (_, c) => c);
    for (let i = C - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1));
      [ids[i], ids[j]] = [ids[j]!, ids[i]!];
    }
    ids.forEach((id, k) => {
      indices[b * C + k] = id;
      logProbs[b * C + k] = lp[id]!;
    });
  }
  return { indices, logProbs };
}

describe('sparse reference: K = C with every id listed once equals the dense reference', () => {
  const cases: [number, number, Reduction, 'index' | 'dense', boolean][] = [];
  const reductions: Reduction[] = ['mean', 'sum', 'none'];
  for (const T of [0.5, 1, 4, 10]) {
    for (const alpha of [0, 0.1, 1]) {
      const i = cases.length;
      cases.push([T, alpha, reductions[i % 3]!, i % 2 === 0 ? 'index' : 'dense', i % 4 < 2]);
    }
  }
  test.each(cases)('T=%s α=%s %s %s labels, masks=%s', (T, alpha, reduction, labelKind, masks) => {
    const B = 5;
    const C = 9;
    const rng = mulberry32(7 + cases.findIndex((c) => c[0] === T && c[1] === alpha));
    const s = Float64Array.from({ length: B * C }, () => (rng() * 2 - 1) * 4);
    const t = Float64Array.from({ length: B * C }, () => (rng() * 2 - 1) * 4);
    const labels = randomLabels(rng, B, C, labelKind === 'dense');
    if (masks) {
      // both masked in row 0 col 1; the teacher alone in row 1 col 2; the student alone (a
      // listed id: KL = +Infinity) in row 2 col 3, with no label mass there
      s[1] = t[1] = -Infinity;
      t[C + 2] = -Infinity;
      s[2 * C + 3] = -Infinity;
      if (labelKind === 'dense') labels[1] = labels[2 * C + 3] = 0;
      else if (labels[0] === 1 || labels[2] === 3) labels.set([0, labels[1]!, 0]);
    }
    const dy =
      reduction === 'none' ? Float64Array.from({ length: B }, () => 0.5 + rng()) : 0.5 + rng();
    const config: DistillationLossConfig = { temperature: T, alpha, reduction };
    const dense = referenceDistillationLoss(
      { batch: B, classes: C, student: s, teacher: t, labels, labelKind, dy },
      config,
    );
    const full = asFullTeacher(B, C, t, 3);
    const got = sparse({ B, C, K: C, s, ...full, labels, labelKind }, config, dy);
    const k = T * T;
    const tol = (x: ArrayLike<number>) => Array.from(x, (v) => 1e-12 * (1 + k) * (1 + Math.abs(v)));
    const context = JSON.stringify({ T, alpha, reduction, labelKind, masks });
    for (const key of [
      'value',
      'rowLosses',
      'crossEntropy',
      'kl',
      'hardLoss',
      'softLoss',
    ] as const) {
      expectClose(key, got[key], dense[key], tol(dense[key]), context);
    }
    expect(Array.from(got.counted)).toEqual(Array.from(dense.counted));
    expectClose('∂/∂s', got.gradStudent, dense.gradStudent, tol(dense.gradStudent), context, C);
    if (masks) {
      expect(got.kl[2]).toBe(Infinity);
      expect(got.rowLosses[2]).toBe(alpha === 1 ? dense.rowLosses[2] : Infinity);
      expect(Number.isFinite(got.kl[1])).toBe(true);
    }
  });
});

describe('sparse reference: closed forms', () => {
  /** One row, index label 0, 'none', components by hand. */
  function oneRow(
    s: number[],
    indices: number[],
    logProbs: number[],
    config: DistillationLossConfig = {},
    label = 0,
  ) {
    return referenceSparseDistillationLoss(
      {
        batch: 1,
        classes: s.length,
        topK: indices.length,
        student: s,
        indices,
        logProbs,
        labels: [label],
        labelKind: 'index',
      },
      { reduction: 'none', ...config },
    );
  }
  const s = [0.7, -1.2, 2.5, 0.1, -0.4];

  test('K = 1: p = 1, KL = −log q[i], ∂/∂s = α(σ − y) + (1 − α)(k / T)(q − e_i)', () => {
    for (const T of [0.5, 1, 3]) {
      for (const alpha of [0, 0.25, 1]) {
        const r = oneRow(s, [2], [-5.3], { temperature: T, alpha });
        const logQ = logSoftmax(s.map((v) => v / T));
        const logSigma = logSoftmax(s);
        const k = T * T;
        const kl = -logQ[2]!;
        const ce = -logSigma[0]!;
        const context = `T=${T} α=${alpha}`;
        expectClose('KL', r.kl, [kl], rel([kl]), context);
        expectClose('CE', r.crossEntropy, [ce], rel([ce]), context);
        const value = alpha * ce + (1 - alpha) * k * kl;
        expectClose('value', r.value, [value], rel([value]), context);
        expectClose('soft', r.softLoss, [k * kl], rel([k * kl]), context);
        const grad = s.map(
          (_, c) =>
            alpha * (Math.exp(logSigma[c]!) - (c === 0 ? 1 : 0)) +
            ((1 - alpha) * k * (Math.exp(logQ[c]!) - (c === 2 ? 1 : 0))) / T,
        );
        expectClose('∂/∂s', r.gradStudent, grad, rel(grad), context);
      }
    }
  });

  test('p renormalises over the listed entries: adding a constant to every ℓ changes nothing', () => {
    const a = oneRow(s, [4, 0, 2], [-0.2, -1.5, -3], { temperature: 2 });
    const b = oneRow(s, [4, 0, 2], [-100.2, -101.5, -103], { temperature: 2 });
    expectClose('value', a.value, b.value, rel(b.value, 1e-12), '');
    expectClose('∂/∂s', a.gradStudent, b.gradStudent, rel(b.gradStudent, 1e-12), '');
    // and the explicit sum, p = softmax(ℓ / T) over the three entries
    const T = 2;
    const logP = logSoftmax([-0.2 / T, -1.5 / T, -3 / T]);
    const logQ = logSoftmax(s.map((v) => v / T));
    const kl = [4, 0, 2].reduce(
      (acc, id, k) => acc + Math.exp(logP[k]!) * (logP[k]! - logQ[id]!),
      0,
    );
    expectClose('KL', a.kl, [kl], rel([kl]), '');
  });

  test('duplicates count on their own: [i, i] with equal ℓ gives KL = −log 2 − log q[i], P_i = 1', () => {
    const T = 1.5;
    const k = T * T;
    const r = oneRow(s, [3, 3], [-1, -1], { temperature: T, alpha: 0 });
    const logQ = logSoftmax(s.map((v) => v / T));
    const kl = -Math.LN2 - logQ[3]!;
    expectClose('KL', r.kl, [kl], rel([kl]), '');
    const grad = s.map((_, c) => (k * (Math.exp(logQ[c]!) - (c === 3 ? 1 : 0))) / T);
    expectClose('∂/∂s', r.gradStudent, grad, rel(grad), '');
    // unequal duplicates: Σ_k p_k log p_k − (Σ_k p_k) log q[i], with the third entry elsewhere
    const d = oneRow(s, [3, 1, 3], [-0.5, -2, -1.25], { temperature: T, alpha: 0 });
    const logP = logSoftmax([-0.5 / T, -2 / T, -1.25 / T]);
    const p = Array.from(logP, Math.exp);
    const klD =
      p[0]! * (logP[0]! - logQ[3]!) + p[1]! * (logP[1]! - logQ[1]!) + p[2]! * (logP[2]! - logQ[3]!);
    expectClose('KL duplicates', d.kl, [klD], rel([klD]), '');
    const gradD = s.map(
      (_, c) => (k * (Math.exp(logQ[c]!) - (c === 3 ? p[0]! + p[2]! : c === 1 ? p[1]! : 0))) / T,
    );
    expectClose('∂/∂s duplicates', d.gradStudent, gradD, rel(gradD), '');
    // a duplicate is not the same as one entry of the summed probability
    const merged = oneRow(s, [3, 1], [Math.log(Math.exp(-0.5) + Math.exp(-1.25)), -2], {
      temperature: 1,
      alpha: 0,
    });
    const dup1 = oneRow(s, [3, 1, 3], [-0.5, -2, -1.25], { temperature: 1, alpha: 0 });
    expect(Math.abs(dup1.kl[0]! - merged.kl[0]!)).toBeGreaterThan(0.1);
    // … but the gradient is: P is the same
    expectClose('∂/∂s merged', dup1.gradStudent, merged.gradStudent, rel(merged.gradStudent), '');
  });

  test('padding (−1) and −Infinity entries are skipped, whatever a padding entry holds', () => {
    const base = oneRow(s, [1, 4], [-0.3, -2], { temperature: 4 });
    for (const [ids, lps] of [
      [
        [1, -1, 4, -1],
        [-0.3, NaN, -2, Infinity],
      ],
      [
        [-1, 1, 4],
        [-Infinity, -0.3, -2],
      ],
      [
        [1, 0, 4, 2],
        [-0.3, -Infinity, -2, -Infinity],
      ],
    ] as const) {
      const r = oneRow(s, [...ids], [...lps], { temperature: 4 });
      const context = JSON.stringify({ ids, lps: lps.map(String) });
      expect(Array.from(r.value)).toEqual(Array.from(base.value));
      expect(Array.from(r.kl)).toEqual(Array.from(base.kl));
      expect(Array.from(r.gradStudent)).toEqual(Array.from(base.gradStudent));
      expect(Number.isFinite(r.value[0]), context).toBe(true);
    }
  });

  test('an id outside [−1, C), a NaN or +Infinity ℓ, or no listed entry: the soft term is NaN', () => {
    const C = s.length;
    const bad: [string, number[], number[]][] = [
      ['id = C', [1, C], [-1, -2]],
      ['id = −2', [1, -2], [-1, -2]],
      ['id = 2³¹ − 1', [2 ** 31 - 1], [-1]],
      ['id not an integer', [1.5], [-1]],
      ['id = C with ℓ = −Infinity', [1, C], [-1, -Infinity]],
      ['ℓ NaN', [1, 2], [-1, NaN]],
      ['ℓ +Infinity', [1, 2], [-1, Infinity]],
      ['all padding', [-1, -1], [-1, -2]],
      ['all −Infinity', [0, 3], [-Infinity, -Infinity]],
    ];
    for (const [name, ids, lps] of bad) {
      for (const alpha of [0, 0.5, 1]) {
        const r = oneRow(s, ids, lps, { alpha, temperature: 2 });
        const ce = -logSoftmax(s)[0]!;
        expect(r.value[0], name).toBeNaN();
        expect(r.kl[0], name).toBeNaN();
        expect(r.softLoss[0], name).toBeNaN();
        expect(r.crossEntropy[0], name).toBeCloseTo(ce, 13); // the hard component stays
        expect(r.hardLoss[0], name).toBeCloseTo(ce, 13);
        expect(Array.from(r.gradStudent).every(Number.isNaN), name).toBe(true);
      }
    }
  });

  test('a bad row leaves the other rows alone; the reduced value is NaN', () => {
    const r = randomRows(3, 6, 4, 5);
    r.indices[4 + 2] = 6; // row 1: an id = C
    for (const reduction of ['none', 'sum', 'mean'] as Reduction[]) {
      const x = sparse(r, { reduction });
      const ok = sparse(
        { ...r, indices: Float64Array.from(r.indices, (v, i) => (i === 6 ? 0 : v)) },
        { reduction },
      );
      expect(x.rowLosses[1]).toBeNaN();
      expect([x.rowLosses[0], x.rowLosses[2]]).toEqual([ok.rowLosses[0], ok.rowLosses[2]]);
      expect(Array.from(x.gradStudent.subarray(6, 12)).every(Number.isNaN)).toBe(true);
      expect(Array.from(x.gradStudent.subarray(0, 6))).toEqual(
        Array.from(ok.gradStudent.subarray(0, 6)),
      );
      expect(Array.from(x.gradStudent.subarray(12))).toEqual(
        Array.from(ok.gradStudent.subarray(12)),
      );
      if (reduction !== 'none') expect(x.value[0]).toBeNaN();
    }
  });

  test('the student masking a listed id: KL = +Infinity, finite gradient (its limit)', () => {
    const masked = [0.7, -Infinity, 2.5, 0.1, -0.4];
    for (const T of [1, 4]) {
      for (const alpha of [0, 0.3, 1]) {
        const r = oneRow(masked, [1, 2], [-1, -0.5], { temperature: T, alpha });
        // the limit: the masked logit very far below the row (q there underflows to 0)
        const near = oneRow(
          masked.map((v) => (v === -Infinity ? -3000 * T : v)),
          [1, 2],
          [-1, -0.5],
          {
            temperature: T,
            alpha,
          },
        );
        const context = `T=${T} α=${alpha}`;
        expect(r.kl[0], context).toBe(Infinity);
        expect(r.softLoss[0], context).toBe(Infinity);
        expect(r.value[0], context).toBe(alpha === 1 ? near.value[0] : Infinity);
        expectClose('∂/∂s', r.gradStudent, near.gradStudent, rel(near.gradStudent), context);
        expect(Array.from(r.gradStudent).every(Number.isFinite), context).toBe(true);
      }
    }
    // a masked id with ℓ = −Infinity is not listed: finite
    const r = oneRow(masked, [1, 2], [-Infinity, -0.5], { temperature: 2 });
    expect(Number.isFinite(r.value[0])).toBe(true);
    expect(r.gradStudent[1]).toBe(0);
    // a label on the masked column: CE = +Infinity, as for dense teachers
    const ce = oneRow(masked, [2], [0], { temperature: 2 }, 1);
    expect(ce.crossEntropy[0]).toBe(Infinity);
    expect(ce.value[0]).toBe(Infinity);
  });

  test('NaN or +Infinity student logits make the row NaN (as the dense reference)', () => {
    for (const v of [NaN, Infinity]) {
      const r = oneRow([0.1, v, 0.3], [0], [0], { temperature: 2 });
      expect(r.value[0]).toBeNaN();
      expect(r.crossEntropy[0]).toBeNaN();
      expect(r.kl[0]).toBeNaN();
    }
    const all = oneRow([-Infinity, -Infinity], [0], [0]);
    expect(all.value[0]).toBeNaN();
  });
});

describe('sparse reference: ignoreIndex, reductions, upstream gradients', () => {
  test.each(['mean', 'sum', 'none'] as Reduction[])(
    'ignored rows add nothing, are not counted, and may hold anything (%s)',
    (reduction) => {
      const r = randomRows(5, 6, 3, 11);
      r.labels.set([-100, 2, -100, 1, 3]);
      r.s[0] = NaN; // an ignored row's logits and entries are never looked at
      r.indices[2 * 3] = 99;
      r.logProbs[2 * 3 + 1] = NaN;
      const kept = [1, 3, 4];
      const pick = (x: Float64Array, n: number) =>
        Float64Array.from(kept.flatMap((b) => Array.from(x.subarray(b * n, (b + 1) * n))));
      const sub: Rows = {
        ...r,
        B: 3,
        s: pick(r.s, 6),
        indices: pick(r.indices, 3),
        logProbs: pick(r.logProbs, 3),
        labels: Float64Array.from(kept.map((b) => r.labels[b]!)),
      };
      const full = sparse(r, { reduction, ignoreIndex: -100 });
      const only = sparse(sub, { reduction });
      if (reduction === 'none') {
        expect(Array.from(full.value)).toEqual([0, only.value[0], 0, only.value[1], only.value[2]]);
      } else {
        expectClose('value', full.value, only.value, rel(only.value, 1e-15), reduction);
      }
      expect(Array.from(full.counted)).toEqual([0, 1, 0, 1, 1]);
      for (const key of ['crossEntropy', 'kl', 'rowLosses'] as const) {
        expect([full[key][0], full[key][2]]).toEqual([0, 0]);
      }
      expect(full.gradStudent.subarray(0, 6).every((g) => g === 0)).toBe(true);
      expect(full.gradStudent.subarray(12, 18).every((g) => g === 0)).toBe(true);
      const keptGrad = Float64Array.from(
        kept.flatMap((b) => Array.from(full.gradStudent.subarray(b * 6, b * 6 + 6))),
      );
      expectClose(
        '∂/∂s kept',
        keptGrad,
        only.gradStudent,
        rel(only.gradStudent, 1e-15),
        reduction,
        6,
      );
    },
  );

  test("every row ignored: 'mean' is 0 with zero gradients (not 0 / 0)", () => {
    const r = randomRows(3, 4, 2, 12);
    r.labels.fill(7);
    for (const reduction of ['mean', 'sum', 'none'] as Reduction[]) {
      const x = sparse(r, { ignoreIndex: 7, reduction });
      expect(Array.from(x.value).every((v) => v === 0)).toBe(true);
      expect(Array.from(x.hardLoss).every((v) => v === 0)).toBe(true);
      expect(Array.from(x.softLoss).every((v) => v === 0)).toBe(true);
      expect(x.gradStudent.every((g) => g === 0)).toBe(true);
      expect(Array.from(x.counted)).toEqual([0, 0, 0]);
    }
  });

  test('mean = sum / B, none = the rows; value = α · hard + (1 − α) · soft; dy scales the gradient', () => {
    for (const dense of [false, true]) {
      const r = randomRows(4, 8, 5, 21, dense);
      const alpha = 0.2;
      const T = 3;
      const sum = sparse(r, { reduction: 'sum', alpha, temperature: T }, 1.5);
      const mean = sparse(r, { reduction: 'mean', alpha, temperature: T }, 1.5);
      const dy = Float64Array.of(0.5, -2, 1, 0.25);
      const none = sparse(r, { reduction: 'none', alpha, temperature: T }, dy);
      const rowSum = none.rowLosses.reduce((a, b) => a + b, 0);
      const context = `dense ${dense}`;
      expectClose('sum', sum.value, [rowSum], rel([rowSum], 1e-15), context);
      expectClose('mean', mean.value, [rowSum / 4], rel([rowSum / 4], 1e-15), context);
      expect(Array.from(none.value)).toEqual(Array.from(none.rowLosses));
      for (const x of [sum, mean, none]) {
        const mix = Array.from(
          x.value,
          (_, i) => alpha * x.hardLoss[i]! + (1 - alpha) * x.softLoss[i]!,
        );
        expectClose('α · hard + (1 − α) · soft', x.value, mix, rel(mix, 1e-14), context);
      }
      expectClose(
        'mean grad = sum grad / B',
        mean.gradStudent,
        sum.gradStudent.map((g) => g / 4),
        rel(mean.gradStudent, 1e-15),
        context,
        8,
      );
      const unit = sparse(r, { reduction: 'sum', alpha, temperature: T });
      const scaled = unit.gradStudent.map((g, i) => g * dy[Math.floor(i / 8)]!);
      expectClose(
        'none grad = dy_b × row grad',
        none.gradStudent,
        scaled,
        rel(scaled, 1e-15),
        context,
        8,
      );
      // a scalar dy for 'none' broadcasts
      const noneScalar = sparse(r, { reduction: 'none', alpha, temperature: T }, 1.5);
      expectClose(
        'none, scalar dy',
        noneScalar.gradStudent,
        sum.gradStudent,
        rel(sum.gradStudent, 1e-15),
        context,
        8,
      );
    }
  });

  test('temperatureSquared: false drops k = T² from the soft term', () => {
    const r = randomRows(2, 5, 3, 4);
    const a = sparse(r, { temperature: 4, alpha: 0, reduction: 'none' });
    const b = sparse(r, { temperature: 4, alpha: 0, reduction: 'none', temperatureSquared: false });
    expectClose(
      'soft / 16',
      b.softLoss,
      a.softLoss.map((v) => v / 16),
      rel(b.softLoss),
      '',
    );
    expectClose(
      '∂/∂s / 16',
      b.gradStudent,
      a.gradStudent.map((v) => v / 16),
      rel(b.gradStudent),
      '',
      5,
    );
  });
});

describe('sparse reference: refusals', () => {
  const r = randomRows(2, 4, 2, 1);
  test.each([
    [{ divergence: 'reverse-kl' }, /defines divergence 'forward-kl' only.*got 'reverse-kl'/],
    [{ divergence: 'jsd' }, /defines divergence 'forward-kl' only.*got 'jsd'/],
    [{ alpha: 2 }, /config\.alpha must be a number in \[0, 1\]/],
  ])('config %j', (config, message) => {
    expect(() => sparse(r, config as DistillationLossConfig)).toThrow(message);
  });

  test('ignoreIndex with dense labels', () => {
    const d = randomRows(2, 4, 2, 1, true);
    expect(() => sparse(d, { ignoreIndex: -100 })).toThrow(/applies to int32 class-index labels/);
  });

  test('inputs of the wrong length', () => {
    expect(() => sparse({ ...r, indices: r.indices.subarray(1) }, {})).toThrow(
      /indices must have 4 entries \(\[2, 2\]\), got 3/,
    );
    expect(() => sparse({ ...r, logProbs: new Float64Array(6) }, {})).toThrow(
      /logProbs must have 4/,
    );
    expect(() => sparse({ ...r, s: new Float64Array(7) }, {})).toThrow(/student must have 8/);
    expect(() => sparse({ ...r, labels: new Float64Array(3) }, {})).toThrow(/labels must have 2/);
    expect(() =>
      sparse({ ...r, K: 0, indices: new Float64Array(0), logProbs: new Float64Array(0) }, {}),
    ).toThrow(/topK must be a positive integer/);
    expect(() => sparse(r, { reduction: 'none' }, [1, 2, 3])).toThrow(
      /dy must have 1 or 2 entries/,
    );
  });
});
