/**
 * The float64 reference of `fusedLinearDistillationLoss` (src/linear/op.ts): plain TypeScript
 * on plain arrays, no tfjs. It computes the student's logits whole (which the op never does),
 * applies the head transform, hands the logits to the float64 references of the loss
 * (src/reference.ts for dense teachers, src/reference-sparse.ts for top-K ones) and chains their
 * ∂L/∂z' back through the transform and the matMul.
 *
 * Per row r (H = hiddenSize, V = vocab, s = logitScale, κ = softCap):
 *   z_rv  = Σ_k h_rk W_kv + b_v                  (float64)
 *   z'_rv = κ tanh(s z_rv / κ)                   (no cap: s z_rv; −Infinity stays −Infinity)
 *   loss, components, rowLosses = the reference of (labels, z', teacher logits), config
 *   g'_rv = ∂(Σ dy · loss)/∂z'_rv               (that reference's gradStudent)
 *   g_rv  = g'_rv · s · (1 − tanh²(s z_rv / κ))  (no cap: g'_rv · s; 0 where z_rv = −Infinity)
 *   gradHidden_rk = Σ_v g_rv W_kv,  gradWeight_kv = Σ_r h_rk g_rv,  gradBias_v = Σ_r g_rv
 * A teacher head {hidden [rows, Ht], weight [Ht, V], bias?} gets the same transform; dense and
 * top-K teachers are used as given. Teachers are constants (no teacher gradient is returned).
 *
 * `fault` builds deliberately wrong variants (tests only: they show a comparison can fail).
 */
import type { DistillationLossConfig } from '../config.js';
import type { FusedLinearDistillationLossConfig } from '../linear/types.js';
import { referenceDistillationLoss } from '../reference.js';
import { referenceSparseDistillationLoss } from '../reference-sparse.js';
import { mulberry32 } from './random.js';

/** The teacher of {@link LinearReferenceInput}, row-major. */
export type LinearReferenceTeacher =
  | { readonly kind: 'dense'; readonly logits: ArrayLike<number> }
  | {
      readonly kind: 'sparse';
      readonly k: number;
      readonly indices: ArrayLike<number>;
      readonly logProbs: ArrayLike<number>;
    }
  | {
      readonly kind: 'head';
      readonly hiddenSize: number;
      /** `[rows, Ht]` */
      readonly hidden: ArrayLike<number>;
      /** `[Ht, V]` */
      readonly weight: ArrayLike<number>;
      /** `[V]` */
      readonly bias?: ArrayLike<number>;
    };

export interface LinearReferenceInput {
  readonly rows: number;
  readonly hiddenSize: number;
  readonly vocab: number;
  /** Row-major `[rows, H]`. */
  readonly hidden: ArrayLike<number>;
  /** Row-major `[H, V]`. */
  readonly weight: ArrayLike<number>;
  /** `[V]`; default none. */
  readonly bias?: ArrayLike<number>;
  readonly teacher: LinearReferenceTeacher;
  /** `[rows]` class indices ('index') or row-major `[rows, V]` ('dense'). */
  readonly labels: ArrayLike<number>;
  readonly labelKind: 'index' | 'dense';
  readonly config?: FusedLinearDistillationLossConfig;
  /** Upstream gradient: a scalar for 'mean'/'sum', a scalar or `[rows]` for 'none'. Default 1. */
  readonly dy?: number | ArrayLike<number>;
}

/**
 * Deliberately wrong variants: 'no-softcap-derivative' drops the factor 1 − tanh²,
 * 'bias-missing-row' leaves the first counted row out of gradBias.
 */
export type LinearReferenceFault = 'none' | 'no-softcap-derivative' | 'bias-missing-row';

export interface LinearReferenceResult {
  /** Length 1 for 'mean'/'sum', `[rows]` for 'none'. */
  readonly value: Float64Array;
  readonly hardLoss: Float64Array;
  readonly softLoss: Float64Array;
  readonly rowLosses: Float64Array;
  readonly counted: Uint8Array;
  /** z' = the transformed student logits, `[rows, V]`. */
  readonly logits: Float64Array;
  /** z = h · W + b before the transform, `[rows, V]`. */
  readonly rawLogits: Float64Array;
  /** The dense teacher logits the loss saw (transformed for a head); null for top-K. */
  readonly teacherLogits: Float64Array | null;
  /** ∂(Σ dy · value)/∂z', `[rows, V]`. */
  readonly gradLogits: Float64Array;
  /** ∂(Σ dy · value)/∂z, `[rows, V]`. */
  readonly gradRawLogits: Float64Array;
  readonly gradHidden: Float64Array;
  readonly gradWeight: Float64Array;
  readonly gradBias: Float64Array;
}

