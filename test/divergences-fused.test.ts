/**
 * Reverse KL and the JSD in the fused kernels (shaders/distill-divergence.wgsl), against the
 * float64 reference (src/reference.ts) element by element: values, ∂/∂student and ∂/∂teacher,
 * on both plans ('software': a thread per row; 'hardware': a workgroup per row for C > 64, its trees),
 * with both label kinds, every reduction, returnComponents, ignoreIndex, −Infinity masks
 * (one-sided ones where the divergence stays finite, and where it is +Infinity), logits of rank
 * 3 and 4, row chunks forced past a small binding limit and real ones past lavapipe's 128 MiB
 * (a device with a larger limit is capped to 128 MiB, so they are chunked everywhere), the ends of the tested temperature
 * range, rows of 1 to 4 classes and batches of one row, the teacher's gradient written by the forward kernel (teacher on the tape) or
 * recomputed by the backward kernel (lazy), and an explicit upstream gradient. Every case checks
 * that the op ran the fused forward kernel; every divergence runs with the dispatch counts of
 * forward KL.
 *
 * Tolerances: those of the composed path (test/divergences.test.ts, header) with the kernels'
 * summation depth added, and the gradients' term sizes taken element by element.
 * - Every result passes through ≤ ~30 float32 operations and WGSL exp / log (≤ 3 + 2|x| ULP of
 *   the result: relative ≤ (3 + 2|x|) 2⁻²³, absolute ≤ 3 · 2⁻²³ for a probability e^x, x ≤ 0),
 *   on terms of a known size: |fused − ref| ≤ 1e-5 · (|ref| + the size of the terms), as for the
 *   composition. The kernels' row sums (Z1, ZS, ZT, and the divergence's Σ w, Σ w x, Σ w g(x))
 *   run along a dependency chain of depth D (one invocation's sequential run, the vec4 lanes,
 *   the shared-memory tree: rowSumDepth of src/validation/tolerance.ts), each level
 *   adding ≤ u = 2⁻²⁴ relative to the sum of the terms' magnitudes; D enters through log Z
 *   (absolute) and the ratios Σ w g / Σ w, Σ w x / Σ w (two sums: relative), so the factor 1e-5
 *   becomes ρ = 1e-5 + 2u (D + 2).
 * - Value: ρ · (|ℓ| + α · 2L + (1 − α) k · min(L, |D| + 0.4 (2 · scale / T)²)), L = 2 · scale /
 *   T + log C the size of a log-probability. The divergence's sums are of terms ≥ 0 (its
 *   relative precision, the k|D| part) but for the rounding of x = log w − log m (≤ 8u · 2 ·
 *   scale / T: the roundings of u, v, u − v; a constant error in log ZS − log ZT cancels to
 *   first order, shaders/distill-divergence.wgsl), carried by |g'(x)| ≤ |x| ≤ 2 · scale / T:
 *   ≤ 8u (2 · scale / T)² ≈ 0.05 · 1e-5 (2 · scale / T)², inside the composed bound's
 *   0.4 · 1e-5 (2 · scale / T)². Components: hardLoss ρ (|CE| + 2L), softLoss ρ k (|D| +
 *   min(L, …) as above). Reduced ('mean', 'sum'): the rows' bounds weighted, plus u (B + 8) w
 *   Σ_b |ℓ_b| for the batch sum (its chain: at most B additions and an 8-level tree), plus ρ
 *   times the result.
 * - Gradients, element by element: ρ · (|g| + w |dy| (α (σ Σ|y| + |y|) + (1 − α)(k / T)(q + p)
 *   (1 + 2L))) + 1.2e-38 (a flushed subnormal): the CE part subtracts σ Σy and y; the
 *   divergence part is a difference of probabilities (reverse KL's teacher: q − p, computed as
 *   q · expm1(·) near p ≈ q) or a probability times a centred log-ratio (w (x − E_w[x]), with
 *   |x| ≤ |log q| + |log p| ≤ 2L: reverse KL's student, both of the JSD's, whose M lies between
 *   p and q), whose errors are relative to those sizes (x's rounding and a constant error in
 *   it, ≤ 8u L, times w; the probabilities' relative errors).
 * The bounds are not vacuous: the same fused results are compared with a reference whose α is
 * off by 100 ρ (1e-3 where D is small; more where a long sequential run makes ρ larger, at most
 * 0.25), and every case must fail that comparison.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, test } from 'vitest';
import { countDispatches } from '../bench/core/lib/dispatch-counter.js';
import { mulberry32 } from '../src/validation/random.js';
import {
  DIVERGENCE_NAMES,
  distillationLoss,
  type DistillationLossConfig,
  type Divergence,
  type Reduction,
} from '../src/index.js';
import { referenceDistillationLoss } from '../src/validation/index.js';
import { FUSED_DISTILLATION_LOSS } from '../src/kernels/names.js';
import {
  overrideAdapterClassForTesting,
  overrideBindingLimitForTesting,
  rowChunks,
  type AdapterClass,
} from '../src/kernels/plan.js';
import { deviceLimit } from '../src/tfjs-internals.js';
import { rowsOfShape, type ReferenceResult } from '../src/reference.js';
import { useCheckedWebGPU, withValidationScope } from './helpers/backend.js';
import { compareElements } from '../src/validation/compare.js';
import { rowSumDepth, U } from '../src/validation/tolerance.js';
import { expectClose } from './helpers/compare.js';

useCheckedWebGPU();

interface FusedCase {
  divergence: Divergence;
  beta?: number;
  T: number;
  alpha: number;
  reduction: Reduction;
  dense: boolean;
  /** Logits shape [..., C]. */
  shape: number[];
  scale: number;
  /** 'finite': masks where D stays finite; 'infinite': also one where it is +Infinity. */
  masks: 'none' | 'finite' | 'infinite';
  ignore: boolean;
  components: boolean;
  plan: AdapterClass;
  /** The teacher's gradient: written by the forward kernel ('tape') or recomputed ('lazy'). */
  teacher: 'tape' | 'lazy';
  upstream: 'unit' | 'random';
  /** A binding limit in bytes that forces row chunks. */
  bindingLimit?: number;
}

