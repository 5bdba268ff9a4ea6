/**
 * The divergences, ignoreIndex, −Infinity masks and components: first the float64 reference
 * against finite differences of itself and against closed forms, then the composed path
 * (float32, tfjs cpu backend) against the reference element by element.
 *
 * Tolerances.
 * - Finite differences (float64): central differences with step h have truncation error
 *   h² |f'''| / 6 and rounding error ~ 1e-16 |f| / h. The loss is a smooth function of s / T and
 *   t / T whose third derivative w.r.t. a logit is ≤ ~(1 + k) / min(T, 1)³ on these inputs;
 *   h = 1e-4 · min(T, 1) makes both ≤ 1e-8 · (1 + k), and the bound used is 1e-6 · (1 + k) ·
 *   (1 + |g|) (rows of C ≤ 6, |logits| ≤ 3).
 * - Composed (float32) vs reference: every result passes through ≤ ~30 float32 operations
 *   (unit roundoff u = 2⁻²⁴ ≈ 6e-8) on terms of a known size, so |tfjs − ref| ≤ 1e-5 ·
 *   (|ref| + the size of the terms): log-probabilities ≤ L = 2 · scale / T + log C, probabilities
 *   ≤ 1. The value's terms: α · 2L for CE and (1 − α) k · L for the divergence — except that
 *   the centred forms keep D's relative precision, so the soft value is also held to
 *   1e-5 · k |D| + 4e-6 · k · (2 · scale / T)² (the rounding of δ, ≤ 4u · 2 · scale / T, carried
 *   by |x| ≤ 2 · scale / T), which is the binding bound at large T. Student gradients: the
 *   subtracted terms σ Σy, y, q, p give w · (2α + 2k / T); teacher gradients: w (k / T) · L.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, test } from 'vitest';
import { mulberry32 } from '../src/validation/random.js';
import { composedDistillationLoss, composedDistillationLossComponents } from '../src/composed.js';
import {
  resolveConfig,
  type DistillationLossConfig,
  type Divergence,
  type Reduction,
} from '../src/config.js';
import { DIVERGENCES, divergenceConstants } from '../src/divergences.js';
import { DEFAULT_CONFIG, distillationLoss } from '../src/index.js';
import {
  referenceDistillationLoss,
  rowsOfShape,
  type ReferenceInput,
  type ReferenceResult,
} from '../src/reference.js';
import { expectClose } from './helpers/compare.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

const DIVS: Divergence[] = ['forward-kl', 'reverse-kl', 'jsd'];

interface Rows {
  B: number;
  C: number;
  s: Float64Array;
  t: Float64Array;
  labels: Float64Array;
  labelKind: 'index' | 'dense';
}

function randomRows(B: number, C: number, seed: number, scale = 3, dense = false): Rows {
  const rng = mulberry32(seed);
  const s = Float64Array.from({ length: B * C }, () => Math.fround((rng() * 2 - 1) * scale));
  const t = Float64Array.from({ length: B * C }, () => Math.fround((rng() * 2 - 1) * scale));
  let labels: Float64Array;
  if (dense) {
    labels = new Float64Array(B * C);
    for (let b = 0; b < B; b++) {
      let sum = 0;
      for (let c = 0; c < C; c++) sum += labels[b * C + c] = rng();
      for (let c = 0; c < C; c++) labels[b * C + c] = Math.fround(labels[b * C + c]! / sum);
    }
  } else {
    labels = Float64Array.from({ length: B }, () => Math.floor(rng() * C));
  }
  return { B, C, s, t, labels, labelKind: dense ? 'dense' : 'index' };
}

function ref(r: Rows, config: DistillationLossConfig, dy?: ReferenceInput['dy']): ReferenceResult {
  return referenceDistillationLoss(
    {
      batch: r.B,
      classes: r.C,
      student: r.s,
      teacher: r.t,
      labels: r.labels,
      labelKind: r.labelKind,
      dy,
    },
    config,
  );
}

function softOnly(d: Divergence, T: number, beta?: number): DistillationLossConfig {
  return {
    divergence: d,
    temperature: T,
    alpha: 0,
    temperatureSquared: false,
    reduction: 'none',
    ...(beta === undefined ? {} : { beta }),
  };
}

describe('config', () => {
  test('defaults and the new fields resolve', () => {
    const c = resolveConfig({});
    expect(c).toMatchObject({
      divergence: 'forward-kl',
      beta: 0.5,
      hasIgnoreIndex: false,
      returnComponents: false,
    });
    expect(resolveConfig({ divergence: 'jsd', beta: 0.3, ignoreIndex: -100 })).toMatchObject({
      divergence: 'jsd',
      beta: 0.3,
      hasIgnoreIndex: true,
      ignoreIndex: -100,
    });
  });

  test('a resolved config is not a config: its internal flag is refused by name', () => {
    const resolved = resolveConfig({ divergence: 'reverse-kl', ignoreIndex: 0 });
    expect(resolved.hasIgnoreIndex).toBe(true);
    expect(() => resolveConfig(resolved as DistillationLossConfig)).toThrow(
      /unknown config field 'hasIgnoreIndex'/,
    );
    expect(() => resolveConfig({ hasIgnoreIndex: false } as DistillationLossConfig)).toThrow(
      /unknown config field 'hasIgnoreIndex'/,
    );
  });

  test('DEFAULT_CONFIG is plain user values: spread with ignoreIndex, the index is in force', () => {
    expect(Object.keys(DEFAULT_CONFIG).sort()).toEqual([
      'alpha',
      'divergence',
      'reduction',
      'returnComponents',
      'temperature',
      'temperatureSquared',
    ]);
    expect(resolveConfig(DEFAULT_CONFIG)).toMatchObject({ hasIgnoreIndex: false });
    expect(resolveConfig({ ...DEFAULT_CONFIG, ignoreIndex: -100 })).toMatchObject({
      ...DEFAULT_CONFIG,
      hasIgnoreIndex: true,
      ignoreIndex: -100,
    });
  });

  test('through the op: { ...DEFAULT_CONFIG, ignoreIndex: -100 } skips the rows labelled -100', async () => {
    // Rows 1 and 3 are ignored: the mean is that of rows 0 and 2 alone, finite, and the
    // ignored rows get no gradient. (Were the index dropped, -100 would be an out-of-range
    // class and make the mean NaN.)
    const r = randomRows(4, 5, 11);
    const s = tf.tensor2d(Array.from(r.s), [4, 5]);
    const t = tf.tensor2d(Array.from(r.t), [4, 5]);
    const y = tf.tensor1d([0, -100, 2, -100], 'int32');
    const config = { ...DEFAULT_CONFIG, ignoreIndex: -100 };
    const { value, grads } = tf.valueAndGrads((a: tf.Tensor) => distillationLoss(y, a, t, config))([
      s,
    ]);
    const kept = [0, 2];
    const sKept = tf.gather(s, kept);
    const tKept = tf.gather(t, kept);
    const yKept = tf.tensor1d([0, 2], 'int32');
    const expected = distillationLoss(yKept, sKept, tKept, DEFAULT_CONFIG);
    const got = (await value.data())[0]!;
    expect(Number.isFinite(got)).toBe(true);
    expect(got).toBeCloseTo((await expected.data())[0]!, 5);
    const g = await grads[0]!.data();
    expect(Array.from(g.slice(5, 10))).toEqual([0, 0, 0, 0, 0]);
    expect(Array.from(g.slice(15, 20))).toEqual([0, 0, 0, 0, 0]);
    expect(Array.from(g.slice(0, 5)).some((v) => v !== 0)).toBe(true);
    tf.dispose([s, t, y, value, ...grads, sKept, tKept, yKept, expected]);
  });

  test.each([
    [{ divergence: 'kl' }, /config\.divergence must be one of 'forward-kl', 'reverse-kl', 'jsd'/],
    [{ beta: 0.3 }, /config\.beta applies to divergence 'jsd' only/],
    [{ divergence: 'reverse-kl', beta: 0.5 }, /config\.beta applies to divergence 'jsd' only/],
    [{ divergence: 'jsd', beta: 0 }, /config\.beta must be a number in \(0, 1\)/],
    [{ divergence: 'jsd', beta: 1 }, /config\.beta must be a number in \(0, 1\)/],
    [{ divergence: 'jsd', beta: NaN }, /config\.beta must be a number in \(0, 1\)/],
    [{ ignoreIndex: 1.5 }, /config\.ignoreIndex must be an integer in the int32 range/],
    [{ ignoreIndex: 2 ** 31 }, /config\.ignoreIndex must be an integer in the int32 range/],
    [{ ignoreIndex: '-100' }, /config\.ignoreIndex must be an integer/],
    [{ returnComponents: 1 }, /config\.returnComponents must be a boolean/],
  ])('%j is refused', (config, message) => {
    expect(() => resolveConfig(config as DistillationLossConfig)).toThrow(message);
  });

  test('ignoreIndex with dense labels is refused (reference and composed)', () => {
    const r = randomRows(2, 3, 1, 3, true);
    expect(() => ref(r, { ignoreIndex: -100 })).toThrow(/applies to int32 class-index labels/);
    const y = tf.tensor2d(Array.from(r.labels), [2, 3]);
    const s = tf.tensor2d(Array.from(r.s), [2, 3]);
    expect(() =>
      composedDistillationLoss(y, s, s, { labelKind: 'dense' }, resolveConfig({ ignoreIndex: 0 })),
    ).toThrow(/applies to int32 class-index labels/);
    tf.dispose([y, s]);
  });

  test('every divergence has its own selection in the WGSL and its constants', () => {
    // shaders/distill-divergence.wgsl (test/divergences-fused.test.ts): the override DIVERGENCE
    for (const d of DIVS) expect(DIVERGENCES[d].kernel, d).toBeDefined();
    const ids = DIVS.map((d) => DIVERGENCES[d].kernel?.id);
    expect(new Set(ids).size).toBe(DIVS.length);
    expect(divergenceConstants(resolveConfig({ divergence: 'jsd', beta: 0.25 }))).toEqual({
      DIVERGENCE: DIVERGENCES.jsd.kernel!.id,
      BETA: 0.25,
      LOG_BETA: Math.log(0.25),
      LOG_ONE_MINUS_BETA: Math.log(0.75),
    });
    for (const d of DIVS) expect(DIVERGENCES[d].name).toBe(d);
  });
});

/** Central differences of Σ value w.r.t. every logit, in float64. */
function finiteDifferences(r: Rows, config: DistillationLossConfig, h: number) {
  const f = (x: Rows) => ref(x, { ...config, reduction: 'sum' }).value[0]!;
  const grad = (key: 's' | 't') =>
    Float64Array.from(r[key], (v, i) => {
      if (v === -Infinity) return 0;
      const plus = { ...r, [key]: Float64Array.from(r[key]) };
      const minus = { ...r, [key]: Float64Array.from(r[key]) };
      plus[key][i] = v + h;
      minus[key][i] = v - h;
      return (f(plus) - f(minus)) / (2 * h);
    });
  return { s: grad('s'), t: grad('t') };
}

