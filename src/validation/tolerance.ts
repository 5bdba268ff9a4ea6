/**
 * Per-element tolerances for the fused kernels (float32 WGSL) against the float64 reference,
 * derived from the WGSL accuracy rules and the kernels' summation plans (docs/numerics.md, "The bounds").
 *
 * Notation: u = 2⁻²⁴ (unit roundoff of float32), ε = 2u = 2⁻²³ (one ULP at 1).
 * - WGSL exp(x): 3 + 2|x| ULP of the result, i.e. a relative error ≤ (3 + 2|x|) ε.
 * - WGSL log(x): 2⁻²¹ absolute on [0.5, 2], 3 ULP elsewhere.
 * - A sum of n same-signed terms, accumulated along a dependency chain of depth D: relative
 *   error ≤ D u of the sum (first order), on top of the terms' own relative errors.
 * - Online softmax rescaling multiplies a partial sum by exp(m_old − m_new) once per new
 *   maximum: K times, counted here by replaying the plan's scan order (each invocation's
 *   chunks, then the merge tree); the shifts telescope to at most the row's range R, so the
 *   rescaling adds ≤ (3K + 2R) ε relative error to every term.
 * - An exponential whose result is below the smallest normal float32 may be flushed to 0:
 *   an absolute error of FTZ_FLOOR times whatever multiplies it; and so may the final result
 *   (SwiftShader flushes it): FTZ_FLOOR more, absolute.
 * - KL_b comes from the centred sums the forward kernel keeps (shaders/distill-common.wgsl):
 *   KL = E_p[g(x)] − h(y). Its bound is relative to E_p[g] (every term ≥ 0), plus the errors of
 *   x_c (roundings of u, v, v − u, − c: absolute, per element) carried by g'(x) = 1 − e^−x,
 *   and of the weights p (relative, per element). A constant error in the centre c cancels
 *   exactly (the identities hold for any c). Where c ≥ 60 the kernel keeps the direct form
 *   (PV − PU)/ZT − log ZT + log ZS and the bound is that form's.
 * The bounds are first order; the final factor SAFETY = 2 covers the second-order terms and
 * the roundings of the few scalar operations not itemised (each ≤ u relative).
 */
import { choosePlan, type AdapterClass } from '../kernels/plan.js';

/** u = 2⁻²⁴, the unit roundoff of float32. */
export const U = 2 ** -24;
/** ε = 2u = 2⁻²³, one ULP at 1. */
export const EPS = 2 ** -23;
/** The factor on first-order bounds for the second-order terms and unitemised roundings. */
export const SAFETY = 2;
/** shaders/distill-common.wgsl's CENTRE_LIMIT: past it the kernel keeps the direct KL. */
export const CENTRE_LIMIT = 60;
/** Below this a float32 result may be flushed to zero (smallest normal ≈ 1.18e-38). */
export const FTZ_FLOOR = 1.2e-38;

export interface RowInputs {
  readonly classes: number;
  readonly s: ArrayLike<number>;
  readonly t: ArrayLike<number>;
  /** Dense labels of the row (one-hot for index labels); null when the label is invalid. */
  readonly y: ArrayLike<number> | null;
}

export interface ToleranceContext {
  readonly batch: number;
  readonly classes: number;
  readonly alpha: number;
  readonly temperature: number;
  readonly klWeight: number;
  readonly reduceToScalar: boolean;
  readonly adapter: AdapterClass;
}

/** What choosePlan reads of a {@link ToleranceContext}: enough for the plan's sums alone. */
export type PlanContext = Pick<
  ToleranceContext,
  'batch' | 'classes' | 'reduceToScalar' | 'adapter'
>;

/** A case's loss configuration, as the tolerance modules take it. */
export interface LossToleranceConfig {
  readonly alpha: number;
  readonly temperature: number;
  readonly reduction: 'mean' | 'sum' | 'none';
}

/** The context of `batch` rows of `classes` under `config`, with the soft term's factor k. */
export function toleranceContext(
  batch: number,
  classes: number,
  config: LossToleranceConfig,
  k: number,
  adapter: AdapterClass,
): ToleranceContext {
  return {
    batch,
    classes,
    alpha: config.alpha,
    temperature: config.temperature,
    klWeight: (1 - config.alpha) * k,
    reduceToScalar: config.reduction !== 'none',
    adapter,
  };
}

