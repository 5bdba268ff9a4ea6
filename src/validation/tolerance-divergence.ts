/**
 * Per-element tolerances of the fused kernels for reverse KL and the JSD (the second sweep of
 * shaders/distill-divergence.wgsl) against the float64 reference (src/reference.ts), with
 * −Infinity masks and ignored rows: the numerics suite's 'divergence' family (cases.ts,
 * suite.ts).
 *
 * Which quantities are summed, which errors cancel and which term sizes bound the gradients is
 * test/divergences-fused.test.ts's analysis of these kernels (its header); the bound of each
 * operation is tolerance.ts's (u = 2⁻²⁴, ε = 2u; WGSL exp(x) within (3 + 2|x|) ε relative, log
 * within 2⁻²¹ absolute on [0.5, 2] and 3 ULP elsewhere; a sum along a chain of depth D within
 * D u; the plan's scan replayed for D and the online rescalings; first order, times SAFETY = 2
 * for the second-order terms and the scalar roundings not itemised), taken from there:
 * expSumError, logError, centredKlError, rowSumDepth, rescaleCount, batchSumDepth. Per row b
 * (finite logits only; a masked column is probability 0):
 * - The first sweep is forward KL's: log Z1, log ZS, log ZT within expSumError (the exps'
 *   weighted |argument|, the rescalings replayed on s and t, the row's finite range) + the log's
 *   error; q = exp(u − log ZS) within e_q = (3 + 2|log q|) ε + u (3|u| + |log q|) + δ log ZS
 *   relative, p likewise (as tolerance.ts's dPRel).
 * - The second sweep keeps each KL(w ‖ m) as Σ w, Σ w x, Σ w g(x) with x around a fixed centre
 *   (no recentring): centredKlError with depth D and recentring 0. Reverse KL: w = q, m = p,
 *   x = r = (u − v) − (log ZS − log ZT) within u (3|u| + 3|v| + |u − v| + |r|); the error of
 *   the constant log ZS − log ZT cancels exactly (KL = E_w[x] + log E_w[e^−x] for any constant
 *   in x; the gradients use x − E_w[x]). JSD: w = p and w = q, m = M, x = δ_p = log p − log M
 *   and δ_q = log q − log M from r: where |r| ≤ 1, −log1p((1 − β) expm1(r)) and
 *   −log1p(β expm1(−r)) (each series within 6u of its result, their arguments' errors carried by
 *   the derivatives, (1 − β) q / M ≤ 1 and β p / M ≤ 1); elsewhere from c = log(1 − β) − log β
 *   + r and log1p(e^−|c|) (exp's (3 + 2|c|) ε, the float32 constants log β and log(1 − β)
 *   within u of themselves); a one-sided mask gives δ = −log β or −log(1 − β) exactly but for
 *   that constant's rounding; either branch within 0.01 of a switch. M = exp(log p − δ_p) (or
 *   from q) within exp's error plus its argument's. The error of log ZS − log ZT in r does not
 *   cancel in each KL but is the JSD of a mixture weight β' = β / (β + (1 − β) e^c) (the
 *   kernels' y renormalises M): D_β is stationary in β' at β' = β (M_β minimises β KL(p ‖ M) +
 *   (1 − β) KL(q ‖ M)), so it is second order in the value; it is first order in the gradients,
 *   within w · c (|∂δ/∂r| ≤ 1), counted twice there (x and E_w[x]). β rounded to float32 moves D
 *   by |KL(p ‖ M) − KL(q ‖ M)| u β ≤ u max(KL(p ‖ M), KL(q ‖ M)).
 * - D_b is +Infinity for reverse KL where the teacher masks a column the student does not: the
 *   value and the student's gradient (NaN where q > 0) must then match exactly (compare.ts never
 *   lets a special value pass on a tolerance); the teacher's gradient, p − q, is the plain
 *   difference there.
 * - CE_b, σ and ℓ_b as tolerance.ts (rowBounds, studentGradTolerance); a term of weight 0 is
 *   dropped, an infinite one included.
 * - Gradients (before w_b dy_b): the student's α (σ Σy − y) + κ G_s, the teacher's κ G_t,
 *   κ = (1 − α) k / T. A probability-weighted deviation G = w (x − E_w[x]) (reverse KL's student,
 *   both of the JSD's, times 1 − β or β) within w e_w L + w (δx + δE_w[x]) + 3u w L, L = |x −
 *   E_w[x]| (tolerance.ts's teacherGradTolerance); reverse KL's teacher p − q as forward KL's
 *   student q − p with the roles swapped: q expm1(E_q[x] − x − D) where that argument is below 1
 *   in magnitude, else the plain difference (studentGradTolerance's dKlPart). Then SAFETY, the
 *   products' roundings (5u of the terms' magnitudes), results below the smallest normal float32
 *   (1.2e-38) flushed: that much per factor.
 * - 'mean' / 'sum': the rows' bounds plus the batch sum's chain (batchSumDepth) over Σ|ℓ_b|,
 *   times the row weight (1 / max(N, 1) for 'mean' over the N counted rows). Ignored rows are
 *   exact zeros.
 * The float64 values the bounds are taken at are the reference's own (the JSD's log M, δ_p, δ_q:
 * jsdMixture64 of src/divergences.ts). Measured on lavapipe over the family, the largest error
 * is 1.4 % of its bound for loss values, 23 % (student) and 6 % (teacher) for gradient
 * elements; references with α off by 1e-3, T × 1.001, β off by 1e-3 or another divergence are
 * rejected (test/numerics-divergences.test.ts), so the bounds are not vacuous.
 */
