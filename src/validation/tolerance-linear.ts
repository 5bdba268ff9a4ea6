/**
 * Per-element tolerances of `fusedLinearDistillationLoss` (float32, src/linear/op.ts) against
 * its float64 reference (reference-linear.ts): the loss value(s), the components and the
 * gradients wrt hidden, weight and bias.
 *
 * Notation: u = 2⁻²⁴, ε = 2u, γ_n = n u / (1 − n u) (the bound of a float32 sum or dot product
 * of n terms in any order: |fl(Σ a_i) − Σ a_i| ≤ γ_n Σ |a_i|); s = logitScale, κ = softCap,
 * r a row, v a class, k a hidden unit, w_r the row's weight (dy / N for 'mean' over N counted
 * rows, dy for 'sum', dy_r for 'none'). All bounds first order; SAFETY = 2 (tolerance.ts)
 * multiplies every new term for the second-order ones and the few roundings not itemised.
 *
 * 1. Logits. z = h · W + b is a float32 matMul then one add of the bias:
 *      δz_rv = γ_{H+1} (Σ_k |h_rk| |W_kv| + |b_v|)          (exact −Infinity where b_v is)
 *    The transform: x = s z (one rounding u |x| when s ≠ 1, and s carries δz), y = x / κ (one
 *    more, u |y|), τ = tanh y evaluated as sign(y)(1 − e)/(1 + e), e = exp(−2|y|) (WGSL exp
 *    within (3 + 2·2|y|) ε relative, |d/de (1 − e)/(1 + e)| ≤ 2, three roundings of τ):
 *      δτ_own = 2 e (3 + 4|y|) ε + 3u |τ|,   Δτ = (1 − τ²) δy + δτ_own,
 *      δy = (s δz + u |x|) / κ + u |y|,      δz'_rv = κ Δτ + u |z'|
 *    (no cap: δz'_rv = s δz_rv + u |x|). A teacher head's logits t' get the same bound (with its
 *    own H_t); dense and top-K teachers are exact inputs.
 * 2. The loss given its logits. The op's loss on (z̃', t̃') is the fused kernel's (or the
 *    composition's) on float32 logits: per row, the bound of the existing modules evaluated at
 *    the float64 logits (tolerance.ts's rowBounds / studentGradTolerance for forward KL with a
 *    dense teacher, −Infinity columns replaced by a finite stand-in 40 T below the row's
 *    smallest finite logit; tolerance-divergence.ts for 'reverse-kl' / 'jsd'; tolerance-sparse.ts
 *    for top-K teachers), at unit weight, the larger of the 'software' and 'hardware' plans
 *    (the op's chunks see their own batch; the row bounds depend on the plan's class axis
 *    only). (tolerance-divergence.ts takes k = T²: with temperatureSquared false its bounds
 *    are multiplied by max(1, 1 / T²).)
 * 3. The logits' errors carried through the loss (Lipschitz terms, per row at unit weight).
 *    The value: |Δℓ_r| ≤ Σ_v |∂ℓ_r/∂z'_v| δz'_rv + Σ_v |∂ℓ_r/∂t'_v| δt'_rv, the derivatives the
 *    float64 reference's. The gradient g'_rv = ∂ℓ_r/∂z'_rv:
 *      |Δg'_rv| ≤ Σ_j |∂²ℓ_r/∂z'_v∂z'_j| δz'_rj + Σ_j |∂²ℓ_r/∂z'_v∂t'_j| δt'_rj
 *    with the Hessian taken by central differences (step 10⁻⁴ min(1, T)) of the float64
 *    reference's own gradient on the row alone: whatever the divergence, its entries are the
 *    softmax Jacobians' (σ (1 − σ) Σy for CE, q (1 − q) / T² times (1 − α) k for the soft term,
 *    and for reverse KL / JSD the same times |log q − log p − D| + 1), so no closed form per
 *    divergence needs writing down. Then Δg'_rv (step 2 plus this) times w_r, plus 2u |g'_rv|
 *    for the products by 1 / N and dy.
 * 4. Back through the transform (autograd of mul, div, tanh, mul): g = g' κ (1 − τ²) / κ · s,
 *      Δg_rv = s (1 − τ²) Δg'_rv + |g'_rv| s 2|τ| Δτ + 6u |g_rv|        (no cap: s Δg' + u |g|)
 *    and exactly 0 at a masked (−Infinity) logit.
 * 5. Back through the matMul (sums over rows accumulate across chunks in some order, hence γ of
 *    the full count):
 *      gradWeight_kv: γ_{rows+2} Σ_r |h_rk| |g_rv| + Σ_r |h_rk| Δg_rv
 *      gradHidden_rk: γ_{V+2}    Σ_v |g_rv| |W_kv| + Σ_v |W_kv| Δg_rv
 *      gradBias_v:    γ_{rows+2} Σ_r |g_rv|        + Σ_r Δg_rv
 * 6. The value: 'none' the row bounds; 'mean' / 'sum' Σ_r w (step 2 + SAFETY · step 3) plus the
 *    sum over rows and chunks, γ_{rows + 10} Σ |ℓ_r| w (10 levels of the kernel's tree), plus
 *    u |value| for the division by N. The components likewise at α = 1 (hard: CE) and α = 0
 *    (soft: k D).
 * Every element also gets FTZ_FLOOR (a float32 result may be flushed below 1.2e-38).
 */
