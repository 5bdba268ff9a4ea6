// The Distiller's fused head (`fusedHead`) on the WebGPU backend: a student ending in a linear
// Dense runs up to its head (a body model sharing its weights) and the loss is
// fusedLinearDistillationLoss on the head's own kernel and bias; a teacher ending in one passes
// its head too. Against a Distiller on the models' logits from identical weights, step by step:
// the losses and every student weight; with a per-step teacher head and with a top-K cache;
// 'auto'; a sequence model, with padded positions (ignoreIndex) against a manual step on the
// kept positions only; the named construction errors; no tensor leaks. Tiny models (lavapipe
// is slow).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { afterEach, describe, expect, it } from 'vitest';
import { splitDenseHead } from '../src/distiller-head.js';
import { Distiller, distillationLoss, type DistillerOptions } from '../src/index.js';
import { useCheckedWebGPU } from './helpers/backend.js';

const FEATURES = 12;
const CLASSES = 50;
const BATCH = 6;

/** Dense layers with seeded glorotUniform kernels and small nonzero biases: identical rebuilds. */
function mlp(
  units: readonly number[],
  seed: number,
  opts: { activation?: string; useBias?: boolean } = {},
): tfl.Sequential {
  return tfl.sequential({
    layers: units.map((u, i) =>
      tfl.layers.dense({
        ...(i === 0 ? { inputShape: [FEATURES] } : {}),
        units: u,
        activation: (i < units.length - 1 ? 'relu' : (opts.activation ?? 'linear')) as
          'relu' | 'linear',
        useBias: i < units.length - 1 || opts.useBias !== false,
        kernelInitializer: tfl.initializers.glorotUniform({ seed: seed + i }),
        // Nonzero biases, so a bias the fused path dropped would show in the loss.
        biasInitializer: tfl.initializers.randomUniform({
          minval: -0.5,
          maxval: 0.5,
          seed: seed + 50 + i,
        }),
      }),
    ),
  });
}

const owned: { dispose(): void }[] = [];
function track<T extends { dispose(): void }>(value: T): T {
  owned.push(value);
  return value;
}

const teacherOf = (seed = 1) => track(mlp([24, CLASSES], seed));
const studentOf = (seed = 100, opts: { useBias?: boolean } = {}) =>
  track(mlp([32, CLASSES], seed, opts));

/** Reproducible features `[n, FEATURES]`, int32 labels `[n]` and their one-hot `[n, C]`. */
function data(n: number, seed: number) {
  const x = tf.randomNormal([n, FEATURES], 0, 2, 'float32', seed) as tf.Tensor2D;
  const labels = Array.from({ length: n }, (_, i) => (i * 7 + seed) % CLASSES);
  const y = tf.tensor1d(labels, 'int32');
  const oneHot = tf.tidy(() => tf.cast(tf.oneHot(y, CLASSES), 'float32'));
  return { x, y, oneHot };
}

/**
 * The largest difference between two models' weights (in getWeights() order), relative to the
 * largest element of each weight, and that both moved alike.
 */
async function weightGap(a: tfl.LayersModel, b: tfl.LayersModel): Promise<number> {
  const [wa, wb] = [a.getWeights(), b.getWeights()];
  expect(wa.length).toBe(wb.length);
  let worst = 0;
  for (let i = 0; i < wa.length; i++) {
    expect(wa[i]!.shape).toEqual(wb[i]!.shape);
    const [da, db] = [await wa[i]!.data(), await wb[i]!.data()];
    let scale = 0;
    let gap = 0;
    for (let j = 0; j < da.length; j++) {
      scale = Math.max(scale, Math.abs(db[j]!));
      gap = Math.max(gap, Math.abs(da[j]! - db[j]!));
    }
    expect(Number.isFinite(gap)).toBe(true);
    worst = Math.max(worst, gap / Math.max(scale, 1e-30));
  }
  return worst;
}

async function scalar(t: tf.Tensor): Promise<number> {
  return (await t.data())[0]!;
}

