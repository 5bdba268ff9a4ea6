/**
 * The sparse (top-K) teacher at the op's level (the element-wise suite against the float64
 * reference is test/sparse-teacher.test.ts):
 * - the fused kernels on WebGPU (both plans, row chunks, components) against the exact
 *   composition (src/composed-sparse.ts) on the tfjs cpu backend;
 * - K = C with every id listed once against the dense fused op on the same logits;
 * - dispatch counts, leaks, and the errors raised before anything is dispatched.
 *
 * Tolerances. Both sides compute the same float32 formulas in a different order, from terms of
 * size at most L = 2 · 3 / T + log C (log-probabilities; logits in [−3, 3], log-probs in
 * [−5, 0]), each result through ≤ ~30 roundings (u = 2⁻²⁴): |fused − composed| ≤ 30 u (L + |v|)
 * ≈ 2e-6 (L + |v|) for a row loss of value v (times k = T² for the soft term, and summed over
 * up to B rows for 'sum'), 1e-4 · (1 + |v|) covers it with room for the k·B factors used here.
 * Gradient entries are differences of probabilities (σ, q, p ≤ 1) weighted by α and
 * (1 − α) k / T: their error is ≤ ~10 u · (α + k / T) · w_b, held to 1e-5 · max|g| + 1e-7.
 * K = C against the dense fused op: the sparse kernel's KL is the direct form (absolute error a
 * few ulps of log C times k, see shaders/distill-sparse.wgsl), the dense one centred: the bound
 * is 1e-5 · k · (1 + log C) on each row loss.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers'; // registers the stock ops' gradients (sum, addN, mul in the checks)
import { afterAll, describe, expect, test } from 'vitest';
import { countDispatches } from '../bench/core/lib/dispatch-counter.js';
import { mulberry32 } from '../src/validation/random.js';
import {
  distillationLoss,
  stockDistillationLoss,
  type DistillationLossConfig,
} from '../src/index.js';
import {
  overrideAdapterClassForTesting,
  overrideBindingLimitForTesting,
  type AdapterClass,
} from '../src/kernels/plan.js';
import { useCheckedWebGPU, useCpu, useWebGPU } from './helpers/backend.js';

interface Case {
  leading: number[];
  classes: number;
  topK: number;
  config: DistillationLossConfig;
  labels?: 'index' | 'dense';
  /** Entries that are padding (−1), duplicates or −Infinity log-probs, per row. */
  special?: boolean;
}

type Inputs = ReturnType<typeof makeInputs>;

function makeInputs(c: Case, seed: number) {
  const rand = mulberry32(seed);
  const rows = c.leading.reduce((a, b) => a * b, 1);
  const student = Array.from({ length: rows * c.classes }, () => (rand() - 0.5) * 6);
  const ids: number[] = [];
  const lp: number[] = [];
  for (let r = 0; r < rows; r++) {
    const perm = Array.from({ length: c.classes }, (_, i) => i);
    for (let i = perm.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [perm[i], perm[j]] = [perm[j]!, perm[i]!];
    }
    const raw = Array.from({ length: c.topK }, () => (rand() - 0.5) * 5);
    const lse = Math.log(raw.reduce((a, v) => a + Math.exp(v), 0)) + 0.3;
    for (let k = 0; k < c.topK; k++) {
      let id = perm[k % c.classes]!;
      let logProb = raw[k]! - lse;
      if (c.special && k > 0) {
        if (k % 4 === 1) id = -1; // padding
        if (k % 4 === 2) id = ids[ids.length - 1] === -1 ? perm[0]! : ids[ids.length - 1]!; // duplicate
        if (k % 4 === 3) logProb = -Infinity;
      }
      ids.push(id);
      lp.push(logProb);
    }
  }
  const labels =
    c.labels === 'dense'
      ? Array.from({ length: rows * c.classes }, () => rand() / c.classes)
      : Array.from({ length: rows }, () => Math.floor(rand() * c.classes));
  return { rows, student, ids, lp, labels };
}

interface Outcome {
  values: number[][];
  grad: number[];
}