import { jsdMixture64 } from '../divergences.js';
import type { AdapterClass } from '../kernels/plan.js';
import type { ReferenceInput } from '../reference.js';
import {
  batchSumDepth,
  centredKlError,
  EPS,
  expSumError,
  FTZ_FLOOR,
  logError,
  rescaleCount,
  rowSumDepth,
  SAFETY,
  toleranceContext,
  U,
  type KlTermsBound,
  type LossToleranceConfig,
  type ToleranceContext,
} from './tolerance.js';

/** The divergences this module bounds (forward KL's are tolerance.ts's). */
export type BoundedDivergence = 'reverse-kl' | 'jsd';

/** A dense case's inputs, row-major (as the reference takes them, without dy). */
export type DivergenceToleranceInput = Omit<ReferenceInput, 'dy'>;

export interface DivergenceToleranceConfig extends LossToleranceConfig {
  readonly divergence: BoundedDivergence;
  /** β of 'jsd' (default 0.5). */
  readonly beta?: number;
  /** Rows whose (index) label equals it are ignored; undefined: none. */
  readonly ignoreIndex?: number;
}

/** Per-element bounds of a case's outputs against the float64 reference. */
export interface DivergenceTolerances {
  /** The loss: `[B]` ('none') or one element. */
  value: number[];
  /** ∂L/∂student and ∂L/∂teacher, row-major `[B, C]`. */
  gradStudent: Float64Array;
  gradTeacher: Float64Array;
}

interface RowBound {
  loss: number;
  dLoss: number;
  /** Per element, at unit row weight. */
  gradStudent: Float64Array;
  gradTeacher: Float64Array;
}

const finite = (x: number): number => (Number.isFinite(x) ? x : 0);

/** The JSD's δ_p, δ_q errors at one column where both sides have mass (the header). */
function jsdDeltaErrors(
  r: number,
  dR: number,
  deltaP: number,
  deltaQ: number,
  beta: number,
): { dP: number; dQ: number } {
  const logB = Math.abs(Math.log(beta));
  const log1mB = Math.abs(Math.log1p(-beta));
  // near: −log1p((1 − β) expm1(r)), −log1p(β expm1(−r))
  const near = (weight: number, rr: number, delta: number) => {
    const e = Math.expm1(rr);
    const z = weight * e;
    const dE = Math.exp(rr) * dR + 6 * U * Math.abs(e);
    const dZ = weight * dE + 3 * U * Math.abs(z);
    return dZ / (1 + z) + 6 * U * Math.abs(delta);
  };
  // far: from c = log(1 − β) − log β + r and l = log1p(e^−|c|)
  const c = Math.log1p(-beta) - Math.log(beta) + r;
  const dC = dR + 2 * U * (logB + log1mB) + U * Math.abs(c);
  const e = Math.exp(-Math.abs(c));
  const dE = e * (EPS * (3 + 2 * Math.abs(c)) + dC);
  const l = Math.log1p(e);
  const dL = dE / (1 + e) + 6 * U * l;
  const far = (delta: number, withR: boolean) =>
    dL + U * (Math.max(logB, log1mB) + l + Math.abs(delta) + Math.abs(r)) + (withR ? dR : 0);
  const aWins = c <= 0;
  const farP = far(deltaP, !aWins);
  const farQ = far(deltaQ, aWins);
  const nearP = near(1 - beta, r, deltaP);
  const nearQ = near(beta, -r, deltaQ);
  if (Math.abs(Math.abs(r) - 1) < 0.01 || Math.abs(c) < 0.01) {
    // within 0.01 of a switch either branch may have run: the larger bound of each
    return {
      dP: Math.max(nearP, far(deltaP, true)),
      dQ: Math.max(nearQ, far(deltaQ, true)),
    };
  }
  return Math.abs(r) <= 1 ? { dP: nearP, dQ: nearQ } : { dP: farP, dQ: farQ };
}