/**
 * Tolerance 1e-5 relative (to |loss|, and per weight to its largest element). Both paths
 * compute the same float32 function: the fused op recomputes each chunk's logits with a matMul
 * whose accumulation order may differ from the Dense layer's (H = 32 terms: a few u ≈ 1e-7
 * relative per logit), and its gradients likewise. Through the softmax and an SGD step those
 * differences stay O(1e-7)–O(1e-6) relative after 3 steps; plain SGD (not Adam, which
 * normalises each gradient element so that a sign flip of a near-zero element moves its weight
 * by ±lr) keeps the weights' gap proportional to the gradients'. A real defect — a dropped bias
 * or its gradient, a head gradient not reaching the kernel, a body gradient lost, the wrong
 * temperature scaling — moves the loss or some weight by 1e-2 or more.
 */
const RTOL = 1e-5;

useCheckedWebGPU();

afterEach(() => {
  for (const o of owned.splice(0).reverse()) o.dispose();
});

/** Two Distillers on identical students (same seeds), fusedHead on and off, SGD each. */
function pair(options: Partial<DistillerOptions> = {}, studentOpts: { useBias?: boolean } = {}) {
  const teacher = teacherOf();
  const fusedStudent = studentOf(100, studentOpts);
  const plainStudent = studentOf(100, studentOpts);
  const fusedOpt = track(tf.train.sgd(0.1));
  const plainOpt = track(tf.train.sgd(0.1));
  const fused = track(
    new Distiller({
      ...options,
      student: fusedStudent,
      teacher,
      optimizer: fusedOpt,
      fusedHead: true,
    } as DistillerOptions),
  );
  const plain = track(
    new Distiller({
      ...options,
      student: plainStudent,
      teacher,
      optimizer: plainOpt,
      fusedHead: false,
    } as DistillerOptions),
  );
  return { teacher, fused, plain, fusedStudent, plainStudent };
}

describe('Distiller fusedHead: the split', () => {
  it("the body shares the student's layers and variables, never copies", () => {
    const student = studentOf();
    const split = splitDenseHead(student);
    if (typeof split === 'string') throw new Error(split);
    expect(split.layer).toBe(student.layers.at(-1));
    expect(split.kernel.read()).toBe(student.layers.at(-1)!.weights[0]!.read());
    expect(split.kernel.shape).toEqual([32, CLASSES]);
    expect(split.bias!.shape).toEqual([CLASSES]);
    const bodyVars = split.body.weights.map((w) => w.read());
    expect(bodyVars).toEqual(student.layers[0]!.weights.map((w) => w.read()));
    bodyVars.forEach((v, i) => expect(v).toBe(student.weights[i]!.read()));
    // A tensor count check: building the body made no tensors (weights are not copied).
    const n = tf.memory().numTensors;
    const again = splitDenseHead(student);
    expect(typeof again).not.toBe('string');
    expect(tf.memory().numTensors).toBe(n);
  });
});

