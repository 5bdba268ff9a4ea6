/**
 * The Distiller's top-K teacher cache (`teacherLogits: 'cached'` + `teacherTopK`,
 * src/distiller-teacher-cache.ts): the option's named errors; the cache's type follows the
 * options; the cache is topKTeacher of the teacher's logits, [N, K], N·K·8 bytes (against N·C·4
 * for logits) and says so (teacherCache.bytes, History.params); steps distil from the sparse
 * teacher (the same loss as giving it explicitly; with K = C the same as the dense cache); fit,
 * stock loss, no leaks. The logic on the cpu backend (the exact composition), one small run on
 * WebGPU (the fused sparse kernel).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { afterEach, beforeAll, describe, expect, expectTypeOf, it } from 'vitest';
import {
  Distiller,
  isSparseTeacher,
  topKTeacher,
  type DistillerOptions,
  type DistillerTeacherCache,
  type SparseTeacher,
} from '../src/index.js';
import { useCheckedWebGPU, useCpu } from './helpers/backend.js';

const FEATURES = 6;
const CLASSES = 10;

function mlp(units: readonly number[], seed: number): tfl.Sequential {
  return tfl.sequential({
    layers: units.map((u, i) =>
      tfl.layers.dense({
        ...(i === 0 ? { inputShape: [FEATURES] } : {}),
        units: u,
        activation: i < units.length - 1 ? 'relu' : 'linear',
        kernelInitializer: tfl.initializers.glorotUniform({ seed: seed + i }),
        biasInitializer: 'zeros',
      }),
    ),
  });
}

function data(n: number, seed: number): { x: tf.Tensor2D; y: tf.Tensor1D } {
  const x = tf.randomNormal([n, FEATURES], 0, 2, 'float32', seed) as tf.Tensor2D;
  const labels = Array.from({ length: n }, (_, i) => (i * 7 + seed) % CLASSES);
  return { x, y: tf.tensor1d(labels, 'int32') };
}

const owned: { dispose(): void }[] = [];
function track<T extends { dispose(): void }>(value: T): T {
  owned.push(value);
  return value;
}
afterEach(() => {
  owned.splice(0).forEach((o) => o.dispose());
});

/** Fresh seeded models (the same seeds give bit-identical models), disposed after the test. */
function models(studentSeed = 100) {
  return {
    teacher: track(mlp([24, CLASSES], 1)),
    student: track(mlp([12, CLASSES], studentSeed)),
  };
}

/** A Distiller with fresh seeded models, typed as any Distiller. */
function setup(overrides: Partial<DistillerOptions> = {}, studentSeed = 100): Distiller {
  return track(new Distiller({ ...models(studentSeed), ...overrides }));
}

/** A Distiller whose cache keeps the teacher's top-K, typed as such. */
function topKSetup(k: number, studentSeed = 100, loss: 'fused' | 'stock' = 'fused') {
  const m = models(studentSeed);
  return track(
    loss === 'fused'
      ? new Distiller({ ...m, teacherLogits: 'cached', teacherTopK: k })
      : new Distiller({ ...m, loss: 'stock', teacherLogits: 'cached', teacherTopK: k }),
  );
}

/** Calls `fn` with arguments of the wrong type, as JavaScript can: its run-time checks. */
function callUntyped(fn: (...args: never[]) => unknown, self: unknown, ...args: unknown[]) {
  return Reflect.apply(fn, self, args) as unknown;
}

function disposeSparse(...teachers: SparseTeacher[]): void {
  tf.dispose(teachers.flatMap((t) => [t.indices, t.logProbs]));
}

async function scalar(t: tf.Tensor): Promise<number> {
  return (await t.data())[0]!;
}

function relClose(actual: number, expected: number, rel: number): void {
  expect(Number.isFinite(actual), `${actual}`).toBe(true);
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(rel * Math.max(1, Math.abs(expected)));
}

async function weights(d: Distiller): Promise<Float32Array[]> {
  return Promise.all(d.student.getWeights().map(async (w) => (await w.data()) as Float32Array));
}