/** The loss (or its components), and the gradient of Σ of all outputs w.r.t. the student. */
async function run(c: Case, x: Inputs): Promise<Outcome> {
  const shape = [...c.leading, c.classes];
  const s = tf.tensor(x.student, shape);
  const teacher = {
    indices: tf.tensor(x.ids, [...c.leading, c.topK], 'int32'),
    logProbs: tf.tensor(x.lp, [...c.leading, c.topK]),
  };
  const y =
    c.labels === 'dense' ? tf.tensor(x.labels, shape) : tf.tensor(x.labels, c.leading, 'int32');
  const outputs = (st: tf.Tensor): tf.Tensor[] => {
    const { returnComponents, ...config } = c.config;
    if (!returnComponents) return [distillationLoss(y, st, teacher, config)];
    const parts = distillationLoss(y, st, teacher, { ...config, returnComponents: true });
    return [parts.loss, parts.hardLoss, parts.softLoss];
  };
  const values = await Promise.all(
    tf
      .tidy(() => outputs(s))
      .map(async (t) => {
        const v = Array.from(await t.data());
        t.dispose();
        return v;
      }),
  );
  // d/ds of Σ (weights 1, 0.5, 0.25) · outputs: every output's gradient path is exercised.
  const g = tf.grad((st: tf.Tensor) =>
    tf.addN(outputs(st).map((o, i) => tf.mul(tf.sum(o), 1 / 2 ** i))),
  )(s);
  const grad = Array.from(await g.data());
  tf.dispose([s, teacher.indices, teacher.logProbs, y, g]);
  return { values, grad };
}

function expectAgree(got: Outcome, want: Outcome, valueTol: (v: number) => number): void {
  expect(got.values.length).toBe(want.values.length);
  got.values.forEach((vs, i) =>
    vs.forEach((v, j) => {
      const w = want.values[i]![j]!;
      if (!Number.isFinite(w)) expect(v).toBe(w);
      else
        expect(Math.abs(v - w), `output ${i}[${j}]: ${v} vs ${w}`).toBeLessThanOrEqual(valueTol(w));
    }),
  );
  const scale = want.grad.reduce((m, g) => (Number.isFinite(g) ? Math.max(m, Math.abs(g)) : m), 0);
  want.grad.forEach((w, j) => {
    const v = got.grad[j]!;
    if (!Number.isFinite(w)) expect(v).toBe(w);
    else
      expect(Math.abs(v - w), `grad[${j}]: ${v} vs ${w}`).toBeLessThanOrEqual(1e-5 * scale + 1e-7);
  });
}

useCheckedWebGPU();
afterAll(async () => {
  await tf.setBackend('cpu');
});

const CASES: Case[] = [
  { leading: [3], classes: 10, topK: 3, config: {} },
  { leading: [5], classes: 1000, topK: 32, config: { temperature: 1, alpha: 0.5 } },
  { leading: [4], classes: 4099, topK: 5, config: { temperature: 4, reduction: 'sum' } },
  { leading: [2, 3], classes: 64, topK: 8, config: { temperature: 2, reduction: 'none' } },
  {
    leading: [6],
    classes: 300,
    topK: 9,
    config: { temperature: 0.5, alpha: 0.1, returnComponents: true },
    special: true,
  },
  {
    leading: [2, 2],
    classes: 256,
    topK: 16,
    labels: 'dense',
    config: { alpha: 0.3, reduction: 'none', returnComponents: true },
    special: true,
  },
  {
    leading: [5],
    classes: 128,
    topK: 4,
    config: { ignoreIndex: 7, alpha: 1, returnComponents: true },
  },
];