describe('Distiller fusedHead: step by step against the unfused Distiller', () => {
  it('per-step teacher head: the same losses, accuracies and student weights for 3 steps', async () => {
    const { fused, plain, fusedStudent, plainStudent } = pair();
    expect(fused.fusedHead).toBe(true);
    expect(fused.fusedTeacherHead).toBe(true);
    expect(plain.fusedHead).toBe(false);
    expect(plain.fusedTeacherHead).toBe(false);
    const { x, y, oneHot } = data(BATCH, 3);
    let worstLoss = 0;
    let worstWeight = 0;
    for (let step = 0; step < 3; step++) {
      const labels = step === 1 ? oneHot : y; // both label kinds
      const a = fused.trainStep(x, labels, { accuracy: true });
      const b = plain.trainStep(x, labels, { accuracy: true });
      const [la, lb] = [await scalar(a.loss), await scalar(b.loss)];
      expect(await scalar(a.accuracy!)).toBe(await scalar(b.accuracy!));
      tf.dispose([a.loss, b.loss, a.accuracy!, b.accuracy!]);
      expect(Number.isFinite(la)).toBe(true);
      const lossGap = Math.abs(la - lb) / Math.abs(lb);
      expect(lossGap, `loss, step ${step}`).toBeLessThanOrEqual(RTOL);
      const gap = await weightGap(fusedStudent, plainStudent);
      expect(gap, `weights after step ${step}`).toBeLessThanOrEqual(RTOL);
      worstLoss = Math.max(worstLoss, lossGap);
      worstWeight = Math.max(worstWeight, gap);
    }
    console.log(
      `[distiller-linear] per-step teacher head, 3 steps: loss ${worstLoss.toExponential(2)}, ` +
        `weights ${worstWeight.toExponential(2)} (relative)`,
    );
    tf.dispose([x, y, oneHot]);
  });

  it('the split phases (teacherHeadForward → computeGradients) give the unfused gradients', async () => {
    const { fused, plain, fusedStudent, plainStudent } = pair(
      { divergence: 'jsd', beta: 0.3 },
      { useBias: false },
    );
    const { x, y, oneHot } = data(BATCH, 5);
    const head = fused.teacherHeadForward(x);
    expect(head.hidden.shape).toEqual([BATCH, 24]);
    expect(head.weight.shape).toEqual([24, CLASSES]);
    expect(head.bias!.shape).toEqual([CLASSES]);
    expect(head.weight).not.toBeInstanceOf(tf.Variable); // a constant for the loss
    const logits = plain.teacherForward(x);
    const a = fused.computeGradients(x, y, head);
    const b = plain.computeGradients(x, y, logits);
    // The body's kernel and bias and the bias-free head's kernel: every trainable variable,
    // keyed by its name, of either student (the twins' layers have different names).
    const namesOf = (m: tfl.LayersModel) =>
      m.trainableWeights.map((w) => (w.read() as tf.Variable).name);
    expect(Object.keys(a.grads).sort()).toEqual(namesOf(fusedStudent).sort());
    expect(Object.keys(b.grads).sort()).toEqual(namesOf(plainStudent).sort());
    expect(Object.keys(a.grads)).toHaveLength(3);
    expect(Math.abs((await scalar(a.loss)) - (await scalar(b.loss)))).toBeLessThanOrEqual(
      RTOL * Math.abs(await scalar(b.loss)),
    );
    for (const [i, name] of namesOf(plainStudent).entries()) {
      const ga = (await a.grads[namesOf(fusedStudent)[i]!]!.data()) as Float32Array;
      const gb = (await b.grads[name]!.data()) as Float32Array;
      const scale = gb.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expect(scale, name).toBeGreaterThan(0);
      const gap = ga.reduce((m, v, j) => Math.max(m, Math.abs(v - gb[j]!)), 0);
      expect(gap / scale, name).toBeLessThanOrEqual(RTOL);
    }
    // The fused student also takes dense teacher logits; the plain one no teacher head.
    const c = fused.computeGradients(x, oneHot, logits);
    expect(() => plain.computeGradients(x, y, head)).toThrow(
      /Distiller.computeGradients: a teacher head \{ hidden, weight, bias \} needs fusedHead/,
    );
    expect(() => fused.computeGradients(x, y, { ...head, weight: logits })).toThrow(
      /Distiller.computeGradients: a teacher head must be float32 hidden \[6, H\], weight \[H, 50\]/,
    );
    expect(() => plain.teacherHeadForward(x)).toThrow(
      /Distiller.teacherHeadForward: this Distiller passes no teacher head/,
    );
    tf.dispose([head.hidden, head.weight, head.bias!, logits, a.loss, b.loss, c.loss]);
    tf.dispose([a.grads, b.grads, c.grads].flatMap((g) => Object.values(g)));
    tf.dispose([x, y, oneHot]);
  });

  it('top-K teacher cache: the fused student head against the unfused, 3 steps', async () => {
    const { fused, plain, fusedStudent, plainStudent } = pair({
      teacherLogits: 'cached',
      teacherTopK: 5,
    });
    expect(fused.fusedHead).toBe(true);
    expect(fused.fusedTeacherHead).toBe(false); // the cache holds the top-K
    const { x, y } = data(BATCH, 7);
    fused.teacherCache.fill(x);
    plain.teacherCache.fill(x);
    const indices = Array.from({ length: BATCH }, (_, i) => i);
    for (let step = 0; step < 3; step++) {
      const a = fused.trainStep(x, y, { batchIndices: indices }).loss;
      const b = plain.trainStep(x, y, { batchIndices: indices }).loss;
      const [la, lb] = [await scalar(a), await scalar(b)];
      tf.dispose([a, b]);
      expect(Math.abs(la - lb) / Math.abs(lb), `loss, step ${step}`).toBeLessThanOrEqual(RTOL);
      expect(await weightGap(fusedStudent, plainStudent), `step ${step}`).toBeLessThanOrEqual(RTOL);
    }
    tf.dispose([x, y]);
  });
});

