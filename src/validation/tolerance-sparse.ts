/**
 * The per-element tolerances of the fused kernel for a sparse (top-K) teacher
 * (shaders/distill-sparse.wgsl) against the float64 reference (src/reference-sparse.ts), and the
 * entries of seeded sparse teachers: shared by test/sparse-teacher.test.ts and the numerics
 * suite's 'top-K teacher' family (cases.ts, suite.ts).
 *
 * Derived per element, as tolerance.ts does for dense teachers
 * (its notation: u = 2⁻²⁴, ε = 2u; WGSL exp(x) within (3 + 2|x|) ε relative, log within 2⁻²¹
 * absolute on [0.5, 2] and 3 ulp elsewhere; a sum of same-signed terms along a dependency chain
 * of depth D within D u relative; first order, times SAFETY = 2 for the second-order terms and
 * the few scalar roundings not itemised), for the kernel's own forms:
 * - The student's sweep is the dense kernels' (same plan, same online softmax), so log Z1 and
 *   log ZS carry the dense bounds: ε (3 + 2 E|arg| + 3 R + 2 range) + u (D + 2) + the log's,
 *   with D = rowSumDepth and R = rescaleCount of tolerance.ts (the plan's scan replayed).
 * - The entries: v_k = (ℓ_k − m_ℓ)/T and u_k = (s_{i_k} − m_s)/T within 3u of themselves;
 *   e^{v_k} within e_k = (3 + 2|v_k|) ε + 3u|v_k| relative; ZP = Σ e^v and A = Σ e^v (v − u)
 *   accumulated by ⌈K / tileCols⌉ entries per invocation then a log₂(tileCols) tree, with R_K
 *   rescalings (replayed: the strict new maxima of ℓ in each invocation's strided scan, plus the
 *   merges), each within (3 + 2|shift|) ε, the shifts telescoping to ≤ range(v):
 *     δZP/ZP ≤ Σ p_k e_k + ε (3 R_K + 2 range v) + u (D_K + 2)
 *     δ(A/ZP) ≤ Σ p_k (e_k |v_k − u_k| + 3u (|v_k| + |u_k|) + u |v_k − u_k|)
 *              + (ε (3 R_K + 2 range v) + u (D_K + 2)) E_p|v − u| + 2u R_K range v + |A/ZP| (δZP/ZP + u)
 *     KL = A/ZP − log ZP + log ZS:  δKL ≤ δ(A/ZP) + δ log ZP + δ log ZS + 2u (|A/ZP| + |log ZP| + |log ZS|)
 *   (direct form: an absolute error of a few ulps of log C, as the WGSL header says).
 * - CE_b as the dense bound: |Σy| δ log Z1 + u (D + 2)(Σ|y d| + |Σy log Z1|) + 2u |CE|.
 * - ℓ_b within SAFETY (α δCE + (1 − α) k δKL + 2u (α |CE| + (1 − α) k |KL|)); 'mean' / 'sum'
 *   add the batch sum's chain (batchSumDepth, or ⌈B/256⌉ + 8 for the components kernel) over
 *   Σ|ℓ_b|, times the row weight (1 / max(N, 1) for 'mean' over N counted rows).
 * - ∂ℓ/∂s_c = w [α (σ_c Σy − y_c) + κ (q_c − P_c)], κ = (1 − α) k / T: σ and q are exp of
 *   (d − log Z1) and (d / T − log ZS) with their arguments' errors; each p_k = exp(v_k − log ZP)
 *   likewise (δ log ZP); the m_c entries at column c are subtracted one by one, and with the
 *   products by w, dy and κ that is ≤ (m_c + 6) roundings of u |w| (α (σ|Σy| + |y_c|) + κ (q_c + P_c));
 *   results below the smallest normal float32 (1.2e-38) may be flushed: that much per factor.
 * Rows with −Infinity student logits take the bounds of a finite stand-in 40 T below the row's
 * minimum (the reference itself sees −Infinity: its exact zeros, +Infinity and NaN must match
 * exactly; compare.ts never lets a special value pass on a tolerance).
 */
import { choosePlan, type AdapterClass } from '../kernels/plan.js';
import type { SparseReferenceInput } from '../reference-sparse.js';
import {
  batchSumDepth,
  EPS,
  expSumError,
  FTZ_FLOOR,
  logError,
  rescaleCount,
  rowSumDepth,
  SAFETY,
  toleranceContext,
  U,
  type LossToleranceConfig,
  type ToleranceContext,
} from './tolerance.js';