interface Inputs {
  B: number;
  C: number;
  s: Float32Array;
  t: Float32Array;
  labels: Float32Array;
}

function inputsFor(c: FusedCase, seed: number): Inputs {
  const { batch: B, classes: C } = rowsOfShape(c.shape);
  const rng = mulberry32(seed);
  const s = Float32Array.from({ length: B * C }, () => (rng() * 2 - 1) * c.scale);
  const t = Float32Array.from({ length: B * C }, () => (rng() * 2 - 1) * c.scale);
  let labels: Float32Array;
  if (c.dense) {
    labels = new Float32Array(B * C);
    for (let b = 0; b < B; b++) {
      let sum = 0;
      for (let k = 0; k < C; k++) sum += labels[b * C + k] = rng();
      for (let k = 0; k < C; k++) labels[b * C + k] = labels[b * C + k]! / sum;
    }
  } else {
    labels = Float32Array.from({ length: B }, () => Math.floor(rng() * C));
  }
  if (c.masks !== 'none') {
    for (let b = 0; b < B; b++) {
      s[b * C + (b % C)] = t[b * C + (b % C)] = -Infinity; // both sides: always finite
      if (C > 2 && b % 3 === 1) {
        // one side only, where the divergence stays finite (the JSD: either side)
        const col = (b + 1) % C;
        if (c.divergence === 'reverse-kl' || b % 2 === 0) s[b * C + col] = -Infinity;
        else t[b * C + col] = -Infinity;
      }
      if (C > 3 && c.masks === 'infinite' && b % 3 === 2) {
        // one side only, where reverse KL is +Infinity (the JSD: finite all the same)
        t[b * C + ((b + 2) % C)] = -Infinity;
      }
      if (c.dense) {
        for (let k = 0; k < C; k++) if (s[b * C + k] === -Infinity) labels[b * C + k] = 0;
      } else {
        while (s[b * C + labels[b]!] === -Infinity) labels[b] = (labels[b]! + 1) % C;
      }
    }
  }
  if (c.ignore && !c.dense) for (let b = 0; b < B; b += 3) labels[b] = -100;
  return { B, C, s, t, labels };
}

