/**
 * The divergences of the soft term, each described once: its name, parameters, how the WGSL
 * kernels select it (shaders/distill-divergence.wgsl, the one place in the WGSL that knows the
 * divergences), its float64 value and exact gradients for the reference (src/reference.ts) and
 * its float32 tfjs form for the composed path (src/composed.ts). Adding a divergence is one
 * entry in {@link DIVERGENCES} here and its branches in shaders/distill-divergence.wgsl.
 *
 * Notation, per row: a = s / T, b = t / T the tempered student and teacher logits,
 * q = softmax(a), p = softmax(b) (−Infinity logits are probability 0), and for two
 * distributions w, v: KL(w ‖ v) = Σ_c w_c (log w_c − log v_c) with 0 · log(0 / v) = 0.
 *
 *   'forward-kl'  D = KL(p ‖ q)
 *       ∂D/∂s_c = (q_c − p_c) / T
 *       ∂D/∂t_c = p_c (log p_c − log q_c − D) / T
 *   'reverse-kl'  D = KL(q ‖ p)
 *       ∂D/∂s_c = q_c (log q_c − log p_c − D) / T
 *       ∂D/∂t_c = (p_c − q_c) / T
 *   'jsd'         M = β p + (1 − β) q,  D = β KL(p ‖ M) + (1 − β) KL(q ‖ M)
 *       ∂D/∂s_c = (1 − β) q_c (log q_c − log M_c − KL(q ‖ M)) / T
 *       ∂D/∂t_c = β p_c (log p_c − log M_c − KL(p ‖ M)) / T
 *
 * (The JSD's: D = β Σ p log p + (1 − β) Σ q log q − Σ M log M, so ∂D/∂q_c = (1 − β) log(q_c / M_c)
 * with p held, and the softmax Jacobian q_c (g_c − Σ_j q_j g_j) gives the line above.)
 *
 * Masks. A column with p_c = q_c = 0 adds nothing to any divergence or gradient. Where a
 * divergence is infinite (forward KL: q_c = 0 < p_c; reverse KL: p_c = 0 < q_c; the JSD never
 * is, since M_c > 0 wherever p_c or q_c is), D = +Infinity; the gradient on the side that
 * enters only through softmax normalisation ((q − p) / T for forward KL, (p − q) / T for
 * reverse KL) is finite and is the limit of the gradient as the masked logits go to −∞; the
 * other side's gradient, w_c (log w_c − log v_c − D), has no limit (it depends on how the
 * masked logits approach −∞) and is NaN where w_c > 0, 0 where w_c = 0.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Divergence, ResolvedConfig } from './config.js';

/** One row of tempered log-probabilities, row-major, −Infinity where masked. */
export interface TemperedRow64 {
  /** log p = log softmax(t / T): the teacher's. */
  readonly logP: Float64Array;
  /** log q = log softmax(s / T): the student's. */
  readonly logQ: Float64Array;
  readonly temperature: number;
}

/** A divergence of one row and its exact gradients (unit upstream gradient, no factor k). */
export interface DivergenceRow64 {
  readonly value: number;
  /** ∂D/∂s_c (the 1/T included). */
  readonly gradStudent: Float64Array;
  /** ∂D/∂t_c (the 1/T included). */
  readonly gradTeacher: Float64Array;
}

/** A parameter of a divergence: a field of the config, with its range. */
export interface DivergenceParameter {
  readonly name: 'beta';
  readonly description: string;
}

/**
 * How the WGSL kernels select a divergence: the value of the override DIVERGENCE of
 * shaders/distill-divergence.wgsl, and the values of the overrides that hold its parameters.
 */
export interface DivergenceKernel {
  readonly id: number;
  /** Override constants from the config (float64 values, rounded once to float32 by WebGPU). */
  readonly constants: (config: ResolvedConfig) => Readonly<Record<string, number>>;
}