/** Embedding → Dense(relu) → Dense(C): `[B, S]` token ids to `[B, S, C]` logits. */
function sequenceModel(seed: number, hidden: number): tfl.LayersModel {
  const tokens = tfl.input({ shape: [SEQ], dtype: 'int32' });
  const embedded = tfl.layers
    .embedding({
      inputDim: VOCAB_IN,
      outputDim: 8,
      embeddingsInitializer: tfl.initializers.randomUniform({ minval: -1, maxval: 1, seed }),
    })
    .apply(tokens) as tfl.SymbolicTensor;
  const features = tfl.layers
    .dense({
      units: hidden,
      activation: 'relu',
      kernelInitializer: tfl.initializers.glorotUniform({ seed: seed + 1 }),
    })
    .apply(embedded) as tfl.SymbolicTensor;
  const logits = tfl.layers
    .dense({
      units: CLASSES,
      kernelInitializer: tfl.initializers.glorotUniform({ seed: seed + 2 }),
      biasInitializer: tfl.initializers.randomUniform({ minval: -0.5, maxval: 0.5, seed }),
    })
    .apply(features) as tfl.SymbolicTensor;
  return track(tfl.model({ inputs: tokens, outputs: logits }));
}

const SEQ = 4;
const VOCAB_IN = 20;

describe('Distiller fusedHead: a sequence model [B, S] → [B, S, C]', () => {
  it('the same losses, accuracies and weights as unfused for 3 steps, and evaluate per token', async () => {
    const teacher = sequenceModel(1, 24);
    const [fusedStudent, plainStudent] = [sequenceModel(100, 16), sequenceModel(100, 16)];
    const fused = track(
      new Distiller({
        student: fusedStudent,
        teacher,
        fusedHead: true,
        optimizer: track(tf.train.sgd(0.1)),
      }),
    );
    const plain = track(
      new Distiller({ student: plainStudent, teacher, optimizer: track(tf.train.sgd(0.1)) }),
    );
    expect([fused.fusedHead, fused.fusedTeacherHead]).toEqual([true, true]);
    const x = tf.tensor2d([3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8], [3, SEQ], 'int32');
    const y = tf.tensor2d([1, 7, 2, 49, 8, 2, 8, 1, 8, 2, 8, 4], [3, SEQ], 'int32');
    for (let step = 0; step < 3; step++) {
      const a = fused.trainStep(x, y, { accuracy: true });
      const b = plain.trainStep(x, y, { accuracy: true });
      const [la, lb] = [await scalar(a.loss), await scalar(b.loss)];
      expect(await scalar(a.accuracy!)).toBe(await scalar(b.accuracy!));
      tf.dispose([a.loss, b.loss, a.accuracy!, b.accuracy!]);
      expect(Math.abs(la - lb) / Math.abs(lb), `loss, step ${step}`).toBeLessThanOrEqual(RTOL);
      expect(await weightGap(fusedStudent, plainStudent), `step ${step}`).toBeLessThanOrEqual(RTOL);
    }
    // evaluate: the mean over the 12 tokens of −log softmax at the label.
    const logits = plainStudent.predict(x) as tf.Tensor3D;
    const ce = tf.tidy(() =>
      tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(y, CLASSES), tf.logSoftmax(logits)), -1))),
    );
    const ev = await plain.evaluate(x, y, { batchSize: 2 });
    expect(Math.abs(ev.loss - (await scalar(ce)))).toBeLessThanOrEqual(1e-5 * ev.loss);
    tf.dispose([logits, ce]);
    // Labels of the wrong shape are named against the logits' [B, S, C].
    const flat = tf.zeros([3], 'int32');
    expect(() => fused.trainStep(x, flat)).toThrow(
      /Distiller.trainStep: y must be int32 \[3, 4\] class indices or float32 \[3, 4, 50\]/,
    );
    tf.dispose([x, y, flat]);
  });
});

