/**
 * The float64 reference for a sparse (top-K) teacher: the truth that the sparse kernels are
 * compared with. Plain TypeScript on plain arrays, independent of tfjs, mirroring
 * src/reference.ts (same result layout, same ignoreIndex, label, NaN and reduction rules) with
 * the teacher given by K entries per row instead of dense logits (src/sparse-teacher.ts holds
 * the maths and every special case; this file implements exactly that header).
 *
 * Per row b (s = student logits over all C classes, T = temperature, entries k = 1 … K with
 * vocabulary ids i_k and teacher log-probabilities ℓ_k at temperature 1):
 *   listed entries: i_k ≠ −1 (padding, skipped whatever ℓ_k holds) and ℓ_k ≠ −Infinity
 *   log p_k = ℓ_k / T − lse_{j listed}(ℓ_j / T)        (max-shifted log-sum-exp)
 *   log q_c = s_c / T − lse(s / T)
 *   KL_b = Σ_{k listed} p_k (log p_k − log q[i_k])      (0 · log 0 = 0 where p_k underflows)
 *   CE_b, ℓ_b, components and 'mean' / 'sum' / 'none' exactly as src/reference.ts
 *   ∂ℓ_b/∂s_c = w_b [ α (σ(s)_c Σ y − y_c) + (1 − α) (k / T) (q_c − P_c) ],
 *   P_c = Σ_{k listed, i_k = c} p_k   (each entry on its own: a duplicate adds twice)
 * The teacher's inputs are constants: there is no teacher gradient.
 *
 * Special entries and rows (src/sparse-teacher.ts):
 * - an id outside [−1, C) (or not an integer), or ℓ_k NaN or +Infinity at a non-padding entry,
 *   or no listed entry at all makes the row's soft term NaN (KL_b, soft_b, ℓ_b and the row's
 *   student gradient; the hard component CE_b keeps its value), even at α = 1, as NaN teacher
 *   logits do for dense teachers;
 * - the student masking (−Infinity) a listed id with p_k > 0: KL_b = +Infinity; its student
 *   gradient (1 − α)(k / T)(q − P) stays finite (the limit as that logit goes to −∞); a soft
 *   weight of 0 (α = 1) drops the +Infinity, as in src/reference.ts;
 * - a row ignored by ignoreIndex is 0 everywhere and not counted, whatever its entries hold.
 *
 * Precision: KL_b is summed directly (not in the dense reference's centred form, which needs
 * Σ q = 1 over the teacher's support and no duplicates), so its absolute error is a few float64
 * ulps of max |log p_k − log q[i_k]| (≈ 1e-15 · log C): far below float32, but relative
 * precision is lost where KL_b itself is below ~1e-12 (K = C at T ≳ 1e5).
 */
import {
  checkConfigForLabels,
  klFactor,
  resolveConfig,
  type DistillationLossConfig,
} from './config.js';
import {
  hardLabelGradient,
  hardLabelTerm,
  isIgnoredRow,
  logSumExp,
  reduce,
  term,
  upstreamFor,
  type ReferenceResult,
} from './reference.js';

export interface SparseReferenceInput {
  readonly batch: number;
  readonly classes: number;
  /** K, the entries per row. */
  readonly topK: number;
  /** Row-major `[B, C]`. */
  readonly student: ArrayLike<number>;
  /** Row-major `[B, K]`: vocabulary ids in [0, C), or −1 for padding. */
  readonly indices: ArrayLike<number>;
  /** Row-major `[B, K]`: the teacher's log-probabilities (temperature 1) of those ids. */
  readonly logProbs: ArrayLike<number>;
  /** `[B]` class indices ('index') or row-major `[B, C]` one-hot / soft labels ('dense'). */
  readonly labels: ArrayLike<number>;
  readonly labelKind: 'index' | 'dense';
  /** Upstream gradient: a scalar for 'mean'/'sum', a scalar or `[B]` for 'none'. Default 1. */
  readonly dy?: number | ArrayLike<number>;
}

/** As {@link ReferenceResult}, without a teacher gradient (the teacher's entries are constants). */
export type SparseReferenceResult = Omit<ReferenceResult, 'gradTeacher'>;

const OP = 'referenceSparseDistillationLoss';

function checkLengths(input: SparseReferenceInput): void {
  const { batch: B, classes: C, topK: K } = input;
  for (const [name, n] of [
    ['batch', B],
    ['classes', C],
    ['topK', K],
  ] as const) {
    if (!Number.isInteger(n) || n < 1) {
      throw new RangeError(`${OP}: ${name} must be a positive integer, got ${n}`);
    }
  }
  const expect = (name: string, x: ArrayLike<number>, n: number, shape: string) => {
    if (x.length !== n) {
      throw new Error(`${OP}: ${name} must have ${n} entries (${shape}), got ${x.length}`);
    }
  };
  expect('student', input.student, B * C, `[${B}, ${C}]`);
  expect('indices', input.indices, B * K, `[${B}, ${K}]`);
  expect('logProbs', input.logProbs, B * K, `[${B}, ${K}]`);
  if (input.labelKind === 'index') expect('labels', input.labels, B, `[${B}]`);
  else expect('labels', input.labels, B * C, `[${B}, ${C}]`);
}