export interface DivergenceSpec {
  readonly name: Divergence;
  /** The formula, for messages and documentation. */
  readonly formula: string;
  /** Config fields that only this divergence reads. */
  readonly parameters: readonly DivergenceParameter[];
  /** Its selection in the WGSL kernels (src/kernels, shaders), or null where they lack it. */
  readonly kernel: DivergenceKernel | null;
  /** Whether D can be +Infinity for finite-mass rows (a one-sided mask). */
  readonly canBeInfinite: boolean;
  /** The float64 value and gradients of one row. */
  readonly reference: (row: TemperedRow64, config: ResolvedConfig) => DivergenceRow64;
  /**
   * The float32 tfjs form on `[R, C]` rows (the composed path): the value per row and, when
   * asked, the same gradients (called inside a tf.customGrad, so nothing here is differentiated).
   */
  readonly composed: (
    rows: TemperedRowsTf,
    config: ResolvedConfig,
    withGradients: boolean,
  ) => DivergenceRowsTf;
}

/**
 * `[R, C]` rows at temperature T for the composed path, relative to the row maxima so that
 * v − u keeps its relative precision: u = (s − max s) / T, v = (t − max t) / T, log q = u −
 * logZS, log p = v − logZT (−Infinity where masked). logZS, logZT are `[R, 1]`.
 */
export interface TemperedRowsTf {
  readonly u: tf.Tensor;
  readonly v: tf.Tensor;
  readonly logZS: tf.Tensor;
  readonly logZT: tf.Tensor;
  readonly temperature: number;
}

export interface DivergenceRowsTf {
  /** `[R]`. */
  readonly value: tf.Tensor;
  /** ∂D/∂s, `[R, C]` (the 1/T included), when asked. */
  readonly gradStudent?: tf.Tensor;
  /** ∂D/∂t, `[R, C]`, when asked. */
  readonly gradTeacher?: tf.Tensor;
}

// ---------------------------------------------------------------------------------------------
// float64 building blocks

/** g(x) = e^−x − 1 + x, accurate to ~1e-13 relative for every x. */
function g64(x: number): number {
  if (Math.abs(x) < 1e-3) return x * x * (0.5 - x * (1 / 6 - x * (1 / 24 - x / 120)));
  return Math.expm1(-x) + x;
}

/** Above this centre w e^−x may overflow float64; KL is then ≥ ~580 and the direct sum exact. */
const CENTRE_LIMIT_64 = 600;

/** KL(w ‖ v) of one row in the centred form, with what its gradients need. */
export interface CentredKl64 {
  /** KL(w ‖ v): +Infinity where v_c = 0 < w_c. */
  readonly kl: number;
  /** dev_c = log w_c − log v_c − KL (the KL side's gradient / w_c); 0 where w_c = 0. */
  readonly dev: Float64Array;
  /** v_c − w_c, each evaluated where it keeps its relative precision. */
  readonly otherMinusW: Float64Array;
}

/**
 * KL(w ‖ v) without the cancellation that T² would magnify (KL shrinks like 1/T² while the
 * log-probabilities are of size log C): around the centre c = E_w[δ], δ = log w − log v,
 * x = δ − c,
 *   KL = E_w[g(x)] − h(y),  g(x) = e^−x − 1 + x,  y = E_w[g(x)] − E_w[x],  h(y) = y − log1p(y)
 *   log w − log v − KL = x − E_w[x],   v − w = w · expm1(E_w[x] − x − KL)
 * (identities of shaders/distill-common.wgsl; they use Σ v = 1). `delta` is δ as precise as the
 * caller can give it; columns with w_c = 0 contribute v's mass to E_w[e^−x] only.
 */