import { klFactor, resolveConfig, type DistillationLossConfig } from '../config.js';
import type { AdapterClass } from '../kernels/plan.js';
import { referenceDistillationLoss, upstreamFor } from '../reference.js';
import { referenceSparseDistillationLoss } from '../reference-sparse.js';
import {
  linearLogits64,
  lossConfigOf,
  referenceFusedLinearDistillationLoss,
  type LinearReferenceInput,
  type LinearReferenceResult,
} from './reference-linear.js';
import {
  EPS,
  FTZ_FLOOR,
  rowBounds,
  SAFETY,
  studentGradTolerance,
  toleranceContext,
  U,
  type RowInputs,
} from './tolerance.js';
import { divergenceTolerances } from './tolerance-divergence.js';
import { sparseTolerances } from './tolerance-sparse.js';

/** γ_n = n u / (1 − n u). */
export function gamma(n: number): number {
  return (n * U) / (1 - n * U);
}

/** Per-element bounds of the op's outputs against {@link referenceFusedLinearDistillationLoss}. */
export interface LinearTolerances {
  /** Length 1 ('mean' / 'sum') or `[rows]` ('none'), like the reference's. */
  readonly value: Float64Array;
  readonly hardLoss: Float64Array;
  readonly softLoss: Float64Array;
  readonly gradHidden: Float64Array;
  readonly gradWeight: Float64Array;
  readonly gradBias: Float64Array;
  /** Step 1: δz' of the student's logits, `[rows, V]` (diagnostics). */
  readonly logits: Float64Array;
  /** Step 4: Δg, the bound on ∂L/∂z, `[rows, V]` (diagnostics). */
  readonly gradRawLogits: Float64Array;
}

export interface LinearToleranceOptions {
  /** The plans whose bounds are taken (the largest); default both. */
  readonly adapters?: readonly AdapterClass[];
  /** Skip the gradients' bounds (value and components only): no Hessian. */
  readonly valueOnly?: boolean;
}

interface TransformBound {
  /** δz' per element. */
  readonly dOut: Float64Array;
  /** Δτ per element (0 without a cap). */
  readonly dTau: Float64Array;
}