describe('float64 reference: gradients against finite differences', () => {
  const cases: [Divergence, number, number | undefined, boolean, boolean][] = [];
  for (const d of DIVS) {
    for (const T of [0.5, 1, 4, 20]) {
      for (const beta of d === 'jsd' ? [0.2, 0.5, 0.8] : [undefined]) {
        cases.push([d, T, beta, cases.length % 2 === 0, cases.length % 3 === 0]);
      }
    }
  }
  test.each(cases)('%s T=%s β=%s dense=%s masked=%s', (d, T, beta, dense, masked) => {
    const r = randomRows(3, 6, 17 + Math.round(T * 10), 3, dense);
    if (masked) {
      // column 5 masked on both sides in row 0; one-sided masks that keep D finite in rows 1-2
      r.s[5] = r.t[5] = -Infinity;
      if (d !== 'reverse-kl') r.t[6 + 2] = -Infinity; // teacher masks, student has mass
      if (d !== 'forward-kl') r.s[12 + 3] = -Infinity; // student masks, teacher has mass
      if (!dense) r.labels.set([0, 0, 0]);
      else r.labels[5] = r.labels[15] = 0; // no label mass where the student masks
    }
    const config: DistillationLossConfig = {
      divergence: d,
      temperature: T,
      alpha: 0.3,
      ...(beta === undefined ? {} : { beta }),
    };
    const exact = ref(r, { ...config, reduction: 'sum' });
    expect(Number.isFinite(exact.value[0])).toBe(true);
    const fd = finiteDifferences(r, config, 1e-4 * Math.min(T, 1));
    const k = T * T;
    const tol = (g: Float64Array) => Array.from(g, (x) => 1e-6 * (1 + k) * (1 + Math.abs(x)));
    const context = `${d} T=${T} β=${beta}`;
    expectClose('∂/∂s', exact.gradStudent, fd.s, tol(exact.gradStudent), context, r.C);
    expectClose('∂/∂t', exact.gradTeacher, fd.t, tol(exact.gradTeacher), context, r.C);
    // masked logits: exactly zero gradient (probability 0 at −∞, derivative 0)
    for (const [x, g] of [
      [r.s, exact.gradStudent],
      [r.t, exact.gradTeacher],
    ] as const) {
      x.forEach((v, i) => {
        if (v === -Infinity) expect(g[i]).toBe(0);
      });
    }
  });
});

