/**
 * topKTeacher (src/topk.ts) on the cpu backend and on WebGPU, against a float64 computation
 * element by element: ids (exactly: the inputs have no ties), log-probabilities (within a few
 * float32 roundings of t − logSumExp(t) computed in float64), the input's leading shape at
 * rank 2 and 3, −Infinity / NaN / +Infinity rows, named errors before anything is dispatched,
 * and no leaked tensor.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, test } from 'vitest';
import { mulberry32 } from '../src/validation/random.js';
import { topKTeacher } from '../src/index.js';
import { useCheckedWebGPU, useCpu, useWebGPU } from './helpers/backend.js';
import { expectClose } from './helpers/compare.js';

useCheckedWebGPU();

/**
 * Rows of distinct logits: a seeded permutation of C evenly spaced values in about [−8, 8]
 * (steps far above float32 rounding, so the order is unambiguous), then masked entries.
 */
function distinctLogits(rows: number, classes: number, seed: number): Float32Array {
  const rng = mulberry32(seed);
  const out = new Float32Array(rows * classes);
  const step = 16 / classes;
  for (let r = 0; r < rows; r++) {
    const perm = Int32Array.from({ length: classes }, (_, i) => i);
    for (let i = classes - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1));
      [perm[i], perm[j]] = [perm[j]!, perm[i]!];
    }
    for (let c = 0; c < classes; c++) out[r * classes + c] = (perm[c]! - classes / 2) * step;
  }
  return out;
}

/**
 * The float64 computation: per row, the ids of the k largest logits (descending), t − logSumExp
 * over the row in float64; −Infinity logits are never listed (−1, −Infinity). A row with a NaN
 * or +Infinity logit: its listed log-probabilities are NaN.
 */
function reference64(
  logits: Float32Array,
  classes: number,
  k: number,
): { indices: Int32Array; logProbs: Float64Array; tolerance: Float64Array } {
  const rows = logits.length / classes;
  const indices = new Int32Array(rows * k);
  const logProbs = new Float64Array(rows * k);
  const tolerance = new Float64Array(rows * k);
  for (let r = 0; r < rows; r++) {
    const row = Array.from(logits.subarray(r * classes, (r + 1) * classes));
    const bad = row.some((v) => Number.isNaN(v) || v === Number.POSITIVE_INFINITY);
    const finite = row.map((v, c) => ({ v, c })).filter(({ v }) => Number.isFinite(v));
    const max = finite.reduce((m, { v }) => Math.max(m, v), Number.NEGATIVE_INFINITY);
    const lse = max + Math.log(finite.reduce((s, { v }) => s + Math.exp(v - max), 0));
    finite.sort((a, b) => b.v - a.v || a.c - b.c);
    for (let j = 0; j < k; j++) {
      const at = r * k + j;
      const entry = finite[j];
      if (bad) {
        // Which ids a NaN row lists is tf.topk's business; checked separately.
        indices[at] = -2;
        logProbs[at] = NaN;
      } else if (entry === undefined) {
        indices[at] = -1;
        logProbs[at] = Number.NEGATIVE_INFINITY;
      } else {
        indices[at] = entry.c;
        logProbs[at] = entry.v - lse;
      }
      // float32: the max, the subtraction and a sum of C terms in [0, 1] (relative error
      // ≲ C·ε, far less for a tree reduction), then log: a few ulps of |t| and |lse| plus
      // log(1 + C·ε) ≈ C·ε, capped at the size of a tree reduction's error.
      tolerance[at] = 8 * 2 ** -23 * (1 + Math.abs(entry?.v ?? 0) + Math.abs(lse) + 16);
    }
  }
  return { indices, logProbs, tolerance };
}

async function run(
  logits: Float32Array,
  shape: number[],
  k: number,
): Promise<{ indices: Int32Array; logProbs: Float32Array; shapes: number[][] }> {
  const x = tf.tensor(logits, shape, 'float32');
  const before = tf.memory().numTensors;
  const teacher = topKTeacher(x, k);
  // The two outputs and nothing else survive; the input is not disposed.
  expect(tf.memory().numTensors).toBe(before + 2);
  expect(x.isDisposed).toBe(false);
  expect(teacher.indices.dtype).toBe('int32');
  expect(teacher.logProbs.dtype).toBe('float32');
  const out = {
    indices: (await teacher.indices.data()) as Int32Array,
    logProbs: (await teacher.logProbs.data()) as Float32Array,
    shapes: [teacher.indices.shape, teacher.logProbs.shape],
  };
  tf.dispose([x, teacher.indices, teacher.logProbs]);
  return out;
}

async function checkAgainstReference(
  logits: Float32Array,
  shape: number[],
  k: number,
  context: string,
): Promise<void> {
  const classes = shape[shape.length - 1]!;
  const got = await run(logits, shape, k);
  const expected = reference64(logits, classes, k);
  const leading = shape.slice(0, -1);
  expect(got.shapes).toEqual([
    [...leading, k],
    [...leading, k],
  ]);
  expect(Array.from(got.indices), `ids — ${context}`).toEqual(Array.from(expected.indices));
  expectClose('logProbs', got.logProbs, expected.logProbs, expected.tolerance, context, k);
}