describe('fused sparse teacher (webgpu) against the composition (cpu)', () => {
  for (const plan of ['hardware', 'software'] as AdapterClass[]) {
    for (const [i, c] of CASES.entries()) {
      test(`${plan} plan: [${c.leading}, ${c.classes}] K=${c.topK} ${c.labels ?? 'index'} ${JSON.stringify(c.config)}${c.special ? ' padding/duplicates/−∞' : ''}`, async () => {
        const x = makeInputs(c, 11 + i);
        if (c.config.ignoreIndex !== undefined) x.labels[1] = c.config.ignoreIndex;
        await useCpu();
        const want = await run(c, x);
        await useWebGPU();
        overrideAdapterClassForTesting(() => plan);
        const got = await run(c, x);
        expectAgree(got, want, (v) => 1e-4 * (1 + Math.abs(v)));
      });
    }
  }

  test('hardware plan: more rows than the counting grid (ignoreIndex, 1100 rows of 4096, 1024 workgroups)', async () => {
    const c: Case = { leading: [1100], classes: 4096, topK: 4, config: { ignoreIndex: 3 } };
    const x = makeInputs(c, 1100);
    for (let b = 0; b < 1100; b += 7) x.labels[b] = 3;
    await useCpu();
    const want = await run(c, x);
    await useWebGPU();
    overrideAdapterClassForTesting(() => 'hardware');
    expectAgree(await run(c, x), want, (v) => 1e-4 * (1 + Math.abs(v)));
  });

  test('rows split into chunks past the binding limit (4 KiB bindings)', async () => {
    const c: Case = { leading: [9], classes: 300, topK: 7, config: { returnComponents: true } };
    const x = makeInputs(c, 99);
    await useCpu();
    const want = await run(c, x);
    await useWebGPU();
    for (const plan of ['hardware', 'software'] as AdapterClass[]) {
      overrideAdapterClassForTesting(() => plan);
      overrideBindingLimitForTesting(4096);
      expectAgree(await run(c, x), want, (v) => 1e-4 * (1 + Math.abs(v)));
    }
  });
});

describe('K = C, every id listed once: the dense teacher', () => {
  test.each([
    [8, 10, 10],
    [3, 4096, 4],
  ])('%i rows × %i classes at T = %f', async (rows, classes, temperature) => {
    await useWebGPU();
    const rand = mulberry32(rows * classes);
    const t = tf.tensor2d(
      Array.from({ length: rows * classes }, () => (rand() - 0.5) * 8),
      [rows, classes],
    );
    const s = tf.tensor2d(
      Array.from({ length: rows * classes }, () => (rand() - 0.5) * 8),
      [rows, classes],
    );
    const y = tf.tensor1d(
      Array.from({ length: rows }, () => Math.floor(rand() * classes)),
      'int32',
    );
    // every id once, in a shuffled order per row
    const ids = tf.tidy(() =>
      tf.cast(
        tf.topk(tf.randomUniform([rows, classes], 0, 1, 'float32', 5), classes).indices,
        'int32',
      ),
    );
    const logProbs = tf.tidy(() => tf.gather(tf.logSoftmax(t), ids, 1, 1));
    const config = { temperature, reduction: 'none' as const };
    const dense = tf.valueAndGrad((x: tf.Tensor) => tf.sum(distillationLoss(y, x, t, config)));
    const sparse = tf.valueAndGrad((x: tf.Tensor) =>
      tf.sum(distillationLoss(y, x, { indices: ids, logProbs }, config)),
    );
    const rowsDense = await distillationLoss(y, s, t, config).data();
    const rowsSparse = await distillationLoss(y, s, { indices: ids, logProbs }, config).data();
    const k = temperature ** 2;
    rowsDense.forEach((v, b) =>
      expect(Math.abs(rowsSparse[b]! - v)).toBeLessThanOrEqual(1e-5 * k * (1 + Math.log(classes))),
    );
    const gd = await dense(s).grad.data();
    const gs = await sparse(s).grad.data();
    const scale = Math.max(...Array.from(gd, Math.abs));
    gd.forEach((v, j) => expect(Math.abs(gs[j]! - v)).toBeLessThanOrEqual(1e-5 * scale));
    tf.dispose([t, s, y, ids, logProbs]);
  });
});