describe('float64 reference: closed forms', () => {
  test('JSD (β = 0.5) is symmetric and ≤ log 2; JSD_β ≤ h(β) and JSD_β(p, q) = JSD_1−β(q, p)', () => {
    for (const scale of [1, 10, 60]) {
      const r = randomRows(8, 7, 3 + scale, scale);
      const swapped = { ...r, s: r.t, t: r.s };
      const a = ref(r, softOnly('jsd', 1));
      const b = ref(swapped, softOnly('jsd', 1));
      expectClose('JSD symmetric', a.kl, b.kl, 1e-14, `scale ${scale}`);
      expectClose('∂/∂s ↔ ∂/∂t', a.gradStudent, b.gradTeacher, 1e-14, `scale ${scale}`, 7);
      for (const v of a.kl) expect(v).toBeLessThanOrEqual(Math.LN2 * (1 + 1e-14));
      for (const beta of [0.1, 0.7]) {
        const x = ref(r, softOnly('jsd', 1, beta));
        const y = ref(swapped, softOnly('jsd', 1, 1 - beta));
        expectClose('JSD_β(p, q) = JSD_1−β(q, p)', x.kl, y.kl, 1e-14, `β ${beta}`);
        const hb = -beta * Math.log(beta) - (1 - beta) * Math.log(1 - beta);
        for (const v of x.kl) expect(v).toBeLessThanOrEqual(hb * (1 + 1e-14));
      }
    }
    // disjoint supports reach the bound: log 2 exactly
    const disjoint: Rows = {
      B: 1,
      C: 2,
      s: Float64Array.of(0, -Infinity),
      t: Float64Array.of(-Infinity, 0),
      labels: Float64Array.of(0),
      labelKind: 'index',
    };
    expect(ref(disjoint, softOnly('jsd', 1)).kl[0]).toBeCloseTo(Math.LN2, 15);
  });

  test('reverse KL(p, q) = forward KL with teacher and student swapped (values and gradients)', () => {
    for (const T of [0.5, 3, 1e4]) {
      const r = randomRows(5, 9, 40, 4);
      const rev = ref(r, softOnly('reverse-kl', T));
      const fwd = ref({ ...r, s: r.t, t: r.s }, softOnly('forward-kl', T));
      const rel = (x: Float64Array) => Array.from(x, (v) => 1e-12 * Math.abs(v) + 1e-300);
      expectClose('value', rev.kl, fwd.kl, rel(fwd.kl), `T ${T}`);
      expectClose('∂/∂s', rev.gradStudent, fwd.gradTeacher, rel(fwd.gradTeacher), `T ${T}`, 9);
      expectClose('∂/∂t', rev.gradTeacher, fwd.gradStudent, rel(fwd.gradStudent), `T ${T}`, 9);
    }
  });

  test('at large T every divergence keeps its relative precision (its T → ∞ limit)', () => {
    // D ≈ c_D · Var_p(s − t) / (2 T²): forward and reverse KL with c = 1, JSD_β with β(1 − β)
    const r = randomRows(1, 5, 7, 2);
    const diff = Array.from(r.s, (v, i) => v - r.t[i]!);
    const mean = diff.reduce((a, b) => a + b) / 5;
    const variance = diff.reduce((a, b) => a + (b - mean) ** 2, 0) / 5; // p → uniform as T → ∞
    const T = 1e6;
    for (const [d, c] of [
      ['forward-kl', 1],
      ['reverse-kl', 1],
      ['jsd', 0.25],
    ] as const) {
      const D = ref(r, softOnly(d, T)).kl[0]!;
      expect(Math.abs((D * 2 * T * T) / (c * variance) - 1)).toBeLessThan(1e-5);
    }
  });
});