describe('Distiller ignoreIndex: padded positions of a sequence model', () => {
  const PAD = -100;
  // [3, SEQ] labels, padded at the end of rows 0 and 2 and in the middle of row 1.
  const LABELS = [1, 7, PAD, PAD, 8, PAD, 8, 1, 49, 2, 8, PAD];
  const TOKENS = [3, 1, 4, 0, 5, 9, 2, 6, 5, 3, 5, 0];
  const kept = LABELS.flatMap((label, i) => (label === PAD ? [] : [i]));

  /** The student's (or teacher's) logits at the kept positions, `[K, C]`. */
  const keptRows = (logits: tf.Tensor) =>
    tf.gather(tf.reshape(logits, [-1, CLASSES]), tf.tensor1d(kept, 'int32'));

  it('fusedHead true and false: the same losses, accuracies and weights for 3 steps, and a manual step on the kept positions', async () => {
    const teacher = sequenceModel(1, 24);
    const students = [sequenceModel(100, 16), sequenceModel(100, 16), sequenceModel(100, 16)];
    const [fusedStudent, plainStudent, manualStudent] = students as [
      tfl.LayersModel,
      tfl.LayersModel,
      tfl.LayersModel,
    ];
    const make = (student: tfl.LayersModel, fusedHead: boolean) =>
      track(
        new Distiller({
          student,
          teacher,
          fusedHead,
          ignoreIndex: PAD,
          optimizer: track(tf.train.sgd(0.1)),
        }),
      );
    const fused = make(fusedStudent, true);
    const plain = make(plainStudent, false);
    expect([fused.fusedHead, fused.fusedTeacherHead, plain.fusedHead]).toEqual([true, true, false]);
    expect(fused.lossConfig.ignoreIndex).toBe(PAD);
    const x = tf.tensor2d(TOKENS, [3, SEQ], 'int32');
    // Every other kept label is the untrained students' prediction, so that the accuracy is not
    // 0 and counting the padded positions would show (4 of 8 right, not 4 of 12).
    const predicted = tf.tidy(() => tf.argMax(manualStudent.predict(x) as tf.Tensor, -1));
    const guess = await predicted.data();
    predicted.dispose();
    const labels = LABELS.map((label, i) =>
      label !== PAD && kept.indexOf(i) % 2 === 0 ? guess[i]! : label,
    );
    const y = tf.tensor2d(labels, [3, SEQ], 'int32');

    // The manual step: the loss over the kept positions only, no ignoreIndex, SGD 0.1.
    const { ignoreIndex, ...config } = fused.lossConfig;
    expect(ignoreIndex).toBe(PAD);
    const manualOpt = track(tf.train.sgd(0.1));
    const yKept = tf.tensor1d(
      kept.map((i) => labels[i]!),
      'int32',
    );
    const tKept = tf.tidy(() => keptRows(teacher.predict(x) as tf.Tensor));
    const sBefore = tf.tidy(() => keptRows(manualStudent.predict(x) as tf.Tensor));
    const manualAccuracy = tf.tidy(() =>
      tf.mean(tf.cast(tf.equal(tf.argMax(sBefore, -1), yKept), 'float32')),
    );
    expect(await scalar(manualAccuracy)).toBeGreaterThanOrEqual(0.5);
    const vars = manualStudent.trainableWeights.map((w) => w.read() as tf.Variable);
    const manual = tf.variableGrads(
      () =>
        distillationLoss(
          yKept,
          keptRows(manualStudent.apply(x, { training: true }) as tf.Tensor),
          tKept,
          config,
        ) as tf.Scalar,
      vars,
    );
    manualOpt.applyGradients(manual.grads);
    const manualLoss = await scalar(manual.value);
    expect(Number.isFinite(manualLoss)).toBe(true);
    tf.dispose([manual.value, ...Object.values(manual.grads), sBefore]);

    for (let step = 0; step < 3; step++) {
      const a = fused.trainStep(x, y, { accuracy: true });
      const b = plain.trainStep(x, y, { accuracy: true });
      const [la, lb] = [await scalar(a.loss), await scalar(b.loss)];
      const [accA, accB] = [await scalar(a.accuracy!), await scalar(b.accuracy!)];
      tf.dispose([a.loss, b.loss, a.accuracy!, b.accuracy!]);
      expect(Number.isFinite(la), `loss, step ${step}`).toBe(true);
      expect(accA).toBe(accB);
      expect(Math.abs(la - lb) / Math.abs(lb), `loss, step ${step}`).toBeLessThanOrEqual(RTOL);
      expect(await weightGap(fusedStudent, plainStudent), `step ${step}`).toBeLessThanOrEqual(RTOL);
      if (step === 0) {
        // The padded positions count for nothing: the loss, accuracy (8 positions, not 12) and
        // update of a step on the kept positions alone.
        expect(accA).toBeCloseTo(await scalar(manualAccuracy), 6);
        expect(Math.abs(la - manualLoss) / Math.abs(manualLoss), 'manual loss').toBeLessThanOrEqual(
          RTOL,
        );
        expect(await weightGap(fusedStudent, manualStudent), 'manual step').toBeLessThanOrEqual(
          RTOL,
        );
      }
    }

    // evaluate: the cross-entropy and accuracy over the 8 kept positions.
    const logits = tf.tidy(() => keptRows(plainStudent.predict(x) as tf.Tensor));
    const ce = tf.tidy(() =>
      tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(yKept, CLASSES), tf.logSoftmax(logits)), -1))),
    );
    const acc = tf.tidy(() => tf.mean(tf.cast(tf.equal(tf.argMax(logits, -1), yKept), 'float32')));
    const ev = await plain.evaluate(x, y, { batchSize: 2 });
    expect(Math.abs(ev.loss - (await scalar(ce)))).toBeLessThanOrEqual(1e-5 * ev.loss);
    expect(ev.accuracy).toBeCloseTo(await scalar(acc), 6);
    // Every position padded: nothing counted, 0 (as the loss's mean).
    const allPadded = tf.fill([1, SEQ], PAD, 'int32');
    const x1 = tf.slice(x, [0], [1]);
    expect(await plain.evaluate(x1, allPadded)).toEqual({ loss: 0, accuracy: 0 });
    tf.dispose([logits, ce, acc, allPadded, x1, x, y, yKept, tKept, manualAccuracy]);
  });

  it('float32 labels are refused before anything runs; fit and evaluate leak nothing', async () => {
    const teacher = sequenceModel(1, 24);
    const student = sequenceModel(100, 16);
    const distiller = track(new Distiller({ student, teacher, fusedHead: true, ignoreIndex: PAD }));
    const x = tf.tensor2d(TOKENS, [3, SEQ], 'int32');
    const y = tf.tensor2d(LABELS, [3, SEQ], 'int32');
    const dense = tf.zeros([3, SEQ, CLASSES]);
    const teacherLogits = tf.zeros([3, SEQ, CLASSES]);
    const weights = await Promise.all(student.getWeights().map((w) => w.data()));
    const n = tf.memory().numTensors;
    const refused = /ignoreIndex \(-100\) applies to int32 class-index labels only/;
    expect(() => distiller.trainStep(x, dense)).toThrow(
      new RegExp(`Distiller.trainStep: ${refused.source}, but y holds float32`),
    );
    expect(() => distiller.computeGradients(x, dense, teacherLogits)).toThrow(
      /Distiller.computeGradients: ignoreIndex/,
    );
    await expect(distiller.fit(x, dense)).rejects.toThrow(/Distiller.fit: ignoreIndex/);
    await expect(distiller.fit(x, y, { validationData: [x, dense] })).rejects.toThrow(
      /Distiller.fit: ignoreIndex .* but validationData\[1\] holds float32/,
    );
    await expect(distiller.evaluate(x, dense)).rejects.toThrow(/Distiller.evaluate: ignoreIndex/);
    expect(tf.memory().numTensors).toBe(n);
    const after = await Promise.all(student.getWeights().map((w) => w.data()));
    expect(after).toEqual(weights);
    // fit with validation on padded labels: finite, and no tensor left behind.
    const run = () => distiller.fit(x, y, { epochs: 1, batchSize: 2, validationData: [x, y] });
    await run();
    const count = tf.memory().numTensors;
    const history = await run();
    expect(tf.memory().numTensors).toBe(count);
    expect(Number.isFinite(history.history.loss[0])).toBe(true);
    expect(history.history.val_acc![0]).toBeGreaterThanOrEqual(0);
    tf.dispose([x, y, dense, teacherLogits]);
  });

  it("loss 'stock' refuses ignoreIndex, at compile time and at run time", () => {
    const teacher = sequenceModel(1, 24);
    const student = sequenceModel(100, 16);
    const n = tf.memory().numTensors;
    expect(
      () =>
        // @ts-expect-error the stock loss is the Keras formula: every position counted
        new Distiller({ student, teacher, loss: 'stock', ignoreIndex: PAD }),
    ).toThrow(
      /Distiller: loss 'stock' is the Keras formula \(every position counted\); ignoreIndex \(-100\) needs loss 'fused'/,
    );
    expect(() => new Distiller({ student, teacher, ignoreIndex: 0.5 })).toThrow(
      /Distiller: config.ignoreIndex must be an integer in the int32 range/,
    );
    expect(tf.memory().numTensors).toBe(n);
  });
});