/** A sparse case's inputs, row-major (as the reference takes them, without dy). */
export type SparseToleranceInput = Omit<SparseReferenceInput, 'dy'>;

export interface SparseToleranceConfig extends LossToleranceConfig {
  readonly temperatureSquared?: boolean;
}

/**
 * K entries per row for `batch` rows of `classes`: distinct ids when K ≤ C (else drawn with
 * replacement: duplicates), log-probabilities log_softmax of teacher logits uniform in ±6
 * minus a random offset in [0, 1) (the mass outside the top K), sorted in descending order
 * (as a server returns them) when `sorted`. Draws from `rng` in a fixed order.
 */
export function sparseEntries(
  rng: () => number,
  batch: number,
  classes: number,
  topK: number,
  sorted = false,
): { indices: Int32Array; logProbs: Float32Array } {
  const K = topK;
  const indices = new Int32Array(batch * K);
  const logProbs = new Float32Array(batch * K);
  for (let b = 0; b < batch; b++) {
    const seen = new Set<number>();
    for (let k = 0; k < K; k++) {
      let id = Math.floor(rng() * classes);
      if (K <= classes) {
        while (seen.has(id)) id = Math.floor(rng() * classes);
        seen.add(id);
      }
      indices[b * K + k] = id;
    }
    const t = Array.from({ length: K }, () => (rng() * 2 - 1) * 6);
    let m = -Infinity;
    for (const v of t) m = Math.max(m, v);
    const lse = m + Math.log(t.reduce((a, v) => a + Math.exp(v - m), 0)) + rng();
    const lp = t.map((v) => v - lse);
    if (sorted) lp.sort((x, y) => y - x);
    logProbs.set(lp, b * K);
  }
  return { indices, logProbs };
}

interface RowBound {
  /** Float64 values of the (stand-in) row and bounds on their float32 errors. */
  ce: number;
  dCe: number;
  kl: number;
  dKl: number;
  loss: number;
  dLoss: number;
  /** Per-element bound of ∂ℓ_b/∂s at unit weight. */
  grad: Float64Array;
}

function isListed(id: number, lp: number, C: number): boolean {
  return id >= 0 && id < C && !Number.isNaN(lp) && Math.abs(lp) !== Infinity;
}