/** Step 1: the float32 logits' bound, `[rows, V]`. */
function logitBounds(
  rows: number,
  H: number,
  V: number,
  hidden: ArrayLike<number>,
  weight: ArrayLike<number>,
  bias: ArrayLike<number> | undefined,
  z: Float64Array,
  scale: number,
  cap: number | undefined,
): TransformBound {
  const absH = Array.from(hidden, Math.abs);
  const absW = Array.from(weight, Math.abs);
  const g = gamma(H + 1);
  const dOut = new Float64Array(rows * V);
  const dTau = new Float64Array(rows * V);
  for (let r = 0; r < rows; r++) {
    for (let v = 0; v < V; v++) {
      const i = r * V + v;
      if (z[i] === -Infinity) continue; // exact
      let mag = bias ? Math.abs(bias[v]!) : 0;
      for (let k = 0; k < H; k++) mag += absH[r * H + k]! * absW[k * V + v]!;
      const dz = g * mag;
      const x = scale * z[i]!;
      const dx = scale * dz + (scale === 1 ? 0 : U * Math.abs(x));
      if (cap === undefined) {
        dOut[i] = dx;
        continue;
      }
      const y = x / cap;
      const tau = Math.tanh(y);
      const e = Math.exp(-2 * Math.abs(y));
      const dy = dx / cap + U * Math.abs(y);
      const ownTau = 2 * e * (3 + 4 * Math.abs(y)) * EPS + 3 * U * Math.abs(tau);
      dTau[i] = (1 - tau * tau) * dy + ownTau;
      dOut[i] = cap * dTau[i]! + U * Math.abs(cap * tau);
    }
  }
  return { dOut, dTau };
}

/** Per-row bounds of a loss on given logits, at unit weight (step 2). */
interface GivenLogitBounds {
  readonly value: Float64Array;
  readonly grad: Float64Array;
}

/** A row with −Infinity entries replaced by a finite stand-in 40 T below its smallest finite one. */
function standIn(row: Float64Array, floor: number): Float64Array {
  return row.map((x) => (x === -Infinity ? floor : x));
}

function givenLogitBounds(
  input: LinearReferenceInput,
  z: Float64Array,
  t: Float64Array | null,
  loss: DistillationLossConfig,
  counted: Uint8Array,
  adapters: readonly AdapterClass[],
): GivenLogitBounds {
  const { rows, vocab: V } = input;
  const cfg = resolveConfig(loss);
  const value = new Float64Array(rows);
  const grad = new Float64Array(rows * V);
  const take = (v: ArrayLike<number>, g: ArrayLike<number>, factor = 1) => {
    for (let r = 0; r < rows; r++) value[r] = Math.max(value[r]!, factor * v[r]!);
    for (let i = 0; i < rows * V; i++) grad[i] = Math.max(grad[i]!, factor * g[i]!);
  };
  const base = { alpha: cfg.alpha, temperature: cfg.temperature, reduction: 'none' as const };
  for (const adapter of adapters) {
    const teacher = input.teacher;
    if (teacher.kind === 'sparse') {
      const b = sparseTolerances(
        {
          batch: rows,
          classes: V,
          topK: teacher.k,
          student: z,
          indices: teacher.indices,
          logProbs: teacher.logProbs,
          labels: input.labels,
          labelKind: input.labelKind,
        },
        { ...base, temperatureSquared: cfg.temperatureSquared },
        null,
        adapter,
        counted,
      );
      take(b.value, b.gradStudent);
    } else if (cfg.divergence !== 'forward-kl') {
      const b = divergenceTolerances(
        {
          batch: rows,
          classes: V,
          student: z,
          teacher: t!,
          labels: input.labels,
          labelKind: input.labelKind,
        },
        {
          ...base,
          divergence: cfg.divergence,
          ...(cfg.divergence === 'jsd' ? { beta: cfg.beta } : {}),
          ...(cfg.hasIgnoreIndex ? { ignoreIndex: cfg.ignoreIndex } : {}),
        },
        null,
        adapter,
      );
      const factor = cfg.temperatureSquared ? 1 : Math.max(1, 1 / cfg.temperature ** 2);
      take(b.value, b.gradStudent, factor);
    } else {
      const ctx = toleranceContext(rows, V, base, klFactor(cfg), adapter);
      const v = new Float64Array(rows);
      const g = new Float64Array(rows * V);
      for (let r = 0; r < rows; r++) {
        if (!counted[r]) continue;
        const s = z.subarray(r * V, (r + 1) * V);
        const tr = t!.subarray(r * V, (r + 1) * V);
        let min = Infinity;
        for (const x of [...s, ...tr]) if (x !== -Infinity) min = Math.min(min, x);
        const floor = min - 40 * cfg.temperature;
        let y: Float64Array | null = new Float64Array(V);
        if (input.labelKind === 'index') {
          const label = input.labels[r]!;
          if (Number.isInteger(label) && label >= 0 && label < V) y[label] = 1;
          else y = null;
        } else {
          for (let c = 0; c < V; c++) y[c] = input.labels[r * V + c]!;
        }
        const row: RowInputs = { classes: V, s: standIn(s, floor), t: standIn(tr, floor), y };
        const rb = rowBounds(row, ctx);
        v[r] = rb.dLoss;
        g.set(studentGradTolerance(rb, row, ctx, 1), r * V);
      }
      take(v, g);
    }
  }
  return { value, grad };
}

