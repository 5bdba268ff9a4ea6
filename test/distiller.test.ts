// The Distiller (bench/distiller.ts) on the CPU backend with tiny batches: only the student
// learns, nothing leaks, cached teacher logits equal per-step ones, and the helpers are right.
// A narrow teacher keeps the steps fast; the loss is injected (stock ops), so these tests do
// not depend on the fused kernel.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type * as tfl from '@tensorflow/tfjs-layers';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  Distiller,
  batchAccuracy,
  evaluate,
  inferLogits,
  resolveLossFn,
  sparseSoftmaxCrossEntropy,
  trainStudentFromScratch,
  type DistillationLossFn,
  type DistillerOptions,
} from '../bench/distiller.js';
import { buildStudent, buildTeacher, setWeightsFrom } from '../bench/models.js';
import { distillationLoss, stockDistillationLoss } from '../src/index.js';

const BATCH = 4;
/** Narrow teacher for training steps (the full one is ~1.4 M parameters, slow on CPU). */
const TEACHER_FILTERS = [32, 64] as const;

/** Copies of every weight array (the CPU backend's dataSync returns its live buffer). */
function snapshot(model: tfl.LayersModel): Float32Array[] {
  return model.getWeights().map((w) => (w.dataSync() as Float32Array).slice());
}

/** Number of elements whose bit patterns differ. */
function bitDiffs(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  let n = 0;
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) n++;
  return n;
}

function relClose(actual: number, expected: number, rtol: number): void {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(
    rtol * Math.max(Math.abs(expected), 1e-30),
  );
}

/** Random images `[n, 28, 28, 1]` and int32 labels `[n]`, reproducible. */
function data(n: number, seed: number): { x: tf.Tensor4D; y: tf.Tensor1D } {
  const x = tf.randomUniform([n, 28, 28, 1], 0, 1, 'float32', seed) as tf.Tensor4D;
  const labels = Array.from({ length: n }, (_, i) => (i * 7 + seed) % 10);
  return { x, y: tf.tensor1d(labels, 'int32') };
}

const owned: { dispose(): void }[] = [];
function track<T extends { dispose(): void }>(value: T): T {
  owned.push(value);
  return value;
}