function rowBound(x: SparseToleranceInput, b: number, ctx: ToleranceContext): RowBound {
  const { classes: C, topK: K } = x;
  const { temperature: T, alpha } = ctx;
  const kappa = ctx.klWeight / T;
  // the student's row, −Infinity (and NaN: such rows are NaN, matched exactly) stood in for
  let minS = Infinity;
  for (let j = 0; j < C; j++) {
    const v = x.student[b * C + j]!;
    if (Number.isFinite(v)) minS = Math.min(minS, v);
  }
  if (!Number.isFinite(minS)) minS = 0;
  const s = Float64Array.from({ length: C }, (_, j) => {
    const v = x.student[b * C + j]!;
    return v === -Infinity ? minS - 40 * T : Number.isNaN(v) || v === Infinity ? minS : v;
  });
  let ms = -Infinity;
  for (const v of s) ms = Math.max(ms, v);
  const range = ms - minS + (s.some((v) => v < minS) ? 40 * T : 0);
  const d = s.map((v) => v - ms);
  let z1 = 0;
  let zs = 0;
  for (const dc of d) {
    z1 += Math.exp(dc);
    zs += Math.exp(dc / T);
  }
  const logZ1 = Math.log(z1);
  const logZS = Math.log(zs);
  let wD = 0;
  let wU = 0;
  for (const dc of d) {
    wD += Math.exp(dc - logZ1) * Math.abs(dc);
    wU += Math.exp(dc / T - logZS) * Math.abs(dc / T);
  }
  const D = rowSumDepth(ctx);
  const kS = rescaleCount(s, ctx);
  const dLogZ1 = expSumError(wD, kS, range, D) + logError(z1);
  const dLogZS = expSumError(wU, kS, range / T, D) + logError(zs);

  // the listed entries
  const plan = choosePlan(ctx.batch, C, ctx.reduceToScalar, ctx.adapter);
  const tileCols = plan.tileCols;
  const treeDepth = Math.log2(tileCols);
  const ids: number[] = [];
  const lps: number[] = [];
  let rescales = 0;
  for (let j = 0; j < Math.min(tileCols, K); j++) {
    let running = -Infinity;
    let count = 0;
    for (let k = j; k < K; k += tileCols) {
      const lp = x.logProbs[b * K + k]!;
      if (!isListed(x.indices[b * K + k]!, lp, C)) continue;
      if (lp > running) {
        if (running !== -Infinity) count++;
        running = lp;
      }
    }
    rescales = Math.max(rescales, count);
  }
  for (let k = 0; k < K; k++) {
    const id = x.indices[b * K + k]!;
    const lp = x.logProbs[b * K + k]!;
    if (isListed(id, lp, C)) {
      ids.push(id);
      lps.push(lp);
    }
  }
  const rK = rescales + treeDepth;
  const dK = Math.ceil(K / tileCols) + treeDepth;
  let kl = 0;
  let dKl = 0;
  const pAt = new Float64Array(C);
  const dPAt = new Float64Array(C);
  const countAt = new Uint32Array(C);
  if (ids.length > 0) {
    const ml = Math.max(...lps);
    const mn = Math.min(...lps);
    const rangeV = (ml - mn) / T;
    const v = lps.map((l) => (l - ml) / T);
    const zp = v.reduce((a, vk) => a + Math.exp(vk), 0);
    const logZP = Math.log(zp);
    const uk = ids.map((id) => d[id]! / T);
    const rescaleErr = EPS * (3 * rK + 2 * rangeV);
    const depthErr = U * (dK + 2);
    let dZP = rescaleErr + depthErr;
    let absVU = 0;
    let mean = 0;
    let dA = 0;
    for (let k = 0; k < ids.length; k++) {
      const p = Math.exp(v[k]! - logZP);
      const vu = v[k]! - uk[k]!;
      const e = EPS * (3 + 2 * Math.abs(v[k]!)) + 3 * U * Math.abs(v[k]!);
      dZP += p * e;
      absVU += p * Math.abs(vu);
      mean += p * vu;
      dA +=
        p * (e * Math.abs(vu) + 3 * U * (Math.abs(v[k]!) + Math.abs(uk[k]!)) + U * Math.abs(vu));
      kl += p * (v[k]! - logZP - (uk[k]! - logZS));
    }
    dA += (rescaleErr + depthErr) * absVU + 2 * U * rK * rangeV;
    const dMean = dA + Math.abs(mean) * (dZP + U);
    const dLogZP = dZP + logError(zp);
    dKl = dMean + dLogZP + dLogZS + 2 * U * (Math.abs(mean) + Math.abs(logZP) + Math.abs(logZS));
    for (let k = 0; k < ids.length; k++) {
      const logP = v[k]! - logZP;
      const p = Math.exp(logP);
      pAt[ids[k]!] += p;
      dPAt[ids[k]!] +=
        p * (EPS * (3 + 2 * Math.abs(logP)) + U * (3 * Math.abs(v[k]!) + Math.abs(logP)) + dLogZP);
      countAt[ids[k]!]++;
    }
  }

  // CE and the labels
  let y: Float64Array | null = new Float64Array(C);
  if (x.labelKind === 'index') {
    const label = x.labels[b]!;
    if (label >= 0 && label < C) y[label] = 1;
    else y = null;
  } else {
    for (let j = 0; j < C; j++) y[j] = x.labels[b * C + j]!;
  }
  let ySum = 0;
  let yd = 0;
  let ce = 0;
  if (y) {
    for (let j = 0; j < C; j++) {
      ySum += y[j]!;
      yd += Math.abs(y[j]! * d[j]!);
      ce -= y[j]! * (d[j]! - logZ1);
    }
  }
  const dCe =
    Math.abs(ySum) * dLogZ1 + U * (D + 2) * (yd + Math.abs(ySum * logZ1)) + 2 * U * Math.abs(ce);
  const loss = alpha * ce + ctx.klWeight * kl;
  const dLoss =
    SAFETY *
    (alpha * dCe +
      ctx.klWeight * dKl +
      2 * U * (alpha * Math.abs(ce) + ctx.klWeight * Math.abs(kl)));

  const grad = new Float64Array(C);
  for (let j = 0; j < C; j++) {
    const logSigma = d[j]! - logZ1;
    const sigma = Math.exp(logSigma);
    const dSigma =
      sigma *
      (EPS * (3 + 2 * Math.abs(logSigma)) + U * (Math.abs(d[j]!) + Math.abs(logSigma)) + dLogZ1);
    const logQ = d[j]! / T - logZS;
    const q = Math.exp(logQ);
    const dQ =
      q *
      (EPS * (3 + 2 * Math.abs(logQ)) + U * (3 * Math.abs(d[j]! / T) + Math.abs(logQ)) + dLogZS);
    const yj = y ? Math.abs(y[j]!) : 0;
    const magnitude = alpha * (sigma * Math.abs(ySum) + yj) + kappa * (q + pAt[j]!);
    const flushed = FTZ_FLOOR * (alpha * Math.abs(ySum) + (1 + countAt[j]!) * kappa);
    grad[j] =
      SAFETY *
      (alpha * Math.abs(ySum) * dSigma +
        kappa * (dQ + dPAt[j]!) +
        (countAt[j]! + 6) * U * magnitude +
        flushed);
  }
  return { ce, dCe, kl, dKl, loss, dLoss, grad };
}

