/**
 * The float64 reference: the truth that the kernels are compared with. Plain TypeScript on
 * plain arrays, independent of tfjs (and itself checked against tfjs autograd of the stock
 * composition in test/reference.test.ts, and against finite differences of itself in
 * test/divergences.test.ts).
 *
 * Per row b (s = student logits, t = teacher logits, y = labels, T = temperature):
 *   log σ(s)_c = s_c − lse(s)                    σ = softmax, lse = log Σ exp
 *   CE_b = −Σ_c y_c · log σ(s)_c                (integer label: −log σ(s)[y_b]; 0 · log 0 = 0)
 *   p = softmax(t / T),  q = softmax(s / T)
 *   D_b = the divergence (src/divergences.ts): KL(p ‖ q) by default, KL(q ‖ p), or JSD_β
 *   ℓ_b  = α · CE_b + (1 − α) · k · D_b,  k = T² (temperatureSquared) or 1
 *   components: hard_b = CE_b, soft_b = k · D_b (reduced like ℓ), so ℓ = α · hard + (1 − α) · soft
 * Gradients, with w_b = dy / N ('mean', N = the counted rows), dy ('sum') or dy_b ('none'):
 *   ∂/∂s_bc = w_b [ α (σ(s)_c · Σ_j y_j − y_c) + (1 − α) k ∂D_b/∂s_bc ]
 *   ∂/∂t_bc = w_b (1 − α) k ∂D_b/∂t_bc
 * (forward KL: ∂D/∂s = (q − p) / T, ∂D/∂t = p (log p − log q − D) / T; the others in
 * src/divergences.ts, which also holds the centred forms that keep D's relative precision as
 * it shrinks like 1/T²).
 *
 * Special rows and values:
 * - ignoreIndex (int32 labels): a row whose label equals it has ℓ_b = hard_b = soft_b = 0,
 *   zero gradients (even if its logits hold NaN or ±Infinity) and is not counted: 'mean' divides
 *   by the number N of other rows. If every row is ignored, 'mean' is 0 with zero gradients
 *   (the sum over no rows divided by max(N, 1)), not 0 / 0 = NaN: a batch of padding is a
 *   no-op step, not a poisoned optimizer state.
 * - An integer label outside [0, C) (and not ignored) makes CE_b, ℓ_b and the row's student
 *   gradient NaN. A NaN or +Infinity in a row's logits or dense labels makes that row NaN.
 * - −Infinity logits are probability 0 (masks). A column masked in teacher and student adds
 *   nothing. A term that is +Infinity (CE of a label on a masked student column; forward KL
 *   where the student masks a column the teacher gives mass, reverse KL the other way round)
 *   makes ℓ_b = +Infinity, with the gradients described in src/divergences.ts; a term whose
 *   weight is 0 (α = 0, or α = 1 for the soft term) adds nothing even when it is +Infinity
 *   (NaN inputs still make the row NaN). A row masked everywhere (in teacher or student) has
 *   no distribution: its loss and gradients are NaN unless ignoreIndex ignores it.
 */
import {
  checkConfigForLabels,
  klFactor,
  resolveConfig,
  type DistillationLossConfig,
  type ResolvedConfig,
} from './config.js';
import { divergenceOf } from './divergences.js';

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
  /** CE_b of every row (0 where ignored). */
  readonly crossEntropy: Float64Array;
  /** The divergence D_b of every row, before the factor k (0 where ignored). */
  readonly kl: Float64Array;
  /** The hard component: CE reduced like `value` (length 1, or `[B]` for 'none'). */
  readonly hardLoss: Float64Array;
  /** The soft component: k · D reduced like `value`; value = α · hardLoss + (1 − α) · softLoss. */
  readonly softLoss: Float64Array;
  /** 1 for each row counted, 0 for a row ignored by ignoreIndex. */
  readonly counted: Uint8Array;
  /** ∂(Σ dy · value)/∂s, row-major `[B, C]`. */
  readonly gradStudent: Float64Array;
  /** ∂(Σ dy · value)/∂t, row-major `[B, C]`. */
  readonly gradTeacher: Float64Array;
}