function rowBound(
  x: DivergenceToleranceInput,
  b: number,
  ctx: ToleranceContext,
  cfg: DivergenceToleranceConfig,
): RowBound {
  const C = x.classes;
  const T = ctx.temperature;
  const alpha = ctx.alpha;
  const kappa = ctx.klWeight / T;
  const beta = cfg.beta ?? 0.5;
  const gradStudent = new Float64Array(C);
  const gradTeacher = new Float64Array(C);
  const s = Float64Array.from({ length: C }, (_, c) => x.student[b * C + c]!);
  const t = Float64Array.from({ length: C }, (_, c) => x.teacher[b * C + c]!);
  const maskS = Array.from(s, (v) => v === -Infinity);
  const maskT = Array.from(t, (v) => v === -Infinity);
  const bad = (a: Float64Array, mask: boolean[]) =>
    a.some((v) => Number.isNaN(v) || v === Infinity) || mask.every(Boolean);
  if (bad(s, maskS) || bad(t, maskT)) {
    // a NaN row: every output NaN (or the teacher's finite where only the labels are bad),
    // matched exactly; nothing to bound
    return { loss: NaN, dLoss: 0, gradStudent, gradTeacher };
  }
  let ms = -Infinity;
  let minS = Infinity;
  let mt = -Infinity;
  let minT = Infinity;
  for (let c = 0; c < C; c++) {
    if (!maskS[c]) [ms, minS] = [Math.max(ms, s[c]!), Math.min(minS, s[c]!)];
    if (!maskT[c]) [mt, minT] = [Math.max(mt, t[c]!), Math.min(minT, t[c]!)];
  }
  const rangeS = ms - minS;
  const rangeT = mt - minT;
  // the size of a tempered log-probability (or log-ratio): a flushed probability's factor
  const sizeL = Math.max(rangeS, rangeT) / T + Math.log(C) + Math.abs(Math.log(beta));
  const d = s.map((v) => v - ms); // −Infinity where masked
  const u = d.map((v) => v / T);
  const v = t.map((w) => (w - mt) / T);
  let z1 = 0;
  let zs = 0;
  let zt = 0;
  for (let c = 0; c < C; c++) {
    z1 += Math.exp(d[c]!);
    zs += Math.exp(u[c]!);
    zt += Math.exp(v[c]!);
  }
  const logZ1 = Math.log(z1);
  const logZS = Math.log(zs);
  const logZT = Math.log(zt);
  const logQ = u.map((a) => a - logZS);
  const logP = v.map((a) => a - logZT);
  const q = logQ.map(Math.exp);
  const p = logP.map(Math.exp);
  let wD = 0;
  let wU = 0;
  let wV = 0;
  for (let c = 0; c < C; c++) {
    if (!maskS[c]) {
      wD += Math.exp(d[c]! - logZ1) * Math.abs(d[c]!);
      wU += q[c]! * Math.abs(u[c]!);
    }
    if (!maskT[c]) wV += p[c]! * Math.abs(v[c]!);
  }
  const D = rowSumDepth(ctx);
  const kS = rescaleCount(s, ctx);
  const kT = rescaleCount(t, ctx);
  const dLogZ1 = expSumError(wD, kS, rangeS, D) + logError(z1);
  const dLogZS = expSumError(wU, kS, rangeS / T, D) + logError(zs);
  const dLogZT = expSumError(wV, kT, rangeT / T, D) + logError(zt);
  const dQRel = logQ.map((lq, c) =>
    maskS[c] ? 0 : EPS * (3 + 2 * Math.abs(lq)) + U * (3 * Math.abs(u[c]!) + Math.abs(lq)) + dLogZS,
  );
  const dPRel = logP.map((lp, c) =>
    maskT[c] ? 0 : EPS * (3 + 2 * Math.abs(lp)) + U * (3 * Math.abs(v[c]!) + Math.abs(lp)) + dLogZT,
  );
  // r = log q − log p as the kernels form it: (u − v) − (log ZS − log ZT); its per-element error
  const both = Array.from({ length: C }, (_, c) => !maskS[c] && !maskT[c]);
  const r = Float64Array.from({ length: C }, (_, c) => (both[c] ? logQ[c]! - logP[c]! : 0));
  const dR = Float64Array.from({ length: C }, (_, c) =>
    both[c]
      ? U * (3 * Math.abs(u[c]!) + 3 * Math.abs(v[c]!) + Math.abs(u[c]! - v[c]!) + Math.abs(r[c]!))
      : 0,
  );
  // the error of the row constant log ZS − log ZT (cancels in reverse KL; see the header)
  const constErr = dLogZS + dLogZT + U * Math.abs(logZS - logZT);

  // the divergence: its value, its error, and the soft gradients' values and errors
  let div: number;
  let dDiv: number;
  const gS = new Float64Array(C);
  const gT = new Float64Array(C);
  const dGS = new Float64Array(C);
  const dGT = new Float64Array(C);
  /** w (x − E_w[x]) scaled by `weight`, and its error bound (the header). */
  const deviation = (
    weight: number,
    w: number,
    dWRel: number,
    xc: number,
    dXc: number,
    meanX: number,
    dMeanX: number,
  ): [number, number] => {
    const L = Math.abs(xc - meanX);
    const g = weight * w * (xc - meanX);
    return [g, weight * (w * dWRel * L + w * (dXc + dMeanX) + 3 * U * w * L) + U * Math.abs(g)];
  };
  if (cfg.divergence === 'reverse-kl') {
    const infinite = both.some((_, c) => !maskS[c] && maskT[c]);
    if (infinite) {
      div = Infinity;
      dDiv = 0;
      for (let c = 0; c < C; c++) {
        // ∂D/∂s: NaN where q > 0 (matched exactly), 0 where masked; ∂D/∂t = p − q, plain
        gS[c] = maskS[c] ? 0 : NaN;
        gT[c] = p[c]! - q[c]!;
        dGT[c] = p[c]! * dPRel[c]! + q[c]! * dQRel[c]! + U * Math.abs(gT[c]!);
      }
    } else {
      let kl = 0;
      for (let c = 0; c < C; c++) if (!maskS[c]) kl += q[c]! * r[c]!;
      const terms: KlTermsBound = {
        w: q,
        dWRel: dQRel,
        x: r,
        dX: dR,
        m: p,
        dM: p.map((pc, c) => pc * dPRel[c]!),
        masked: maskS,
      };
      const e = centredKlError(terms, D, 0, kl);
      div = kl;
      dDiv = e.dKl;
      for (let c = 0; c < C; c++) {
        if (!maskS[c]) {
          [gS[c], dGS[c]] = deviation(1, q[c]!, dQRel[c]!, r[c]!, dR[c]!, e.meanX, e.dMeanX);
        }
        gT[c] = p[c]! - q[c]!;
        if (maskS[c] && maskT[c]) continue;
        const dFar = p[c]! * dPRel[c]! + q[c]! * dQRel[c]! + U * Math.abs(gT[c]!);
        if (!both[c]) {
          dGT[c] = dFar;
          continue;
        }
        // q expm1(log p − log q), log p − log q = E_q[x] − x − D
        const logRatio = e.meanX - r[c]! - kl;
        const dLogRatio =
          dR[c]! +
          e.dMeanX +
          dDiv +
          U *
            (Math.abs(e.meanX) +
              2 * Math.abs(r[c]!) +
              Math.abs(e.meanX - r[c]!) +
              Math.abs(logRatio));
        const dNear =
          Math.abs(gT[c]!) * (dQRel[c]! + 4 * U) + q[c]! * Math.exp(logRatio) * dLogRatio;
        dGT[c] =
          Math.abs(Math.abs(logRatio) - 1) < 0.01
            ? Math.max(dNear, dFar)
            : Math.abs(logRatio) < 1
              ? dNear
              : dFar;
      }
    }
  } else {
    const mix = jsdMixture64(logP, logQ, beta);
    const dDeltaP = new Float64Array(C);
    const dDeltaQ = new Float64Array(C);
    const dM = new Float64Array(C);
    const m = mix.logM.map(Math.exp);
    let klP = 0;
    let klQ = 0;
    for (let c = 0; c < C; c++) {
      if (maskS[c] && maskT[c]) continue;
      let dLogSide: number;
      if (both[c]) {
        const e = jsdDeltaErrors(r[c]!, dR[c]!, mix.deltaP[c]!, mix.deltaQ[c]!, beta);
        dDeltaP[c] = e.dP;
        dDeltaQ[c] = e.dQ;
        // log M from log p (near, or where β p is the larger term) or from log q
        const fromP = Math.abs(r[c]!) <= 1 || Math.log1p(-beta) - Math.log(beta) + r[c]! <= 0;
        dLogSide = fromP
          ? U * (3 * Math.abs(v[c]!) + Math.abs(logP[c]!)) + dLogZT + e.dP
          : U * (3 * Math.abs(u[c]!) + Math.abs(logQ[c]!)) + dLogZS + e.dQ;
      } else if (maskS[c]) {
        dDeltaP[c] = U * Math.abs(Math.log(beta)); // δ_p = −log β, M = β p
        dLogSide = U * (3 * Math.abs(v[c]!) + Math.abs(logP[c]!)) + dLogZT + dDeltaP[c]!;
      } else {
        dDeltaQ[c] = U * Math.abs(Math.log1p(-beta)); // δ_q = −log(1 − β), M = (1 − β) q
        dLogSide = U * (3 * Math.abs(u[c]!) + Math.abs(logQ[c]!)) + dLogZS + dDeltaQ[c]!;
      }
      const logM = mix.logM[c]!;
      dM[c] = m[c]! * (EPS * (3 + 2 * Math.abs(logM)) + dLogSide + U * Math.abs(logM));
      if (!maskT[c]) klP += p[c]! * mix.deltaP[c]!;
      if (!maskS[c]) klQ += q[c]! * mix.deltaQ[c]!;
    }
    const eP = centredKlError(
      { w: p, dWRel: dPRel, x: mix.deltaP, dX: dDeltaP, m, dM, masked: maskT },
      D,
      0,
      klP,
    );
    const eQ = centredKlError(
      { w: q, dWRel: dQRel, x: mix.deltaQ, dX: dDeltaQ, m, dM, masked: maskS },
      D,
      0,
      klQ,
    );
    div = beta * klP + (1 - beta) * klQ;
    dDiv = beta * eP.dKl + (1 - beta) * eQ.dKl + 2 * U * Math.abs(div) + U * Math.max(klP, klQ);
    for (let c = 0; c < C; c++) {
      // the constant's error: first order in the gradients, in x and in E_w[x]
      if (!maskS[c]) {
        [gS[c], dGS[c]] = deviation(
          1 - beta,
          q[c]!,
          dQRel[c]!,
          mix.deltaQ[c]!,
          dDeltaQ[c]! + constErr,
          eQ.meanX,
          eQ.dMeanX + constErr,
        );
      }
      if (!maskT[c]) {
        [gT[c], dGT[c]] = deviation(
          beta,
          p[c]!,
          dPRel[c]!,
          mix.deltaP[c]!,
          dDeltaP[c]! + constErr,
          eP.meanX,
          eP.dMeanX + constErr,
        );
      }
    }
  }

  // the hard term, CE and ℓ_b (tolerance.ts's rowBounds)
  let y: Float64Array | null = new Float64Array(C);
  if (x.labelKind === 'index') {
    const label = x.labels[b]!;
    if (Number.isInteger(label) && label >= 0 && label < C) y[label] = 1;
    else y = null;
  } else {
    for (let c = 0; c < C; c++) y[c] = x.labels[b * C + c]!;
  }
  let ySum = 0;
  let yd = 0;
  let ce = NaN;
  let dCe = 0;
  if (y) {
    ce = 0;
    for (let c = 0; c < C; c++) {
      if (y[c] === 0) continue;
      ySum += y[c]!;
      yd += Math.abs(y[c]! * d[c]!);
      ce -= y[c]! * (d[c]! - logZ1);
    }
    dCe =
      Math.abs(ySum) * dLogZ1 + U * (D + 2) * (yd + Math.abs(ySum * logZ1)) + 2 * U * Math.abs(ce);
  }
  const hard = alpha === 0 ? 0 : alpha * ce;
  const soft = ctx.klWeight === 0 ? 0 : ctx.klWeight * div;
  const loss = hard + soft;
  const dLoss = Number.isFinite(loss)
    ? SAFETY *
      ((alpha === 0 ? 0 : alpha * dCe) +
        (ctx.klWeight === 0 ? 0 : ctx.klWeight * dDiv) +
        2 * U * (Math.abs(hard) + Math.abs(soft)))
    : 0;
  for (let c = 0; c < C; c++) {
    const logSigma = d[c]! - logZ1;
    const sigma = maskS[c] ? 0 : Math.exp(logSigma);
    const dSigma = maskS[c]
      ? 0
      : sigma *
        (EPS * (3 + 2 * Math.abs(logSigma)) + U * (Math.abs(d[c]!) + Math.abs(logSigma)) + dLogZ1);
    const yc = y ? Math.abs(y[c]!) : 0;
    const magnitude = alpha * (sigma * Math.abs(ySum) + yc) + kappa * Math.abs(finite(gS[c]!));
    const flushed = FTZ_FLOOR * (alpha * Math.abs(ySum) + kappa * (2 + 2 * sizeL));
    gradStudent[c] =
      SAFETY *
      (alpha * Math.abs(ySum) * dSigma + kappa * finite(dGS[c]!) + 5 * U * magnitude + flushed);
    gradTeacher[c] =
      SAFETY *
      kappa *
      (finite(dGT[c]!) + 5 * U * Math.abs(finite(gT[c]!)) + FTZ_FLOOR * (2 + 2 * sizeL));
  }
  return { loss, dLoss, gradStudent, gradTeacher };
}