/** One row's loss and gradients (unit weight), from the float64 references. */
interface RowEval {
  loss: number;
  gs: Float64Array;
  gt: Float64Array | null;
}

function rowEvaluator(
  input: LinearReferenceInput,
  loss: DistillationLossConfig,
): (r: number, s: Float64Array, t: Float64Array | null) => RowEval {
  const { vocab: V } = input;
  // a row alone, never ignored (the caller skips ignored rows)
  const cfg: DistillationLossConfig = { ...loss, reduction: 'sum', returnComponents: false };
  delete cfg.ignoreIndex;
  const teacher = input.teacher;
  const labelsOf = (r: number) =>
    input.labelKind === 'index'
      ? [input.labels[r]!]
      : Array.from({ length: V }, (_, c) => input.labels[r * V + c]!);
  return (r, s, t) => {
    if (teacher.kind === 'sparse') {
      const K = teacher.k;
      const ref = referenceSparseDistillationLoss(
        {
          batch: 1,
          classes: V,
          topK: K,
          student: s,
          indices: Array.from({ length: K }, (_, k) => teacher.indices[r * K + k]!),
          logProbs: Array.from({ length: K }, (_, k) => teacher.logProbs[r * K + k]!),
          labels: labelsOf(r),
          labelKind: input.labelKind,
        },
        cfg,
      );
      return { loss: ref.value[0]!, gs: ref.gradStudent, gt: null };
    }
    const ref = referenceDistillationLoss(
      {
        batch: 1,
        classes: V,
        student: s,
        teacher: t!,
        labels: labelsOf(r),
        labelKind: input.labelKind,
      },
      cfg,
    );
    return { loss: ref.value[0]!, gs: ref.gradStudent, gt: ref.gradTeacher };
  };
}

/**
 * Step 3 for one row: the value's Lipschitz term, and (unless valueOnly) each gradient
 * element's, from the Hessian by central differences.
 */