export function centredKl64(
  logW: Float64Array,
  logV: Float64Array,
  delta: Float64Array,
): CentredKl64 {
  const C = logW.length;
  let centre = 0;
  for (let c = 0; c < C; c++) {
    if (logW[c] === -Infinity) continue;
    centre += Math.exp(logW[c]!) * delta[c]!;
  }
  const dev = new Float64Array(C);
  const otherMinusW = new Float64Array(C);
  let kl: number;
  let meanX = 0;
  if (!(centre < CENTRE_LIMIT_64)) {
    kl = centre; // the direct sum: exact enough when large, +Infinity or NaN when it is
  } else {
    let meanG = 0;
    for (let c = 0; c < C; c++) {
      // w e^−x = exp(log v + c); no skip where w underflows or is masked
      const wEx = Math.exp(logV[c]! + centre);
      if (logW[c] === -Infinity) {
        meanG += wEx;
        continue;
      }
      const w = Math.exp(logW[c]!);
      const x = delta[c]! - centre;
      meanX += w * x;
      meanG += Math.abs(x) < 1 ? w * g64(x) : wEx - w + w * x;
    }
    const y = meanG - meanX;
    kl = y > 1 ? meanX + Math.log1p(y) : meanG - (y - Math.log1p(y));
  }
  for (let c = 0; c < C; c++) {
    const v = Math.exp(logV[c]!);
    if (logW[c] === -Infinity) {
      otherMinusW[c] = v;
      continue;
    }
    const w = Math.exp(logW[c]!);
    // x − E_w[x] = δ − KL, free of the cancellation of the right-hand side
    const d = Number.isFinite(kl) ? delta[c]! - centre - meanX : NaN;
    dev[c] = w === 0 ? 0 : d;
    const logRatio = -d - kl; // log v − log w
    otherMinusW[c] = Math.abs(logRatio) < 1 && w > 0 ? w * Math.expm1(logRatio) : v - w;
  }
  return { kl, dev, otherMinusW };
}

/** δ_c = log w_c − log v_c of two log-probability rows (0 where w_c = 0: unused there). */
function difference(logW: Float64Array, logV: Float64Array): Float64Array {
  return logW.map((lw, c) => (lw === -Infinity ? 0 : lw - logV[c]!));
}

function scaled(weight: number, w: Float64Array, x: Float64Array, T: number): Float64Array {
  return x.map((xc, c) => (w[c] === -Infinity ? 0 : (weight * Math.exp(w[c]!) * xc) / T));
}

/** log(e^a + e^b) for a, b ≤ 0 or −Infinity. */
function logAddExp(a: number, b: number): number {
  const m = Math.max(a, b);
  if (m === -Infinity) return -Infinity;
  return m + Math.log1p(Math.exp(Math.min(a, b) - m));
}

/**
 * log M and δ_p = log p − log M, δ_q = log q − log M for M = β p + (1 − β) q: with r = log q −
 * log p, δ_p = −log1p((1 − β) expm1(r)) and δ_q = −log1p(β expm1(−r)) where |r| ≤ 1 (p ≈ q:
 * relative precision kept as T grows), the log-sum-exp log M = lse(log β + log p,
 * log(1 − β) + log q) elsewhere (including one-sided masks).
 */
export function jsdMixture64(
  logP: Float64Array,
  logQ: Float64Array,
  beta: number,
): { logM: Float64Array; deltaP: Float64Array; deltaQ: Float64Array } {
  const C = logP.length;
  const logM = new Float64Array(C);
  const deltaP = new Float64Array(C);
  const deltaQ = new Float64Array(C);
  const logBeta = Math.log(beta);
  const log1mBeta = Math.log1p(-beta);
  for (let c = 0; c < C; c++) {
    const lp = logP[c]!;
    const lq = logQ[c]!;
    const r = lq - lp;
    if (Math.abs(r) <= 1) {
      deltaP[c] = -Math.log1p((1 - beta) * Math.expm1(r));
      deltaQ[c] = -Math.log1p(beta * Math.expm1(-r));
      logM[c] = lp - deltaP[c]!;
    } else {
      logM[c] = logAddExp(logBeta + lp, log1mBeta + lq);
      deltaP[c] = lp === -Infinity ? 0 : lp - logM[c]!;
      deltaQ[c] = lq === -Infinity ? 0 : lq - logM[c]!;
    }
  }
  return { logM, deltaP, deltaQ };
}

