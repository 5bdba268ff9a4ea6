// The library's Distiller (src/distiller.ts) on the WebGPU backend, with small dense models
// (nothing here is MNIST-specific): trainStep with index and one-hot labels, fused vs stock
// step by step, every divergence against the loss called directly, fit's callbacks and History,
// evaluate, the teacher cache vs per-step teacher logits, only the student learns, no tensor
// leaks, and named errors before any dispatch. Also the benchmark's hard-label training
// (bench/core/hard-label-training.ts): the from-scratch baseline and its evaluation.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { afterEach, describe, expect, expectTypeOf, it } from 'vitest';
import {
  batchAccuracy,
  crossEntropyStep,
  evaluate as benchEvaluate,
  inferLogits,
  sparseSoftmaxCrossEntropy,
} from '../bench/core/hard-label-training.js';
import { countDispatches } from '../bench/core/lib/dispatch-counter.js';
import {
  DEFAULT_JSD_BETA,
  Distiller,
  distillationLoss,
  type DistillerOptions,
} from '../src/index.js';
import { useCheckedWebGPU } from './helpers/backend.js';

const FEATURES = 12;
const CLASSES = 10;
const BATCH = 8;

/** Dense layers with seeded glorotUniform kernels (one seed per layer): bit-identical rebuilds. */
function mlp(
  units: readonly number[],
  seed: number,
  opts: { inputs?: number; softmax?: boolean; l2?: number } = {},
): tfl.Sequential {
  return tfl.sequential({
    layers: units.map((u, i) =>
      tfl.layers.dense({
        ...(i === 0 ? { inputShape: [opts.inputs ?? FEATURES] } : {}),
        units: u,
        activation: i < units.length - 1 ? 'relu' : opts.softmax ? 'softmax' : 'linear',
        kernelInitializer: tfl.initializers.glorotUniform({ seed: seed + i }),
        biasInitializer: 'zeros',
        ...(opts.l2 !== undefined
          ? { kernelRegularizer: tfl.regularizers.l2({ l2: opts.l2 }) }
          : {}),
      }),
    ),
  });
}

const teacherOf = (seed = 1): tfl.Sequential => mlp([32, CLASSES], seed);
const studentOf = (seed = 100): tfl.Sequential => mlp([16, CLASSES], seed);

/** Reproducible features `[n, FEATURES]` (teacher logits of order 1-10) and int32 labels `[n]`. */
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

/** A seeded teacher and student, disposed after the test. */
function models(seeds: { teacher?: number; student?: number } = {}) {
  return { teacher: track(teacherOf(seeds.teacher)), student: track(studentOf(seeds.student)) };
}

/** A Distiller with its models, all disposed after the test. */
function setup(
  overrides: Partial<DistillerOptions> = {},
  seeds: { teacher?: number; student?: number } = {},
) {
  const { teacher, student } = models(seeds);
  const distiller = track(new Distiller({ student, teacher, ...overrides }));
  return { teacher, student, distiller };
}

/** Calls `fn` with arguments of the wrong type, as JavaScript can: its run-time checks. */
function callUntyped(fn: (...args: never[]) => unknown, self: unknown, ...args: unknown[]) {
  return Reflect.apply(fn, self, args) as unknown;
}

/** The argmax of each row (the first of equal maxima, as tf.argMax). */
function rowArgmax(rows: number[][]): number[] {
  return rows.map((row) => row.reduce((best, v, j) => (v > row[best]! ? j : best), 0));
}

/**
 * Int32 labels of which exactly the rows `< correct` equal the student's current prediction
 * (its argmax), the others a different class: the accuracy is `correct / n` by construction.
 */
async function labelsWithAccuracy(
  student: tfl.LayersModel,
  x: tf.Tensor2D,
  correct: number,
): Promise<{ y: tf.Tensor1D; predicted: number[] }> {
  const logits = inferLogits(student, x);
  const predicted = rowArgmax(await logits.array());
  logits.dispose();
  const labels = predicted.map((p, i) => (i < correct ? p : (p + 1 + (i % 3)) % CLASSES));
  return { y: tf.tensor1d(labels, 'int32'), predicted };
}