function lipschitzRow(
  evalRow: ReturnType<typeof rowEvaluator>,
  r: number,
  s: Float64Array,
  t: Float64Array | null,
  dS: Float64Array,
  dT: Float64Array | null,
  temperature: number,
  valueOnly: boolean,
): { value: number; grad: Float64Array } {
  const V = s.length;
  const at = evalRow(r, s, t);
  let value = 0;
  for (let v = 0; v < V; v++) {
    if (dS[v]! > 0) value += Math.abs(at.gs[v]!) * dS[v]!;
    if (dT && at.gt && dT[v]! > 0) value += Math.abs(at.gt[v]!) * dT[v]!;
  }
  const grad = new Float64Array(V);
  if (valueOnly) return { value, grad };
  const eta = 1e-4 * Math.min(1, temperature);
  const perturb = (x: Float64Array, j: number, delta: number, isS: boolean) => {
    const y = Float64Array.from(x);
    y[j] = y[j]! + delta;
    return isS ? evalRow(r, y, t) : evalRow(r, s, y);
  };
  const accumulate = (x: Float64Array, d: Float64Array, isS: boolean) => {
    for (let j = 0; j < V; j++) {
      if (!(d[j]! > 0) || !Number.isFinite(x[j]!)) continue;
      const plus = perturb(x, j, eta, isS).gs;
      const minus = perturb(x, j, -eta, isS).gs;
      for (let v = 0; v < V; v++) {
        const h = (plus[v]! - minus[v]!) / (2 * eta);
        if (Number.isFinite(h)) grad[v] += Math.abs(h) * d[j]!;
      }
    }
  };
  accumulate(s, dS, true);
  if (t && dT) accumulate(t, dT, false);
  return { value, grad };
}

/**
 * The derived per-element tolerances (the module's header) of `fusedLinearDistillationLoss` on
 * `input` against {@link referenceFusedLinearDistillationLoss} (passed in `ref`, or computed).
 */