function configOf(
  c: FusedCase,
  alpha = c.alpha,
): DistillationLossConfig & { returnComponents?: false } {
  return {
    divergence: c.divergence,
    temperature: c.T,
    alpha,
    reduction: c.reduction,
    ...(c.beta === undefined ? {} : { beta: c.beta }),
    ...(c.ignore && !c.dense ? { ignoreIndex: -100 } : {}),
  };
}

function upstreamOf(c: FusedCase, B: number, seed: number): Float32Array | null {
  if (c.upstream !== 'random') return null;
  const rng = mulberry32(seed ^ 0x5bd1e995);
  return Float32Array.from({ length: c.reduction === 'none' ? B : 1 }, () =>
    rng() < 0.5 ? -(0.5 + 1.5 * rng()) : 0.5 + 1.5 * rng(),
  );
}

/** `fn`'s result and its calls of the fused forward kernel (FusedDistillationLoss). */
function countFusedCalls<T>(fn: () => T): { result: T; fusedCalls: number } {
  // an own property over the prototype's runKernel, deleted afterwards
  const engine = tf.engine();
  const runKernel = engine.runKernel.bind(engine);
  let fusedCalls = 0;
  engine.runKernel = ((name: string, ...rest: unknown[]) => {
    if (name === FUSED_DISTILLATION_LOSS) fusedCalls++;
    return (runKernel as (...a: unknown[]) => unknown)(name, ...rest);
  }) as typeof engine.runKernel;
  try {
    return { result: fn(), fusedCalls };
  } finally {
    delete (engine as unknown as Record<string, unknown>).runKernel;
  }
}

interface FusedOut {
  value: Float32Array;
  gradStudent: Float32Array;
  gradTeacher: Float32Array;
  hardLoss?: Float32Array;
  softLoss?: Float32Array;
  dispatches: number;
  /** Calls of the fused forward kernel (FusedDistillationLoss) while the op ran. */
  fusedCalls: number;
}

async function runFused(c: FusedCase, x: Inputs, dy: Float32Array | null): Promise<FusedOut> {
  overrideAdapterClassForTesting(() => c.plan);
  if (c.bindingLimit !== undefined) overrideBindingLimitForTesting(c.bindingLimit);
  const lead = c.shape.slice(0, -1);
  const before = tf.memory().numTensors;
  const out = await withValidationScope(async () => {
    const y = c.dense
      ? tf.tensor(x.labels, c.shape, 'float32')
      : tf.tensor(Int32Array.from(x.labels), lead, 'int32');
    const s = tf.tensor(x.s, c.shape);
    const t = tf.tensor(x.t, c.shape);
    const tv = c.teacher === 'tape' ? tf.variable(t) : undefined;
    const dyT = dy ? tf.tensor(dy, c.reduction === 'none' ? lead : []) : undefined;
    const cfg = configOf(c);
    const parts: tf.Tensor[] = [];
    let dispatches = -1;
    const { result, fusedCalls } = countFusedCalls(() => {
      let out: { value: tf.Tensor; grads: tf.Tensor[] } | undefined;
      dispatches = countDispatches(() => {
        out = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) => {
          if (!c.components) return distillationLoss(y, a, b, cfg);
          const k = distillationLoss(y, a, b, { ...cfg, returnComponents: true });
          parts.push(tf.keep(k.hardLoss), tf.keep(k.softLoss));
          return k.loss;
        })([s, tv ?? t], dyT);
      });
      return out!;
    });
    const { value, grads } = result;
    expect(value.shape).toEqual(c.reduction === 'none' ? lead : []);
    expect(grads[0]!.shape).toEqual(c.shape);
    const r: FusedOut = {
      value: (await value.data()) as Float32Array,
      gradStudent: (await grads[0]!.data()) as Float32Array,
      gradTeacher: (await grads[1]!.data()) as Float32Array,
      dispatches,
      fusedCalls,
    };
    if (c.components) {
      r.hardLoss = (await parts[0]!.data()) as Float32Array;
      r.softLoss = (await parts[1]!.data()) as Float32Array;
    }
    tf.dispose([y, s, t, value, ...grads, ...parts]);
    tv?.dispose();
    dyT?.dispose();
    return r;
  });
  expect(tf.memory().numTensors, 'leaked tensors').toBe(before);
  return out;
}

