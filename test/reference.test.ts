/**
 * The float64 reference is itself checked: against tfjs autograd of the stock (Keras)
 * composition, on inputs where Keras' clip to [1e-7, 1] does not bite, and against tfjs
 * autograd of the exact composition on any input. Both run in float32 on tfjs' CPU backend:
 * each result passes through ~10 float32 operations (softmax, log, products, sums over ≤ 1000
 * terms), so |tfjs − reference| ≤ 1e-5 · (|reference| + the magnitude of the terms), the
 * magnitude being ≤ 1 for probabilities and ≤ max|logit| / T for log-probabilities.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, test } from 'vitest';
import { stockDistillationLoss, type Reduction } from '../src/index.js';
import { referenceDistillationLoss } from '../src/validation/index.js';
import { composedDistillationLoss } from '../src/composed.js';
import { resolveConfig } from '../src/config.js';
import { checkInputs } from '../src/validate.js';
import { mulberry32 } from '../src/validation/random.js';
import { useCpu } from './helpers/backend.js';
import { expectClose } from './helpers/compare.js';

beforeAll(useCpu);

interface Case {
  B: number;
  C: number;
  T: number;
  alpha: number;
  reduction: Reduction;
  scale: number;
  labelKind: 'index' | 'dense';
}

function inputs(c: Case, seed: number) {
  const rng = mulberry32(seed);
  const s = Float32Array.from({ length: c.B * c.C }, () => (rng() * 2 - 1) * c.scale);
  const t = Float32Array.from({ length: c.B * c.C }, () => (rng() * 2 - 1) * c.scale);
  const idx = Int32Array.from({ length: c.B }, () => Math.floor(rng() * c.C));
  const dense = new Float32Array(c.B * c.C);
  for (let b = 0; b < c.B; b++) {
    let sum = 0;
    for (let k = 0; k < c.C; k++) sum += dense[b * c.C + k] = rng();
    for (let k = 0; k < c.C; k++) dense[b * c.C + k]! /= sum;
  }
  return { s, t, labels: c.labelKind === 'index' ? idx : dense };
}

type LossFn = (y: tf.Tensor, s: tf.Tensor, t: tf.Tensor) => tf.Tensor;

function compareWithTfjs(c: Case, seed: number, loss: LossFn): void {
  const { s, t, labels } = inputs(c, seed);
  const ref = referenceDistillationLoss(
    { batch: c.B, classes: c.C, student: s, teacher: t, labels, labelKind: c.labelKind },
    { alpha: c.alpha, temperature: c.T, reduction: c.reduction },
  );
  const y =
    c.labelKind === 'index' ? tf.tensor1d(labels, 'int32') : tf.tensor2d(labels, [c.B, c.C]);
  const sT = tf.tensor2d(s, [c.B, c.C]);
  const tT = tf.tensor2d(t, [c.B, c.C]);
  const { value, grads } = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) => loss(y, a, b))([
    sT,
    tT,
  ]);
  const context = `seed ${seed} ${JSON.stringify(c)}`;
  const logMagnitude = (2 * c.scale) / c.T + Math.log(c.C);
  const tol = (r: ArrayLike<number>, w: number) => Array.from(r, (x) => 1e-5 * (Math.abs(x) + w));
  const rowWeight = c.reduction === 'mean' ? 1 / c.B : 1;
  const k = (1 - c.alpha) * c.T * c.T;
  expectClose(
    'value',
    value.dataSync(),
    ref.value,
    tol(ref.value, c.alpha * logMagnitude * 2 + k * logMagnitude),
    context,
  );
  expectClose(
    '∂/∂s',
    grads[0]!.dataSync(),
    ref.gradStudent,
    tol(ref.gradStudent, rowWeight * (c.alpha + k / c.T)),
    context,
    c.C,
  );
  expectClose(
    '∂/∂t',
    grads[1]!.dataSync(),
    ref.gradTeacher,
    tol(ref.gradTeacher, rowWeight * (k / c.T) * logMagnitude),
    context,
    c.C,
  );
  tf.dispose([y, sT, tT, value, ...grads]);
}

const cases: Case[] = [];
for (const [B, C] of [
  [1, 1],
  [3, 2],
  [7, 10],
  [16, 100],
  [4, 1000],
]) {
  for (const T of [1, 4, 10]) {
    for (const reduction of ['mean', 'sum', 'none'] as Reduction[]) {
      cases.push({
        B: B!,
        C: C!,
        T,
        alpha: [0, 0.1, 0.5, 1][cases.length % 4]!,
        reduction,
        scale: 3,
        labelKind: cases.length % 2 ? 'index' : 'dense',
      });
    }
  }
}

describe('float64 reference vs tfjs autograd', () => {
  test.each(cases.map((c, i) => [JSON.stringify(c), c, 500 + i] as const))(
    'stock (Keras) composition, clip inactive: %s',
    (_n, c, seed) => {
      compareWithTfjs(c, seed, (y, s, t) =>
        stockDistillationLoss(y, s, t, {
          alpha: c.alpha,
          temperature: c.T,
          reduction: c.reduction,
        }),
      );
    },
  );

  test.each(
    cases.map((c, i) => [JSON.stringify(c), { ...c, scale: 40, T: c.T / 2 }, 900 + i] as const),
  )('exact composition, large logits: %s', (_n, c, seed) => {
    compareWithTfjs(c, seed, (y, s, t) => {
      const cfg = resolveConfig({ alpha: c.alpha, temperature: c.T, reduction: c.reduction });
      return composedDistillationLoss(y, s, t, checkInputs(y, s, t, 'test'), cfg);
    });
  });

  test('an out-of-range integer label gives NaN in its row only (reference and composition)', () => {
    const ref = referenceDistillationLoss(
      {
        batch: 3,
        classes: 4,
        student: new Float32Array(12).fill(1),
        teacher: new Float32Array(12),
        labels: [0, 7, -1],
        labelKind: 'index',
      },
      { reduction: 'none' },
    );
    expect(Array.from(ref.value, Number.isNaN)).toEqual([false, true, true]);
    const y = tf.tensor1d([0, 7, -1], 'int32');
    const s = tf.ones([3, 4]);
    const t = tf.zeros([3, 4]);
    const v = composedDistillationLoss(
      y,
      s,
      t,
      checkInputs(y, s, t, 'test'),
      resolveConfig({ reduction: 'none' }),
    );
    expect(Array.from(v.dataSync(), Number.isNaN)).toEqual([false, true, true]);
    tf.dispose([y, s, t, v]);
  });
});

describe('the reference at extreme temperatures (centred KL)', () => {
  /** The direct sums Σ p (log p − log q) and p (log p − log q − KL): exact in float64 at moderate T. */
  function directForm(s: Float64Array, t: Float64Array, T: number) {
    const lse = (x: Float64Array) => {
      const m = Math.max(...x);
      return m + Math.log(x.reduce((a, v) => a + Math.exp(v - m), 0));
    };
    const sT = s.map((v) => v / T);
    const tT = t.map((v) => v / T);
    const lq = lse(sT);
    const lp = lse(tT);
    let kl = 0;
    for (let c = 0; c < s.length; c++) {
      const logP = tT[c]! - lp;
      kl += Math.exp(logP) * (logP - (sT[c]! - lq));
    }
    const teacher = tT.map((v, c) => Math.exp(v - lp) * (v - lp - (sT[c]! - lq) - kl));
    const student = sT.map((v, c) => Math.exp(v - lq) - Math.exp(tT[c]! - lp));
    return { kl, teacher, student };
  }

  const C = 50;
  const rng = mulberry32(77);
  const s = Float64Array.from({ length: C }, () => (rng() * 2 - 1) * 6);
  const t = Float64Array.from({ length: C }, () => (rng() * 2 - 1) * 6);
  const labels = Int32Array.of(3);
  const run = (T: number) =>
    referenceDistillationLoss(
      { batch: 1, classes: C, student: s, teacher: t, labels, labelKind: 'index' },
      { alpha: 0, temperature: T, temperatureSquared: false },
    );

  test.each([0.05, 0.5, 1, 4, 10, 20])(
    'equals the direct sums where they are exact, T = %s',
    (T) => {
      const ref = run(T);
      const direct = directForm(s, t, T);
      expect(Math.abs(ref.kl[0]! - direct.kl)).toBeLessThanOrEqual(
        1e-12 * Math.max(direct.kl, 1e-3),
      );
      // both gradients at unit weight: (1/T) (q − p) and (1/T) p (log p − log q − KL)
      for (let c = 0; c < C; c++) {
        expect(Math.abs(ref.gradStudent[c]! - direct.student[c]! / T)).toBeLessThan(1e-13 / T);
        expect(Math.abs(ref.gradTeacher[c]! - direct.teacher[c]! / T)).toBeLessThan(1e-12 / T);
      }
    },
  );

  test('T² KL tends to Var(t − s) / 2 (uniform weights) as T grows, with its O(1/T) correction', () => {
    // KL(p‖q) = ½ Var_p(δ) + O(|δ|³), δ = (t − s)/T + const, p → uniform: T² KL → ½ Var_u(t − s).
    let mean = 0;
    let meanSq = 0;
    for (let c = 0; c < C; c++) {
      const d = t[c]! - s[c]!;
      mean += d / C;
      meanSq += (d * d) / C;
    }
    const limit = (meanSq - mean * mean) / 2;
    for (const T of [1e3, 1e4, 1e5, 1e6, 1e8]) {
      const scaled = run(T).kl[0]! * T * T;
      // next order: ~ max|t − s| · ... / T relative; 50 / T is ample and still tight at 1e8.
      expect(Math.abs(scaled - limit) / limit, `T = ${T}`).toBeLessThan(50 / T);
    }
  });
});