/** The longest dependency chain of a row sum in the kernel's plan. */
export function rowSumDepth(ctx: PlanContext): number {
  const plan = choosePlan(ctx.batch, ctx.classes, ctx.reduceToScalar, ctx.adapter);
  const chunks = ctx.classes / plan.chunk;
  const perThread = Math.ceil(chunks / plan.tileCols);
  // chunk lanes (log2 4 = 2) + the sequential run + the shared-memory tree
  return perThread + (plan.chunk === 4 ? 2 : 0) + Math.log2(plan.tileCols);
}

/**
 * How many times the kernel rescales a row's partial sums (new running maxima), replaying its
 * scan: invocation j of the row group visits chunks j, j + tileCols, …, then log2(tileCols)
 * merges. Returns the worst invocation's count for the logits x. (The forward kernel folds its
 * chunks in pairs and rescales at most once per pair: its count is at most this one, so the
 * bound built on it stays valid.)
 */
export function rescaleCount(x: ArrayLike<number>, ctx: PlanContext): number {
  const plan = choosePlan(ctx.batch, ctx.classes, ctx.reduceToScalar, ctx.adapter);
  const chunks = ctx.classes / plan.chunk;
  let worst = 0;
  for (let j = 0; j < Math.min(plan.tileCols, chunks); j++) {
    let m = -Infinity;
    let count = 0;
    for (let c = j; c < chunks; c += plan.tileCols) {
      let chunkMax = -Infinity;
      for (let l = 0; l < plan.chunk; l++) chunkMax = Math.max(chunkMax, x[c * plan.chunk + l]!);
      if (chunkMax > m) {
        count++;
        m = chunkMax;
      }
    }
    worst = Math.max(worst, count);
  }
  return worst + Math.log2(plan.tileCols);
}

/**
 * The longest dependency chain of the batch reduction: in the forward kernel (batch in one
 * workgroup) each row group's leader adds ⌈B / tileRows⌉ losses before the log₂ tree over the
 * workgroup; distill-reduce.wgsl adds ⌈B / 256⌉ per invocation before its 8-level tree.
 */
export function batchSumDepth(ctx: PlanContext): number {
  const plan = choosePlan(ctx.batch, ctx.classes, ctx.reduceToScalar, ctx.adapter);
  return plan.batchInWorkgroup
    ? Math.ceil(ctx.batch / plan.tileRows) + Math.log2(plan.workgroupSize)
    : Math.ceil(ctx.batch / 256) + 8;
}

/** Absolute error of WGSL log(x): 2⁻²¹ on [0.5, 2], 3 ULP of the result elsewhere. */
export function logError(x: number): number {
  return x >= 0.5 && x <= 2 ? 2 ** -21 : 3 * EPS * Math.abs(Math.log(x));
}

/**
 * Relative error of a row sum of exponentials Σ e^{a_c} (a_c ≤ 0) as the kernels keep it: each
 * exp within (3 + 2|a|) ε (`weightedArg`: the terms' weighted mean |a|), `rescales` online
 * rescalings whose shifts telescope to the row's `range` ((3K + 2R) ε), and a sum along a chain
 * of depth `depth` plus two roundings (u (D + 2)).
 */
export function expSumError(
  weightedArg: number,
  rescales: number,
  range: number,
  depth: number,
): number {
  return EPS * (3 + 2 * weightedArg + 3 * rescales + 2 * range) + U * (depth + 2);
}

/**
 * The terms of one KL(w ‖ m) as the kernels keep it (shaders/distill-common.wgsl,
 * shaders/distill-divergence.wgsl): three row sums Σ w, Σ w x, Σ w g(x) (+ m where w is
 * masked), then KL = E_w[g] − h(y), y = E_w[g] − E_w[x] (klFromMoments). Per element: w_c and
 * its relative error bound; x_c as the kernel's form gives it (around its centre) and its
 * absolute error bound; m_c as the kernel computes it for the far branch's m − w + w x (and a
 * masked w's share of E_w[e^−x]) and its absolute error bound.
 */
export interface KlTermsBound {
  readonly w: ArrayLike<number>;
  readonly dWRel: ArrayLike<number>;
  readonly x: ArrayLike<number>;
  readonly dX: ArrayLike<number>;
  readonly m: ArrayLike<number>;
  readonly dM: ArrayLike<number>;
  /** Columns where w is masked (−Infinity logits: only m counts there); null for none. */
  readonly masked: ArrayLike<boolean> | null;
}