/** One row's soft term: KL_b and P (the teacher's mass scattered to its ids), or bad. */
interface SparseRow {
  /** NaN inputs, an out-of-range id or no listed entry: the soft term is NaN. */
  bad: boolean;
  kl: number;
  /** (id, p) of every listed entry, in order (duplicates separate). */
  ids: number[];
  p: number[];
}

function sparseRow(
  indices: ArrayLike<number>,
  logProbs: ArrayLike<number>,
  offset: number,
  K: number,
  C: number,
  T: number,
  logQ: Float64Array,
): SparseRow {
  const ids: number[] = [];
  const v: number[] = [];
  let bad = false;
  for (let k = 0; k < K; k++) {
    const id = indices[offset + k]!;
    const l = logProbs[offset + k]!;
    if (id === -1) continue; // padding, whatever ℓ_k holds
    if (!Number.isInteger(id) || id < -1 || id >= C) bad = true; // never an address
    if (Number.isNaN(l) || l === Infinity) bad = true;
    if (bad || l === -Infinity) continue; // −Infinity: probability 0
    ids.push(id);
    v.push(l / T);
  }
  if (bad || ids.length === 0) return { bad: true, kl: NaN, ids: [], p: [] };
  const lseP = logSumExp(v);
  const p: number[] = [];
  let kl = 0;
  for (let k = 0; k < ids.length; k++) {
    const logP = v[k]! - lseP;
    const pk = Math.exp(logP);
    p.push(pk);
    const lq = logQ[ids[k]!]!;
    // p_k > 0 mathematically (ℓ_k finite): a masked student id is KL = +Infinity even where
    // p_k underflows in float64; elsewhere an underflowed p_k adds 0 (0 · log 0 = 0).
    if (lq === -Infinity) kl = Infinity;
    else if (pk > 0) kl += pk * (logP - lq);
  }
  return { bad: false, kl, ids, p };
}

/**
 * Computes the loss, its components, the per-row losses and the student's gradient in float64
 * for a sparse (top-K) teacher `{ indices, logProbs }` (see the module's header).
 * Only divergence 'forward-kl' is defined for sparse teachers.
 */
export function referenceSparseDistillationLoss(
  input: SparseReferenceInput,
  config: DistillationLossConfig = {},
): SparseReferenceResult {
  const cfg = resolveConfig(config, OP);
  checkConfigForLabels(cfg, input.labelKind, OP);
  if (cfg.divergence !== 'forward-kl') {
    throw new Error(
      `${OP}: a sparse (top-K) teacher defines divergence 'forward-kl' only (KL(p ‖ q) over ` +
        `the teacher's listed entries), got '${cfg.divergence}'`,
    );
  }
  checkLengths(input);
  const { batch: B, classes: C, topK: K } = input;
  const { alpha, temperature: T } = cfg;
  const k = klFactor(cfg);
  const softWeight = (1 - alpha) * k;
  const rowLosses = new Float64Array(B);
  const crossEntropy = new Float64Array(B);
  const kl = new Float64Array(B);
  const softRows = new Float64Array(B);
  const counted = new Uint8Array(B);
  const gradStudent = new Float64Array(B * C);
  const s = new Float64Array(C);
  const sT = new Float64Array(C);
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
    }
    // (NaN, +Infinity or a row masked everywhere: lse is NaN, as in src/reference.ts)
    const hard = hardLabelTerm(s, input.labels, input.labelKind, b, y);
    const lseS = logSumExp(sT);
    const logQ = sT.map((x) => x - lseS);
    const row = sparseRow(input.indices, input.logProbs, b * K, K, C, T, logQ);
    const softBad = Number.isNaN(lseS) || row.bad;
    crossEntropy[b] = hard.bad ? NaN : hard.ce;
    kl[b] = softBad ? NaN : row.kl;
    softRows[b] = softBad ? NaN : k * row.kl;
    rowLosses[b] = term(alpha, hard.ce, hard.bad) + term(softWeight, row.kl, softBad);

    // (q − P) / T: the dense part, then each listed entry's p subtracted at its id
    const qMinusP = logQ.map(Math.exp);
    for (let e = 0; e < row.ids.length; e++) qMinusP[row.ids[e]!]! -= row.p[e]!;
    const dy = upstreamFor(input.dy, b, B, OP);
    const w = cfg.reduction === 'mean' ? dy / Math.max(count, 1) : dy;
    for (let c = 0; c < C; c++) {
      const hardGrad = term(alpha, hardLabelGradient(hard, s[c]!, y[c]!), hard.bad);
      gradStudent[b * C + c] = w * (hardGrad + term(softWeight, qMinusP[c]! / T, softBad));
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
  };
}