function referenceOf(c: FusedCase, x: Inputs, dy: Float32Array | null, alpha = c.alpha) {
  return referenceDistillationLoss(
    {
      batch: x.B,
      classes: x.C,
      student: x.s,
      teacher: x.t,
      labels: x.labels,
      labelKind: c.dense ? 'dense' : 'index',
      ...(dy ? { dy } : {}),
    },
    configOf(c, alpha),
  );
}

/** 1e-5 plus the row sums' 2u (D + 2): the factor of every bound (header). */
function rhoOf(c: FusedCase, B: number, C: number): number {
  const depth = rowSumDepth({
    batch: B,
    classes: C,
    reduceToScalar: c.reduction !== 'none',
    adapter: c.plan,
  });
  return 1e-5 + 2 * U * (depth + 2);
}

/** softmax of one row of `x / T` in float64 (0 where −Infinity; NaN rows give NaN). */
function softmax64(x: ArrayLike<number>, T: number): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < x.length; i++) m = Math.max(m, x[i]!);
  const e = Float64Array.from(x, (v) => Math.exp((v - m) / T));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

interface Bounds {
  value: ArrayLike<number>;
  gradStudent: ArrayLike<number>;
  gradTeacher: ArrayLike<number>;
  hard: ArrayLike<number>;
  soft: ArrayLike<number>;
}

/** The bounds of the header, for the reference `ref` of case `c`. */
function boundsOf(c: FusedCase, x: Inputs, ref: ReferenceResult, dy: Float32Array | null): Bounds {
  const { B, C } = x;
  const k = c.T * c.T;
  const L = (2 * c.scale) / c.T + Math.log(C);
  const rho = rhoOf(c, B, C);
  const counted = ref.counted.reduce((a, b) => a + b, 0);
  const w = c.reduction === 'mean' ? 1 / Math.max(counted, 1) : 1;
  const softSize = (D: number) => Math.min(L, Math.abs(D) + 0.4 * ((2 * c.scale) / c.T) ** 2);
  const hardRow = ref.crossEntropy.map((ce) => rho * (Math.abs(ce) + 2 * L));
  const softRow = ref.kl.map((D) => rho * k * (Math.abs(D) + softSize(D)));
  const rowTol = Array.from(
    ref.rowLosses,
    (l, b) => rho * (Math.abs(l) + c.alpha * 2 * L + (1 - c.alpha) * k * softSize(ref.kl[b]!)),
  );
  const reduced = (rows: ArrayLike<number>, values: ArrayLike<number>, out: ArrayLike<number>) => {
    let tol = 0;
    let mag = 0;
    for (let b = 0; b < B; b++) {
      if (Number.isFinite(rows[b]!)) tol += rows[b]!;
      if (Number.isFinite(values[b]!)) mag += Math.abs(values[b]!);
    }
    const o = Math.abs(out[0]!);
    return [w * tol + U * (B + 8) * w * mag + rho * (Number.isFinite(o) ? o : 0)];
  };
  const perRow = c.reduction === 'none';
  const dyOf = (b: number, dy: Float32Array | null) =>
    dy ? Math.abs(dy[c.reduction === 'none' ? b : 0]!) : 1;
  // per element: α (σ Σ|y| + |y|) + (1 − α)(k/T)(q + p)(1 + 2L) (the terms' sizes, header)
  const size = new Float64Array(B * C);
  for (let b = 0; b < B; b++) {
    const row = (a: ArrayLike<number>) => Array.from({ length: C }, (_, i) => a[b * C + i]!);
    const sigma = softmax64(row(x.s), 1);
    const q = softmax64(row(x.s), c.T);
    const p = softmax64(row(x.t), c.T);
    const y = c.dense ? row(x.labels) : row([]).map((_, i) => (i === x.labels[b] ? 1 : 0));
    const ySum = y.reduce((a, v) => a + Math.abs(v), 0);
    for (let i = 0; i < C; i++) {
      const soft = ((q[i]! || 0) + (p[i]! || 0)) * (1 + 2 * L) + 1.2e-38 * (1 + 2 * L);
      const hard = (sigma[i]! || 0) * ySum + Math.abs(y[i]!);
      size[b * C + i] = w * dyOf(b, dy) * (c.alpha * hard + (1 - c.alpha) * (k / c.T) * soft);
    }
  }
  const grad = (g: Float64Array) =>
    Array.from(g, (v, i) => rho * ((Number.isFinite(v) ? Math.abs(v) : 0) + size[i]!) + 1.2e-38);
  return {
    value: perRow ? rowTol : reduced(rowTol, ref.rowLosses, ref.value),
    gradStudent: grad(ref.gradStudent),
    gradTeacher: grad(ref.gradTeacher),
    hard: perRow ? hardRow : reduced(hardRow, ref.crossEntropy, ref.hardLoss),
    soft: perRow
      ? softRow
      : reduced(
          softRow,
          ref.kl.map((d) => k * d),
          ref.softLoss,
        ),
  };
}