/** Per-element bounds of a sparse case's outputs against the float64 reference. */
export interface SparseTolerances {
  /** The loss: `[B]` ('none') or one element. */
  value: number[];
  /** ∂L/∂student, row-major `[B, C]`. */
  gradStudent: Float64Array;
  /** The components, reduced like the loss. */
  hardLoss: number[];
  softLoss: number[];
}

/**
 * The derived per-element tolerances of the sparse kernel (shaders/distill-sparse.wgsl) on
 * these inputs (the module's header), for the plan of `adapter` (under any plan override in
 * force, as choosePlan sees it). `dyValues`: the upstream gradient (null: 1); `counted`: 1 per
 * row counted by 'mean' (ignoreIndex; default every row).
 */
export function sparseTolerances(
  x: SparseToleranceInput,
  config: SparseToleranceConfig,
  dyValues: ArrayLike<number> | null,
  adapter: AdapterClass,
  counted?: ArrayLike<number>,
): SparseTolerances {
  const B = x.batch;
  const C = x.classes;
  const k = config.temperatureSquared === false ? 1 : config.temperature ** 2;
  const ctx = toleranceContext(B, C, config, k, adapter);
  const isCounted = (b: number) => (counted ? counted[b] !== 0 : true);
  let n = 0;
  for (let b = 0; b < B; b++) if (isCounted(b)) n++;
  const rowWeight = config.reduction === 'mean' ? 1 / Math.max(n, 1) : 1;
  const rows: RowBound[] = [];
  const gradStudent = new Float64Array(B * C);
  for (let b = 0; b < B; b++) {
    const r = rowBound(x, b, ctx);
    rows.push(r);
    const dy = dyValues ? dyValues[config.reduction === 'none' ? b : 0]! : 1;
    const w = Math.abs(dy * rowWeight);
    for (let j = 0; j < C; j++) gradStudent[b * C + j] = w * r.grad[j]! + FTZ_FLOOR;
  }
  const finite = (v: number) => (Number.isFinite(v) ? Math.abs(v) : 0);
  const reduced = (err: (r: RowBound) => number, mag: (r: RowBound) => number, depth: number) => {
    let e = 0;
    let m = 0;
    rows.forEach((r, b) => {
      if (!isCounted(b)) return;
      e += finite(err(r));
      m += finite(mag(r));
    });
    return [rowWeight * (e + SAFETY * U * (depth + 2) * m)];
  };
  const componentDepth = Math.ceil(B / 256) + 8;
  const hardRow = (r: RowBound) => SAFETY * r.dCe + U * Math.abs(r.ce);
  const softRow = (r: RowBound) => SAFETY * k * r.dKl + 2 * U * k * Math.abs(r.kl);
  if (config.reduction === 'none') {
    return {
      value: rows.map((r) => r.dLoss),
      gradStudent,
      hardLoss: rows.map(hardRow),
      softLoss: rows.map(softRow),
    };
  }
  return {
    value: reduced(
      (r) => r.dLoss,
      (r) => r.loss,
      batchSumDepth(ctx),
    ),
    gradStudent,
    hardLoss: reduced(hardRow, (r) => r.ce, componentDepth),
    softLoss: reduced(softRow, (r) => k * r.kl, componentDepth),
  };
}