/** The side whose divergence is infinite has no gradient limit: NaN where its weight is > 0. */
function undefinedWhereMass(logW: Float64Array): Float64Array {
  return logW.map((lw) => (lw === -Infinity ? 0 : NaN));
}

function forwardKl64(row: TemperedRow64): DivergenceRow64 {
  const { logP, logQ, temperature: T } = row;
  const r = centredKl64(logP, logQ, difference(logP, logQ));
  return {
    value: r.kl,
    gradStudent: r.otherMinusW.map((d) => d / T),
    gradTeacher: r.kl === Infinity ? undefinedWhereMass(logP) : scaled(1, logP, r.dev, T),
  };
}

function reverseKl64(row: TemperedRow64): DivergenceRow64 {
  const { logP, logQ, temperature: T } = row;
  const r = centredKl64(logQ, logP, difference(logQ, logP));
  return {
    value: r.kl,
    gradStudent: r.kl === Infinity ? undefinedWhereMass(logQ) : scaled(1, logQ, r.dev, T),
    gradTeacher: r.otherMinusW.map((d) => d / T),
  };
}

function jsd64(row: TemperedRow64, config: ResolvedConfig): DivergenceRow64 {
  const { logP, logQ, temperature: T } = row;
  const beta = config.beta;
  const { logM, deltaP, deltaQ } = jsdMixture64(logP, logQ, beta);
  const klP = centredKl64(logP, logM, deltaP);
  const klQ = centredKl64(logQ, logM, deltaQ);
  return {
    value: beta * klP.kl + (1 - beta) * klQ.kl,
    gradStudent: scaled(1 - beta, logQ, klQ.dev, T),
    gradTeacher: scaled(beta, logP, klP.dev, T),
  };
}

// ---------------------------------------------------------------------------------------------
// float32 (tfjs) building blocks, the same forms as above

/** Horner: Σ_k coefficients[k] · x^k, highest coefficient last. */
function polynomial(x: tf.Tensor, coefficients: readonly number[]): tf.Tensor {
  let r: tf.Tensor = tf.scalar(coefficients[coefficients.length - 1]!);
  for (let k = coefficients.length - 2; k >= 0; k--) r = tf.add(coefficients[k]!, tf.mul(x, r));
  return r;
}

/** (−1)^k / (k + 2)!: g(x) = e^−x − 1 + x = x² Σ_k (−1)^k x^k / (k + 2)!, |x| < 1. */
const G_SERIES = Array.from({ length: 10 }, (_, k) => {
  let f = 1;
  for (let i = 2; i <= k + 2; i++) f *= i;
  return (k % 2 === 0 ? 1 : -1) / f;
});
/** 1 / (2k + 3): h(y) = y − log(1 + y) = y z − 2 z³ Σ_k z^{2k} / (2k + 3), z = y / (2 + y). */
const H_SERIES = Array.from({ length: 6 }, (_, k) => 1 / (2 * k + 3));
/** Above this centre w e^−x may overflow float32; KL is then large and the direct sum exact. */
const CENTRE_LIMIT_32 = 60;

interface CentredKlTf {
  /** `[R, 1]`. */
  kl: tf.Tensor;
  /** w_c (log w_c − log v_c − KL), 0 where w_c = 0, NaN where w_c > 0 and KL = +Infinity. */
  wSide?: tf.Tensor;
  /** v − w. */
  otherMinusW?: tf.Tensor;
}

/**
 * {@link centredKl64} in float32 tfjs: KL(w ‖ v) per row of `[R, C]` log-probabilities, with
 * `delta` = log w − log v + K for a row constant K (`[R, 1]`, given), which x = δ − E_w[δ]
 * removes: the caller may pass a δ free of the rounding of the log-normalisers.
 */