function setup(overrides: Partial<DistillerOptions> = {}, studentSeed = 11) {
  const teacher = track(buildTeacher({ filters: TEACHER_FILTERS, seed: 10 }));
  const student = track(buildStudent({ seed: studentSeed }));
  const distiller = track(
    new Distiller({
      teacher,
      student,
      optimizer: track(tf.train.adam()),
      loss: stockDistillationLoss,
      ...overrides,
    }),
  );
  return { teacher, student, distiller };
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

afterEach(() => {
  for (const o of owned.splice(0).reverse()) o.dispose();
});

describe('Distiller.trainStep', () => {
  it('keeps the roles as named (unlike the Keras notebook) and validates its options', () => {
    const { teacher, student, distiller } = setup();
    expect(distiller.teacher).toBe(teacher);
    expect(distiller.student).toBe(student);
    expect(distiller.lossConfig).toEqual({ alpha: 0.1, temperature: 10, reduction: 'mean' });
    expect(distiller.teacherLogitsMode).toBe('per-step');
    const optimizer = track(tf.train.adam());
    expect(() => new Distiller({ teacher, student: teacher, optimizer })).toThrow(/different/);
    expect(
      () =>
        new Distiller({
          teacher,
          student,
          optimizer,
          teacherLogits: 'sometimes' as unknown as 'cached',
        }),
    ).toThrow(/teacherLogits/);
    expect(() => resolveLossFn('other' as unknown as 'stock')).toThrow(/loss must be/);
    expect(resolveLossFn('stock')).toBe(stockDistillationLoss);
  });

  it('leaves every teacher weight bit-identical and changes every student weight', () => {
    const { teacher, student, distiller } = setup();
    const { x, y } = data(BATCH, 1);
    const teacherBefore = snapshot(teacher);
    const studentBefore = snapshot(student);
    for (let i = 0; i < 2; i++) tf.dispose(distiller.trainStep(x, y).loss);

    const teacherAfter = snapshot(teacher);
    teacherAfter.forEach((w, i) => expect(bitDiffs(w, teacherBefore[i]), `teacher ${i}`).toBe(0));

    const studentAfter = snapshot(student);
    let changed = 0;
    let total = 0;
    studentAfter.forEach((w, i) => {
      const d = bitDiffs(w, studentBefore[i]);
      expect(d, `student weight ${i} unchanged`).toBeGreaterThan(0);
      changed += d;
      total += w.length;
    });
    // Adam moves every parameter with a non-zero gradient: almost all of them here.
    expect(changed / total).toBeGreaterThan(0.9);
    tf.dispose([x, y]);
  });

  it("defaults to the library's fused loss, which also runs on CPU and matches 'stock'", async () => {
    const a = setup({ loss: undefined }, 60);
    const b = setup({ loss: 'stock' }, 61);
    expect(a.distiller.lossFn).toBe(distillationLoss);
    setWeightsFrom(b.student, a.student);
    setWeightsFrom(b.teacher, a.teacher);
    const { x, y } = data(BATCH, 14);
    const fused = a.distiller.trainStep(x, y).loss;
    const stock = b.distiller.trainStep(x, y).loss;
    // The stock loss clips probabilities at 1e-7 (Keras); at T = 10 none is that small.
    relClose((await fused.data())[0], (await stock.data())[0], 1e-4);
    tf.dispose([fused, stock, x, y]);
  });

  it('passes int32 [B] labels, [B, C] logits and the loss config to the injected loss', () => {
    const calls: { labels: tf.Tensor; s: tf.Tensor; t: tf.Tensor; config: unknown }[] = [];
    const spy: DistillationLossFn = (labels, s, t, config) => {
      calls.push({ labels, s, t, config });
      return stockDistillationLoss(labels, s, t, config);
    };
    const { distiller } = setup({
      loss: spy,
      alpha: 0.3,
      temperature: 4,
      temperatureSquared: false,
    });
    const { x, y } = data(BATCH, 2);
    tf.dispose(distiller.trainStep(x, y).loss);
    expect(calls).toHaveLength(1);
    const [call] = calls;
    expect(call.labels.dtype).toBe('int32');
    expect(call.labels.shape).toEqual([BATCH]);
    expect(call.s.shape).toEqual([BATCH, 10]);
    expect(call.t.shape).toEqual([BATCH, 10]);
    expect(call.config).toEqual({
      alpha: 0.3,
      temperature: 4,
      temperatureSquared: false,
      reduction: 'mean',
    });
    tf.dispose([x, y]);
  });

  it('returns a finite scalar loss equal to the loss at the pre-step weights, and the accuracy', async () => {
    const { teacher, student, distiller } = setup();
    const { x, y } = data(BATCH, 3);
    const [expectedLoss, expectedAcc] = tf.tidy(() => {
      const s = inferLogits(student, x);
      const t = inferLogits(teacher, x);
      return [
        stockDistillationLoss(y, s, t, { alpha: 0.1, temperature: 10 }).dataSync()[0],
        batchAccuracy(y, s).dataSync()[0],
      ];
    });
    const { loss, accuracy } = distiller.trainStep(x, y, { accuracy: true });
    expect(loss.shape).toEqual([]);
    expect(loss.dtype).toBe('float32');
    const value = (await loss.data())[0];
    expect(Number.isFinite(value)).toBe(true);
    relClose(value, expectedLoss, 1e-5);
    expect(accuracy).toBeDefined();
    expect((await accuracy!.data())[0]).toBeCloseTo(expectedAcc, 6);
    tf.dispose([loss, accuracy!, x, y]);
  });

  it('does not leak tensors over several steps (per-step, cached, split phases)', () => {
    const { distiller } = setup({ teacherLogits: 'cached' });
    const { x: xTrain, y: yTrain } = data(10, 4);
    distiller.cacheTeacherLogits(xTrain, 4);
    const idx = tf.tensor1d([1, 5, 8, 2], 'int32');
    const x = tf.gather(xTrain, idx);
    const y = tf.gather(yTrain, idx);
    // The first step creates Adam's moment accumulators, which live as long as the optimizer.
    tf.dispose(Object.values(distiller.trainStep(x, y, { batchIndices: idx })));

    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      tf.dispose(Object.values(distiller.trainStep(x, y, { batchIndices: idx, accuracy: true })));
      tf.dispose(distiller.trainStep(x, y, { batchIndices: [1, 5, 8, 2] }).loss);
      // Supplied teacher logits are the caller's: the step must not dispose them.
      const t = distiller.teacherForward(x);
      tf.dispose(distiller.trainStep(x, y, { teacherLogits: t }).loss);
      expect(t.isDisposed).toBe(false);
      const { loss, grads } = distiller.computeGradients(x, y, t);
      distiller.applyGradients(grads);
      tf.dispose([t, loss]);
    }
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([xTrain, yTrain, idx, x, y]);
  });

  it('does not leak in per-step mode either', () => {
    const { distiller } = setup();
    const { x, y } = data(BATCH, 5);
    tf.dispose(distiller.trainStep(x, y).loss);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      tf.dispose(Object.values(distiller.trainStep(x, y, { accuracy: true })));
    }
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, y]);
  });

  it('lowers the distillation loss over 20 steps on a fixed batch', async () => {
    const { distiller } = setup();
    const { x, y } = data(BATCH, 6);
    const losses: tf.Scalar[] = [];
    for (let i = 0; i < 20; i++) losses.push(distiller.trainStep(x, y).loss);
    const values = await Promise.all(losses.map(async (l) => (await l.data())[0]));
    tf.dispose(losses);
    expect(values.every(Number.isFinite)).toBe(true);
    expect(values[19]).toBeLessThan(values[0]);
    tf.dispose([x, y]);
  });
});

