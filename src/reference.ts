/**
 * The float64 reference: the truth that the kernels are compared with. Plain TypeScript on
 * plain arrays, independent of tfjs (and itself checked against tfjs autograd of the stock
 * composition in test/reference.test.ts).
 *
 * Per row b (s = student logits, t = teacher logits, y = labels, T = temperature):
 *   log σ(s)_c = s_c − lse(s)                    σ = softmax, lse = log Σ exp
 *   CE_b = −Σ_c y_c · log σ(s)_c                (integer label: −log σ(s)[y_b])
 *   p = softmax(t / T),  q = softmax(s / T)
 *   KL_b = Σ_c p_c (log p_c − log q_c),  0 · log 0 = 0
 *   ℓ_b  = α · CE_b + (1 − α) · k · KL_b,  k = T² (temperatureSquared) or 1
 * Gradients, with w_b = dy / B ('mean'), dy ('sum') or dy_b ('none'):
 *   ∂/∂s_bc = w_b [ α (σ(s)_c · Σ_j y_j − y_c) + (1 − α) (k / T) (q_c − p_c) ]
 *   ∂/∂t_bc = w_b (1 − α) (k / T) · p_c (log p_c − log q_c − KL_b)
 * An integer label outside [0, C) makes CE_b, ℓ_b and the row's student gradient NaN.
 *
 * KL_b shrinks like 1/T² while log p and log q are of size log C: the direct sum loses the
 * digits that T² then magnifies (float64 too, from T ≈ 1e6). So KL_b is computed around the
 * centre c = E_p[δ], δ = log p − log q up to a row constant, x = δ − c (see
 * shaders/distill_common.wgsl for the identities):
 *   KL_b = E_p[g(x)] − h(y),  g(x) = e^−x − 1 + x,  y = E_p[g(x)] − E_p[x],  h(y) = y − log1p(y)
 *   log p − log q − KL_b = x − E_p[x],   q − p = p · expm1(E_p[x] − x − KL_b)
 * each evaluated where it keeps its relative precision (Math.expm1 and Math.log1p).
 */
import { klFactor, resolveConfig, type DistillationLossConfig } from './config.js';

export interface ReferenceInput {
  readonly batch: number;
  readonly classes: number;
  /** Row-major `[B, C]`. */
  readonly student: ArrayLike<number>;
  /** Row-major `[B, C]`. */
  readonly teacher: ArrayLike<number>;
  /** `[B]` class indices ('index') or row-major `[B, C]` one-hot / soft labels ('dense'). */
  readonly labels: ArrayLike<number>;
  readonly labelKind: 'index' | 'dense';
  /** Upstream gradient: a scalar for 'mean'/'sum', a scalar or `[B]` for 'none'. Default 1. */
  readonly dy?: number | ArrayLike<number>;
}

export interface ReferenceResult {
  /** The op's output: length 1 for 'mean'/'sum', `[B]` for 'none'. */
  readonly value: Float64Array;
  /** ℓ_b for every row, before reduction. */
  readonly rowLosses: Float64Array;
  readonly crossEntropy: Float64Array;
  readonly kl: Float64Array;
  /** ∂(Σ dy · value)/∂s, row-major `[B, C]`. */
  readonly gradStudent: Float64Array;
  /** ∂(Σ dy · value)/∂t, row-major `[B, C]`. */
  readonly gradTeacher: Float64Array;
}

function logSumExp(x: Float64Array): number {
  let max = -Infinity;
  for (const v of x) if (v > max) max = v;
  if (Number.isNaN(max) || x.some(Number.isNaN)) return NaN;
  let sum = 0;
  for (const v of x) sum += Math.exp(v - max);
  return max + Math.log(sum);
}

/** g(x) = e^−x − 1 + x, accurate to ~1e-13 relative for every x. */
function g64(x: number): number {
  if (Math.abs(x) < 1e-3) return x * x * (0.5 - x * (1 / 6 - x * (1 / 24 - x / 120)));
  return Math.expm1(-x) + x;
}

/** Above this centre p e^−x may overflow float64; KL is then ≥ ~580 and the direct sum exact. */
const CENTRE_LIMIT_64 = 600;

interface CentredKl {
  kl: number;
  centre: number;
  meanX: number;
}