describe('the composition other backends run, at extreme temperatures', () => {
  test.each([1e3, 1e4, 1e6])(
    'T = %s: every row loss within 2e-6 relative, gradients within 1e-5 of their largest element',
    async (T) => {
      const c: Case = {
        B: 8,
        C: 300,
        T,
        alpha: 0.1,
        reduction: 'none',
        scale: 6,
        labelKind: 'index',
      };
      const { s, t, labels: idxLabels } = inputs(c, 4242);
      const idx = idxLabels as Int32Array;
      const cfg = resolveConfig({ alpha: c.alpha, temperature: T, reduction: 'none' });
      const ref = referenceDistillationLoss(
        { batch: c.B, classes: c.C, student: s, teacher: t, labels: idx, labelKind: 'index' },
        { alpha: c.alpha, temperature: T, reduction: 'none' },
      );
      const y = tf.tensor1d(idx, 'int32');
      const st = tf.tensor2d(s, [c.B, c.C]);
      const tt = tf.tensor2d(t, [c.B, c.C]);
      const { value, grads } = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) =>
        composedDistillationLoss(y, a, b, checkInputs(y, a, b, 'test'), cfg),
      )([st, tt]);
      const rows = await value.data();
      for (let b = 0; b < c.B; b++) {
        expect(Math.abs(rows[b]! - ref.rowLosses[b]!) / ref.rowLosses[b]!).toBeLessThan(2e-6);
      }
      const largest = (x: Float64Array) => x.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expectClose(
        '∂/∂s',
        await grads[0]!.data(),
        ref.gradStudent,
        1e-5 * largest(ref.gradStudent),
        `T=${T}`,
        c.C,
      );
      expectClose(
        '∂/∂t',
        await grads[1]!.data(),
        ref.gradTeacher,
        1e-5 * largest(ref.gradTeacher),
        `T=${T}`,
        c.C,
      );
      tf.dispose([y, st, tt, value, ...grads]);
    },
  );
});