/** log Σ exp(x), max-shifted; NaN if any entry is NaN (or the entries hold no maximum). */
export function logSumExp(x: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (Number.isNaN(v)) return NaN;
    if (v > max) max = v;
  }
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += Math.exp(x[i]! - max);
  return max + Math.log(sum);
}

/** Row b's upstream gradient: 1 by default, a scalar, or `dy[b]` of a `[B]` dy. */
export function upstreamFor(
  dy: ReferenceInput['dy'],
  b: number,
  batch: number,
  op = 'reference',
): number {
  if (dy === undefined) return 1;
  if (typeof dy === 'number') return dy;
  if (dy.length === 1) return dy[0]!;
  if (dy.length !== batch) throw new Error(`${op}: dy must have 1 or ${batch} entries`);
  return dy[b]!;
}

/** A term's weighted contribution: NaN inputs propagate, a zero weight drops even +Infinity. */
export function term(weight: number, value: number, bad: boolean): number {
  if (bad) return NaN;
  return weight === 0 ? 0 : weight * value;
}

/** The op's output from the row values: as they are ('none'), their sum, or sum / max(N, 1). */
export function reduce(rows: Float64Array, reduction: string, count: number): Float64Array {
  if (reduction === 'none') return Float64Array.from(rows);
  let sum = 0;
  for (const l of rows) sum += l;
  return Float64Array.of(reduction === 'mean' ? sum / Math.max(count, 1) : sum);
}

/** Whether row b is ignored: int32 labels, an ignore index in force, and b's label equal to it. */
export function isIgnoredRow(
  labels: ArrayLike<number>,
  labelKind: 'index' | 'dense',
  cfg: ResolvedConfig,
  b: number,
): boolean {
  return labelKind === 'index' && cfg.hasIgnoreIndex && labels[b] === cfg.ignoreIndex;
}

/** A row's hard-label term: CE_b and what its gradient needs (see {@link hardLabelGradient}). */
export interface HardLabelTerm {
  /** CE_b = −Σ_c y_c log σ(s)_c (0 · log 0 = 0); the row's CE is NaN instead where `bad`. */
  readonly ce: number;
  /**
   * An integer label outside [0, C) (or not an integer), a NaN in the dense labels, or logits
   * with no finite log-sum-exp (a NaN, +Infinity or a row masked everywhere): CE_b, ℓ_b and the
   * row's student gradient are NaN, even where a zero weight would hide the term.
   */
  readonly bad: boolean;
  /** lse(s). */
  readonly lse: number;
  /** Σ_c y_c. */
  readonly ySum: number;
}

/**
 * Row b's hard-label cross-entropy in float64, from its logits `s` (length C) and the labels
 * (`[B]` indices or row-major `[B, C]` dense); the row's labels are written to `y` (length C):
 * one-hot for a valid integer label, all 0 for an invalid one, the dense row as given.
 */
export function hardLabelTerm(
  s: Float64Array,
  labels: ArrayLike<number>,
  labelKind: 'index' | 'dense',
  b: number,
  y: Float64Array,
): HardLabelTerm {
  const C = s.length;
  let labelValid = true;
  y.fill(0);
  if (labelKind === 'index') {
    const label = labels[b]!;
    labelValid = Number.isInteger(label) && label >= 0 && label < C;
    if (labelValid) y[label] = 1;
  } else {
    for (let c = 0; c < C; c++) y[c] = labels[b * C + c]!;
  }
  const lse = logSumExp(s);
  let ySum = 0;
  let ce = 0;
  for (let c = 0; c < C; c++) {
    ySum += y[c]!;
    if (y[c] !== 0) ce -= y[c]! * (s[c]! - lse);
  }
  const bad = !labelValid || Number.isNaN(lse) || Number.isNaN(ySum);
  return { ce, bad, lse, ySum };
}