function centredKlTf(
  logW: tf.Tensor,
  logV: tf.Tensor,
  delta: tf.Tensor,
  K: tf.Tensor | number,
  withGradients: boolean,
): CentredKlTf {
  const w = tf.exp(logW);
  const has = tf.greater(w, 0);
  const zero = tf.zerosLike(w);
  const centre = tf.sum(tf.where(has, tf.mul(w, delta), zero), -1, true);
  const x = tf.sub(delta, centre);
  const wx = tf.where(has, tf.mul(w, x), zero);
  const sumW = tf.sum(w, -1, true);
  const meanX = tf.div(tf.sum(wx, -1, true), sumW);
  const near = tf.logicalAnd(has, tf.less(tf.abs(x), 1));
  // w e^−x = exp(log v + E_w[log w − log v]), clamped where the result is not used
  const wEx = tf.exp(tf.minimum(tf.add(tf.sub(logV, K), centre), 80));
  const pg = tf.where(
    near,
    tf.mul(w, tf.mul(tf.square(x), polynomial(x, G_SERIES))),
    tf.add(tf.sub(wEx, w), wx),
  );
  const meanG = tf.div(tf.sum(pg, -1, true), sumW);
  const y = tf.sub(meanG, meanX);
  const z = tf.div(y, tf.add(y, 2));
  const h = tf.sub(
    tf.mul(y, z),
    tf.mul(tf.mul(2, tf.pow(z, 3)), polynomial(tf.square(z), H_SERIES)),
  );
  const refined = tf.where(tf.greater(y, 1), tf.add(meanX, tf.log1p(y)), tf.sub(meanG, h));
  const direct = tf.sub(centre, K);
  const kl = tf.where(tf.less(centre, CENTRE_LIMIT_32), refined, direct);
  if (!withGradients) return { kl };
  const dev = tf.where(has, tf.sub(x, meanX), zero);
  const infinite = tf.equal(kl, Infinity);
  const wSide = tf.where(
    has,
    tf.where(tf.logicalAnd(infinite, has), tf.fill(w.shape, NaN), tf.mul(w, dev)),
    zero,
  );
  const logRatio = tf.sub(tf.neg(dev), kl); // log v − log w where w > 0
  const otherMinusW = tf.where(
    tf.logicalAnd(has, tf.less(tf.abs(logRatio), 1)),
    tf.mul(w, tf.expm1(logRatio)),
    tf.sub(tf.exp(logV), w),
  );
  return { kl, wSide, otherMinusW };
}

function forwardKlTf(r: TemperedRowsTf, _c: ResolvedConfig, g: boolean): DivergenceRowsTf {
  const logP = tf.sub(r.v, r.logZT);
  const logQ = tf.sub(r.u, r.logZS);
  const kl = centredKlTf(logP, logQ, tf.sub(r.v, r.u), tf.sub(r.logZT, r.logZS), g);
  const value = tf.squeeze(kl.kl, [-1]);
  if (!g) return { value };
  const T = r.temperature;
  return { value, gradStudent: tf.div(kl.otherMinusW!, T), gradTeacher: tf.div(kl.wSide!, T) };
}

function reverseKlTf(r: TemperedRowsTf, _c: ResolvedConfig, g: boolean): DivergenceRowsTf {
  const logP = tf.sub(r.v, r.logZT);
  const logQ = tf.sub(r.u, r.logZS);
  const kl = centredKlTf(logQ, logP, tf.sub(r.u, r.v), tf.sub(r.logZS, r.logZT), g);
  const value = tf.squeeze(kl.kl, [-1]);
  if (!g) return { value };
  const T = r.temperature;
  return { value, gradStudent: tf.div(kl.wSide!, T), gradTeacher: tf.div(kl.otherMinusW!, T) };
}