/** E_w[x], E_w[g] (float64) and the bounds on E_w[x] and on KL from these sums. */
export interface KlErrorBound {
  readonly meanX: number;
  readonly dMeanX: number;
  readonly meanG: number;
  readonly dKl: number;
}

/**
 * The error of KL(w ‖ m) from its row sums ({@link KlTermsBound}): each term's (the series'
 * Horner roundings ≤ 4u relative where |x| < 1, with g'(x) = 1 − e^−x carrying x's error;
 * elsewhere m − w + w x, each part's), the sums along chains of depth `depth` (u (D + 2)) and
 * `recentring` (relative to E_w[g]: the forward kernel's moving centre; 0 for a fixed one), the
 * ratios by Σ w, and h(y) by its series (y ≤ 1) or log(1 + y) (either near y = 1): a bound
 * relative to E_w[g] (every term ≥ 0) plus per-element terms. `kl` is the float64 KL (its
 * roundings); `slack` multiplies the result (the forward kernel's centre within ¼ σ of E_w[x]:
 * 17/16).
 */
export function centredKlError(
  t: KlTermsBound,
  depth: number,
  recentring: number,
  kl: number,
  slack = 1,
): KlErrorBound {
  let sumW = 0;
  let meanX = 0;
  let meanG = 0;
  let errG = 0;
  let errW = 0;
  let absWX = 0;
  let errWX = 0;
  for (let c = 0; c < t.x.length; c++) {
    if (t.masked?.[c]) {
      // w = 0: the column adds m to Σ w g (its share of E_w[e^−x]), computed as a probability
      meanG += t.m[c]!;
      errG += t.dM[c]! + U * t.m[c]!;
      continue;
    }
    const wc = t.w[c]!;
    const xc = t.x[c]!;
    const dWRel = t.dWRel[c]!;
    const dX = t.dX[c]!;
    const gSlope = Math.abs(-Math.expm1(-xc)); // |g'(x)| = |1 − e^−x|
    const gx = Math.abs(xc) < 1e-3 ? xc * xc * (0.5 - xc / 6) : Math.expm1(-xc) + xc;
    sumW += wc;
    meanX += wc * xc;
    meanG += wc * gx;
    absWX += wc * Math.abs(xc);
    errW += wc * dWRel;
    errWX += wc * (dWRel * Math.abs(xc) + dX);
    if (Math.abs(xc) < 1) {
      // the series: its Horner roundings (≤ 4u relative, alternating terms below 1/2)
      errG += wc * gx * (dWRel + 4 * U) + wc * gSlope * dX;
    } else {
      // m − w + w x
      const mc = t.m[c]!;
      errG +=
        t.dM[c]! +
        wc * dWRel * (1 + Math.abs(xc)) +
        wc * dX +
        2 * U * (mc + wc + wc * Math.abs(xc));
    }
  }
  meanX /= sumW;
  meanG /= sumW;
  const sumDepthErr = U * (depth + 2);
  const dMeanX =
    (errWX + sumDepthErr * absWX + errW * Math.abs(meanX)) / sumW + U * Math.abs(meanX);
  const dMeanG =
    (errG + (sumDepthErr + recentring) * meanG * sumW + errW * meanG) / sumW + U * meanG;
  const yc = meanG - meanX;
  const dY = dMeanG + dMeanX + U * Math.abs(yc);
  const dKlSeries =
    dMeanG + (Math.abs(yc) / (1 + yc)) * dY + 6 * U * Math.abs(yc - Math.log1p(yc)) + U * kl;
  const dKlLog = dMeanX + dY / (1 + yc) + logError(1 + yc) + U * kl;
  const dKl =
    slack * (Math.abs(yc - 1) < 0.01 ? Math.max(dKlSeries, dKlLog) : yc > 1 ? dKlLog : dKlSeries);
  return { meanX, dMeanX, meanG, dKl };
}

