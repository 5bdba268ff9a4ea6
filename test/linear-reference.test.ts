/**
 * The float64 reference of the linear op (src/validation/reference-linear.ts) against central
 * finite differences of its own value, for hidden, weight and bias (CPU only, no tfjs), and
 * its derived tolerances (src/validation/tolerance-linear.ts) against deliberately wrong
 * references.
 *
 * Finite differences: F = Σ dy · value is a smooth function of each input; its central
 * difference with step η = 10⁻⁶ has truncation error η² |F'''| / 6 ≈ 10⁻¹² and cancellation
 * error ≈ 10⁻¹⁶ |F| / η ≈ 10⁻¹⁰ |F|, far below the bound 10⁻⁶ (1 + max |g|) used here, which
 * the wrong variants (the soft cap's derivative 1 − tanh² dropped, a row left out of the bias's
 * gradient) exceed by orders of magnitude.
 */
import { describe, expect, test } from 'vitest';
import { referenceDistillationLoss } from '../src/reference.js';
import {
  makeLinearCase,
  referenceFusedLinearDistillationLoss,
  type LinearCaseSpec,
  type LinearReferenceFault,
  type LinearReferenceInput,
} from '../src/validation/reference-linear.js';
import { linearTolerances } from '../src/validation/tolerance-linear.js';

interface NamedSpec extends LinearCaseSpec {
  name: string;
}

const CASES: NamedSpec[] = [
  {
    name: 'dense forward KL, softCap 2, logitScale 1.5, mean',
    leading: [5],
    hiddenSize: 4,
    vocab: 12,
    teacher: 'dense',
    config: { alpha: 0.3, temperature: 2, softCap: 2, logitScale: 1.5 },
  },
  {
    name: 'top-K teacher, softCap 3, dense labels, sum',
    leading: [4],
    hiddenSize: 5,
    vocab: 10,
    teacher: 'sparse',
    topK: 4,
    labels: 'dense',
    config: { alpha: 0.5, temperature: 1.5, softCap: 3, reduction: 'sum' },
  },
  {
    name: 'teacher head, softCap 2.5, logitScale 0.7, none with [rows] dy',
    leading: [4],
    hiddenSize: 3,
    vocab: 9,
    teacher: 'head',
    teacherHidden: 5,
    dy: 'rows',
    config: { alpha: 0.2, temperature: 3, softCap: 2.5, logitScale: 0.7, reduction: 'none' },
  },
  {
    name: 'JSD β 0.3, masks in the bias, ignoreIndex, softCap 2',
    leading: [6],
    hiddenSize: 4,
    vocab: 11,
    teacher: 'dense',
    masked: [2, 7],
    ignoredRows: [1, 4],
    config: {
      divergence: 'jsd',
      beta: 0.3,
      alpha: 0.25,
      temperature: 2,
      softCap: 2,
      ignoreIndex: -100,
    },
  },
  {
    name: 'reverse KL, teacher head, T² off, rank 3, softCap 1.5',
    leading: [2, 3],
    hiddenSize: 4,
    vocab: 8,
    teacher: 'head',
    masked: [5],
    config: {
      divergence: 'reverse-kl',
      alpha: 0.4,
      temperature: 2,
      temperatureSquared: false,
      softCap: 1.5,
      reduction: 'sum',
    },
  },
  {
    name: 'no bias, no cap, logitScale 2, mean, scalar dy',
    leading: [5],
    hiddenSize: 3,
    vocab: 7,
    teacher: 'dense',
    bias: false,
    dy: 0.75,
    config: { alpha: 0.6, temperature: 4, logitScale: 2 },
  },
];

/** F = Σ dy · value at these inputs (float64 copies, so that perturbations are exact). */
function objective(input: LinearReferenceInput): number {
  const ref = referenceFusedLinearDistillationLoss(input);
  const dy = input.dy ?? 1;
  let f = 0;
  for (let i = 0; i < ref.value.length; i++) {
    const d = typeof dy === 'number' ? dy : dy.length === 1 ? dy[0]! : dy[i]!;
    f += d * ref.value[i]!;
  }
  return f;
}

type Param = 'hidden' | 'weight' | 'bias';

function finiteDifferences(input: LinearReferenceInput, param: Param, eta = 1e-6): Float64Array {
  const base = Float64Array.from(input[param]!);
  const out = new Float64Array(base.length);
  for (let i = 0; i < base.length; i++) {
    if (!Number.isFinite(base[i]!)) continue; // a masked bias entry: constant −Infinity
    const at = (d: number) => {
      const x = Float64Array.from(base);
      x[i] = x[i]! + d;
      return objective({ ...input, [param]: x });
    };
    out[i] = (at(eta) - at(-eta)) / (2 * eta);
  }
  return out;
}

/** max_i |a_i − b_i| / (1 + max |b|). */
function relativeGap(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let scale = 0;
  let gap = 0;
  for (let i = 0; i < b.length; i++) {
    scale = Math.max(scale, Math.abs(b[i]!));
    gap = Math.max(gap, Math.abs(a[i]! - b[i]!));
  }
  return gap / (1 + scale);
}