function jsdTf(r: TemperedRowsTf, config: ResolvedConfig, g: boolean): DivergenceRowsTf {
  const beta = config.beta;
  const logP = tf.sub(r.v, r.logZT);
  const logQ = tf.sub(r.u, r.logZS);
  // r = log q − log p from v − u (precise) and a row constant (its rounding drops out of x)
  const ratio = tf.sub(tf.sub(r.u, r.v), tf.sub(r.logZS, r.logZT));
  const near = tf.lessEqual(tf.abs(ratio), 1);
  const a = tf.add(logP, Math.log(beta));
  const b = tf.add(logQ, Math.log1p(-beta));
  const m = tf.maximum(a, b);
  const bothMasked = tf.equal(m, -Infinity);
  const lse = tf.add(m, tf.log1p(tf.exp(tf.sub(tf.minimum(a, b), m))));
  const logMFar = tf.where(bothMasked, tf.fill(m.shape, -Infinity), lse);
  const deltaPNear = tf.neg(tf.log1p(tf.mul(1 - beta, tf.expm1(ratio))));
  const deltaP = tf.where(near, deltaPNear, tf.sub(logP, logMFar));
  const deltaQ = tf.where(
    near,
    tf.neg(tf.log1p(tf.mul(beta, tf.expm1(tf.neg(ratio))))),
    tf.sub(logQ, logMFar),
  );
  const logM = tf.where(near, tf.sub(logP, deltaPNear), logMFar);
  const klP = centredKlTf(logP, logM, deltaP, 0, g);
  const klQ = centredKlTf(logQ, logM, deltaQ, 0, g);
  const value = tf.squeeze(tf.add(tf.mul(beta, klP.kl), tf.mul(1 - beta, klQ.kl)), [-1]);
  if (!g) return { value };
  const T = r.temperature;
  return {
    value,
    gradStudent: tf.mul((1 - beta) / T, klQ.wSide!),
    gradTeacher: tf.mul(beta / T, klP.wSide!),
  };
}

// ---------------------------------------------------------------------------------------------
// the registry

const BETA: DivergenceParameter = {
  name: 'beta',
  description: "the mixture weight β of 'jsd', in (0, 1), default 0.5 (the classical JSD)",
};

/** Every divergence, by name: the one place that describes them in TypeScript. */
export const DIVERGENCES: { readonly [D in Divergence]: DivergenceSpec & { name: D } } = {
  'forward-kl': {
    name: 'forward-kl',
    formula: 'KL(p ‖ q)',
    parameters: [],
    kernel: { id: 0, constants: () => ({}) },
    canBeInfinite: true,
    reference: forwardKl64,
    composed: forwardKlTf,
  },
  'reverse-kl': {
    name: 'reverse-kl',
    formula: 'KL(q ‖ p)',
    parameters: [],
    kernel: { id: 1, constants: () => ({}) },
    canBeInfinite: true,
    reference: reverseKl64,
    composed: reverseKlTf,
  },
  jsd: {
    name: 'jsd',
    formula: 'β·KL(p ‖ M) + (1 − β)·KL(q ‖ M), M = β·p + (1 − β)·q',
    parameters: [BETA],
    kernel: {
      id: 2,
      constants: ({ beta }) => ({
        BETA: beta,
        LOG_BETA: Math.log(beta),
        LOG_ONE_MINUS_BETA: Math.log1p(-beta),
      }),
    },
    canBeInfinite: false,
    reference: jsd64,
    composed: jsdTf,
  },
};

/** The entry of a resolved config's divergence. */
export function divergenceOf(config: Pick<ResolvedConfig, 'divergence'>): DivergenceSpec {
  return DIVERGENCES[config.divergence];
}

/**
 * The override constants of shaders/distill-divergence.wgsl for a config (its divergence's
 * `kernel`): DIVERGENCE and the divergence's parameters. Throws for a divergence without a
 * kernel.
 */
export function divergenceConstants(config: ResolvedConfig): Record<string, number> {
  const spec = DIVERGENCES[config.divergence] as DivergenceSpec | undefined;
  if (!spec) throw new Error(`unknown divergence '${String(config.divergence)}'`);
  if (!spec.kernel) throw new Error(`divergence '${spec.name}' has no fused kernel`);
  return { DIVERGENCE: spec.kernel.id, ...spec.kernel.constants(config) };
}