/** The loss options of a linear config (without logitScale, softCap, memoryBudgetBytes). */
export function lossConfigOf(
  config: FusedLinearDistillationLossConfig = {},
): DistillationLossConfig {
  const loss: DistillationLossConfig & Partial<FusedLinearDistillationLossConfig> = { ...config };
  delete loss.logitScale;
  delete loss.softCap;
  delete loss.memoryBudgetBytes;
  return loss;
}

/** z = h · W + b in float64: `[rows, V]` from `[rows, H]`, `[H, V]`, `[V]`. */
export function linearLogits64(
  rows: number,
  H: number,
  V: number,
  hidden: ArrayLike<number>,
  weight: ArrayLike<number>,
  bias?: ArrayLike<number>,
): Float64Array {
  const z = new Float64Array(rows * V);
  for (let r = 0; r < rows; r++) {
    for (let v = 0; v < V; v++) {
      let acc = bias ? bias[v]! : 0;
      for (let k = 0; k < H; k++) acc += hidden[r * H + k]! * weight[k * V + v]!;
      z[r * V + v] = acc;
    }
  }
  return z;
}

/** softCap(logitScale · z) of each element, −Infinity kept. */
export function transformLogits64(
  z: ArrayLike<number>,
  logitScale = 1,
  softCap?: number,
): Float64Array {
  const out = new Float64Array(z.length);
  for (let i = 0; i < z.length; i++) {
    const x = logitScale * z[i]!;
    out[i] = softCap === undefined || x === -Infinity ? x : softCap * Math.tanh(x / softCap);
  }
  return out;
}

/** d z'/d z of the transform at z: s (1 − tanh²(s z / κ)), or s; 0 at −Infinity. */
export function transformSlope64(z: number, logitScale = 1, softCap?: number): number {
  if (z === -Infinity) return 0;
  if (softCap === undefined) return logitScale;
  const t = Math.tanh((logitScale * z) / softCap);
  return logitScale * (1 - t * t);
}

/** Computes the loss, its components and the gradients wrt hidden, weight and bias in float64. */
export function referenceFusedLinearDistillationLoss(
  input: LinearReferenceInput,
  fault: LinearReferenceFault = 'none',
): LinearReferenceResult {
  const { rows, hiddenSize: H, vocab: V } = input;
  const config = input.config ?? {};
  const scale = config.logitScale ?? 1;
  const cap = config.softCap;
  const lossConfig = lossConfigOf(config);
  const rawLogits = linearLogits64(rows, H, V, input.hidden, input.weight, input.bias);
  const logits = transformLogits64(rawLogits, scale, cap);
  const t = input.teacher;
  let teacherLogits: Float64Array | null = null;
  let ref;
  if (t.kind === 'sparse') {
    ref = referenceSparseDistillationLoss(
      {
        batch: rows,
        classes: V,
        topK: t.k,
        student: logits,
        indices: t.indices,
        logProbs: t.logProbs,
        labels: input.labels,
        labelKind: input.labelKind,
        ...(input.dy === undefined ? {} : { dy: input.dy }),
      },
      lossConfig,
    );
  } else {
    teacherLogits =
      t.kind === 'dense'
        ? Float64Array.from(t.logits)
        : transformLogits64(
            linearLogits64(rows, t.hiddenSize, V, t.hidden, t.weight, t.bias),
            scale,
            cap,
          );
    ref = referenceDistillationLoss(
      {
        batch: rows,
        classes: V,
        student: logits,
        teacher: teacherLogits,
        labels: input.labels,
        labelKind: input.labelKind,
        ...(input.dy === undefined ? {} : { dy: input.dy }),
      },
      lossConfig,
    );
  }
  const gradLogits = ref.gradStudent;
  const gradRawLogits = new Float64Array(rows * V);
  const slopeCap = fault === 'no-softcap-derivative' ? undefined : cap;
  for (let i = 0; i < rows * V; i++) {
    const g = gradLogits[i]!;
    gradRawLogits[i] = g === 0 ? 0 : g * transformSlope64(rawLogits[i]!, scale, slopeCap);
  }
  const gradHidden = new Float64Array(rows * H);
  const gradWeight = new Float64Array(H * V);
  const gradBias = new Float64Array(V);
  let skipRow = -1;
  if (fault === 'bias-missing-row') skipRow = ref.counted.indexOf(1);
  for (let r = 0; r < rows; r++) {
    for (let v = 0; v < V; v++) {
      const g = gradRawLogits[r * V + v]!;
      if (r !== skipRow) gradBias[v] += g;
      for (let k = 0; k < H; k++) {
        gradHidden[r * H + k] += g * input.weight[k * V + v]!;
        gradWeight[k * V + v] += input.hidden[r * H + k]! * g;
      }
    }
  }
  return {
    value: ref.value,
    hardLoss: ref.hardLoss,
    softLoss: ref.softLoss,
    rowLosses: ref.rowLosses,
    counted: ref.counted,
    logits,
    rawLogits,
    teacherLogits,
    gradLogits,
    gradRawLogits,
    gradHidden,
    gradWeight,
    gradBias,
  };
}