describe.each([
  ['cpu', useCpu],
  ['webgpu', useWebGPU],
] as const)('topKTeacher on %s', (backend, use) => {
  beforeAll(use);

  test.each([
    { rows: 3, classes: 17, k: 1 },
    { rows: 3, classes: 17, k: 5 },
    { rows: 3, classes: 17, k: 17 },
    { rows: 5, classes: 1000, k: 32 },
    { rows: 2, classes: 4099, k: 128 },
    { rows: 4, classes: 32768, k: 32 },
  ])('[$rows, $classes] k = $k matches float64', async ({ rows, classes, k }) => {
    expect(tf.getBackend()).toBe(backend);
    const logits = distinctLogits(rows, classes, rows * 7919 + classes + k);
    await checkAgainstReference(
      logits,
      [rows, classes],
      k,
      `${backend} [${rows}, ${classes}] k=${k}`,
    );
  });

  test('rank 3 [batch, seq, C]: the leading shape is kept, rows independent', async () => {
    const shape = [2, 3, 50];
    const logits = distinctLogits(6, 50, 42);
    await checkAgainstReference(logits, shape, 8, `${backend} [2, 3, 50] k=8`);
  });

  test('k = C lists every id once; the probabilities sum to 1', async () => {
    const classes = 40;
    const got = await run(distinctLogits(2, classes, 5), [2, classes], classes);
    for (let r = 0; r < 2; r++) {
      const ids = Array.from(got.indices.subarray(r * classes, (r + 1) * classes));
      expect([...ids].sort((a, b) => a - b)).toEqual(Array.from({ length: classes }, (_, i) => i));
      const mass = Array.from(got.logProbs.subarray(r * classes, (r + 1) * classes)).reduce(
        (s, l) => s + Math.exp(l),
        0,
      );
      expect(mass).toBeCloseTo(1, 5);
    }
  });

  test('−Infinity logits are never listed: padding −1 / −Infinity past the finite ones', async () => {
    const classes = 12;
    const k = 6;
    const logits = distinctLogits(4, classes, 9);
    const NEG = Number.NEGATIVE_INFINITY;
    // Row 0: 3 finite logits (3 padding entries). Row 1: all masked. Row 2: exactly k finite.
    // Row 3: one masked class among many finite (not listed; the rest normalised without it).
    for (let c = 0; c < classes; c++) {
      if (c !== 2 && c !== 7 && c !== 11) logits[c] = NEG;
      logits[classes + c] = NEG;
      if (c >= k) logits[2 * classes + c] = NEG;
    }
    logits[3 * classes + 4] = NEG;
    await checkAgainstReference(logits, [4, classes], k, `${backend} masked rows`);
    const got = await run(logits, [4, classes], k);
    expect(Array.from(got.indices.subarray(3, 6))).toEqual([-1, -1, -1]);
    expect(Array.from(got.indices.subarray(k, 2 * k))).toEqual(Array(k).fill(-1));
    expect(Array.from(got.logProbs.subarray(k, 2 * k))).toEqual(Array(k).fill(NEG));
    expect(Array.from(got.indices.subarray(2 * k, 3 * k)).every((i) => i >= 0)).toBe(true);
    expect(Array.from(got.indices.subarray(3 * k, 4 * k))).not.toContain(4);
  });

  test('a NaN or +Infinity logit makes its row NaN (listed entries), other rows intact', async () => {
    const classes = 10;
    const k = 3;
    const logits = distinctLogits(3, classes, 77);
    logits[4] = NaN;
    logits[classes + 6] = Number.POSITIVE_INFINITY;
    const got = await run(logits, [3, classes], k);
    for (const r of [0, 1]) {
      const ids = got.indices.subarray(r * k, (r + 1) * k);
      expect(
        Array.from(ids).every((i) => i >= 0 && i < classes),
        `row ${r} ids`,
      ).toBe(true);
      expect(Array.from(got.logProbs.subarray(r * k, (r + 1) * k)).every(Number.isNaN)).toBe(true);
    }
    const clean = reference64(logits.subarray(2 * classes), classes, k);
    expect(Array.from(got.indices.subarray(2 * k))).toEqual(Array.from(clean.indices));
    expectClose('logProbs', got.logProbs.subarray(2 * k), clean.logProbs, clean.tolerance, 'row 2');
  });

  test('named errors before anything is dispatched', () => {
    const logits = tf.zeros([2, 5]);
    const disposed = tf.zeros([2, 5]);
    disposed.dispose();
    const ints = tf.zeros([2, 5], 'int32');
    const row = tf.zeros([5]);
    const empty = tf.zeros([0, 5]);
    const before = tf.memory().numTensors;
    const call = (x: unknown, k: unknown) => () => topKTeacher(x as tf.Tensor, k as number);
    expect(call([[1, 2]], 1)).toThrow(/topKTeacher: teacherLogits must be a tf\.Tensor/);
    expect(call(disposed, 1)).toThrow(/teacherLogits has been disposed/);
    expect(call(ints, 1)).toThrow(
      /teacherLogits must be float32 \[\.\.\., C\], got int32 \[2, 5\]/,
    );
    expect(call(row, 1)).toThrow(/rank ≥ 2.*got float32 \[5\].*\[1, C\]/);
    expect(call(empty, 1)).toThrow(/no rows or no classes, got float32 \[0, 5\]/);
    for (const k of [0, 6, -1, 1.5, NaN, Infinity, '2', undefined]) {
      expect(call(logits, k), `k = ${String(k)}`).toThrow(RangeError);
      expect(call(logits, k), `k = ${String(k)}`).toThrow(
        /topKTeacher: k must be an integer in \[1, C\] = \[1, 5\]/,
      );
    }
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([logits, ints, row, empty]);
  });
});