describe('Distiller fusedHead: options', () => {
  it("'auto' fuses a qualifying student only; the default is off", () => {
    const teacher = teacherOf();
    const student = studentOf();
    const tanh = track(mlp([8, CLASSES], 3, { activation: 'tanh' }));
    expect(track(new Distiller({ student, teacher })).fusedHead).toBe(false);
    expect(track(new Distiller({ student, teacher, fusedHead: 'auto' })).fusedHead).toBe(true);
    const off = track(new Distiller({ student: tanh, teacher, fusedHead: 'auto' }));
    expect(off.fusedHead).toBe(false);
    expect(off.fusedTeacherHead).toBe(false);
    const stock = track(new Distiller({ student, teacher, loss: 'stock', fusedHead: 'auto' }));
    expect(stock.fusedHead).toBe(false);
    // A teacher without such a head: its logits, with the student's head fused.
    const mixed = track(new Distiller({ student, teacher: tanh, fusedHead: true }));
    expect([mixed.fusedHead, mixed.fusedTeacherHead]).toEqual([true, false]);
  });

  it('refuses fusedHead: true without a linear Dense head, with named errors, making no tensors', () => {
    const teacher = teacherOf();
    const student = studentOf();
    const softmax = track(mlp([8, CLASSES], 3, { activation: 'softmax' }));
    const tanh = track(mlp([8, CLASSES], 3, { activation: 'tanh' }));
    // A softmax head is refused whatever fusedHead says: the loss takes logits.
    expect(() => new Distiller({ student: softmax, teacher, fusedHead: true })).toThrow(
      /Distiller: the student .* ends in a softmax/,
    );
    expect(() => new Distiller({ student: tanh, teacher, fusedHead: true })).toThrow(
      /Distiller: fusedHead: true needs a student whose last layer is a Dense with linear activation, but the student '.*' does not qualify: its last layer '.*' has activation 'tanh', not 'linear'/,
    );
    const input = tfl.input({ shape: [FEATURES] });
    const hidden = tfl.layers.dense({ units: CLASSES }).apply(input) as tfl.SymbolicTensor;
    const normed = tfl.layers.layerNormalization().apply(hidden) as tfl.SymbolicTensor;
    const notDense = track(tfl.model({ inputs: input, outputs: normed }));
    const n = tf.memory().numTensors;
    expect(() => new Distiller({ student: notDense, teacher, fusedHead: true })).toThrow(
      /does not qualify: its last layer '.*' is a LayerNormalization, not a Dense/,
    );
    expect(
      () =>
        // @ts-expect-error the stock loss takes logits
        new Distiller({ student, teacher, loss: 'stock', fusedHead: true }),
    ).toThrow(/Distiller: fusedHead: true needs loss 'fused'/);
    expect(() => new Distiller({ student, teacher, fusedHead: 'yes' as 'auto' })).toThrow(
      /Distiller: fusedHead must be true, false or 'auto', got yes/,
    );
    expect(tf.memory().numTensors).toBe(n);
  });
});

describe('Distiller fusedHead: no tensor leaks', () => {
  it('over steps with accuracy, the split phases and fit', async () => {
    const { fused } = pair();
    const { x, y, oneHot } = data(BATCH, 11);
    const run = async () => {
      const r = fused.trainStep(x, y, { accuracy: true });
      tf.dispose([r.loss, r.accuracy!]);
      const head = fused.teacherHeadForward(x);
      const g = fused.computeGradients(x, oneHot, head);
      fused.applyGradients(g.grads);
      tf.dispose([g.loss, head.hidden, head.weight, head.bias!]);
      await fused.fit(x, y, { epochs: 1, batchSize: 4 });
    };
    await run(); // the first step makes the optimizer's state, if any
    const before = tf.memory().numTensors;
    await run();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, y, oneHot]);
  });
});