export function linearTolerances(
  input: LinearReferenceInput,
  ref: LinearReferenceResult = referenceFusedLinearDistillationLoss(input),
  options: LinearToleranceOptions = {},
): LinearTolerances {
  const adapters = options.adapters ?? ['software', 'hardware'];
  const valueOnly = options.valueOnly ?? false;
  const { rows, hiddenSize: H, vocab: V } = input;
  const config = input.config ?? {};
  const scale = config.logitScale ?? 1;
  const cap = config.softCap;
  const loss = lossConfigOf(config);
  const cfg = resolveConfig(loss);
  const counted = ref.counted;
  const z = ref.logits;
  const t = ref.teacherLogits;

  // step 1
  const student = logitBounds(
    rows,
    H,
    V,
    input.hidden,
    input.weight,
    input.bias,
    ref.rawLogits,
    scale,
    cap,
  );
  let dT: Float64Array | null = null;
  if (input.teacher.kind === 'head') {
    const th = input.teacher;
    const raw = linearLogits64(rows, th.hiddenSize, V, th.hidden, th.weight, th.bias);
    dT = logitBounds(rows, th.hiddenSize, V, th.hidden, th.weight, th.bias, raw, scale, cap).dOut;
  }

  // steps 2 and 3 for the loss, and (values only) for the components
  const parts = (alpha: number, values: boolean) => {
    const lc: DistillationLossConfig = { ...loss, alpha, returnComponents: false };
    const given = givenLogitBounds(input, z, t, lc, counted, adapters);
    const evalRow = rowEvaluator(input, lc);
    const value = new Float64Array(rows);
    const grad = new Float64Array(rows * V);
    for (let r = 0; r < rows; r++) {
      if (!counted[r]) continue;
      const sl = (x: Float64Array) => x.subarray(r * V, (r + 1) * V);
      const lip = lipschitzRow(
        evalRow,
        r,
        Float64Array.from(sl(z)),
        t ? Float64Array.from(sl(t)) : null,
        sl(student.dOut),
        dT ? sl(dT) : null,
        cfg.temperature,
        values,
      );
      value[r] = given.value[r]! + SAFETY * lip.value;
      for (let v = 0; v < V; v++) {
        grad[r * V + v] = given.grad[r * V + v]! + SAFETY * lip.grad[v]!;
      }
    }
    return { value, grad };
  };
  const main = parts(cfg.alpha, valueOnly);

  // step 6
  let N = 0;
  for (let r = 0; r < rows; r++) if (counted[r]) N++;
  const reduceBound = (
    rowBound: Float64Array,
    rowLoss: ArrayLike<number>,
    reduced: ArrayLike<number>,
  ) => {
    if (cfg.reduction === 'none') return rowBound.map((x) => x + FTZ_FLOOR);
    const w = cfg.reduction === 'mean' ? 1 / Math.max(N, 1) : 1;
    let err = 0;
    let mag = 0;
    for (let r = 0; r < rows; r++) {
      if (!counted[r]) continue;
      err += rowBound[r]!;
      mag += Number.isFinite(rowLoss[r]!) ? Math.abs(rowLoss[r]!) : 0;
    }
    return Float64Array.of(
      w * err + SAFETY * (gamma(rows + 10) * w * mag + U * Math.abs(reduced[0]!)) + FTZ_FLOOR,
    );
  };
  const value = reduceBound(main.value, ref.rowLosses, ref.value);
  let hardLoss = new Float64Array(0);
  let softLoss = new Float64Array(0);
  if (cfg.returnComponents) {
    // the components' row values, CE_r and k D_r: the reference's row losses at α = 1 and α = 0
    const at = (alpha: number) =>
      referenceFusedLinearDistillationLoss({
        ...input,
        config: { ...config, alpha, reduction: 'none', returnComponents: false },
      }).rowLosses;
    hardLoss = reduceBound(parts(1, true).value, at(1), ref.hardLoss);
    softLoss = reduceBound(parts(0, true).value, at(0), ref.softLoss);
  }

  // step 4
  const dy = input.dy;
  const gradRawLogits = new Float64Array(rows * V);
  const gRaw = ref.gradRawLogits;
  if (!valueOnly) {
    for (let r = 0; r < rows; r++) {
      if (!counted[r]) continue;
      const up = upstreamFor(dy, r, rows);
      const w = Math.abs(cfg.reduction === 'mean' ? up / Math.max(N, 1) : up);
      for (let v = 0; v < V; v++) {
        const i = r * V + v;
        if (ref.rawLogits[i] === -Infinity) {
          gradRawLogits[i] = FTZ_FLOOR;
          continue;
        }
        const gp = Math.abs(ref.gradLogits[i]!);
        const dgp = w * main.grad[i]! + 2 * U * gp;
        if (cap === undefined) {
          gradRawLogits[i] = scale * dgp + U * Math.abs(gRaw[i]!) + FTZ_FLOOR;
        } else {
          const tau = Math.tanh((scale * ref.rawLogits[i]!) / cap);
          gradRawLogits[i] =
            scale * (1 - tau * tau) * dgp +
            SAFETY *
              (gp * scale * 2 * Math.abs(tau) * student.dTau[i]! + 6 * U * Math.abs(gRaw[i]!)) +
            FTZ_FLOOR;
        }
      }
    }
  }

  // step 5
  const gradHidden = new Float64Array(rows * H);
  const gradWeight = new Float64Array(H * V);
  const gradBias = new Float64Array(V);
  if (!valueOnly) {
    const gRows = gamma(rows + 2);
    const gV = gamma(V + 2);
    for (let r = 0; r < rows; r++) {
      for (let v = 0; v < V; v++) {
        const g = Math.abs(gRaw[r * V + v]!);
        const dg = gradRawLogits[r * V + v]!;
        gradBias[v] += SAFETY * gRows * g + dg;
        for (let k = 0; k < H; k++) {
          const h = Math.abs(input.hidden[r * H + k]!);
          const wkv = Math.abs(input.weight[k * V + v]!);
          gradWeight[k * V + v] += SAFETY * gRows * h * g + h * dg;
          gradHidden[r * H + k] += SAFETY * gV * g * wkv + wkv * dg;
        }
      }
    }
    for (const a of [gradHidden, gradWeight, gradBias]) {
      for (let i = 0; i < a.length; i++) a[i] = a[i]! + FTZ_FLOOR;
    }
  }
  return {
    value,
    hardLoss,
    softLoss,
    gradHidden,
    gradWeight,
    gradBias,
    logits: student.dOut,
    gradRawLogits,
  };
}