describe('float64 reference: ignoreIndex', () => {
  test.each(['mean', 'sum', 'none'] as Reduction[])(
    'ignored rows add nothing and are not counted (%s)',
    (reduction) => {
      const r = randomRows(5, 4, 11);
      r.labels.set([-100, 2, -100, 1, 3]);
      r.s[0] = NaN; // an ignored row's logits are never looked at
      r.t[9] = Infinity;
      const kept = [1, 3, 4];
      const sub: Rows = {
        B: 3,
        C: 4,
        s: Float64Array.from(kept.flatMap((b) => Array.from(r.s.subarray(b * 4, b * 4 + 4)))),
        t: Float64Array.from(kept.flatMap((b) => Array.from(r.t.subarray(b * 4, b * 4 + 4)))),
        labels: Float64Array.from(kept.map((b) => r.labels[b]!)),
        labelKind: 'index',
      };
      for (const d of DIVS) {
        const config = { divergence: d, reduction, ignoreIndex: -100 } as const;
        const full = ref(r, config);
        const only = ref(sub, { divergence: d, reduction });
        if (reduction === 'none') {
          expect(Array.from(full.value)).toEqual([
            0,
            only.value[0],
            0,
            only.value[1],
            only.value[2],
          ]);
        } else {
          expect(full.value[0]).toBeCloseTo(only.value[0]!, 14);
        }
        expect(Array.from(full.counted)).toEqual([0, 1, 0, 1, 1]);
        expect(full.gradStudent.subarray(0, 4).every((g) => g === 0)).toBe(true);
        expect(full.gradTeacher.subarray(8, 12).every((g) => g === 0)).toBe(true);
        expectClose(
          '∂/∂s kept',
          full.gradStudent.subarray(4, 8),
          only.gradStudent.subarray(0, 4),
          1e-15,
          d,
        );
        expectClose(
          '∂/∂t kept',
          full.gradTeacher.subarray(16),
          only.gradTeacher.subarray(8),
          1e-15,
          d,
        );
      }
    },
  );

  test("every row ignored: 'mean' is 0 with zero gradients (not 0 / 0)", () => {
    const r = randomRows(3, 4, 12);
    r.labels.fill(7);
    const x = ref(r, { ignoreIndex: 7 });
    expect(Array.from(x.value)).toEqual([0]);
    expect(x.gradStudent.every((g) => g === 0) && x.gradTeacher.every((g) => g === 0)).toBe(true);
    expect(Array.from(x.hardLoss)).toEqual([0]);
  });

  test('an index in [0, C) can be ignored; other out-of-range labels stay NaN', () => {
    const r = randomRows(3, 4, 13);
    r.labels.set([0, 9, 2]);
    const x = ref(r, { ignoreIndex: 0, reduction: 'none' });
    expect(x.value[0]).toBe(0);
    expect(x.value[1]).toBeNaN();
    expect(Number.isFinite(x.value[2])).toBe(true);
  });
});