/** Float64 statistics of one row and the bounds on their float32 errors. */
export interface RowBounds {
  readonly sigma: Float64Array;
  readonly q: Float64Array;
  readonly p: Float64Array;
  readonly logQ: Float64Array;
  readonly logP: Float64Array;
  /** s − m_s and (t − m_t)/T */
  readonly d: Float64Array;
  readonly v: Float64Array;
  readonly logZ1: number;
  readonly kl: number;
  readonly ySum: number;
  /** Absolute error bounds of log Z1, log ZS, log ZT and KL_b. */
  readonly dLogZ1: number;
  readonly dLogZS: number;
  readonly dLogZT: number;
  readonly dKl: number;
  /** x_c = δ_c − c, its absolute error bound, E_p[x] and its error bound (float64 centre). */
  readonly x: Float64Array;
  readonly dX: Float64Array;
  readonly meanX: number;
  readonly dMeanX: number;
  /** Relative error bound of each p_c as the kernels compute it. */
  readonly dPRel: Float64Array;
  /** Absolute error bound of ℓ_b. */
  readonly dLoss: number;
  readonly loss: number;
}

export function rowBounds(row: RowInputs, ctx: ToleranceContext): RowBounds {
  const C = row.classes;
  const T = ctx.temperature;
  const D = rowSumDepth(ctx);
  let ms = -Infinity;
  let mt = -Infinity;
  let minS = Infinity;
  let minT = Infinity;
  for (let c = 0; c < C; c++) {
    ms = Math.max(ms, row.s[c]!);
    mt = Math.max(mt, row.t[c]!);
    minS = Math.min(minS, row.s[c]!);
    minT = Math.min(minT, row.t[c]!);
  }
  const rangeS = ms - minS;
  const rangeT = mt - minT;
  const d = new Float64Array(C);
  const v = new Float64Array(C);
  let z1 = 0;
  let zs = 0;
  let zt = 0;
  for (let c = 0; c < C; c++) {
    d[c] = row.s[c]! - ms;
    v[c] = (row.t[c]! - mt) / T;
    z1 += Math.exp(d[c]!);
    zs += Math.exp(d[c]! / T);
    zt += Math.exp(v[c]!);
  }
  const logZ1 = Math.log(z1);
  const logZS = Math.log(zs);
  const logZT = Math.log(zt);
  const sigma = new Float64Array(C);
  const q = new Float64Array(C);
  const p = new Float64Array(C);
  const logQ = new Float64Array(C);
  const logP = new Float64Array(C);
  // softmax-weighted mean |argument| of each sum's exponentials, and E_p |t − s| / T
  let wD = 0;
  let wU = 0;
  let wV = 0;
  let pU = 0;
  let kl = 0;
  for (let c = 0; c < C; c++) {
    sigma[c] = Math.exp(d[c]! - logZ1);
    logQ[c] = d[c]! / T - logZS;
    logP[c] = (row.t[c]! - mt) / T - logZT;
    q[c] = Math.exp(logQ[c]!);
    p[c] = Math.exp(logP[c]!);
    wD += sigma[c]! * Math.abs(d[c]!);
    wU += q[c]! * Math.abs(d[c]! / T);
    wV += p[c]! * Math.abs((row.t[c]! - mt) / T);
    pU += p[c]! * Math.abs(d[c]! / T);
    if (p[c]! > 0) kl += p[c]! * (logP[c]! - logQ[c]!);
  }
  const kS = rescaleCount(row.s, ctx);
  const kT = rescaleCount(row.t, ctx);
  const sumErr = (weightedArg: number, rescales: number, range: number) =>
    expSumError(weightedArg, rescales, range, D);
  const dZ1 = sumErr(wD, kS, rangeS);
  const dZS = sumErr(wU, kS, rangeS / T);
  const dZT = sumErr(wV, kT, rangeT / T);
  const dLogZ1 = dZ1 + logError(z1);
  const dLogZS = dZS + logError(zs);
  const dLogZT = dZT + logError(zt);
  // KL_b = (PV − PU)/ZT − log ZT + log ZS with PV = Σ e^v v, PU = Σ e^v u: their terms carry the
  // exponentials' errors and the roundings of u and v; each rescaling adds ZT × shift products.
  const pAbs = wV + pU;
  const dKlDirect =
    (dZT + sumErr(wV, kT, rangeT / T) + 4 * U) * pAbs +
    2 * (kS + kT) * U * ((rangeS + rangeT) / T) +
    dLogZT +
    dLogZS +
    4 * U * (pAbs + Math.abs(logZT) + Math.abs(logZS));

  // The centred form (the forward kernel's sums), modelled around c = E_p[δ]; the kernel's own
  // centre is within ¼ σ of it (the 17/16 below), or elsewhere only where mayAbandon holds.
  let centre = 0;
  for (let c = 0; c < C; c++) centre += p[c]! * (v[c]! - d[c]! / T);
  const x = new Float64Array(C);
  const dX = new Float64Array(C);
  const dPRel = new Float64Array(C);
  // the far branch's m: p e^−x = exp(u + c − log ZT), and its error
  const pe = new Float64Array(C);
  const dPe = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    const uc = d[c]! / T;
    const delta = v[c]! - uc;
    const xc = delta - centre;
    x[c] = xc;
    dX[c] = U * (3 * Math.abs(v[c]!) + 3 * Math.abs(uc) + Math.abs(delta) + Math.abs(xc));
    dPRel[c] =
      EPS * (3 + 2 * Math.abs(logP[c]!)) + U * (3 * Math.abs(v[c]!) + Math.abs(logP[c]!)) + dLogZT;
    const argPe = uc + centre - logZT;
    pe[c] = Math.exp(argPe);
    dPe[c] =
      pe[c]! *
      (EPS * (3 + 2 * Math.abs(argPe)) +
        2 * U * (Math.abs(uc) + Math.abs(centre) + Math.abs(logZT)) +
        dLogZT);
  }
  // The kernel keeps these sums around a moving centre, recentred exactly (a few roundings of
  // e^d, g(−d), expm1(d), each ≤ 4u of the sum) at most once per chunk and twice per merge: at
  // most 2D times. Near a switch of the kernel's branch (y = 1, c = 60) either branch may have
  // been taken. The kernel's centre is within a quarter standard deviation of E_p[δ] (it
  // recentres beyond): h(y) then takes up to 1/16 of E_p[g], and the error of KL = E_p[g] − h(y)
  // grows by as much.
  const centred = centredKlError(
    { w: p, dWRel: dPRel, x, dX, m: pe, dM: dPe, masked: null },
    D,
    4 * U * 2 * D,
    kl,
    17 / 16,
  );
  const { meanX, dMeanX } = centred;
  const dKlCentred = centred.dKl;
  // The direct form where the centre passes 60, or may have on the way (a running centre lies
  // within the row's range of δ, at most (range_s + range_t)/T).
  const mayAbandon = (rangeS + rangeT) / T > 55;
  const dKl = !Number.isFinite(dKlCentred) // the centred sums overflow float64: direct only
    ? dKlDirect
    : mayAbandon || Math.abs(centre - CENTRE_LIMIT) < 1
      ? Math.max(dKlCentred, dKlDirect)
      : centre < CENTRE_LIMIT
        ? dKlCentred
        : dKlDirect;

  let ySum = 0;
  let yd = 0;
  let ce = NaN;
  let dCe = 0;
  if (row.y) {
    for (let c = 0; c < C; c++) {
      ySum += row.y[c]!;
      yd += Math.abs(row.y[c]! * d[c]!);
    }
    ce = 0;
    for (let c = 0; c < C; c++) ce -= row.y[c]! * (d[c]! - logZ1);
    dCe =
      Math.abs(ySum) * dLogZ1 + U * (D + 2) * (yd + Math.abs(ySum * logZ1)) + 2 * U * Math.abs(ce);
  }
  const loss = ctx.alpha * ce + ctx.klWeight * kl;
  const dLoss =
    SAFETY *
    (ctx.alpha * dCe +
      ctx.klWeight * dKl +
      2 * U * (ctx.alpha * Math.abs(ce) + ctx.klWeight * Math.abs(kl)));
  return {
    sigma,
    q,
    p,
    logQ,
    logP,
    d,
    v,
    logZ1,
    kl,
    ySum,
    dLogZ1,
    dLogZS,
    dLogZT,
    dKl,
    x,
    dX,
    meanX,
    dMeanX,
    dPRel,
    dLoss,
    loss,
  };
}