/** Copies of every weight array of `model`, in getWeights() order. */
async function snapshot(model: tfl.LayersModel): Promise<Float32Array[]> {
  return Promise.all(model.getWeights().map(async (w) => (await w.data()) as Float32Array));
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

function relClose(actual: number, expected: number, rtol: number, what = ''): void {
  expect(Number.isFinite(actual), what).toBe(true);
  expect(Math.abs(actual - expected), what).toBeLessThanOrEqual(
    rtol * Math.max(Math.abs(expected), 1e-30),
  );
}

async function scalar(t: tf.Tensor): Promise<number> {
  return (await t.data())[0]!;
}

useCheckedWebGPU();

afterEach(() => {
  for (const o of owned.splice(0).reverse()) o.dispose();
});

describe('Distiller: construction', () => {
  it("keeps the roles, fills in the library's defaults and defaults to Adam", () => {
    const { teacher, student, distiller } = setup();
    expect(distiller.student).toBe(student);
    expect(distiller.teacher).toBe(teacher);
    expect(distiller.loss).toBe('fused');
    expect(distiller.teacherLogitsMode).toBe('per-step');
    expect(distiller.optimizer.getClassName()).toBe('Adam');
    expect(distiller.teacherCache.value).toBeNull();
    expect(distiller.teacherCache.bytes).toBe(0);
  });

  it('lossConfig holds exactly the resolved values, beta only for jsd', () => {
    const { teacher, student } = models();
    const config = (options: Partial<DistillerOptions>) =>
      track(new Distiller({ student, teacher, ...options })).lossConfig;
    const defaults = {
      alpha: 0.1,
      temperature: 10,
      temperatureSquared: true,
      reduction: 'mean',
      divergence: 'forward-kl',
    };
    expect(config({})).toStrictEqual(defaults);
    expect(Object.isFrozen(config({}))).toBe(true);
    expect(config({ alpha: 0.3, temperature: 4, temperatureSquared: false })).toStrictEqual({
      ...defaults,
      alpha: 0.3,
      temperature: 4,
      temperatureSquared: false,
    });
    expect(config({ loss: 'stock' })).toStrictEqual(defaults);
    expect(config({ divergence: 'reverse-kl' })).toStrictEqual({
      ...defaults,
      divergence: 'reverse-kl',
    });
    expect('beta' in config({ divergence: 'reverse-kl' })).toBe(false);
    expect(config({ divergence: 'jsd' })).toStrictEqual({
      ...defaults,
      divergence: 'jsd',
      beta: DEFAULT_JSD_BETA,
    });
    expect(config({ divergence: 'jsd', beta: 0.3, temperature: 2 })).toStrictEqual({
      ...defaults,
      temperature: 2,
      divergence: 'jsd',
      beta: 0.3,
    });
  });

  it('refuses bad models and options with named errors', () => {
    const teacher = track(teacherOf());
    const student = track(studentOf());
    const make = (o: Partial<DistillerOptions>) => () =>
      track(new Distiller({ student, teacher, ...o }));
    expect(make({ teacher: student })).toThrow(/different models/);
    expect(make({ teacher: track(mlp([8, 5], 3)) })).toThrow(
      /teacher outputs 5 logits per example but the student 10/,
    );
    expect(make({ teacher: track(mlp([8, CLASSES], 3, { inputs: 7 })) })).toThrow(
      /student takes inputs \[null, 12\] but the teacher \[null, 7\]/,
    );
    expect(make({ student: track(mlp([8, CLASSES], 3, { softmax: true })) })).toThrow(
      /student .* ends in a softmax/,
    );
    const unbuilt = track(tfl.sequential());
    expect(make({ student: unbuilt })).toThrow(/no known input\/output shape/);
    expect(make({ alpha: 2 })).toThrow(/Distiller: config.alpha must be a number in \[0, 1\]/);
    expect(make({ temperature: 0 })).toThrow(/config.temperature/);
    expect(make({ divergence: 'reverse-kl', beta: 0.3 })).toThrow(
      /Distiller: config.beta applies to divergence 'jsd' only/,
    );
    expect(make({ divergence: 'jsd', beta: 1 })).toThrow(
      /config.beta must be a number in \(0, 1\)/,
    );
    expect(make({ loss: 'other' as 'stock' })).toThrow(/loss must be 'fused' or 'stock'/);
    expect(make({ teacherLogits: 'sometimes' as 'cached' })).toThrow(/teacherLogits must be/);
    expect(make({ optimizer: {} as tf.Optimizer })).toThrow(/tf.Optimizer/);
    const unknownOption = (name: string) => () =>
      callUntyped((o: DistillerOptions) => new Distiller(o), null, {
        student,
        teacher,
        [name]: 1,
      });
    for (const name of ['reduction', 'returnComponents', 'temprature']) {
      expect(unknownOption(name), name).toThrow(
        new RegExp(`Distiller: unknown option '${name}' \\(expected one of student, teacher, `),
      );
    }
  });

  it("refuses loss 'stock' with another divergence, at compile time and at run time", () => {
    const { teacher, student } = models();
    const stockJsd = () =>
      // @ts-expect-error the stock loss is the Keras formula: forward KL only
      new Distiller({ student, teacher, loss: 'stock', divergence: 'jsd' });
    expect(stockJsd).toThrow(
      /Distiller: loss 'stock' is the Keras formula \(forward KL\); divergence 'jsd' needs loss 'fused'/,
    );
    const stockBeta = () =>
      // @ts-expect-error nor beta
      new Distiller({ student, teacher, loss: 'stock', beta: 0.3 });
    expect(stockBeta).toThrow(/config.beta applies to divergence 'jsd' only/);
    const stockReverse = () =>
      // @ts-expect-error nor reverse KL
      new Distiller({ student, teacher, loss: 'stock', divergence: 'reverse-kl' });
    expect(stockReverse).toThrow(/divergence 'reverse-kl' needs loss 'fused'/);
  });

  it('refuses a top-K teacher with a divergence other than forward KL, at construction', () => {
    const { teacher, student } = models();
    for (const divergence of ['jsd', 'reverse-kl'] as const) {
      const make = () =>
        new Distiller({ student, teacher, teacherLogits: 'cached', teacherTopK: 3, divergence });
      expect(make, divergence).toThrow(
        new RegExp(
          `Distiller: a top-K teacher \\(teacherTopK\\) takes divergence 'forward-kl' only, ` +
            `got '${divergence}'`,
        ),
      );
    }
    const forward = track(
      new Distiller({ student, teacher, teacherLogits: 'cached', teacherTopK: 3 }),
    );
    expect(forward.teacherTopK).toBe(3);
  });

  it('owns the default optimizer only', () => {
    const { teacher, student } = setup();
    const given = track(tf.train.adam());
    const withGiven = new Distiller({ student, teacher, optimizer: given });
    const { x, y } = data(BATCH, 1);
    tf.dispose(withGiven.trainStep(x, y).loss); // creates Adam's moment variables
    const n = tf.memory().numTensors;
    withGiven.dispose();
    expect(tf.memory().numTensors).toBe(n); // the caller's optimizer keeps its state

    const withDefault = new Distiller({ student, teacher });
    tf.dispose(withDefault.trainStep(x, y).loss);
    const m = tf.memory().numTensors;
    withDefault.dispose();
    expect(tf.memory().numTensors).toBeLessThan(m); // its Adam state is freed
    tf.dispose([x, y]);
  });
});

describe('Distiller.trainStep', () => {
  it('with int32 labels: returns the loss and accuracy at the pre-step weights and updates the student', async () => {
    const { teacher, student, distiller } = setup();
    const { x } = data(BATCH, 2);
    // 5 of the 8 labels are the student's prediction: accuracy 5/8 by construction, counted
    // again below from the student's logits with an argmax of our own.
    const { y, predicted } = await labelsWithAccuracy(student, x, 5);
    const labels = Array.from(await y.data());
    const correct = predicted.filter((p, i) => p === labels[i]).length;
    expect(correct).toBe(5);
    const expected = tf.tidy(() =>
      distillationLoss(y, inferLogits(student, x), inferLogits(teacher, x)),
    );
    const before = await snapshot(student);
    const { loss, accuracy } = distiller.trainStep(x, y, { accuracy: true });
    expect(loss.shape).toEqual([]);
    expect(loss.dtype).toBe('float32');
    // Same op on the same logits; the student's training-mode forward equals inference here
    // (no dropout / batch norm), so only rounding in a different command stream may differ.
    relClose(await scalar(loss), await scalar(expected), 1e-6);
    // k / 8 is exact in float32: the accuracy is the count over the batch, exactly.
    expect(await scalar(accuracy!)).toBe(correct / BATCH);
    const after = await snapshot(student);
    after.forEach((w, i) => expect(bitDiffs(w, before[i]!), `weight ${i}`).toBeGreaterThan(0));
    tf.dispose([loss, accuracy!, expected, x, y]);
  });

  it('with float32 one-hot labels: the same loss and update as with int32 labels', async () => {
    const a = setup({}, { student: 7 });
    const b = setup({}, { student: 7 });
    const { x, y } = data(BATCH, 3);
    const oneHot = tf.cast(tf.oneHot(y, CLASSES), 'float32');
    for (let step = 0; step < 3; step++) {
      const la = a.distiller.trainStep(x, y).loss;
      const lb = b.distiller.trainStep(x, oneHot).loss;
      // The kernel takes a different path for index labels (it skips the per-element label
      // terms), so the two sums differ by float32 rounding only: ~C·u relative.
      relClose(await scalar(lb), await scalar(la), 1e-5, `step ${step}`);
      tf.dispose([la, lb]);
    }
    const wa = await snapshot(a.student);
    const wb = await snapshot(b.student);
    wa.forEach((w, i) => {
      for (let j = 0; j < w.length; j++) expect(Math.abs(wb[i]![j]! - w[j]!)).toBeLessThan(1e-5);
    });
    tf.dispose([x, y, oneHot]);
  });

  it('accepts soft labels [B, C] and adds the student regularization penalties', async () => {
    const teacher = track(teacherOf());
    const student = track(mlp([16, CLASSES], 100, { l2: 0.01 }));
    const distiller = track(new Distiller({ student, teacher }));
    const { x } = data(BATCH, 4);
    const soft = tf.softmax(tf.randomNormal([BATCH, CLASSES], 0, 1, 'float32', 5));
    const expected = tf.tidy(() => {
      // A Sequential's own calculateLosses() is empty; its layers hold the penalties.
      const penalties = student.layers.flatMap((l) => l.calculateLosses());
      expect(penalties).toHaveLength(2);
      const penalty = tf.addN(penalties);
      return tf.add(
        distillationLoss(soft, inferLogits(student, x), inferLogits(teacher, x)),
        penalty,
      );
    });
    const { loss } = distiller.trainStep(x, soft);
    relClose(await scalar(loss), await scalar(expected), 1e-6);
    tf.dispose([loss, expected, x, soft]);
  });

  it('fused and stock give the same loss step by step from the same initial weights', async () => {
    const fused = setup({ loss: 'fused' }, { student: 9 });
    const stock = setup({ loss: 'stock' }, { student: 9 });
    const { x, y } = data(32, 6);
    const largest = tf.tidy(() =>
      tf.max(tf.abs(tf.concat([inferLogits(fused.teacher, x), inferLogits(fused.student, x)]))),
    );
    expect(await scalar(largest)).toBeLessThan(20); // see (1) below
    largest.dispose();
    let worst = 0;
    for (let step = 0; step < 8; step++) {
      const lf = fused.distiller.trainStep(x, y).loss;
      const ls = stock.distiller.trainStep(x, y).loss;
      const [f, s] = [await scalar(lf), await scalar(ls)];
      tf.dispose([lf, ls]);
      // Tolerance 1e-4 relative. (1) The formulas agree exactly here: the stock loss clips
      // probabilities at 1e-7 (Keras), but at T = 10 with logits of magnitude < 20 every
      // softmax(·/T) probability is above e^-4/C ≈ 2e-3. (2) One evaluation differs by float32
      // rounding in a different order: a few C·u ≈ 1e-6 relative for C = 10 (the kernel's bound
      // in bench/core/numerics/tolerance.ts is of that order). (3) Over steps, gradients differing by
      // O(u) relative move Adam's weights by O(lr·u); the sign of a near-zero gradient element
      // can flip its update (±lr), but such a weight has ~0 gradient, so the loss changes by
      // O(lr²·curvature) ≪ 1e-4. The benchmark measured 8.2e-7 over 50 steps. 1e-4 leaves ~100×
      // headroom yet fails on a wrong formula (a missing T², or α applied to the wrong term,
      // moves the loss by far more than 1 %).
      relClose(f, s, 1e-4, `step ${step}`);
      worst = Math.max(worst, Math.abs(f - s) / Math.abs(s));
    }
    console.log(
      `[distiller] fused vs stock, 8 steps: max relative loss difference ${worst.toExponential(2)}`,
    );
    tf.dispose([x, y]);
  });

  for (const [divergence, beta] of [
    ['reverse-kl', undefined],
    ['jsd', 0.3],
  ] as const) {
    it(`divergence '${divergence}': the step's loss and student gradients are distillationLoss's on the same logits`, async () => {
      const options = beta === undefined ? { divergence } : { divergence, beta };
      const { teacher, student, distiller } = setup(
        { ...options, temperature: 4 },
        { student: 13 },
      );
      const config = {
        alpha: 0.1,
        temperature: 4,
        temperatureSquared: true,
        reduction: 'mean',
        ...options,
      } as const;
      expect(distiller.lossConfig).toStrictEqual(config);
      const { x, y } = data(BATCH, 21);
      const t = inferLogits(teacher, x);
      // The direct loss and its gradients with respect to the student's variables, taped
      // outside the Distiller.
      const vars = student.trainableWeights.map((w) => w.read() as tf.Variable);
      const direct = tf.variableGrads(
        () => distillationLoss(y, inferLogits(student, x), t, config),
        vars,
      );
      const forwardKl = tf.tidy(() =>
        distillationLoss(y, inferLogits(student, x), t, {
          ...config,
          divergence: 'forward-kl',
          beta: undefined,
        }),
      );
      const { loss, grads } = distiller.computeGradients(x, y, t);
      // Tolerance: the same op on the same float32 inputs, on the same backend; only the order
      // of the command stream differs, so the values agree to float32 rounding, 1e-6 relative
      // (per gradient: relative to its largest element).
      relClose(await scalar(loss), await scalar(direct.value), 1e-6, 'loss');
      expect(Object.keys(grads).sort()).toEqual(Object.keys(direct.grads).sort());
      for (const [name, g] of Object.entries(grads)) {
        const got = Array.from(await g.data());
        const want = Array.from(await direct.grads[name]!.data());
        const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        expect(scale, name).toBeGreaterThan(0);
        let worst = 0;
        want.forEach((v, i) => (worst = Math.max(worst, Math.abs(got[i]! - v))));
        expect(worst, `${name}: max |difference| / max |gradient|`).toBeLessThanOrEqual(
          1e-6 * scale,
        );
      }
      // The divergence is not ignored: forward KL gives another loss on these logits.
      expect(Math.abs((await scalar(forwardKl)) - (await scalar(loss)))).toBeGreaterThan(
        1e-3 * Math.abs(await scalar(loss)),
      );
      // trainStep takes the same step: the same loss at the pre-step weights.
      distiller.applyGradients(grads);
      const b = setup({ ...options, temperature: 4 }, { student: 13 });
      const step = b.distiller.trainStep(x, y, { teacherLogits: t }).loss;
      relClose(await scalar(step), await scalar(direct.value), 1e-6, 'trainStep loss');
      tf.dispose([loss, step, direct.value, forwardKl, x, y, t]);
      tf.dispose(direct.grads);
    });
  }

  it('takes caller-supplied teacher logits without disposing them, and split phases equal trainStep', async () => {
    const a = setup({}, { student: 11 });
    const b = setup({}, { student: 11 });
    const { x, y } = data(BATCH, 7);
    const whole = a.distiller.trainStep(x, y).loss;
    const t = b.distiller.teacherForward(x);
    const { loss, grads } = b.distiller.computeGradients(x, y, t);
    const names = b.student.trainableWeights.map((w) => (w.read() as tf.Variable).name);
    expect(Object.keys(grads).sort()).toEqual([...names].sort());
    b.distiller.applyGradients(grads);
    expect(Object.values(grads).every((g) => g.isDisposed)).toBe(true);
    expect(await scalar(loss)).toBe(await scalar(whole));
    const wa = await snapshot(a.student);
    const wb = await snapshot(b.student);
    wa.forEach((w, i) => expect(bitDiffs(w, wb[i]!)).toBe(0));
    const supplied = b.distiller.trainStep(x, y, { teacherLogits: t }).loss;
    expect(t.isDisposed).toBe(false);
    tf.dispose([whole, t, loss, supplied, x, y]);
  });

  it('throws named errors for bad inputs before anything is dispatched', async () => {
    const { distiller } = setup();
    const { x, y } = data(BATCH, 8);
    tf.dispose(distiller.trainStep(x, y).loss); // Adam's state exists from here on
    const short = tf.tensor1d([1, 2, 3], 'int32');
    const floatIdx = tf.cast(y, 'float32');
    const wideLabels = tf.zeros([BATCH, CLASSES + 1]);
    const wrongX = tf.zeros([BATCH, FEATURES + 1]);
    const x3 = tf.zeros([BATCH, FEATURES, 1]);
    const badTeacher = tf.zeros<tf.Rank.R2>([BATCH, CLASSES - 1]);
    const tensors = tf.memory().numTensors;
    const cache = distiller.teacherCache;
    const thrown: [() => unknown, RegExp][] = [
      [() => distiller.trainStep(x, short), /x has 8 examples .* but y has 3/],
      [() => distiller.trainStep(x, floatIdx), /cast class indices to int32/],
      [() => distiller.trainStep(x, wideLabels), /y must be int32 \[8\] .* float32 \[8, 10\]/],
      [() => distiller.trainStep(wrongX, y), /x must have the models' input shape \[null, 12\]/],
      [() => distiller.trainStep(x3, y), /input shape/],
      [
        () => distiller.trainStep(x, y, { teacherLogits: badTeacher }),
        /teacherLogits must be float32 \[8, 10\], got float32 \[8, 9\]/,
      ],
      [
        () => callUntyped(distiller.trainStep, distiller, x, 'y'),
        /Distiller.trainStep: y must be a tf.Tensor, got string/,
      ],
      [() => distiller.computeGradients(x, short, badTeacher), /examples/],
      [() => distiller.teacherForward(wrongX), /Distiller.teacherForward: x must have/],
      [() => cache.fill(wrongX), /Distiller.teacherCache.fill: x must have the models' input/],
      [() => cache.fill(x, 0), /Distiller.teacherCache.fill: batchSize must be a positive/],
      [
        () => cache.set(badTeacher),
        /Distiller.teacherCache.set: value must be float32 \[N, 10\] teacher logits, got float32 \[8, 9\]/,
      ],
      [() => cache.rows([0]), /Distiller.teacherCache.rows: the teacher cache is empty/],
    ];
    const rejected: [() => Promise<unknown>, RegExp][] = [
      [() => distiller.evaluate(x, short), /Distiller.evaluate: x has 8 examples .* y has 3/],
      [() => distiller.evaluate(x, y, { batchSize: 0 }), /batchSize must be a positive integer/],
      [() => distiller.fit(x, short), /Distiller.fit: x has 8 examples .* y has 3/],
      [() => distiller.fit(x, y, { epochs: 0 }), /epochs must be a positive integer, got 0/],
      [
        () => distiller.fit(x, y, { batchSize: 1.5 }),
        /batchSize must be a positive integer, got 1.5/,
      ],
      [() => distiller.fit(x, y, { validationData: [x, short] }), /validationData\[1\]/],
      [
        () => distiller.fit(x, y, { callbacks: [{}, tfl.callbacks.earlyStopping()] }),
        /tfjs-layers Callback objects \(e.g. tf.callbacks.earlyStopping\) expect a LayersModel/,
      ],
    ];
    for (const [run, message] of thrown) {
      let error: unknown;
      const dispatches = countDispatches(() => {
        try {
          run();
        } catch (err) {
          error = err;
        }
      });
      expect(dispatches, String(message)).toBe(0);
      expect(tf.memory().numTensors, String(message)).toBe(tensors);
      expect(error, String(message)).toBeInstanceOf(Error);
      expect((error as Error).message).toMatch(message);
    }
    // fit and evaluate are async: their checks run before their first await, so the promise
    // is already rejected when the call returns, with nothing dispatched.
    for (const [run, message] of rejected) {
      let result: Promise<unknown> | undefined;
      const dispatches = countDispatches(() => {
        result = run();
      });
      expect(dispatches, String(message)).toBe(0);
      expect(tf.memory().numTensors, String(message)).toBe(tensors);
      await expect(result, String(message)).rejects.toThrow(message);
    }
    tf.dispose([x, y, short, floatIdx, wideLabels, wrongX, x3, badTeacher]);
  });

  it('rejects from fit and evaluate with the same named errors', async () => {
    const { distiller } = setup();
    const { x, y } = data(BATCH, 8);
    const short = tf.tensor1d([1, 2, 3], 'int32');
    await expect(distiller.fit(x, short)).rejects.toThrow(/x has 8 examples .* but y has 3/);
    await expect(distiller.evaluate(x, short)).rejects.toThrow(/but y has 3/);
    await expect(distiller.fit(x, y, { validationData: [x, short] })).rejects.toThrow(
      /validationData\[0\] has 8 examples .* but validationData\[1\] has 3/,
    );
    tf.dispose([x, y, short]);
  });
});

describe('Distiller: only the student learns', () => {
  for (const mode of ['per-step', 'cached'] as const) {
    for (const loss of ['fused', 'stock'] as const) {
      it(`${loss} loss, ${mode} teacher logits: every teacher weight bit-identical, every student weight moved`, async () => {
        const { teacher, student, distiller } = setup({ loss, teacherLogits: mode });
        const { x, y } = data(20, 9);
        const teacherBefore = await snapshot(teacher);
        const studentBefore = await snapshot(student);
        await distiller.fit(x, y, { epochs: 2, batchSize: 8 });
        const teacherAfter = await snapshot(teacher);
        teacherAfter.forEach((w, i) =>
          expect(bitDiffs(w, teacherBefore[i]!), `teacher weight ${i}`).toBe(0),
        );
        const studentAfter = await snapshot(student);
        let changed = 0;
        let total = 0;
        studentAfter.forEach((w, i) => {
          const d = bitDiffs(w, studentBefore[i]!);
          expect(d, `student weight ${i}`).toBeGreaterThan(0);
          changed += d;
          total += w.length;
        });
        // Adam moves every parameter with a non-zero gradient (dead ReLUs aside): most of them.
        expect(changed / total).toBeGreaterThan(0.8);
        tf.dispose([x, y]);
      });
    }
  }
});

describe('Distiller.fit', () => {
  it('calls the callbacks in tfjs-layers order with their logs and returns the History', async () => {
    const { distiller } = setup();
    const { x, y } = data(10, 10);
    const { x: vx, y: vy } = data(6, 11);
    const events: string[] = [];
    const batchLosses: number[][] = [[], []];
    const epochLogs: Record<string, number>[] = [];
    let trainEndLogs: Record<string, number> | undefined;
    const history = await distiller.fit(x, y, {
      epochs: 2,
      batchSize: 4,
      shuffle: false,
      validationData: [vx, vy],
      callbacks: [
        {
          onTrainBegin: () => void events.push('trainBegin'),
          onEpochBegin: (e) => void events.push(`epochBegin ${e}`),
          onBatchBegin: (b, logs) => void events.push(`batchBegin ${b} size ${logs?.size}`),
          onBatchEnd: async (b, logs) => {
            await Promise.resolve(); // awaited before the next batch
            events.push(`batchEnd ${b} size ${logs?.size}`);
            expect(logs?.batch).toBe(b);
            batchLosses[events.filter((e) => e.startsWith('epochBegin')).length - 1]!.push(
              logs!.loss!,
            );
          },
          onEpochEnd: (e, logs) => {
            events.push(`epochEnd ${e}`);
            epochLogs.push({ ...logs });
          },
          onTrainEnd: (logs) => {
            events.push('trainEnd');
            trainEndLogs = logs;
          },
        },
        { onEpochEnd: (e) => void events.push(`second epochEnd ${e}`) },
      ],
    });
    const epoch = (e: number) => [
      `epochBegin ${e}`,
      ...[0, 1, 2].flatMap((b) => [
        `batchBegin ${b} size ${b < 2 ? 4 : 2}`,
        `batchEnd ${b} size ${b < 2 ? 4 : 2}`,
      ]),
      `epochEnd ${e}`,
      `second epochEnd ${e}`,
    ];
    expect(events).toEqual(['trainBegin', ...epoch(0), ...epoch(1), 'trainEnd']);
    expect(history.epoch).toEqual([0, 1]);
    expect(Object.keys(history.history).sort()).toEqual(['loss', 'val_acc', 'val_loss']);
    expect(history.params).toEqual({
      epochs: 2,
      batchSize: 4,
      samples: 10,
      steps: 3,
      doValidation: true,
      metrics: ['loss', 'val_loss', 'val_acc'],
    });
    for (let e = 0; e < 2; e++) {
      const [l0, l1, l2] = batchLosses[e]!;
      // The epoch loss: the size-weighted mean of the batch losses, as tfjs-layers' BaseLogger.
      relClose(history.history.loss[e]!, (4 * l0! + 4 * l1! + 2 * l2!) / 10, 1e-6);
      expect(epochLogs[e]).toEqual({
        loss: history.history.loss[e],
        val_loss: history.history.val_loss![e],
        val_acc: history.history.val_acc![e],
      });
    }
    expect(trainEndLogs).toEqual(epochLogs[1]);
    // The last validation ran on the final weights: it is evaluate() now.
    const final = await distiller.evaluate(vx, vy, { batchSize: 4 });
    expect(history.history.val_loss![1]).toBe(final.loss);
    expect(history.history.val_acc![1]).toBe(final.accuracy);
    tf.dispose([x, y, vx, vy]);
  });

  it('equals the same trainSteps on consecutive slices (shuffle: false), and lowers the loss', async () => {
    const a = setup({}, { student: 12 });
    const b = setup({}, { student: 12 });
    const { x, y } = data(12, 12);
    const history = await a.distiller.fit(x, y, { epochs: 3, batchSize: 5, shuffle: false });
    expect(Object.keys(history.history)).toEqual(['loss']);
    const manual: number[] = [];
    for (let e = 0; e < 3; e++) {
      let sum = 0;
      for (let start = 0; start < 12; start += 5) {
        const size = Math.min(5, 12 - start);
        const [xb, yb] = [tf.slice(x, [start], [size]), tf.slice(y, [start], [size])];
        const loss = b.distiller.trainStep(xb, yb).loss;
        sum += (await scalar(loss)) * size;
        tf.dispose([xb, yb, loss]);
      }
      manual.push(sum / 12);
    }
    history.history.loss.forEach((l, e) => relClose(l, manual[e]!, 1e-6, `epoch ${e}`));
    const wa = await snapshot(a.student);
    const wb = await snapshot(b.student);
    wa.forEach((w, i) => expect(bitDiffs(w, wb[i]!)).toBe(0));
    expect(history.history.loss[2]!).toBeLessThan(history.history.loss[0]!);
    tf.dispose([x, y]);
  });

  it('shuffles by default, stops on stopTraining, and refuses a second concurrent fit', async () => {
    const { distiller } = setup();
    const { x, y } = data(16, 13);
    const seen: number[] = [];
    const history = await distiller.fit(x, y, {
      epochs: 5,
      batchSize: 4,
      callbacks: {
        onBatchEnd: (batch) => {
          seen.push(batch);
          if (seen.length === 6) distiller.stopTraining = true;
        },
      },
    });
    // Stopped after the 2nd batch of the 2nd epoch; that epoch still ends (as in tfjs-layers).
    expect(seen).toEqual([0, 1, 2, 3, 0, 1]);
    expect(history.epoch).toEqual([0, 1]);
    expect(history.history.loss).toHaveLength(2);
    const first = distiller.fit(x, y);
    await expect(distiller.fit(x, y)).rejects.toThrow(
      /another fit\(\) of this Distiller is running/,
    );
    await first;
    tf.dispose([x, y]);
  });

  it('trains on float32 one-hot labels like on int32 labels', async () => {
    const a = setup({}, { student: 14 });
    const b = setup({}, { student: 14 });
    const { x, y } = data(12, 14);
    const oneHot = tf.cast(tf.oneHot(y, CLASSES), 'float32');
    const ha = await a.distiller.fit(x, y, { epochs: 2, batchSize: 6, shuffle: false });
    const hb = await b.distiller.fit(x, oneHot, {
      epochs: 2,
      batchSize: 6,
      shuffle: false,
      validationData: [x, oneHot],
    });
    ha.history.loss.forEach((l, e) => relClose(hb.history.loss[e]!, l, 1e-5));
    const va = await a.distiller.evaluate(x, y);
    expect(hb.history.val_acc![1]).toBeCloseTo(va.accuracy, 5);
    relClose(hb.history.val_loss![1]!, va.loss, 1e-4);
    tf.dispose([x, y, oneHot]);
  });
});

describe('Distiller.evaluate', () => {
  it("is the student's cross-entropy and accuracy, in any batch size, for both label kinds", async () => {
    const { student, distiller } = setup();
    const { x } = data(10, 15);
    // 4 of the 10 labels are the student's prediction: accuracy 4/10, recounted from its logits.
    const { y, predicted } = await labelsWithAccuracy(student, x, 4);
    const labels = Array.from(await y.data());
    const correct = predicted.filter((p, i) => p === labels[i]).length;
    expect(correct).toBe(4);
    const loss = tf.tidy(() => sparseSoftmaxCrossEntropy(y, inferLogits(student, x)));
    const expectedLoss = await scalar(loss);
    loss.dispose();
    const oneHot = tf.cast(tf.oneHot(y, CLASSES), 'float32');
    const before = tf.memory().numTensors;
    const whole = await distiller.evaluate(x, y, { batchSize: 10 });
    const uneven = await distiller.evaluate(x, y, { batchSize: 3 });
    const dense = await distiller.evaluate(x, oneHot);
    expect(tf.memory().numTensors).toBe(before);
    for (const r of [whole, uneven, dense]) {
      relClose(r.loss, expectedLoss, 1e-5);
      expect(r.accuracy).toBe(correct / 10);
    }
    // The benchmark's evaluation of any model agrees with the Distiller's for its student.
    const bench = await benchEvaluate(student, x, y, 3);
    relClose(bench.loss, uneven.loss, 1e-5);
    expect(bench.accuracy).toBe(uneven.accuracy);
    tf.dispose([x, y, oneHot]);
  });
});

describe('the teacher cache', () => {
  it("fit gives the same losses and weights as 'per-step', and frees its own cache", async () => {
    const perStep = setup({}, { student: 20 });
    const cached = setup({ teacherLogits: 'cached' }, { student: 20 });
    const { x, y } = data(14, 16);
    const args = { epochs: 2, batchSize: 4, shuffle: false };
    const t0 = tf.memory().numTensors;
    const hp = await perStep.distiller.fit(x, y, args);
    const t1 = tf.memory().numTensors;
    let during = -1;
    const hc = await cached.distiller.fit(x, y, {
      ...args,
      callbacks: { onTrainBegin: () => void (during = tf.memory().numTensors) },
    });
    const t2 = tf.memory().numTensors;
    // The teacher's rows do not depend on the rows beside them: the logits are the same
    // whether computed per batch or once (same batches here), up to rounding.
    hp.history.loss.forEach((l, e) => relClose(hc.history.loss[e]!, l, 1e-5));
    const wp = await snapshot(perStep.student);
    const wc = await snapshot(cached.student);
    wp.forEach((w, i) => {
      for (let j = 0; j < w.length; j++) expect(Math.abs(wc[i]![j]! - w[j]!)).toBeLessThan(1e-5);
    });
    // fit's cache is its own: one [14, 10] tensor while it runs, none after, and teacherCache
    // stays empty.
    expect(during).toBe(t1 + 1);
    expect(hc.params.cachedTeacherBytes).toBe(14 * CLASSES * 4);
    expect(hp.params.cachedTeacherBytes).toBeUndefined();
    expect(cached.distiller.teacherCache.value).toBeNull();
    // Each fit leaves only its Adam state behind (the same for both): the cache is freed.
    expect(t1 - t0).toBeGreaterThan(0);
    expect(t2 - t1).toBe(t1 - t0);
    tf.dispose([x, y]);
  });

  it('trainStep with batchIndices into teacherCache.fill equals per-step', async () => {
    const perStep = setup({}, { student: 21 });
    const cached = track(new Distiller({ ...models({ student: 21 }), teacherLogits: 'cached' }));
    const { x: xAll, y: yAll } = data(10, 17);
    const cache = cached.teacherCache.fill(xAll, 3); // 3 + 3 + 3 + 1 rows
    expectTypeOf(cache).toEqualTypeOf<tf.Tensor2D>();
    expect(cache.shape).toEqual([10, CLASSES]);
    expect(cached.teacherCache.value).toBe(cache);
    expect(cached.teacherCache.bytes).toBe(10 * CLASSES * 4);
    // The cache is the teacher's logits, and rows() gathers them in the order asked.
    const logits = cached.teacherForward(xAll);
    const rows = cached.teacherCache.rows([7, 2]);
    const all = await logits.array();
    const got = await rows.array();
    [7, 2].forEach((r, i) =>
      all[r]!.forEach((v, j) => expect(Math.abs(got[i]![j]! - v)).toBeLessThan(1e-5)),
    );
    tf.dispose([logits, rows]);
    const indices = [7, 2, 5, 0];
    const idx = tf.tensor1d(indices, 'int32');
    const [x, y] = [tf.gather(xAll, idx), tf.gather(yAll, idx)];
    for (let step = 0; step < 2; step++) {
      const a = perStep.distiller.trainStep(x, y).loss;
      const b = cached.trainStep(x, y, {
        batchIndices: step === 0 ? indices : idx,
      }).loss;
      relClose(await scalar(b), await scalar(a), 1e-5);
      tf.dispose([a, b]);
    }
    expect(() => cached.trainStep(x, y)).toThrow(/'cached' mode needs opts.batchIndices/);
    expect(() => cached.trainStep(x, y, { batchIndices: [0, 1] })).toThrow(
      /x has 4 examples but batchIndices has 2/,
    );
    expect(() => cached.trainStep(x, y, { batchIndices: [0, 1, 2, 10] })).toThrow(
      /Distiller.trainStep: batch index 10 is outside the cache's \[0, 10\)/,
    );
    expect(() => cached.teacherCache.rows([0, -1])).toThrow(
      /Distiller.teacherCache.rows: batch index -1 is outside/,
    );
    // A second fill replaces (and frees) the first.
    cached.teacherCache.fill(xAll);
    expect(cache.isDisposed).toBe(true);
    cached.teacherCache.clear();
    expect(cached.teacherCache.value).toBeNull();
    expect(cached.teacherCache.bytes).toBe(0);
    expect(() => cached.trainStep(x, y, { batchIndices: indices })).toThrow(
      /Distiller.trainStep: the teacher cache is empty; fill it first with distiller.teacherCache.fill\(x\)/,
    );
    tf.dispose([xAll, yAll, idx, x, y]);
  });

  it('set adopts logits computed by the caller, frees only what it replaces, and checks them', async () => {
    const { distiller } = setup({ teacherLogits: 'cached' });
    const cache = distiller.teacherCache;
    const { x, y } = data(6, 18);
    const first = distiller.teacherForward(x);
    cache.set(first);
    expect(cache.value).toBe(first);
    cache.set(first); // the same value again: kept, not freed
    expect(first.isDisposed).toBe(false);
    const shared = first.clone(); // the same data, another tensor
    cache.set(shared);
    expect(first.isDisposed).toBe(true);
    expect(Array.from(await shared.data()).every(Number.isFinite)).toBe(true);
    // Refused before anything changes: the current value stays.
    const before = tf.memory().numTensors;
    const ids = tf.zeros([6, 2], 'int32');
    const lp = tf.zeros([6, 2]);
    const intLogits = tf.zeros([6, CLASSES], 'int32');
    const rank3 = tf.zeros([6, CLASSES, 1]);
    const bad: [unknown, RegExp][] = [
      [intLogits, /value must be float32 \[N, 10\] teacher logits, got int32 \[6, 10\]/],
      [rank3, /got float32 \[6, 10, 1\]/],
      [
        { indices: ids, logProbs: lp },
        /this Distiller caches teacher logits: value must be float32 \[N, 10\], got a sparse teacher/,
      ],
      ['logits', /Distiller.teacherCache.set: value must be a tf.Tensor, got string/],
    ];
    const made = tf.memory().numTensors;
    expect(made).toBe(before + 4);
    for (const [value, message] of bad) {
      expect(() => callUntyped(cache.set, cache, value), String(message)).toThrow(message);
    }
    expect(tf.memory().numTensors).toBe(made);
    expect(cache.value).toBe(shared);
    cache.clear();
    expect(shared.isDisposed).toBe(true);
    tf.dispose([x, y, ids, lp, intLogits, rank3]);
  });
});

describe('Distiller: no tensor leaks', () => {
  it('over several steps, fits and evaluations, in both modes and both label kinds', async () => {
    const { distiller } = setup({ teacherLogits: 'cached' });
    const perStep = track(
      new Distiller({ student: distiller.student, teacher: distiller.teacher, loss: 'stock' }),
    );
    const { x, y } = data(12, 18);
    const oneHot = tf.cast(tf.oneHot(y, CLASSES), 'float32');
    const idx = tf.tensor1d([0, 3, 6, 9], 'int32');
    const [xb, yb] = [tf.gather(x, idx), tf.gather(y, idx)];
    const ybDense = tf.gather(oneHot, idx);
    distiller.teacherCache.fill(x);
    const round = async () => {
      tf.dispose(Object.values(distiller.trainStep(xb, yb, { batchIndices: idx, accuracy: true })));
      tf.dispose(distiller.trainStep(xb, ybDense, { batchIndices: [0, 3, 6, 9] }).loss);
      tf.dispose(Object.values(perStep.trainStep(xb, ybDense, { accuracy: true })));
      const t = distiller.teacherForward(xb);
      const { loss, grads } = distiller.computeGradients(xb, yb, t);
      distiller.applyGradients(grads);
      tf.dispose([t, loss]);
      await distiller.fit(x, y, { epochs: 2, batchSize: 5, validationData: [x, oneHot] });
      await perStep.fit(x, oneHot, { batchSize: 5, callbacks: { onBatchEnd: () => undefined } });
      await distiller.evaluate(x, oneHot, { batchSize: 5 });
    };
    await round(); // creates each optimizer's Adam state, which lives as long as the optimizer
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) await round();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, y, oneHot, idx, xb, yb, ybDense]);
  });
});

