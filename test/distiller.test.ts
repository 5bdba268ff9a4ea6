// The library's Distiller (src/distiller.ts) on the WebGPU backend, with small dense models
// (nothing here is MNIST-specific): trainStep with index and one-hot labels, fused vs stock
// step by step, fit's callbacks and History, evaluate, cached vs per-step teacher logits, only
// the student learns, no tensor leaks, and named errors before any dispatch. Also the
// benchmark's glue (bench/core/distiller.ts): the from-scratch baseline and its evaluation.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  batchAccuracy,
  evaluate as benchEvaluate,
  inferLogits,
  sparseSoftmaxCrossEntropy,
  trainStudentFromScratch,
} from '../bench/core/distiller.js';
import { countDispatches } from '../bench/core/lib/dispatch-counter.js';
import {
  DEFAULT_CONFIG,
  Distiller,
  distillationLoss,
  type DistillerOptions,
} from '../src/index.js';
import { useWebGPU } from './helpers/backend.js';

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

/** A Distiller with its models, all disposed after the test. */
function setup(
  overrides: Partial<DistillerOptions> = {},
  seeds: { teacher?: number; student?: number } = {},
) {
  const teacher = track(teacherOf(seeds.teacher));
  const student = track(studentOf(seeds.student));
  const distiller = track(new Distiller({ student, teacher, ...overrides }));
  return { teacher, student, distiller };
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

beforeAll(async () => {
  await useWebGPU();
});

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
    expect(distiller.lossConfig).toEqual({ ...DEFAULT_CONFIG, reduction: 'mean' });
    expect(distiller.optimizer.getClassName()).toBe('Adam');
    const custom = track(
      new Distiller({ student, teacher, alpha: 0.3, temperature: 4, temperatureSquared: false }),
    );
    expect(custom.lossConfig).toEqual({
      ...DEFAULT_CONFIG,
      alpha: 0.3,
      temperature: 4,
      temperatureSquared: false,
      reduction: 'mean',
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
    expect(make({ loss: 'other' as 'stock' })).toThrow(/loss must be 'fused' or 'stock'/);
    expect(make({ teacherLogits: 'sometimes' as 'cached' })).toThrow(/teacherLogits must be/);
    expect(make({ optimizer: {} as tf.Optimizer })).toThrow(/tf.Optimizer/);
    expect(make({ reduction: 'sum' } as Partial<DistillerOptions>)).toThrow(
      /unknown option 'reduction'/,
    );
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
  it('with int32 labels: returns the loss at the pre-step weights and updates the student', async () => {
    const { teacher, student, distiller } = setup();
    const { x, y } = data(BATCH, 2);
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
    const acc = await scalar(accuracy!);
    expect(acc * BATCH).toBeCloseTo(Math.round(acc * BATCH), 5);
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

  it('throws named errors for bad inputs before anything is dispatched', () => {
    const { distiller } = setup();
    const { x, y } = data(BATCH, 8);
    tf.dispose(distiller.trainStep(x, y).loss); // Adam's state exists from here on
    const short = tf.tensor1d([1, 2, 3], 'int32');
    const floatIdx = tf.cast(y, 'float32');
    const wideLabels = tf.zeros([BATCH, CLASSES + 1]);
    const wrongX = tf.zeros([BATCH, FEATURES + 1]);
    const x3 = tf.zeros([BATCH, FEATURES, 1]);
    const badTeacher = tf.zeros([BATCH, CLASSES - 1]);
    const tensors = tf.memory().numTensors;
    const cases: [() => unknown, RegExp][] = [
      [() => distiller.trainStep(x, short), /x has 8 examples .* but y has 3/],
      [() => distiller.trainStep(x, floatIdx), /cast class indices to int32/],
      [() => distiller.trainStep(x, wideLabels), /y must be int32 \[8\] .* float32 \[8, 10\]/],
      [() => distiller.trainStep(wrongX, y), /x must have the models' input shape \[null, 12\]/],
      [() => distiller.trainStep(x3, y), /input shape/],
      [
        () => distiller.trainStep(x, y, { teacherLogits: badTeacher }),
        /teacherLogits must be float32 \[8, 10\], got float32 \[8, 9\]/,
      ],
      [() => distiller.trainStep(x, 'y' as unknown as tf.Tensor), /y must be a tf.Tensor/],
      [() => distiller.computeGradients(x, short, badTeacher), /examples/],
      [() => distiller.evaluate(x, short), /examples/],
      [() => distiller.fit(x, short), /examples/],
      [() => distiller.fit(x, y, { epochs: 0 }), /epochs must be a positive integer/],
      [() => distiller.fit(x, y, { batchSize: 1.5 }), /batchSize must be a positive integer/],
      [() => distiller.fit(x, y, { validationData: [x, short] }), /validationData\[1\]/],
      [
        () => distiller.fit(x, y, { callbacks: tfl.callbacks.earlyStopping() as never }),
        /Callback objects/,
      ],
    ];
    for (const [run, message] of cases) {
      let thrown: unknown;
      const dispatches = countDispatches(() => {
        try {
          const result = run();
          // fit and evaluate are async: their checks run before the first await.
          if (result instanceof Promise) result.catch(() => undefined);
          thrown = result instanceof Promise ? 'async' : undefined;
        } catch (err) {
          thrown = err;
        }
      });
      expect(dispatches, String(message)).toBe(0);
      expect(tf.memory().numTensors, String(message)).toBe(tensors);
      if (thrown === 'async') continue;
      expect(thrown, String(message)).toBeInstanceOf(Error);
      expect((thrown as Error).message).toMatch(message);
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
    const { x, y } = data(10, 15);
    const [loss, acc] = tf.tidy(() => {
      const logits = inferLogits(student, x);
      return [sparseSoftmaxCrossEntropy(y, logits), batchAccuracy(y, logits)];
    });
    const expectedLoss = await scalar(loss);
    const expectedAcc = await scalar(acc);
    tf.dispose([loss, acc]);
    const oneHot = tf.cast(tf.oneHot(y, CLASSES), 'float32');
    const before = tf.memory().numTensors;
    const whole = await distiller.evaluate(x, y, { batchSize: 10 });
    const uneven = await distiller.evaluate(x, y, { batchSize: 3 });
    const dense = await distiller.evaluate(x, oneHot);
    expect(tf.memory().numTensors).toBe(before);
    for (const r of [whole, uneven, dense]) {
      relClose(r.loss, expectedLoss, 1e-5);
      expect(r.accuracy).toBeCloseTo(expectedAcc, 6);
    }
    expect(whole.accuracy * 10).toBeCloseTo(Math.round(whole.accuracy * 10), 6);
    // The benchmark's evaluation of any model agrees with the Distiller's for its student.
    const bench = await benchEvaluate(student, x, y, 3);
    relClose(bench.loss, uneven.loss, 1e-5);
    expect(bench.accuracy).toBe(uneven.accuracy);
    tf.dispose([x, y, oneHot]);
  });
});

describe("'cached' teacher logits", () => {
  it("fit gives the same losses and weights as 'per-step', and frees its cache", async () => {
    const perStep = setup({}, { student: 20 });
    const cached = setup({ teacherLogits: 'cached' }, { student: 20 });
    const { x, y } = data(14, 16);
    const args = { epochs: 2, batchSize: 4, shuffle: false };
    const t0 = tf.memory().numTensors;
    const hp = await perStep.distiller.fit(x, y, args);
    const t1 = tf.memory().numTensors;
    const hc = await cached.distiller.fit(x, y, args);
    const t2 = tf.memory().numTensors;
    // The teacher's rows do not depend on the rows beside them: the logits are the same
    // whether computed per batch or once (same batches here), up to rounding.
    hp.history.loss.forEach((l, e) => relClose(hc.history.loss[e]!, l, 1e-5));
    const wp = await snapshot(perStep.student);
    const wc = await snapshot(cached.student);
    wp.forEach((w, i) => {
      for (let j = 0; j < w.length; j++) expect(Math.abs(wc[i]![j]! - w[j]!)).toBeLessThan(1e-5);
    });
    expect(cached.distiller.cachedLogits).toBeNull();
    // Each fit leaves only its Adam state behind (the same for both): the cache is freed.
    expect(t1 - t0).toBeGreaterThan(0);
    expect(t2 - t1).toBe(t1 - t0);
    tf.dispose([x, y]);
  });

  it('trainStep with batchIndices into cacheTeacherLogits equals per-step', async () => {
    const perStep = setup({}, { student: 21 });
    const cached = setup({ teacherLogits: 'cached' }, { student: 21 });
    const { x: xAll, y: yAll } = data(10, 17);
    const cache = cached.distiller.cacheTeacherLogits(xAll, 3); // 3 + 3 + 3 + 1 rows
    expect(cache.shape).toEqual([10, CLASSES]);
    expect(cached.distiller.cachedLogits).toBe(cache);
    const indices = [7, 2, 5, 0];
    const idx = tf.tensor1d(indices, 'int32');
    const [x, y] = [tf.gather(xAll, idx), tf.gather(yAll, idx)];
    for (let step = 0; step < 2; step++) {
      const a = perStep.distiller.trainStep(x, y).loss;
      const b = cached.distiller.trainStep(x, y, {
        batchIndices: step === 0 ? indices : idx,
      }).loss;
      relClose(await scalar(b), await scalar(a), 1e-5);
      tf.dispose([a, b]);
    }
    expect(() => cached.distiller.trainStep(x, y)).toThrow(/batchIndices/);
    expect(() => cached.distiller.trainStep(x, y, { batchIndices: [0, 1] })).toThrow(
      /x has 4 examples but batchIndices has 2/,
    );
    expect(() => cached.distiller.trainStep(x, y, { batchIndices: [0, 1, 2, 10] })).toThrow(
      /batch index 10 is outside/,
    );
    // A second cache replaces (and frees) the first.
    cached.distiller.cacheTeacherLogits(xAll);
    expect(cache.isDisposed).toBe(true);
    cached.distiller.clearCache();
    expect(() => cached.distiller.trainStep(x, y, { batchIndices: indices })).toThrow(
      /cacheTeacherLogits/,
    );
    tf.dispose([xAll, yAll, idx, x, y]);
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
    distiller.cacheTeacherLogits(x);
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

describe('benchmark glue (bench/core/distiller.ts)', () => {
  it('trainStudentFromScratch lowers the cross-entropy of the given model only, without leaks', async () => {
    const model = track(studentOf(40));
    const other = track(studentOf(40));
    const optimizer = track(tf.train.adam());
    const { x, y } = data(BATCH, 19);
    const expected = tf.tidy(() => sparseSoftmaxCrossEntropy(y, inferLogits(model, x)));
    const otherBefore = await snapshot(other);
    const first = trainStudentFromScratch(model, optimizer, x, y, { accuracy: true });
    const firstLoss = await scalar(first.loss);
    relClose(firstLoss, await scalar(expected), 1e-6);
    tf.dispose([...Object.values(first), expected]);
    const before = tf.memory().numTensors;
    const losses: tf.Scalar[] = [];
    for (let i = 0; i < 19; i++) losses.push(trainStudentFromScratch(model, optimizer, x, y).loss);
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