/** KL(p ‖ q) of one row from its tempered logits, without cancellation (see the file header). */
function centredKl(tT: Float64Array, sT: Float64Array, lseT: number, lseS: number): CentredKl {
  const C = tT.length;
  let centre = 0;
  for (let c = 0; c < C; c++) {
    const logP = tT[c]! - lseT;
    centre += Math.exp(logP) * (logP - (sT[c]! - lseS));
  }
  // centre = E_p[log p − log q] = the direct KL; the row constant of δ is irrelevant here.
  let meanX = 0;
  let meanG = 0;
  let direct = 0;
  for (let c = 0; c < C; c++) {
    const logP = tT[c]! - lseT;
    const p = Math.exp(logP);
    // no skip where p underflows to 0: p e^−x = exp(log q + c) need not be negligible there
    const x = logP - (sT[c]! - lseS) - centre;
    meanX += p * x;
    // p g(x) = p e^−x − p + p x, with p e^−x = exp(log p − x) (no overflow below the limit)
    meanG += Math.abs(x) < 1 ? p * g64(x) : Math.exp(logP - x) - p + p * x;
    direct += p * (logP - (sT[c]! - lseS));
  }
  if (!(centre < CENTRE_LIMIT_64)) return { kl: direct, centre, meanX };
  const y = meanG - meanX;
  const kl = y > 1 ? meanX + Math.log1p(y) : meanG - (y - Math.log1p(y));
  return { kl, centre, meanX };
}

function upstreamFor(dy: ReferenceInput['dy'], b: number, batch: number): number {
  if (dy === undefined) return 1;
  if (typeof dy === 'number') return dy;
  if (dy.length === 1) return dy[0]!;
  if (dy.length !== batch) throw new Error(`reference: dy must have 1 or ${batch} entries`);
  return dy[b]!;
}

/** Computes the loss, the per-row losses and both gradients in float64. */
export function referenceDistillationLoss(
  input: ReferenceInput,
  config: DistillationLossConfig = {},
): ReferenceResult {
  const cfg = resolveConfig(config, 'referenceDistillationLoss');
  const { batch: B, classes: C } = input;
  const { alpha, temperature: T } = cfg;
  const k = klFactor(cfg);
  const rowLosses = new Float64Array(B);
  const crossEntropy = new Float64Array(B);
  const kl = new Float64Array(B);
  const gradStudent = new Float64Array(B * C);
  const gradTeacher = new Float64Array(B * C);
  const s = new Float64Array(C);
  const sT = new Float64Array(C);
  const tT = new Float64Array(C);
  const y = new Float64Array(C);

  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      s[c] = input.student[b * C + c]!;
      sT[c] = s[c]! / T;
      tT[c] = input.teacher[b * C + c]! / T;
    }
    let labelValid = true;
    y.fill(0);
    if (input.labelKind === 'index') {
      const label = input.labels[b]!;
      labelValid = Number.isInteger(label) && label >= 0 && label < C;
      if (labelValid) y[label] = 1;
    } else {
      for (let c = 0; c < C; c++) y[c] = input.labels[b * C + c]!;
    }
    const lse1 = logSumExp(s);
    const lseS = logSumExp(sT);
    const lseT = logSumExp(tT);
    let ySum = 0;
    let ce = 0;
    for (let c = 0; c < C; c++) {
      ySum += y[c]!;
      if (y[c] !== 0) ce -= y[c]! * (s[c]! - lse1);
    }
    const centred = centredKl(tT, sT, lseT, lseS);
    let klb = centred.kl;
    if (!labelValid) ce = NaN;
    // A NaN anywhere in the row's logits or labels makes the row NaN even where a 0 weight
    // would hide it above.
    if (Number.isNaN(lse1) || Number.isNaN(ySum)) ce = NaN;
    if (Number.isNaN(lseS) || Number.isNaN(lseT)) klb = NaN;
    crossEntropy[b] = ce;
    kl[b] = klb;
    rowLosses[b] = alpha * ce + (1 - alpha) * k * klb;

    const dy = upstreamFor(input.dy, b, B);
    const w = cfg.reduction === 'mean' ? dy / B : dy;
    const klScale = ((1 - alpha) * k) / T;
    for (let c = 0; c < C; c++) {
      const sigma = Math.exp(s[c]! - lse1);
      const logQ = sT[c]! - lseS;
      const logP = tT[c]! - lseT;
      const p = Math.exp(logP);
      // x − E_p[x] = log p − log q − KL_b, free of the cancellation of the right-hand side
      const xc = logP - logQ - centred.centre - centred.meanX;
      const logRatio = -xc - klb; // log q − log p
      const qMinusP =
        Math.abs(logRatio) < 1 && p > 0 ? p * Math.expm1(logRatio) : Math.exp(logQ) - p;
      const ceGrad = labelValid ? sigma * ySum - y[c]! : NaN;
      gradStudent[b * C + c] = w * (alpha * ceGrad + klScale * qMinusP);
      const klTerm = p === 0 ? 0 : p * xc;
      gradTeacher[b * C + c] = w * klScale * (Number.isNaN(klb) ? NaN : klTerm);
    }
  }

  let value: Float64Array;
  if (cfg.reduction === 'none') {
    value = Float64Array.from(rowLosses);
  } else {
    let sum = 0;
    for (const l of rowLosses) sum += l;
    value = Float64Array.of(cfg.reduction === 'mean' ? sum / B : sum);
  }
  return { value, rowLosses, crossEntropy, kl, gradStudent, gradTeacher };
}