describe('hard-label training (bench/core/hard-label-training.ts)', () => {
  it('crossEntropyStep lowers the cross-entropy of the given model only, without leaks', async () => {
    const model = track(studentOf(40));
    const other = track(studentOf(40));
    const optimizer = track(tf.train.adam());
    const { x, y } = data(BATCH, 19);
    const expected = tf.tidy(() => sparseSoftmaxCrossEntropy(y, inferLogits(model, x)));
    const otherBefore = await snapshot(other);
    const first = crossEntropyStep(model, optimizer, x, y, { accuracy: true });
    const firstLoss = await scalar(first.loss);
    relClose(firstLoss, await scalar(expected), 1e-6);
    tf.dispose([...Object.values(first), expected]);
    const before = tf.memory().numTensors;
    const losses: tf.Scalar[] = [];
    for (let i = 0; i < 19; i++) losses.push(crossEntropyStep(model, optimizer, x, y).loss);
    const values = await Promise.all(losses.map(scalar));
    tf.dispose(losses);
    expect(tf.memory().numTensors).toBe(before);
    expect(values[18]!).toBeLessThan(firstLoss);
    (await snapshot(other)).forEach((w, i) => expect(bitDiffs(w, otherBefore[i]!)).toBe(0));
    tf.dispose([x, y]);
  });

  it('sparseSoftmaxCrossEntropy equals -log softmax at the label; evaluate checks its inputs', async () => {
    const logits = tf.tensor2d([
      [1, 2, 3],
      [0, 0, 0],
    ]);
    const labels = tf.tensor1d([2, 0], 'int32');
    const mean = sparseSoftmaxCrossEntropy(labels, logits);
    const sum = sparseSoftmaxCrossEntropy(labels, logits, 'sum');
    const l0 = -Math.log(Math.exp(3) / (Math.exp(1) + Math.exp(2) + Math.exp(3)));
    const l1 = Math.log(3);
    expect(await scalar(mean)).toBeCloseTo((l0 + l1) / 2, 5);
    expect(await scalar(sum)).toBeCloseTo(l0 + l1, 5);
    const acc = batchAccuracy(labels, logits); // argmax of a tie is the first index
    expect(await scalar(acc)).toBe(1);
    const model = track(studentOf());
    const { x, y } = data(4, 20);
    await expect(benchEvaluate(model, x, y, 0)).rejects.toThrow(RangeError);
    await expect(benchEvaluate(model, x, labels)).rejects.toThrow(/examples/);
    tf.dispose([logits, labels, mean, sum, acc, x, y]);
  });
});