function check(c: FusedCase, out: FusedOut, ref: ReferenceResult, tol: Bounds, ctx: string): void {
  const C = c.shape[c.shape.length - 1]!;
  expectClose('value', out.value, ref.value, tol.value, ctx);
  expectClose('∂/∂s', out.gradStudent, ref.gradStudent, tol.gradStudent, ctx, C);
  expectClose('∂/∂t', out.gradTeacher, ref.gradTeacher, tol.gradTeacher, ctx, C);
  if (c.components) {
    expectClose('hardLoss', out.hardLoss!, ref.hardLoss, tol.hard, ctx);
    expectClose('softLoss', out.softLoss!, ref.softLoss, tol.soft, ctx);
  }
}

/** Whether any element of the three outputs is outside the bounds. */
function fails(c: FusedCase, out: FusedOut, ref: ReferenceResult, tol: Bounds): boolean {
  const C = c.shape[c.shape.length - 1]!;
  return (
    compareElements(out.value, ref.value, tol.value, 1).mismatches > 0 ||
    compareElements(out.gradStudent, ref.gradStudent, tol.gradStudent, C).mismatches > 0 ||
    compareElements(out.gradTeacher, ref.gradTeacher, tol.gradTeacher, C).mismatches > 0
  );
}

async function fusedVsReference(c: FusedCase, seed: number): Promise<FusedOut> {
  const x = inputsFor(c, seed);
  const dy = upstreamOf(c, x.B, seed);
  const out = await runFused(c, x, dy);
  const ctx = `seed ${seed} ${JSON.stringify(c)}`;
  const ref = referenceOf(c, x, dy);
  check(c, out, ref, boundsOf(c, x, ref, dy), ctx);
  // not vacuous: a reference with α off by 100 ρ (≥ 1e-3; at most 0.25) is rejected
  const by = Math.min(100 * rhoOf(c, x.B, x.C), 0.25);
  const off = referenceOf(c, x, dy, c.alpha + (c.alpha < 0.5 ? by : -by));
  // (where α changes nothing at all, C = 1: CE = D = 0, there is nothing to reject)
  const moved = (a: ArrayLike<number>, b: ArrayLike<number>) =>
    Array.from(a).some((v, i) => !Object.is(v, b[i]));
  if (moved(off.value, ref.value) || moved(off.gradStudent, ref.gradStudent)) {
    expect(fails(c, out, off, boundsOf(c, x, off, dy)), `α off by ${by} accepted — ${ctx}`).toBe(
      true,
    );
  } else {
    expect(x.C, ctx).toBe(1);
  }
  // the fused kernels ran, once (the composition never calls them)
  expect(out.fusedCalls, ctx).toBe(1);
  return out;
}