describe('float64 reference: −Infinity masks', () => {
  test('a column masked in teacher and student changes nothing vs deleting it', () => {
    const r = randomRows(4, 5, 21, 3, true);
    const masked: Rows = { ...r, C: 6, s: new Float64Array(24), t: new Float64Array(24) };
    masked.labels = new Float64Array(24);
    for (let b = 0; b < 4; b++) {
      for (let c = 0; c < 6; c++) {
        const src = c < 2 ? c : c - 1;
        masked.s[b * 6 + c] = c === 2 ? -Infinity : r.s[b * 5 + src]!;
        masked.t[b * 6 + c] = c === 2 ? -Infinity : r.t[b * 5 + src]!;
        masked.labels[b * 6 + c] = c === 2 ? 0 : r.labels[b * 5 + src]!;
      }
    }
    for (const d of DIVS) {
      for (const T of [1, 10]) {
        const a = ref(masked, { divergence: d, temperature: T, reduction: 'none' });
        const b = ref(r, { divergence: d, temperature: T, reduction: 'none' });
        const context = `${d} T ${T}`;
        expectClose(
          'value',
          a.value,
          b.value,
          Array.from(b.value, (v) => 1e-13 * Math.abs(v)),
          context,
        );
        const drop = (g: Float64Array) => g.filter((_, i) => i % 6 !== 2);
        const tol = (g: Float64Array) => Array.from(g, (v) => 1e-13 * Math.abs(v) + 1e-17);
        expectClose('∂/∂s', drop(a.gradStudent), b.gradStudent, tol(b.gradStudent), context, 5);
        expectClose('∂/∂t', drop(a.gradTeacher), b.gradTeacher, tol(b.gradTeacher), context, 5);
        for (let i = 2; i < 24; i += 6) {
          expect([a.gradStudent[i], a.gradTeacher[i]]).toEqual([0, 0]);
        }
      }
    }
  });

  test('one-sided masks: +Infinity where the maths is infinite, finite limits elsewhere, never NaN values', () => {
    // row 0: the student masks column 1 where the teacher has mass; row 1: the other way round
    const r: Rows = {
      B: 2,
      C: 3,
      s: Float64Array.of(0.5, -Infinity, 1, 0.2, 0.1, -0.4),
      t: Float64Array.of(0.1, 0.3, -0.2, 1, -Infinity, 0.7),
      labels: Float64Array.of(0, 2),
      labelKind: 'index',
    };
    // the masked logit replaced by a very negative one: the finite limits
    const near = (d: Divergence, T: number) =>
      ref(
        {
          ...r,
          s: Float64Array.from(r.s, (v) => (v === -Infinity ? -3000 * T : v)),
          t: Float64Array.from(r.t, (v) => (v === -Infinity ? -3000 * T : v)),
        },
        { divergence: d, temperature: T, reduction: 'none' },
      );
    for (const T of [1, 5]) {
      const fwd = ref(r, { divergence: 'forward-kl', temperature: T, reduction: 'none' });
      expect(fwd.value[0]).toBe(Infinity);
      expect(Number.isFinite(fwd.value[1])).toBe(true);
      const fwdNear = near('forward-kl', T);
      // the student's gradient is finite and equals its limit; the teacher's has none (NaN)
      expectClose('forward ∂/∂s', fwd.gradStudent, fwdNear.gradStudent, 1e-12, `T ${T}`, 3);
      expect(Array.from(fwd.gradTeacher.subarray(0, 3)).every(Number.isNaN)).toBe(true);
      expectClose(
        'forward ∂/∂t row 1',
        fwd.gradTeacher.subarray(3),
        fwdNear.gradTeacher.subarray(3),
        1e-12,
        `T ${T}`,
      );

      const rev = ref(r, { divergence: 'reverse-kl', temperature: T, reduction: 'none' });
      expect(rev.value[1]).toBe(Infinity);
      expect(Number.isFinite(rev.value[0])).toBe(true);
      const revNear = near('reverse-kl', T);
      expectClose('reverse ∂/∂t', rev.gradTeacher, revNear.gradTeacher, 1e-12, `T ${T}`, 3);
      // row 1: the teacher masks a column where the student has mass: no limit for ∂/∂s
      expect(Array.from(rev.gradStudent.subarray(3)).every(Number.isNaN)).toBe(true);

      for (const beta of [0.2, 0.5]) {
        const jsd = ref(r, { divergence: 'jsd', beta, temperature: T, reduction: 'none' });
        const jsdNear = near('jsd', T);
        void jsdNear;
        const limit = ref(
          {
            ...r,
            s: Float64Array.from(r.s, (v) => (v === -Infinity ? -3000 * T : v)),
            t: Float64Array.from(r.t, (v) => (v === -Infinity ? -3000 * T : v)),
          },
          { divergence: 'jsd', beta, temperature: T, reduction: 'none' },
        );
        expect(jsd.value.every(Number.isFinite)).toBe(true);
        expectClose('jsd value', jsd.value, limit.value, 1e-12, `β ${beta}`);
        expectClose('jsd ∂/∂s', jsd.gradStudent, limit.gradStudent, 1e-12, `β ${beta}`, 3);
        expectClose('jsd ∂/∂t', jsd.gradTeacher, limit.gradTeacher, 1e-12, `β ${beta}`, 3);
      }
    }
  });

  test('a zero weight drops an infinite term; a label on a masked column makes CE +Infinity', () => {
    const r: Rows = {
      B: 1,
      C: 3,
      s: Float64Array.of(0.5, -Infinity, 1),
      t: Float64Array.of(0.1, 0.3, -0.2),
      labels: Float64Array.of(0),
      labelKind: 'index',
    };
    const hardOnly = ref(r, { alpha: 1 });
    expect(Number.isFinite(hardOnly.value[0])).toBe(true);
    expect(hardOnly.softLoss[0]).toBe(Infinity);
    expect(hardOnly.gradTeacher.every((g) => g === 0)).toBe(true);
    expect(hardOnly.gradStudent.every(Number.isFinite)).toBe(true);
    const onMask = ref({ ...r, labels: Float64Array.of(1) }, { alpha: 0.5, divergence: 'jsd' });
    expect(onMask.value[0]).toBe(Infinity);
    expect(onMask.gradStudent.every(Number.isFinite)).toBe(true);
    expect(
      ref({ ...r, labels: Float64Array.of(1) }, { alpha: 0, divergence: 'jsd' }).value[0],
    ).toBeLessThan(100 * Math.LN2);
  });

  test('a row masked everywhere is NaN (that row only), unless ignoreIndex ignores it', () => {
    const r = randomRows(3, 4, 31);
    r.s.fill(-Infinity, 4, 8);
    r.t.fill(-Infinity, 4, 8);
    for (const d of DIVS) {
      const x = ref(r, { divergence: d, reduction: 'none' });
      expect([
        Number.isNaN(x.value[0]),
        Number.isNaN(x.value[1]),
        Number.isNaN(x.value[2]),
      ]).toEqual([false, true, false]);
      const y = ref(
        { ...r, labels: Float64Array.of(r.labels[0]!, -1, r.labels[2]!) },
        { divergence: d, ignoreIndex: -1 },
      );
      expect(Number.isFinite(y.value[0])).toBe(true);
      expect(y.gradStudent.every(Number.isFinite)).toBe(true);
    }
  });
});