const GRADS = { hidden: 'gradHidden', weight: 'gradWeight', bias: 'gradBias' } as const;

describe('the linear reference against finite differences of itself', () => {
  test.each(CASES)('$name', (spec) => {
    const input = makeLinearCase(spec, 1234);
    const ref = referenceFusedLinearDistillationLoss(input);
    expect(ref.value.every(Number.isFinite)).toBe(true);
    const params: Param[] =
      spec.bias === false ? ['hidden', 'weight'] : ['hidden', 'weight', 'bias'];
    for (const p of params) {
      const fd = finiteDifferences(input, p);
      const gap = relativeGap(ref[GRADS[p]], fd);
      expect(gap, `${p}: relative gap ${gap}`).toBeLessThan(1e-6);
    }
    // ignored rows and masked classes: exact zeros
    for (const r of spec.ignoredRows ?? []) {
      for (let k = 0; k < input.hiddenSize; k++) {
        expect(ref.gradHidden[r * input.hiddenSize + k]).toBe(0);
      }
    }
    for (const c of spec.masked ?? []) expect(ref.gradBias[c]).toBe(0);
  });

  test('without a transform it is the dense reference on h · W + b', () => {
    const input = makeLinearCase(
      { leading: [4], hiddenSize: 3, vocab: 6, teacher: 'dense', config: { alpha: 0.3 } },
      7,
    );
    const ref = referenceFusedLinearDistillationLoss(input);
    const direct = referenceDistillationLoss(
      {
        batch: 4,
        classes: 6,
        student: ref.rawLogits,
        teacher: input.teacher.kind === 'dense' ? input.teacher.logits : [],
        labels: input.labels,
        labelKind: 'index',
      },
      { alpha: 0.3 },
    );
    expect(ref.value[0]).toBe(direct.value[0]);
    expect(Array.from(ref.gradRawLogits)).toEqual(Array.from(direct.gradStudent));
  });

  test('the soft cap keeps −Infinity and bounds the logits by the cap', () => {
    const input = makeLinearCase(
      {
        leading: [3],
        hiddenSize: 4,
        vocab: 8,
        teacher: 'dense',
        masked: [3],
        weightScale: 4,
        config: { softCap: 1.5, logitScale: 3 },
      },
      9,
    );
    const ref = referenceFusedLinearDistillationLoss(input);
    for (let r = 0; r < 3; r++) {
      expect(ref.logits[r * 8 + 3]).toBe(-Infinity);
      for (let c = 0; c < 8; c++)
        if (c !== 3) expect(Math.abs(ref.logits[r * 8 + c]!)).toBeLessThan(1.5);
    }
  });
});

describe('wrong references are caught', () => {
  const faults: [LinearReferenceFault, Param][] = [
    ['no-softcap-derivative', 'hidden'],
    ['no-softcap-derivative', 'weight'],
    ['no-softcap-derivative', 'bias'],
    ['bias-missing-row', 'bias'],
  ];
  test.each(CASES.filter((c) => c.config?.softCap !== undefined && c.bias !== false))(
    'by finite differences: $name',
    (spec) => {
      const input = makeLinearCase(spec, 1234);
      for (const [fault, p] of faults) {
        const wrong = referenceFusedLinearDistillationLoss(input, fault);
        const gap = relativeGap(wrong[GRADS[p]], finiteDifferences(input, p));
        expect(gap, `${fault} ${p}`).toBeGreaterThan(1e-4);
      }
    },
  );

  test.each(CASES.filter((c) => c.config?.softCap !== undefined && c.bias !== false))(
    'by the derived tolerances: $name',
    (spec) => {
      const input = makeLinearCase(spec, 1234);
      const ref = referenceFusedLinearDistillationLoss(input);
      const tol = linearTolerances(input, ref);
      for (const a of [tol.gradHidden, tol.gradWeight, tol.gradBias, tol.value]) {
        expect(a.every((x) => Number.isFinite(x) && x > 0)).toBe(true);
      }
      // the right reference is within its own tolerances trivially; the wrong ones are not
      const outside = (
        actual: ArrayLike<number>,
        expected: ArrayLike<number>,
        t: ArrayLike<number>,
      ) => {
        let n = 0;
        for (let i = 0; i < t.length; i++) if (Math.abs(actual[i]! - expected[i]!) > t[i]!) n++;
        return n;
      };
      for (const [fault, p] of faults) {
        const wrong = referenceFusedLinearDistillationLoss(input, fault);
        const key = GRADS[p];
        expect(outside(wrong[key], ref[key], tol[key]), `${fault} ${p}`).toBeGreaterThan(0);
      }
      // and the tolerances are small: the largest is below 1e-3 of the gradient's scale
      for (const p of ['hidden', 'weight', 'bias'] as const) {
        const key = GRADS[p];
        const scale = Math.max(...Array.from(ref[key], Math.abs));
        expect(Math.max(...tol[key]), p).toBeLessThan(1e-3 * scale);
      }
    },
  );
});