/**
 * Absolute error of log q = d · (1/T) − log ZS as the kernels compute it: the roundings of d,
 * of 1/T and of the product (3u |d/T|), of the subtraction (u |log q|), and log ZS's own.
 */
function logQError(b: RowBounds, c: number, T: number): number {
  return U * (3 * Math.abs(b.d[c]! / T) + Math.abs(b.logQ[c]!)) + b.dLogZS;
}

/** Absolute error of log p = (t − m_t) · (1/T) − log ZT, likewise. */
function logPError(b: RowBounds, c: number): number {
  return U * (3 * Math.abs(b.v[c]!) + Math.abs(b.logP[c]!)) + b.dLogZT;
}

/** Bound on |fused − reference| for each element of ∂L/∂s of one row, at weight w. */
export function studentGradTolerance(
  b: RowBounds,
  row: RowInputs,
  ctx: ToleranceContext,
  w: number,
): Float64Array {
  const C = row.classes;
  const T = ctx.temperature;
  const kappa = ctx.klWeight / T;
  const out = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    // σ = exp(d − log Z1): exp's own error, the roundings of d and of the subtraction, log Z1's.
    const logSigma = b.d[c]! - b.logZ1;
    const dSigma =
      b.sigma[c]! *
      (EPS * (3 + 2 * Math.abs(logSigma)) +
        U * (Math.abs(b.d[c]!) + Math.abs(logSigma)) +
        b.dLogZ1);
    // q = exp(log q), p = exp(log p): exp's own error plus that of its argument.
    // q − p: the plain difference where |log q − log p| ≥ 1, else p · expm1(E_p[x] − x − KL)
    const dQ = b.q[c]! * (EPS * (3 + 2 * Math.abs(b.logQ[c]!)) + logQError(b, c, T));
    const dP = b.p[c]! * (EPS * (3 + 2 * Math.abs(b.logP[c]!)) + logPError(b, c));
    const xc = b.x[c]!;
    const logRatio = b.meanX - xc - b.kl;
    const qMinusP = b.q[c]! - b.p[c]!;
    const dLogRatio =
      b.dX[c]! +
      b.dMeanX +
      b.dKl +
      U * (Math.abs(b.meanX) + 2 * Math.abs(xc) + Math.abs(b.meanX - xc) + Math.abs(logRatio));
    const dNear =
      Math.abs(qMinusP) * (b.dPRel[c]! + 4 * U) + b.p[c]! * Math.exp(logRatio) * dLogRatio;
    const dFar = dQ + dP + U * Math.abs(qMinusP);
    const dKlPart =
      Math.abs(Math.abs(logRatio) - 1) < 0.01
        ? Math.max(dNear, dFar)
        : Math.abs(logRatio) < 1
          ? dNear
          : dFar;
    const y = row.y ? Math.abs(row.y[c]!) : 0;
    const magnitude = ctx.alpha * (b.sigma[c]! * Math.abs(b.ySum) + y) + kappa * Math.abs(qMinusP);
    const flushed = FTZ_FLOOR * (ctx.alpha * Math.abs(b.ySum) + 2 * kappa);
    out[c] =
      Math.abs(w) *
        SAFETY *
        (ctx.alpha * Math.abs(b.ySum) * dSigma + kappa * dKlPart + 5 * U * magnitude + flushed) +
      FTZ_FLOOR;
  }
  return out;
}