describe("'cached' teacher logits", () => {
  it('caches the teacher logits of the whole set in batches, matching one big forward', () => {
    const { teacher, distiller } = setup({ teacherLogits: 'cached' });
    const { x, y } = data(10, 7);
    const cache = distiller.cacheTeacherLogits(x, 3); // 3 + 3 + 3 + 1 rows
    expect(cache.shape).toEqual([10, 10]);
    expect(distiller.cachedLogits).toBe(cache);
    const direct = tf.tidy(() => inferLogits(teacher, x));
    const a = cache.dataSync();
    const b = direct.dataSync();
    for (let i = 0; i < a.length; i++) relClose(a[i], b[i], 1e-5);
    // A second call replaces (and frees) the first cache.
    const n = tf.memory().numTensors;
    distiller.cacheTeacherLogits(x, 256);
    expect(cache.isDisposed).toBe(true);
    expect(tf.memory().numTensors).toBe(n);
    tf.dispose([direct, x, y]);
  });

  it("gives the same loss and update as 'per-step' for the same batch", async () => {
    const perStep = setup({}, 20);
    const cached = setup({ teacherLogits: 'cached' }, 21);
    setWeightsFrom(cached.student, perStep.student);
    setWeightsFrom(cached.teacher, perStep.teacher);

    const { x: xTrain, y: yTrain } = data(10, 8);
    cached.distiller.cacheTeacherLogits(xTrain, 3);
    const batchIndices = [7, 2, 5, 0];
    const idx = tf.tensor1d(batchIndices, 'int32');
    const x = tf.gather(xTrain, idx);
    const y = tf.gather(yTrain, idx);

    for (let step = 0; step < 2; step++) {
      const a = perStep.distiller.trainStep(x, y).loss;
      const b = cached.distiller.trainStep(x, y, { batchIndices }).loss;
      relClose((await b.data())[0], (await a.data())[0], 1e-5);
      tf.dispose([a, b]);
    }
    const wa = snapshot(perStep.student);
    const wb = snapshot(cached.student);
    wa.forEach((w, i) => {
      for (let j = 0; j < w.length; j++) expect(Math.abs(wb[i][j] - w[j])).toBeLessThan(1e-5);
    });
    tf.dispose([xTrain, yTrain, idx, x, y]);
  });

  it('refuses cached steps without a cache or batch indices', () => {
    const { distiller } = setup({ teacherLogits: 'cached' });
    const { x, y } = data(BATCH, 9);
    expect(() => distiller.trainStep(x, y)).toThrow(/batchIndices/);
    expect(() => distiller.trainStep(x, y, { batchIndices: [0, 1, 2, 3] })).toThrow(
      /cacheTeacherLogits/,
    );
    tf.dispose([x, y]);
  });
});

describe('split phases', () => {
  it('teacherForward → computeGradients → applyGradients equals trainStep', async () => {
    const a = setup({}, 30);
    const b = setup({}, 31);
    setWeightsFrom(b.student, a.student);
    setWeightsFrom(b.teacher, a.teacher);
    const { x, y } = data(BATCH, 10);

    const whole = a.distiller.trainStep(x, y).loss;
    const t = b.distiller.teacherForward(x);
    const { loss, grads } = b.distiller.computeGradients(x, y, t);
    // Gradients of the student's trainable variables, and only those.
    const studentVarNames = b.student.trainableWeights.map((w) => (w.read() as tf.Variable).name);
    expect(Object.keys(grads).sort()).toEqual([...studentVarNames].sort());
    b.distiller.applyGradients(grads);
    expect(Object.values(grads).every((g) => g.isDisposed)).toBe(true);

    expect((await loss.data())[0]).toBe((await whole.data())[0]);
    const wa = snapshot(a.student);
    const wb = snapshot(b.student);
    wa.forEach((w, i) => expect(bitDiffs(w, wb[i])).toBe(0));
    tf.dispose([whole, t, loss, x, y]);
  });
});