describe('float64 reference: components', () => {
  test.each(DIVS)('loss = α · hardLoss + (1 − α) · softLoss, every reduction (%s)', (d) => {
    const r = randomRows(6, 5, 41);
    r.labels[2] = -100;
    for (const reduction of ['mean', 'sum', 'none'] as Reduction[]) {
      const x = ref(r, { divergence: d, reduction, alpha: 0.3, ignoreIndex: -100 });
      const sum = x.value.map((_, i) => 0.3 * x.hardLoss[i]! + 0.7 * x.softLoss[i]!);
      expectClose(
        'components',
        x.value,
        sum,
        Array.from(sum, (v) => 1e-14 * Math.abs(v)),
        reduction,
      );
    }
  });
});

// -------------------------------------------------------------------------------------------
// composed path (float32, cpu backend) vs the float64 reference

interface ComposedCase {
  divergence: Divergence;
  beta?: number;
  T: number;
  alpha: number;
  reduction: Reduction;
  dense: boolean;
  /** Logits shape [..., C]. */
  shape: number[];
  scale: number;
  masks: boolean;
  ignore: boolean;
  components: boolean;
}

function composedVsReference(c: ComposedCase, seed: number, offBy = 0): void {
  const { batch: B, classes: C } = rowsOfShape(c.shape);
  const r = randomRows(B, C, seed, c.scale, c.dense);
  if (c.masks) {
    for (let b = 0; b < B; b++) {
      r.s[b * C + (b % C)] = r.t[b * C + (b % C)] = -Infinity; // both sides: always finite
      if (C > 2 && b % 3 === 1) {
        // one side only, where the divergence stays finite
        const col = (b + 1) % C;
        if (c.divergence !== 'reverse-kl') r.t[b * C + col] = -Infinity;
        else r.s[b * C + col] = -Infinity;
      }
      if (c.dense) {
        for (let k = 0; k < C; k++) if (r.s[b * C + k] === -Infinity) r.labels[b * C + k] = 0;
      } else if (r.s[b * C + r.labels[b]!] === -Infinity) {
        r.labels[b] = (b + 2) % C;
        if (r.s[b * C + r.labels[b]!] === -Infinity) r.labels[b] = (b + 3) % C;
      }
    }
  }
  if (c.ignore && !c.dense) for (let b = 0; b < B; b += 3) r.labels[b] = -100;
  const config: DistillationLossConfig = {
    divergence: c.divergence,
    temperature: c.T,
    alpha: c.alpha,
    reduction: c.reduction,
    ...(c.beta === undefined ? {} : { beta: c.beta }),
    ...(c.ignore && !c.dense ? { ignoreIndex: -100 } : {}),
  };
  const expected = ref(r, { ...config, alpha: c.alpha + (c.alpha < 1 ? offBy : -offBy) });
  const lead = c.shape.slice(0, -1);
  const y = c.dense
    ? tf.tensor(Array.from(r.labels), c.shape, 'float32')
    : tf.tensor(Array.from(r.labels), lead, 'int32');
  const s = tf.tensor(Array.from(r.s), c.shape, 'float32');
  const t = tf.tensor(Array.from(r.t), c.shape, 'float32');
  const cfg = resolveConfig({ ...config, returnComponents: c.components });
  const shapes = { labelKind: c.dense ? ('dense' as const) : ('index' as const) };
  const run = (a: tf.Tensor, b: tf.Tensor) =>
    c.components
      ? composedDistillationLossComponents(y, a, b, shapes, cfg).loss
      : composedDistillationLoss(y, a, b, shapes, cfg);
  const { value, grads } = tf.valueAndGrads(run)([s, t]);
  expect(value.shape).toEqual(c.reduction === 'none' ? lead : []);
  expect(grads[0]!.shape).toEqual(c.shape);

  const context = `seed ${seed} ${JSON.stringify(c)}`;
  const k = c.T * c.T;
  const L = (2 * c.scale) / c.T + Math.log(C);
  const counted = expected.counted.reduce((a, b) => a + b, 0);
  const w = c.reduction === 'mean' ? 1 / Math.max(counted, 1) : 1;
  // the value: per-row bounds, then reduced like the value
  const rowTol = Array.from(expected.rowLosses, (l, b) => {
    const D = expected.kl[b]!;
    const soft =
      ((1 - c.alpha) * k * Math.min(L, 1e-5 * Math.abs(D) + 4e-6 * ((2 * c.scale) / c.T) ** 2)) /
      1e-5;
    return 1e-5 * (Math.abs(l) + c.alpha * 2 * L + soft);
  });
  const valueTol =
    c.reduction === 'none'
      ? rowTol
      : [w * rowTol.reduce((a, b) => a + b, 0) + 1e-5 * Math.abs(expected.value[0]!)];
  expectClose('value', value.dataSync(), expected.value, valueTol, context);
  const gsTol = expected.gradStudent.map(
    (g) => 1e-5 * (Math.abs(g) + w * (2 * c.alpha + (2 * (1 - c.alpha) * k) / c.T)),
  );
  const gtTol = expected.gradTeacher.map(
    (g) => 1e-5 * (Math.abs(g) + (w * (1 - c.alpha) * k * L) / c.T),
  );
  expectClose('∂/∂s', grads[0]!.dataSync(), expected.gradStudent, gsTol, context, C);
  expectClose('∂/∂t', grads[1]!.dataSync(), expected.gradTeacher, gtTol, context, C);
  tf.dispose([y, s, t, value, ...grads]);
}