describe('the stock baseline with a sparse teacher (scatter to dense, stock ops)', () => {
  test('computes the same loss as the fused op, row by row; a row with no listed entry is NaN', async () => {
    await useWebGPU();
    const c: Case = { leading: [4], classes: 64, topK: 8, config: {}, special: true };
    const x = makeInputs(c, 5);
    for (let k = 0; k < c.topK; k++) x.ids[2 * c.topK + k] = -1; // row 2: padding only
    const s = tf.tensor2d(x.student, [4, 64]);
    const teacher = {
      indices: tf.tensor2d(x.ids, [4, c.topK], 'int32'),
      logProbs: tf.tensor2d(x.lp, [4, c.topK]),
    };
    const y = tf.tensor1d(x.labels, 'int32');
    const config = { temperature: 2, reduction: 'none' as const };
    const fused = await distillationLoss(y, s, teacher, config).data();
    const stock = await stockDistillationLoss(y, s, teacher, config).data();
    expect(Number.isNaN(fused[2]!) && Number.isNaN(stock[2]!)).toBe(true);
    // (same float32 formulas in another order: the op-level bound of this file's header)
    for (const b of [0, 1, 3]) {
      expect(Math.abs(stock[b]! - fused[b]!)).toBeLessThanOrEqual(1e-4 * (1 + Math.abs(fused[b]!)));
    }
    tf.dispose([s, teacher.indices, teacher.logProbs, y]);
  });
});

describe('sparse teacher: dispatches, leaks, errors', () => {
  test('one dispatch forward+backward at MNIST size, as the dense op', async () => {
    await useWebGPU();
    const s = tf.randomNormal([64, 10]);
    const y = tf.zeros([64], 'int32');
    const teacher = { indices: tf.zeros([64, 4], 'int32'), logProbs: tf.zeros([64, 4]) };
    const step = () => {
      const g = tf.grad((x: tf.Tensor) => distillationLoss(y, x, teacher))(s);
      g.dispose();
    };
    step(); // pipelines compiled, tensors uploaded
    const before = tf.memory().numTensors;
    expect(countDispatches(step)).toBe(1);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([s, y, teacher.indices, teacher.logProbs]);
  });

  test('bad sparse teachers are refused before any dispatch, by name', async () => {
    await useWebGPU();
    const s = tf.zeros([2, 10]);
    const y = tf.zeros([2], 'int32');
    const ids = tf.zeros([2, 3], 'int32');
    const lp = tf.zeros([2, 3]);
    const loss = (teacher: unknown, config?: DistillationLossConfig) => () =>
      countDispatches(() => {
        distillationLoss(y, s, teacher as tf.Tensor, config);
      });
    expect(loss({ indices: tf.cast(ids, 'float32'), logProbs: lp })).toThrow(
      /teacher\.indices must be int32 \[2, K\], got float32 \[2, 3\]/,
    );
    expect(loss({ indices: ids, logProbs: tf.cast(lp, 'int32') })).toThrow(
      /teacher\.logProbs must be float32/,
    );
    expect(loss({ indices: tf.zeros([3, 3], 'int32'), logProbs: lp })).toThrow(
      /teacher\.indices must have shape \[2, K\]/,
    );
    expect(loss({ indices: ids, logProbs: tf.zeros([2, 4]) })).toThrow(/must have the same K/);
    expect(loss({ indices: ids, logProbs: lp }, { divergence: 'jsd' })).toThrow(
      /a top-K teacher supports divergence 'forward-kl' only/,
    );
    const gone = tf.zeros([2, 3], 'int32');
    gone.dispose();
    expect(loss({ indices: gone, logProbs: lp })).toThrow(/teacher\.indices has been disposed/);
    tf.dispose([s, y, ids, lp]);
  });

  test('no gradient is defined for the teacher entries', async () => {
    await useWebGPU();
    const s = tf.zeros([2, 10]);
    const y = tf.zeros([2], 'int32');
    const ids = tf.zeros([2, 3], 'int32');
    const lp = tf.zeros([2, 3]);
    expect(() =>
      tf.grad((l: tf.Tensor) => distillationLoss(y, s, { indices: ids, logProbs: l }))(lp),
    ).toThrow(/teacher\.logProbs is a constant/);
    tf.dispose([s, y, ids, lp]);
  });
});