describe('reference: the new options at their defaults change nothing', () => {
  test("divergence 'forward-kl', no ignoreIndex and returnComponents: false are the defaults", () => {
    const c: Case = {
      B: 4,
      C: 7,
      T: 4,
      alpha: 0.3,
      reduction: 'mean',
      scale: 3,
      labelKind: 'index',
    };
    const { s, t, labels } = inputs(c, 77);
    const input = {
      batch: 4,
      classes: 7,
      student: s,
      teacher: t,
      labels,
      labelKind: 'index',
    } as const;
    const base = referenceDistillationLoss(input, { alpha: 0.3, temperature: 4 });
    const explicit = referenceDistillationLoss(input, {
      alpha: 0.3,
      temperature: 4,
      divergence: 'forward-kl',
      returnComponents: false,
      ignoreIndex: undefined,
    });
    expect(explicit.value).toEqual(base.value);
    expect(explicit.gradStudent).toEqual(base.gradStudent);
    expect(explicit.gradTeacher).toEqual(base.gradTeacher);
    // an ignoreIndex that no label uses changes nothing either
    const unused = referenceDistillationLoss(input, {
      alpha: 0.3,
      temperature: 4,
      ignoreIndex: -100,
    });
    expect(unused.value).toEqual(base.value);
    expect(Array.from(base.counted)).toEqual([1, 1, 1, 1]);
  });
});