const composedCases: ComposedCase[] = [];
for (const divergence of DIVS) {
  for (const T of [1, 4, 10, 1000]) {
    for (const reduction of ['mean', 'sum', 'none'] as Reduction[]) {
      const i = composedCases.length;
      composedCases.push({
        divergence,
        beta: divergence === 'jsd' ? [0.5, 0.2, 0.9][i % 3] : undefined,
        T,
        alpha: [0, 0.1, 0.5, 1][i % 4]!,
        reduction,
        dense: i % 2 === 1,
        shape: [
          [7, 10],
          [2, 3, 9],
          [16, 100],
          [3, 1, 2, 33],
        ][i % 4]!,
        scale: [3, 20][i % 2]!,
        masks: i % 3 !== 0,
        ignore: i % 4 !== 1,
        components: i % 5 === 0,
      });
    }
  }
}

describe('composed path (cpu) vs the float64 reference', () => {
  test.each(composedCases.map((c, i) => [JSON.stringify(c), c, 7000 + i] as const))(
    '%s',
    (_n, c, seed) => composedVsReference(c, seed),
  );

  test('the bounds are not vacuous: a reference with α off by 1e-3 is rejected', () => {
    for (const c of composedCases) {
      expect(() => composedVsReference(c, 1, 1e-3), JSON.stringify(c)).toThrow();
    }
  });

  test('components come from the same computation, with exact gradients of each', () => {
    const shape = [2, 3, 8];
    const r = randomRows(6, 8, 99);
    r.labels[4] = -100;
    r.s[3] = r.t[3] = -Infinity;
    for (const d of DIVS) {
      const cfg = resolveConfig({
        divergence: d,
        alpha: 0.3,
        ignoreIndex: -100,
        returnComponents: true,
      });
      const y = tf.tensor(Array.from(r.labels), [2, 3], 'int32');
      const s = tf.tensor(Array.from(r.s), shape);
      const t = tf.tensor(Array.from(r.t), shape);
      const out = composedDistillationLossComponents(y, s, t, { labelKind: 'index' }, cfg);
      const x = ref(r, { divergence: d, alpha: 0.3, ignoreIndex: -100 });
      expectClose('loss', out.loss.dataSync(), x.value, 1e-5 * Math.abs(x.value[0]!) + 1e-6, d);
      expectClose('hardLoss', out.hardLoss.dataSync(), x.hardLoss, 1e-5 * x.hardLoss[0]! + 1e-6, d);
      expectClose('softLoss', out.softLoss.dataSync(), x.softLoss, 1e-5 * x.softLoss[0]! + 1e-5, d);
      // ∂ softLoss = the loss's gradient at α = 0; ∂ hardLoss at α = 1
      for (const [name, alpha] of [
        ['softLoss', 0],
        ['hardLoss', 1],
      ] as const) {
        const g = tf.grads(
          (a: tf.Tensor, b: tf.Tensor) =>
            composedDistillationLossComponents(y, a, b, { labelKind: 'index' }, cfg)[name],
        )([s, t]);
        const e = ref(r, { divergence: d, alpha, ignoreIndex: -100 });
        const tol = (h: Float64Array) => Array.from(h, (v) => 1e-5 * (Math.abs(v) + 2 * 10));
        expectClose(`∂${name}/∂s`, g[0]!.dataSync(), e.gradStudent, tol(e.gradStudent), d, 8);
        expectClose(`∂${name}/∂t`, g[1]!.dataSync(), e.gradTeacher, tol(e.gradTeacher), d, 8);
        tf.dispose(g);
      }
      tf.dispose([y, s, t, out.loss, out.hardLoss, out.softLoss]);
    }
  });

  test('one-sided masks, NaN rows and all-ignored batches as in the reference', () => {
    const r: Rows = {
      B: 3,
      C: 3,
      s: Float64Array.of(0.5, -Infinity, 1, 0.2, 0.1, -0.4, NaN, 0, 0),
      t: Float64Array.of(0.1, 0.3, -0.2, 1, -Infinity, 0.7, 0, 0, 0),
      labels: Float64Array.of(0, 2, 1),
      labelKind: 'index',
    };
    for (const d of DIVS) {
      for (const ignoreAll of [false, true]) {
        const labels = ignoreAll ? Float64Array.of(5, 5, 5) : r.labels;
        const config = {
          divergence: d,
          temperature: 2,
          reduction: 'none' as Reduction,
          ignoreIndex: 5,
        };
        const x = ref({ ...r, labels }, config);
        const y = tf.tensor1d(Array.from(labels), 'int32');
        const s = tf.tensor2d(Array.from(r.s), [3, 3]);
        const t = tf.tensor2d(Array.from(r.t), [3, 3]);
        const cfg = resolveConfig(config);
        const f = (a: tf.Tensor, b: tf.Tensor) =>
          composedDistillationLoss(y, a, b, { labelKind: 'index' }, cfg);
        const { value, grads } = tf.valueAndGrads(f)([s, t]);
        const tol = (v: Float64Array) => Array.from(v, (e) => 1e-5 * (Math.abs(e) + 4));
        expectClose('value', value.dataSync(), x.value, tol(x.value), d);
        expectClose('∂/∂s', grads[0]!.dataSync(), x.gradStudent, tol(x.gradStudent), d, 3);
        expectClose('∂/∂t', grads[1]!.dataSync(), x.gradTeacher, tol(x.gradTeacher), d, 3);
        const mean = composedDistillationLoss(
          y,
          s,
          t,
          { labelKind: 'index' },
          resolveConfig({ ...config, reduction: 'mean' }),
        );
        if (ignoreAll) expect(mean.dataSync()[0]).toBe(0);
        tf.dispose([y, s, t, value, mean, ...grads]);
      }
    }
  });
});