const FUSED_DIVS: { divergence: Divergence; beta?: number }[] = [
  { divergence: 'reverse-kl' },
  { divergence: 'jsd', beta: 0.5 },
  { divergence: 'jsd', beta: 0.2 },
  { divergence: 'jsd', beta: 0.9 },
];

const SHAPES = [
  [7, 10],
  [2, 3, 9],
  [16, 100],
  [3, 1, 2, 33],
  [5, 1027],
  [4, 2048],
];

const cases: FusedCase[] = [];
for (const plan of ['software', 'hardware'] as const) {
  for (const d of FUSED_DIVS) {
    for (const T of [1, 4, 10, 1000]) {
      for (const reduction of ['mean', 'sum', 'none'] as Reduction[]) {
        const i = cases.length;
        cases.push({
          ...d,
          T,
          alpha: [0, 0.1, 0.5, 1, 0.3][i % 5]!,
          reduction,
          dense: i % 2 === 1,
          shape: SHAPES[i % SHAPES.length]!,
          scale: [3, 20][(i >> 1) % 2]!,
          masks: (['none', 'finite', 'infinite'] as const)[i % 3]!,
          ignore: i % 4 !== 1,
          components: i % 5 === 2,
          plan,
          teacher: i % 3 === 1 ? 'lazy' : 'tape',
          upstream: i % 4 === 3 ? 'random' : 'unit',
        });
      }
    }
  }
}