/**
 * The derived per-element tolerances of the fused kernels for reverse KL or the JSD on these
 * inputs (the module's header), for the plan of `adapter` (under any plan override in force,
 * as choosePlan sees it). `dyValues`: the upstream gradient (null: 1).
 */
export function divergenceTolerances(
  x: DivergenceToleranceInput,
  config: DivergenceToleranceConfig,
  dyValues: ArrayLike<number> | null,
  adapter: AdapterClass,
): DivergenceTolerances {
  const B = x.batch;
  const C = x.classes;
  const k = config.temperature ** 2;
  const ctx = toleranceContext(B, C, config, k, adapter);
  const ignored = (b: number) =>
    config.ignoreIndex !== undefined &&
    x.labelKind === 'index' &&
    x.labels[b] === config.ignoreIndex;
  let n = 0;
  for (let b = 0; b < B; b++) if (!ignored(b)) n++;
  const rowWeight = config.reduction === 'mean' ? 1 / Math.max(n, 1) : 1;
  const gradStudent = new Float64Array(B * C).fill(FTZ_FLOOR);
  const gradTeacher = new Float64Array(B * C).fill(FTZ_FLOOR);
  const value: number[] = [];
  let err = 0;
  let mag = 0;
  for (let b = 0; b < B; b++) {
    if (ignored(b)) {
      value.push(0); // exact zeros
      continue;
    }
    const r = rowBound(x, b, ctx, config);
    const dy = dyValues ? dyValues[config.reduction === 'none' ? b : 0]! : 1;
    const w = Math.abs(dy * rowWeight);
    for (let c = 0; c < C; c++) {
      gradStudent[b * C + c] = w * r.gradStudent[c]! + FTZ_FLOOR;
      gradTeacher[b * C + c] = w * r.gradTeacher[c]! + FTZ_FLOOR;
    }
    value.push(r.dLoss);
    err += finite(r.dLoss);
    mag += Math.abs(finite(r.loss));
  }
  if (config.reduction === 'none') return { value, gradStudent, gradTeacher };
  return {
    value: [rowWeight * (err + SAFETY * U * (batchSumDepth(ctx) + 2) * mag)],
    gradStudent,
    gradTeacher,
  };
}