/** A seeded case of the linear op: shapes, teacher kind, labels, masks, config. */
export interface LinearCaseSpec {
  /** The hidden states' leading shape: `[rows]` or `[batch, seq]`. */
  readonly leading: readonly number[];
  readonly hiddenSize: number;
  readonly vocab: number;
  readonly teacher: 'dense' | 'sparse' | 'head';
  /** K of a top-K teacher (default 8). */
  readonly topK?: number;
  /** Ht of a teacher head (default hiddenSize + 3). */
  readonly teacherHidden?: number;
  readonly labels?: 'index' | 'dense';
  readonly config?: FusedLinearDistillationLossConfig;
  /** Whether the student's head has a bias (default true). */
  readonly bias?: boolean;
  /** Classes masked (−Infinity) in the student's bias and in the teacher. */
  readonly masked?: readonly number[];
  /** Rows whose label is config.ignoreIndex. */
  readonly ignoredRows?: readonly number[];
  /** 'rows': a `[rows]` upstream gradient for 'none'; a number: a scalar one. Default 1. */
  readonly dy?: 'rows' | number;
  /** Scale of the weights (default 1.5 / √H: logits of a few units). */
  readonly weightScale?: number;
}

/** The inputs of a {@link LinearCaseSpec}, float32 values (the reference sees what the op sees). */
export function makeLinearCase(spec: LinearCaseSpec, seed: number): LinearReferenceInput {
  const rand = mulberry32(seed);
  const rows = spec.leading.reduce((a, b) => a * b, 1);
  const H = spec.hiddenSize;
  const V = spec.vocab;
  const masked = new Set(spec.masked ?? []);
  const uniform = (n: number, scale: number) =>
    Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
  const wScale = spec.weightScale ?? 1.5 / Math.sqrt(H);
  const hidden = uniform(rows * H, 1);
  const weight = uniform(H * V, wScale);
  const withBias = spec.bias ?? true;
  const bias = withBias ? uniform(V, 0.5) : undefined;
  if (bias) for (const c of masked) bias[c] = -Infinity;
  const config = spec.config ?? {};
  const labelKind = spec.labels ?? 'index';
  const open = Array.from({ length: V }, (_, c) => c).filter((c) => !masked.has(c));
  let labels: Int32Array | Float32Array;
  if (labelKind === 'index') {
    labels = Int32Array.from({ length: rows }, () => open[Math.floor(rand() * open.length)]!);
    for (const r of spec.ignoredRows ?? []) labels[r] = config.ignoreIndex ?? -100;
  } else {
    labels = new Float32Array(rows * V);
    for (let r = 0; r < rows; r++) {
      let sum = 0;
      const w = open.map(() => rand() ** 4);
      for (const x of w) sum += x;
      open.forEach((c, i) => (labels[r * V + c] = w[i]! / sum));
    }
  }
  let teacher: LinearReferenceTeacher;
  if (spec.teacher === 'dense') {
    const logits = uniform(rows * V, 4);
    for (let r = 0; r < rows; r++) for (const c of masked) logits[r * V + c] = -Infinity;
    teacher = { kind: 'dense', logits };
  } else if (spec.teacher === 'head') {
    const Ht = spec.teacherHidden ?? H + 3;
    const tb = uniform(V, 0.5);
    for (const c of masked) tb[c] = -Infinity;
    teacher = {
      kind: 'head',
      hiddenSize: Ht,
      hidden: uniform(rows * Ht, 1),
      weight: uniform(Ht * V, 2 / Math.sqrt(Ht)),
      bias: tb,
    };
  } else {
    const K = spec.topK ?? 8;
    const indices = new Int32Array(rows * K);
    const logProbs = new Float32Array(rows * K);
    for (let r = 0; r < rows; r++) {
      const perm = [...open];
      for (let i = perm.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [perm[i], perm[j]] = [perm[j]!, perm[i]!];
      }
      const l = Array.from({ length: K }, () => (rand() * 2 - 1) * 3);
      const m = Math.max(...l);
      const lse = m + Math.log(l.reduce((a, x) => a + Math.exp(x - m), 0));
      const offset = rand();
      for (let k = 0; k < K; k++) {
        indices[r * K + k] = perm[k % perm.length]!;
        logProbs[r * K + k] = l[k]! - lse - offset;
      }
    }
    teacher = { kind: 'sparse', k: K, indices, logProbs };
  }
  let dy: number | Float32Array | undefined;
  if (spec.dy === 'rows') dy = uniform(rows, 2).map((x) => x + Math.sign(x) * 0.25);
  else if (typeof spec.dy === 'number') dy = spec.dy;
  return {
    rows,
    hiddenSize: H,
    vocab: V,
    hidden,
    weight,
    ...(bias ? { bias } : {}),
    teacher,
    labels,
    labelKind,
    config,
    ...(dy === undefined ? {} : { dy }),
  };
}