describe('reverse KL and the JSD in the fused kernels vs the float64 reference', () => {
  test('every divergence runs the fused forward kernel once, with every option', () => {
    const y = tf.tensor1d([0, -100, 2], 'int32');
    const s = tf.randomNormal([3, 5]);
    const t = tf.randomNormal([3, 5]);
    for (const divergence of DIVERGENCE_NAMES) {
      for (const components of [false, true]) {
        const config = { divergence, ignoreIndex: -100 };
        const { result, fusedCalls } = countFusedCalls(() =>
          components
            ? Object.values(distillationLoss(y, s, t, { ...config, returnComponents: true }))
            : [distillationLoss(y, s, t, config)],
        );
        expect(fusedCalls, JSON.stringify({ divergence, components })).toBe(1);
        expect(result).toHaveLength(components ? 3 : 1);
        tf.dispose(result);
      }
    }
    tf.dispose([y, s, t]);
  });

  test.each(cases.map((c, i) => [JSON.stringify(c), c, 9100 + i] as const))(
    '%s',
    async (_name, c, seed) => {
      await fusedVsReference(c, seed);
    },
  );

  test('the ends of the tested temperature range (1e-4, 1e8) and between, both plans', async () => {
    // At large T, D ~ Var(s − t) / (2T²) is kept to its relative precision (k = T² magnifies
    // any cancellation); at small T the distributions are one-hot and D ~ |s − t| / T.
    let i = 0;
    for (const plan of ['software', 'hardware'] as const) {
      for (const d of FUSED_DIVS.slice(0, 3)) {
        for (const T of [1e-4, 0.05, 1e4, 1e8]) {
          await fusedVsReference(
            {
              ...d,
              T,
              alpha: 0.2,
              reduction: (['none', 'mean'] as const)[i % 2]!,
              dense: false,
              shape: [
                [6, 10],
                [3, 300],
                [4, 1000],
              ][i % 3]!,
              scale: 6,
              masks: i % 2 === 0 ? 'finite' : 'none',
              ignore: false,
              components: false,
              plan,
              teacher: 'tape',
              upstream: 'unit',
            },
            9800 + i++,
          );
        }
      }
    }
  });

  test('tiny rows and batches: C = 1, 2, 3, 4 and B = 1, both plans', async () => {
    let i = 0;
    for (const plan of ['software', 'hardware'] as const) {
      for (const d of FUSED_DIVS.slice(0, 2)) {
        for (const shape of [
          [5, 1],
          [1, 2],
          [4, 3],
          [1, 4],
          [1, 1],
        ]) {
          await fusedVsReference(
            {
              ...d,
              T: 2,
              alpha: 0.4,
              reduction: (['none', 'mean', 'sum'] as const)[i % 3]!,
              dense: i % 2 === 1,
              shape,
              scale: 6,
              masks: shape[1]! > 2 ? 'finite' : 'none',
              ignore: false,
              components: i % 2 === 0,
              plan,
              teacher: i % 2 === 0 ? 'tape' : 'lazy',
              upstream: 'random',
            },
            9700 + i++,
          );
        }
      }
    }
  });

  for (const plan of ['software', 'hardware'] as const) {
    test(`${plan} plan: row chunks forced past a small binding limit, masks, ignored rows`, async () => {
      let i = 0;
      for (const d of FUSED_DIVS.slice(0, 2)) {
        for (const [shape, limit] of [
          [[300, 37], 4096],
          [[2, 20, 1024], 3 * 4096 + 256],
        ] as const) {
          await fusedVsReference(
            {
              ...d,
              T: 4,
              alpha: 0.3,
              reduction: (['mean', 'none'] as const)[i % 2]!,
              dense: i % 2 === 1 && shape[0] === 300,
              shape: [...shape],
              scale: 6,
              masks: 'infinite',
              ignore: true,
              components: i % 2 === 0,
              plan,
              teacher: i % 2 === 0 ? 'lazy' : 'tape',
              upstream: 'random',
              bindingLimit: limit,
            },
            9900 + i++,
          );
        }
      }
    });

    test(`${plan} plan: the components' gradients (the backward kernel at α = 1 and α = 0)`, async () => {
      // ∂softLoss = the loss's gradient at α = 0 (k D), ∂hardLoss at α = 1, scaled by their dy
      const base: FusedCase = {
        divergence: 'reverse-kl',
        T: 3,
        alpha: 0.4,
        reduction: 'mean',
        dense: false,
        shape: [6, 130],
        scale: 6,
        masks: 'finite',
        ignore: true,
        components: true,
        plan,
        teacher: 'tape',
        upstream: 'unit',
      };
      for (const d of FUSED_DIVS.slice(0, 2)) {
        const c = { ...base, ...d };
        const x = inputsFor(c, 77);
        overrideAdapterClassForTesting(() => plan);
        for (const [name, alpha] of [
          ['softLoss', 0],
          ['hardLoss', 1],
        ] as const) {
          const g = await withValidationScope(async () => {
            const y = tf.tensor1d(Int32Array.from(x.labels), 'int32');
            const s = tf.tensor2d(x.s, [x.B, x.C]);
            const t = tf.variable(tf.tensor2d(x.t, [x.B, x.C]));
            const grads = tf.grads(
              (a: tf.Tensor, b: tf.Tensor) =>
                distillationLoss(y, a, b, { ...configOf(c), returnComponents: true })[name],
            )([s, t]);
            const out = await Promise.all(grads.map((h) => h.data()));
            tf.dispose([y, s, t, ...grads]);
            return out as Float32Array[];
          });
          const ref = referenceOf(c, x, null, alpha);
          const tol = boundsOf({ ...c, alpha }, x, ref, null);
          const ctx = `${name} ${JSON.stringify(c)}`;
          expectClose(`∂${name}/∂s`, g[0]!, ref.gradStudent, tol.gradStudent, ctx, x.C);
          expectClose(`∂${name}/∂t`, g[1]!, ref.gradTeacher, tol.gradTeacher, ctx, x.C);
        }
      }
    });
  }

  test.each([
    ['reverse-kl', [129], 262_144, 'mean', 'tape'],
    ['jsd', [3, 43], 262_143, 'none', 'lazy'],
  ] as const)(
    "real row chunks past the device's binding limit: %s %j × %i, %s, %s teacher gradient",
    async (divergence, leading, C, reduction, teacher) => {
      const B = leading.reduce((a, b) => a * b, 1);
      // lavapipe's limit; a device with a larger one is capped to it through the test hook
      const limit = Math.min(deviceLimit('maxStorageBufferBindingSize'), 128 * 2 ** 20);
      const alignment = deviceLimit('minStorageBufferOffsetAlignment');
      expect(rowChunks(B, C, limit, alignment).length).toBeGreaterThan(1);
      await fusedVsReference(
        {
          divergence,
          ...(divergence === 'jsd' ? { beta: 0.3 } : {}),
          T: 4,
          alpha: 0.3,
          reduction,
          dense: false,
          shape: [...leading, C],
          scale: 6,
          masks: 'finite',
          ignore: true,
          components: false,
          plan: 'software',
          teacher,
          upstream: reduction === 'none' ? 'random' : 'unit',
          bindingLimit: limit,
        },
        9950,
      );
    },
    300_000,
  );

  test('special rows: +Infinity, NaN and ignored rows, a zero weight drops an infinite term', async () => {
    // row 0: the teacher masks a column where the student has mass (reverse KL +Infinity);
    // row 1: the student masks one where the teacher has mass (forward KL's case: finite here);
    // row 2: a NaN student logit; row 3: masked everywhere in the teacher; row 4: ignored (NaN)
    const C = 8;
    const x = inputsFor(
      {
        divergence: 'reverse-kl',
        T: 2,
        alpha: 0,
        reduction: 'none',
        dense: false,
        shape: [6, C],
        scale: 3,
        masks: 'none',
        ignore: false,
        components: false,
        plan: 'software',
        teacher: 'tape',
        upstream: 'unit',
      },
      5,
    );
    x.t[0 * C + 3] = -Infinity;
    x.s[1 * C + 5] = -Infinity;
    x.s[2 * C + 1] = NaN;
    x.t.fill(-Infinity, 3 * C, 4 * C);
    x.s[4 * C + 2] = NaN;
    x.labels.set([0, 0, 0, 0, -100, 1]);
    for (const plan of ['software', 'hardware'] as const) {
      for (const d of FUSED_DIVS.slice(0, 2)) {
        for (const alpha of [0, 0.5, 1]) {
          for (const teacher of ['tape', 'lazy'] as const) {
            const c: FusedCase = {
              ...d,
              T: 2,
              alpha,
              reduction: 'none',
              dense: false,
              shape: [6, C],
              scale: 3,
              masks: 'none',
              ignore: true,
              components: true,
              plan,
              teacher,
              upstream: 'unit',
            };
            const out = await runFused(c, x, null);
            const ref = referenceOf(c, x, null);
            check(c, out, ref, boundsOf(c, x, ref, null), JSON.stringify(c));
            if (d.divergence === 'reverse-kl') {
              expect(ref.softLoss[0]).toBe(Infinity);
              expect(out.softLoss![0]).toBe(Infinity);
            }
          }
        }
      }
    }
  });

  test('every divergence runs with the dispatches of forward KL (1 forward at MNIST size)', async () => {
    for (const [B, C] of [
      [64, 10],
      [256, 1000],
    ] as const) {
      const y = tf.tensor1d(
        Array.from({ length: B }, (_, i) => i % C),
        'int32',
      );
      const s = tf.randomNormal([B, C]);
      const t = tf.randomNormal([B, C]);
      const tv = tf.variable(t);
      const counts: Record<string, number[]> = {};
      for (const d of ['forward-kl', ...FUSED_DIVS.map((x) => x.divergence)] as Divergence[]) {
        const cfg = { divergence: d, ...(d === 'jsd' ? { beta: 0.3 } : {}) };
        const forward = countDispatches(() => distillationLoss(y, s, t, cfg).dispose());
        let grads: tf.Tensor[] = [];
        const both = countDispatches(() => {
          const r = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) =>
            distillationLoss(y, a, b, cfg),
          )([s, tv]);
          grads = [r.value, ...r.grads];
        });
        for (const g of grads) await g.data();
        tf.dispose(grads);
        counts[d] = [forward, both];
      }
      const fkl = counts['forward-kl']!;
      if (B === 64) expect(fkl[0]).toBe(1);
      expect(fkl[1]).toBeLessThanOrEqual(3);
      for (const d of Object.keys(counts)) expect(counts[d], `${d} B=${B} C=${C}`).toEqual(fkl);
      tf.dispose([y, s, t, tv]);
    }
  });
});