/** ∂CE_b/∂s_c = σ(s)_c · Σ_j y_j − y_c, from the row's term, its logit s_c and label y_c. */
export function hardLabelGradient(hard: HardLabelTerm, sc: number, yc: number): number {
  return Math.exp(sc - hard.lse) * hard.ySum - yc;
}

/**
 * `{ batch, classes }` of row-major inputs of shape `[..., C]`: every leading index is a row
 * (labels then have the leading shape, or `[..., C]` when dense).
 */
export function rowsOfShape(shape: readonly number[]): { batch: number; classes: number } {
  if (shape.length < 1) throw new Error('rowsOfShape: logits need a class axis');
  const classes = shape[shape.length - 1]!;
  const batch = shape.slice(0, -1).reduce((a, b) => a * b, 1);
  return { batch, classes };
}

/** Computes the loss, its components, the per-row losses and both gradients in float64. */
export function referenceDistillationLoss(
  input: ReferenceInput,
  config: DistillationLossConfig = {},
): ReferenceResult {
  const op = 'referenceDistillationLoss';
  const cfg = resolveConfig(config, op);
  checkConfigForLabels(cfg, input.labelKind, op);
  const divergence = divergenceOf(cfg);
  const { batch: B, classes: C } = input;
  const { alpha, temperature: T } = cfg;
  const k = klFactor(cfg);
  const softWeight = (1 - alpha) * k;
  const rowLosses = new Float64Array(B);
  const crossEntropy = new Float64Array(B);
  const kl = new Float64Array(B);
  const softRows = new Float64Array(B);
  const counted = new Uint8Array(B);
  const gradStudent = new Float64Array(B * C);
  const gradTeacher = new Float64Array(B * C);
  const s = new Float64Array(C);
  const sT = new Float64Array(C);
  const tT = new Float64Array(C);
  const y = new Float64Array(C);
  const skipped = (b: number) => isIgnoredRow(input.labels, input.labelKind, cfg, b);
  let count = 0;
  for (let b = 0; b < B; b++) if (!skipped(b)) count++;

  for (let b = 0; b < B; b++) {
    if (skipped(b)) continue; // ℓ_b, components and gradients stay 0
    counted[b] = 1;
    for (let c = 0; c < C; c++) {
      s[c] = input.student[b * C + c]!;
      sT[c] = s[c]! / T;
      tT[c] = input.teacher[b * C + c]! / T;
    }
    const hard = hardLabelTerm(s, input.labels, input.labelKind, b, y);
    const lseS = logSumExp(sT);
    const lseT = logSumExp(tT);
    // NaN (or +Infinity, or a row masked everywhere) in the row's logits or labels makes the
    // row NaN, even where a 0 weight would hide it.
    const softBad = Number.isNaN(lseS) || Number.isNaN(lseT);
    const logP = tT.map((v) => v - lseT);
    const logQ = sT.map((v) => v - lseS);
    const d = divergence.reference({ logP, logQ, temperature: T }, cfg);
    crossEntropy[b] = hard.bad ? NaN : hard.ce;
    kl[b] = softBad ? NaN : d.value;
    softRows[b] = softBad ? NaN : k * d.value;
    rowLosses[b] = term(alpha, hard.ce, hard.bad) + term(softWeight, d.value, softBad);

    const dy = upstreamFor(input.dy, b, B);
    const w = cfg.reduction === 'mean' ? dy / Math.max(count, 1) : dy;
    for (let c = 0; c < C; c++) {
      const hardGrad = term(alpha, hardLabelGradient(hard, s[c]!, y[c]!), hard.bad);
      gradStudent[b * C + c] = w * (hardGrad + term(softWeight, d.gradStudent[c]!, softBad));
      gradTeacher[b * C + c] = w * term(softWeight, d.gradTeacher[c]!, softBad);
    }
  }

  const r = cfg.reduction;
  return {
    value: reduce(rowLosses, r, count),
    rowLosses,
    crossEntropy,
    kl,
    hardLoss: reduce(crossEntropy, r, count),
    softLoss: reduce(softRows, r, count),
    counted,
    gradStudent,
    gradTeacher,
  };
}