/** Bound on |fused − reference| for each element of ∂L/∂t of one row, at weight w. */
export function teacherGradTolerance(
  b: RowBounds,
  row: RowInputs,
  ctx: ToleranceContext,
  w: number,
): Float64Array {
  const C = row.classes;
  const kappa = ctx.klWeight / ctx.temperature;
  const out = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    // p (x − E_p[x]): p's relative error, x's and E_p[x]'s absolute ones, three roundings.
    const L = Math.abs(b.x[c]! - b.meanX);
    const pc = b.p[c]!;
    out[c] =
      Math.abs(w) *
        SAFETY *
        kappa *
        (pc * b.dPRel[c]! * L + pc * (b.dX[c]! + b.dMeanX) + 3 * U * pc * L + FTZ_FLOOR * (L + 1)) +
      FTZ_FLOOR;
  }
  return out;
}

/** Bound on the reduced loss ('mean' or 'sum') given the per-row bounds. */
export function reducedLossTolerance(
  rows: readonly RowBounds[],
  rowWeight: number,
  ctx: ToleranceContext,
): number {
  let err = 0;
  let mag = 0;
  for (const r of rows) {
    err += r.dLoss;
    mag += Math.abs(r.loss);
  }
  return rowWeight * (err + SAFETY * U * (batchSumDepth(ctx) + 2) * mag);
}