describe('teacherTopK: options and named errors', () => {
  beforeAll(useCpu);

  it('needs cached mode and an integer K in [1, C], before anything is built', () => {
    const before = tf.memory().numTensors;
    expect(() => setup({ teacherTopK: 4 })).toThrow(
      /Distiller: teacherTopK needs teacherLogits: 'cached'.*got teacherLogits 'per-step'/,
    );
    expect(() => setup({ teacherLogits: 'per-step', teacherTopK: 4 })).toThrow(/'cached'/);
    for (const k of [0, -1, 11, 2.5, NaN, '3']) {
      const make = () => setup({ teacherLogits: 'cached', teacherTopK: k as number });
      expect(make, String(k)).toThrow(RangeError);
      expect(make, String(k)).toThrow(
        /Distiller: teacherTopK must be an integer in \[1, C\] = \[1, 10\]/,
      );
    }
    // Only the models of the failed constructions were made (and they are disposed).
    owned.splice(0).forEach((o) => o.dispose());
    expect(tf.memory().numTensors).toBe(before);
    const ok = setup({ teacherLogits: 'cached', teacherTopK: 10 });
    expect(ok.teacherTopK).toBe(10);
    expect(setup({ teacherLogits: 'cached' }).teacherTopK).toBeNull();
    expect(() => setup({ teacherTopK: undefined })).not.toThrow();
  });

  it("the cache's type follows the options, and its other form is refused at compile and run time", () => {
    const sparse = topKSetup(3);
    const dense = track(new Distiller({ ...models(), teacherLogits: 'cached' }));
    const either = setup({ teacherLogits: 'cached', teacherTopK: 3 });
    expectTypeOf(sparse.teacherCache).toEqualTypeOf<DistillerTeacherCache<SparseTeacher>>();
    expectTypeOf(dense.teacherCache).toEqualTypeOf<DistillerTeacherCache<tf.Tensor2D>>();
    expectTypeOf(either.teacherCache.value).toEqualTypeOf<tf.Tensor2D | SparseTeacher | null>();
    const logits = tf.zeros<tf.Rank.R2>([4, CLASSES]);
    const ids = tf.tensor2d([[0], [1], [2], [3]], [4, 1], 'int32');
    const lp = tf.zeros<tf.Rank.R2>([4, 1]);
    const before = tf.memory().numTensors;
    // @ts-expect-error a top-K cache takes sparse teachers only
    expect(() => sparse.teacherCache.set(logits)).toThrow(
      /Distiller.teacherCache.set: this Distiller caches the teacher's top-K \(teacherTopK: 3\): value must be a sparse teacher \{ indices, logProbs \} \(int32 \/ float32 \[N, K\]\), got float32 \[4, 10\]/,
    );
    expect(() => either.teacherCache.set(logits)).toThrow(/caches the teacher's top-K/);
    // @ts-expect-error a cache of logits takes logits only
    expect(() => dense.teacherCache.set({ indices: ids, logProbs: lp })).toThrow(
      /Distiller.teacherCache.set: this Distiller caches teacher logits: value must be float32 \[N, 10\], got a sparse teacher \{ indices, logProbs \} \(construct the Distiller with teacherLogits: 'cached' and teacherTopK: K to cache a top-K\)/,
    );
    expect(() => sparse.teacherCache.rows([0])).toThrow(
      /Distiller.teacherCache.rows: the teacher cache is empty; fill it first/,
    );
    expect(tf.memory().numTensors).toBe(before);
    expect(sparse.teacherCache.value).toBeNull();
    expect(dense.teacherCache.value).toBeNull();
    tf.dispose([logits, ids, lp]);
  });

  it('set checks the sparse teacher against [N, C], and frees only what it replaces', () => {
    const d = topKSetup(3);
    const ids = tf.tensor2d([[0, 1, -1]], [1, 3], 'int32');
    const lp = tf.tensor2d([[-0.5, -1, 0]], [1, 3]);
    const before = tf.memory().numTensors;
    const bad: [unknown, RegExp][] = [
      [{ indices: tf.cast(ids, 'float32'), logProbs: lp }, /teacher\.indices must be int32/],
      [{ indices: ids, logProbs: tf.cast(lp, 'int32') }, /teacher\.logProbs must be float32/],
      [{ indices: ids, logProbs: tf.zeros([1, 2]) }, /must have the same K/],
      [{ indices: tf.zeros([1, 1, 3], 'int32'), logProbs: lp }, /teacher\.indices must have shape/],
      [
        { indices: tf.zeros([1, 11], 'int32'), logProbs: tf.zeros([1, 11]) },
        /Distiller.teacherCache.set: K = 11 entries per example, more than the C = 10 classes/,
      ],
      [tf.zeros([1, 3]), /value must be a sparse teacher \{ indices, logProbs \}/],
      [null, /value must be a sparse teacher .* got null/],
    ];
    const made = tf.memory().numTensors;
    for (const [teacher, message] of bad) {
      expect(() => callUntyped(d.teacherCache.set, d.teacherCache, teacher)).toThrow(message);
    }
    expect(tf.memory().numTensors).toBe(made);
    expect(d.teacherCache.value).toBeNull();
    expect(made).toBeGreaterThan(before);
    const value = { indices: ids, logProbs: lp };
    d.teacherCache.set(value);
    expect(d.teacherCache.value).toBe(value);
    expect(d.teacherCache.bytes).toBe(1 * 3 * 8);
    // A value that reuses the ids: the old log-probabilities are freed, the ids kept.
    const lp2 = tf.tensor2d([[-0.1, -3, -5]], [1, 3]);
    d.teacherCache.set({ indices: ids, logProbs: lp2 });
    expect(lp.isDisposed).toBe(true);
    expect(ids.isDisposed).toBe(false);
    d.teacherCache.clear();
    expect(ids.isDisposed && lp2.isDisposed).toBe(true);
    expect(d.teacherCache.bytes).toBe(0);
    expect(d.teacherCache.value).toBeNull();
    tf.dispose(
      bad
        .map(([t]) => t)
        .flatMap((t) =>
          t instanceof tf.Tensor ? [t] : isSparseTeacher(t) ? [t.indices, t.logProbs] : [],
        )
        .filter((t) => !t.isDisposed),
    );
  });
});

describe('teacherTopK on the cpu backend', () => {
  beforeAll(useCpu);

  it('teacherCache.fill keeps topKTeacher of the teacher logits, N·K·8 bytes', async () => {
    const k = 4;
    const sparse = topKSetup(k);
    const dense = track(new Distiller({ ...models(), teacherLogits: 'cached' }));
    const { x, y } = data(10, 3);
    const before = tf.memory().numTensors;
    const cache = sparse.teacherCache.fill(x, 3); // 3 + 3 + 3 + 1 rows
    // Only the cache's two tensors are left.
    expect(tf.memory().numTensors).toBe(before + 2);
    expect(cache.indices.shape).toEqual([10, k]);
    expect(cache.logProbs.shape).toEqual([10, k]);
    expect(sparse.teacherCache.value).toBe(cache);
    expect(sparse.teacherCache.bytes).toBe(10 * k * 8);
    dense.teacherCache.fill(x);
    expect(dense.teacherCache.bytes).toBe(10 * CLASSES * 4);
    expect(isSparseTeacher(dense.teacherCache.value)).toBe(false);
    const logits = sparse.teacherForward(x);
    const expected = topKTeacher(logits, k);
    expect(Array.from(await cache.indices.data())).toEqual(
      Array.from(await expected.indices.data()),
    );
    const got = await cache.logProbs.data();
    const want = await expected.logProbs.data();
    want.forEach((v, i) => expect(Math.abs(got[i]! - v)).toBeLessThan(1e-5));
    // Rows by index, in the cache's form; a second fill replaces (and frees) the first.
    const rows = sparse.teacherCache.rows([7, 2]);
    const all = Array.from(await cache.indices.data());
    expect(Array.from(await rows.indices.data())).toEqual([
      ...all.slice(7 * k, 8 * k),
      ...all.slice(2 * k, 3 * k),
    ]);
    expect(() => sparse.teacherCache.rows([0, 10])).toThrow(/batch index 10 is outside/);
    sparse.teacherCache.fill(x);
    expect(cache.indices.isDisposed && cache.logProbs.isDisposed).toBe(true);
    disposeSparse(expected, rows);
    tf.dispose([x, y, logits]);
  });

  it('trainStep with batchIndices distils from the cached top-K (same as giving it explicitly)', async () => {
    const k = 3;
    const cached = topKSetup(k, 20);
    const explicit = setup({}, 20);
    const { x: xAll, y: yAll } = data(10, 4);
    cached.teacherCache.fill(xAll);
    const indices = [7, 2, 5, 0];
    const idx = tf.tensor1d(indices, 'int32');
    const [x, y] = [tf.gather(xAll, idx), tf.gather(yAll, idx)];
    const logits = explicit.teacherForward(x);
    const teacher = topKTeacher(logits, k);
    logits.dispose();
    for (let step = 0; step < 3; step++) {
      const a = cached.trainStep(x, y, { batchIndices: step === 1 ? idx : indices }).loss;
      const b = explicit.trainStep(x, y, { teacherLogits: teacher }).loss;
      relClose(await scalar(a), await scalar(b), 1e-6);
      tf.dispose([a, b]);
    }
    const [wa, wb] = [await weights(cached), await weights(explicit)];
    wa.forEach((w, i) => w.forEach((v, j) => expect(Math.abs(v - wb[i]![j]!)).toBeLessThan(1e-6)));
    // The sparse teacher is checked against the batch like dense logits.
    const short = {
      indices: tf.slice(teacher.indices, 0, 2),
      logProbs: tf.slice(teacher.logProbs, 0, 2),
    };
    expect(() => explicit.trainStep(x, y, { teacherLogits: short })).toThrow(
      /Distiller\.trainStep: teacher\.indices must have shape \[4, K\]/,
    );
    expect(() => cached.trainStep(x, y)).toThrow(/batchIndices/);
    expect(() => cached.trainStep(x, y, { batchIndices: [0, 1] })).toThrow(
      /x has 4 examples but batchIndices has 2/,
    );
    disposeSparse(teacher, short);
    tf.dispose([xAll, yAll, idx, x, y]);
  });

  it('K = C gives the dense cache’s losses and weights (fit, shuffle: false)', async () => {
    const topC = topKSetup(CLASSES, 30);
    const dense = setup({ teacherLogits: 'cached' }, 30);
    const { x, y } = data(14, 5);
    const args = { epochs: 2, batchSize: 4, shuffle: false };
    const hs = await topC.fit(x, y, args);
    const hd = await dense.fit(x, y, args);
    hd.history.loss.forEach((l, e) => relClose(hs.history.loss[e]!, l, 1e-5));
    const [ws, wd] = [await weights(topC), await weights(dense)];
    ws.forEach((w, i) => w.forEach((v, j) => expect(Math.abs(v - wd[i]![j]!)).toBeLessThan(1e-5)));
    expect(hs.params.cachedTeacherBytes).toBe(14 * CLASSES * 8);
    expect(hd.params.cachedTeacherBytes).toBe(14 * CLASSES * 4);
    tf.dispose([x, y]);
  });

  it('fit keeps a cache of its own while it runs and frees it; teacherCache is left alone; no leaks', async () => {
    const k = 2;
    const d = topKSetup(k, 40);
    const stock = topKSetup(k, 40, 'stock');
    const perStep = setup({}, 40);
    const { x, y } = data(12, 6);
    // The tensors alive when training begins, less those before fit: fit's cache.
    const held: number[] = [];
    const run = async () => {
      const start = tf.memory().numTensors;
      const h = await d.fit(x, y, {
        epochs: 2,
        batchSize: 5,
        callbacks: { onTrainBegin: () => void held.push(tf.memory().numTensors - start) },
      });
      const hs = await stock.fit(x, y, { epochs: 2, batchSize: 5, shuffle: false });
      return [h, hs] as const;
    };
    const [h, hs] = await run(); // creates the Adam state, which lives with the optimizer
    const before = tf.memory().numTensors;
    await run();
    expect(tf.memory().numTensors).toBe(before);
    expect(held).toEqual([2, 2]); // its ids and log-probabilities
    expect(d.teacherCache.bytes).toBe(0);
    expect(d.teacherCache.value).toBeNull();
    expect(h.params.cachedTeacherBytes).toBe(12 * k * 8);
    expect(h.history.loss.every(Number.isFinite)).toBe(true);
    expect(hs.history.loss.every(Number.isFinite)).toBe(true);
    // An explicit cache is neither used nor replaced nor freed by fit.
    const explicit = d.teacherCache.fill(x);
    let during: unknown;
    await d.fit(x, y, { callbacks: { onTrainBegin: () => void (during = d.teacherCache.value) } });
    expect(during).toBe(explicit);
    expect(d.teacherCache.value).toBe(explicit);
    expect(explicit.indices.isDisposed || explicit.logProbs.isDisposed).toBe(false);
    expect(d.teacherCache.bytes).toBe(12 * k * 8);
    d.teacherCache.clear();
    // A per-step Distiller has no cache to report.
    const hp = await perStep.fit(x, y, { batchSize: 6 });
    expect(hp.params.cachedTeacherBytes).toBeUndefined();
    expect(perStep.teacherCache.bytes).toBe(0);
    tf.dispose([x, y]);
  });
});

describe('teacherTopK on WebGPU (the fused sparse kernel)', () => {
  useCheckedWebGPU();

  it('K = C gives the dense cache’s losses (fit, shuffle: false)', async () => {
    const topC = topKSetup(CLASSES, 60);
    const dense = setup({ teacherLogits: 'cached' }, 60);
    const { x, y } = data(12, 8);
    const args = { epochs: 2, batchSize: 4, shuffle: false };
    const hs = await topC.fit(x, y, args);
    const hd = await dense.fit(x, y, args);
    hd.history.loss.forEach((l, e) => relClose(hs.history.loss[e]!, l, 1e-5));
    expect(hs.params.cachedTeacherBytes).toBe(12 * CLASSES * 8);
    tf.dispose([x, y]);
  });

  it('a cached top-K step equals the explicit sparse teacher, and fit trains', async () => {
    const k = 4;
    const cached = topKSetup(k, 50);
    const explicit = setup({}, 50);
    const { x, y } = data(8, 7);
    const cache = cached.teacherCache.fill(x);
    expect(cached.teacherCache.bytes).toBe(8 * k * 8);
    const logits = explicit.teacherForward(x);
    const teacher = topKTeacher(logits, k);
    logits.dispose();
    expect(Array.from(await cache.indices.data())).toEqual(
      Array.from(await teacher.indices.data()),
    );
    const all = Array.from({ length: 8 }, (_, i) => i);
    const a = cached.trainStep(x, y, { batchIndices: all }).loss;
    const b = explicit.trainStep(x, y, { teacherLogits: teacher }).loss;
    relClose(await scalar(a), await scalar(b), 1e-6);
    tf.dispose([a, b]);
    disposeSparse(teacher);
    cached.teacherCache.clear();
    const before = tf.memory().numTensors;
    const h = await cached.fit(x, y, { epochs: 3, batchSize: 4, shuffle: false });
    expect(h.params.cachedTeacherBytes).toBe(8 * k * 8);
    expect(h.history.loss.every(Number.isFinite)).toBe(true);
    expect(h.history.loss[2]!).toBeLessThan(h.history.loss[0]!);
    // fit leaves only the optimizer state it created on its first step.
    expect(tf.memory().numTensors - before).toBeLessThanOrEqual(
      2 * cached.student.trainableWeights.length + 2,
    );
    tf.dispose([x, y]);
  });
});
