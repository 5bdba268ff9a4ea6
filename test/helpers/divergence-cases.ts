/**
 * The fused reverse-KL and JSD cases shared by test/divergences-fused.test.ts and
 * test/divergences-fused-large.test.ts: inputs, the fused run, the float64 reference and the
 * per-element bounds.
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
import { expect } from 'vitest';
import { countDispatches } from '../../bench/core/lib/dispatch-counter.js';
import { mulberry32 } from '../../src/validation/random.js';
import {
  distillationLoss,
  type DistillationLossConfig,
  type Divergence,
  type Reduction,
} from '../../src/index.js';
import { referenceDistillationLoss } from '../../src/validation/index.js';
import { FUSED_DISTILLATION_LOSS } from '../../src/kernels/names.js';
import {
  overrideAdapterClassForTesting,
  overrideBindingLimitForTesting,
  type AdapterClass,
} from '../../src/kernels/plan.js';
import { rowsOfShape, type ReferenceResult } from '../../src/reference.js';
import { withValidationScope } from './backend.js';
import { compareElements } from '../../src/validation/compare.js';
import { rowSumDepth, U } from '../../src/validation/tolerance.js';
import { expectClose } from './compare.js';

export interface FusedCase {
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

export interface Inputs {
  B: number;
  C: number;
  s: Float32Array;
  t: Float32Array;
  labels: Float32Array;
}

export function inputsFor(c: FusedCase, seed: number): Inputs {
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

export function configOf(
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

export function upstreamOf(c: FusedCase, B: number, seed: number): Float32Array | null {
  if (c.upstream !== 'random') return null;
  const rng = mulberry32(seed ^ 0x5bd1e995);
  return Float32Array.from({ length: c.reduction === 'none' ? B : 1 }, () =>
    rng() < 0.5 ? -(0.5 + 1.5 * rng()) : 0.5 + 1.5 * rng(),
  );
}

/** `fn`'s result and its calls of the fused forward kernel (FusedDistillationLoss). */
export function countFusedCalls<T>(fn: () => T): { result: T; fusedCalls: number } {
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

export interface FusedOut {
  value: Float32Array;
  gradStudent: Float32Array;
  gradTeacher: Float32Array;
  hardLoss?: Float32Array;
  softLoss?: Float32Array;
  dispatches: number;
  /** Calls of the fused forward kernel (FusedDistillationLoss) while the op ran. */
  fusedCalls: number;
}

export async function runFused(
  c: FusedCase,
  x: Inputs,
  dy: Float32Array | null,
): Promise<FusedOut> {
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

export function referenceOf(c: FusedCase, x: Inputs, dy: Float32Array | null, alpha = c.alpha) {
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
export function rhoOf(c: FusedCase, B: number, C: number): number {
  const depth = rowSumDepth({
    batch: B,
    classes: C,
    reduceToScalar: c.reduction !== 'none',
    adapter: c.plan,
  });
  return 1e-5 + 2 * U * (depth + 2);
}

/** softmax of one row of `x / T` in float64 (0 where −Infinity; NaN rows give NaN). */
export function softmax64(x: ArrayLike<number>, T: number): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < x.length; i++) m = Math.max(m, x[i]!);
  const e = Float64Array.from(x, (v) => Math.exp((v - m) / T));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

export interface Bounds {
  value: ArrayLike<number>;
  gradStudent: ArrayLike<number>;
  gradTeacher: ArrayLike<number>;
  hard: ArrayLike<number>;
  soft: ArrayLike<number>;
}

/** The bounds of the header, for the reference `ref` of case `c`. */
export function boundsOf(
  c: FusedCase,
  x: Inputs,
  ref: ReferenceResult,
  dy: Float32Array | null,
): Bounds {
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

export function check(
  c: FusedCase,
  out: FusedOut,
  ref: ReferenceResult,
  tol: Bounds,
  ctx: string,
): void {
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
export function fails(c: FusedCase, out: FusedOut, ref: ReferenceResult, tol: Bounds): boolean {
  const C = c.shape[c.shape.length - 1]!;
  return (
    compareElements(out.value, ref.value, tol.value, 1).mismatches > 0 ||
    compareElements(out.gradStudent, ref.gradStudent, tol.gradStudent, C).mismatches > 0 ||
    compareElements(out.gradTeacher, ref.gradTeacher, tol.gradTeacher, C).mismatches > 0
  );
}

export async function fusedVsReference(c: FusedCase, seed: number): Promise<FusedOut> {
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

/** The divergences other than forward KL that the fused kernels run, with the JSD at three β. */
export const FUSED_DIVS: { divergence: Divergence; beta?: number }[] = [
  { divergence: 'reverse-kl' },
  { divergence: 'jsd', beta: 0.5 },
  { divergence: 'jsd', beta: 0.2 },
  { divergence: 'jsd', beta: 0.9 },
];