describe('student from scratch', () => {
  it('has a finite loss that decreases over 20 steps on a fixed batch, without leaks', async () => {
    const student = track(buildStudent({ seed: 40 }));
    const optimizer = track(tf.train.adam());
    const { x, y } = data(BATCH, 11);
    const expected = tf.tidy(
      () => sparseSoftmaxCrossEntropy(y, inferLogits(student, x)).dataSync()[0],
    );

    const first = trainStudentFromScratch(student, optimizer, x, y, { accuracy: true });
    const firstLoss = (await first.loss.data())[0];
    relClose(firstLoss, expected, 1e-5);
    const acc = (await first.accuracy!.data())[0];
    expect(acc * BATCH).toBeCloseTo(Math.round(acc * BATCH), 6);
    tf.dispose(Object.values(first));

    const before = tf.memory().numTensors;
    const losses: tf.Scalar[] = [];
    for (let i = 0; i < 19; i++)
      losses.push(trainStudentFromScratch(student, optimizer, x, y).loss);
    const values = await Promise.all(losses.map(async (l) => (await l.data())[0]));
    tf.dispose(losses);
    expect(tf.memory().numTensors).toBe(before);
    expect(values.every(Number.isFinite)).toBe(true);
    expect(values[18]).toBeLessThan(firstLoss);
    // On 4 examples 20 Adam steps overfit well: the loss at least halves.
    expect(values[18]).toBeLessThan(firstLoss / 2);
    tf.dispose([x, y]);
  });

  it('updates the given model only', () => {
    const a = track(buildStudent({ seed: 41 }));
    const b = track(buildStudent({ seed: 41 }));
    const { x, y } = data(BATCH, 12);
    const before = snapshot(b);
    tf.dispose(trainStudentFromScratch(a, track(tf.train.adam()), x, y).loss);
    snapshot(b).forEach((w, i) => expect(bitDiffs(w, before[i])).toBe(0));
    snapshot(a).forEach((w, i) => expect(bitDiffs(w, before[i])).toBeGreaterThan(0));
    tf.dispose([x, y]);
  });
});

describe('evaluate', () => {
  it('matches a one-batch computation when run in uneven batches, without leaks', async () => {
    const student = track(buildStudent({ seed: 50 }));
    const { x, y } = data(10, 13);
    const [loss, acc] = tf.tidy(() => {
      const logits = inferLogits(student, x);
      return [
        sparseSoftmaxCrossEntropy(y, logits).dataSync()[0],
        batchAccuracy(y, logits).dataSync()[0],
      ];
    });
    const before = tf.memory().numTensors;
    const result = await evaluate(student, x, y, 3);
    expect(tf.memory().numTensors).toBe(before);
    relClose(result.loss, loss, 1e-5);
    expect(result.accuracy).toBeCloseTo(acc, 6);
    expect(result.accuracy * 10).toBeCloseTo(Math.round(result.accuracy * 10), 6);
    // The Distiller's evaluate is the student's.
    const distiller = track(
      new Distiller({
        teacher: track(buildTeacher({ filters: [4, 8], seed: 1 })),
        student,
        optimizer: track(tf.train.adam()),
        loss: stockDistillationLoss,
      }),
    );
    expect(await distiller.evaluate(x, y, 4)).toEqual(await evaluate(student, x, y, 4));
    await expect(evaluate(student, x, y, 0)).rejects.toThrow(RangeError);
    const short = tf.tensor1d([1, 2], 'int32');
    await expect(evaluate(student, x, short)).rejects.toThrow(/examples/);
    tf.dispose([x, y, short]);
  });

  it('sparseSoftmaxCrossEntropy equals -log softmax at the label', () => {
    const logits = tf.tensor2d([
      [1, 2, 3],
      [0, 0, 0],
    ]);
    const labels = tf.tensor1d([2, 0], 'int32');
    const mean = sparseSoftmaxCrossEntropy(labels, logits);
    const sum = sparseSoftmaxCrossEntropy(labels, logits, 'sum');
    const l0 = -Math.log(Math.exp(3) / (Math.exp(1) + Math.exp(2) + Math.exp(3)));
    const l1 = Math.log(3);
    expect(mean.dataSync()[0]).toBeCloseTo((l0 + l1) / 2, 5);
    expect(sum.dataSync()[0]).toBeCloseTo(l0 + l1, 5);
    const acc = batchAccuracy(labels, logits); // argmax of a tie is the first index
    expect(acc.dataSync()[0]).toBe(1);
    tf.dispose([logits, labels, mean, sum, acc]);
  });
});
