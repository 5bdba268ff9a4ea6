// The Keras example's teacher and student (bench/core/models.ts): exact parameter counts, the
// architecture, seeded initialisation and weight copying. CPU backend: nothing here needs a GPU.
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type * as tfl from '@tensorflow/tfjs-layers';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  STUDENT_PARAMS,
  TEACHER_PARAMS,
  buildConvNet,
  buildStudent,
  buildTeacher,
  cloneWeights,
  convNetParamCount,
  setWeightsFrom,
} from '../bench/core/models.js';

/** Copies of every weight array (the CPU backend's dataSync returns its live buffer). */
function snapshot(model: tfl.LayersModel): Float32Array[] {
  return model.getWeights().map((w) => (w.dataSync() as Float32Array).slice());
}

/** Number of elements whose bit patterns differ (so -0 ≠ +0 and NaN payloads count). */
function bitDiffs(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  let n = 0;
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) n++;
  return n;
}

function expectIdentical(a: Float32Array[], b: Float32Array[]): void {
  expect(a.length).toBe(b.length);
  a.forEach((w, i) => expect(bitDiffs(w, b[i]), `weight ${i}`).toBe(0));
}

const built: tfl.LayersModel[] = [];
function track<M extends tfl.LayersModel>(model: M): M {
  built.push(model);
  return model;
}

beforeAll(async () => {
  await tf.setBackend('cpu');
});

afterEach(() => {
  for (const m of built.splice(0)) m.dispose();
});

describe('parameter counts', () => {
  it('the full teacher has exactly 1,433,610 parameters', () => {
    // Built, never run: full width is slow on the CPU backend only when trained.
    const teacher = track(buildTeacher({ seed: 1 }));
    expect(teacher.countParams()).toBe(1_433_610);
    expect(TEACHER_PARAMS).toBe(1_433_610);
    expect(convNetParamCount([256, 512])).toBe(1_433_610);
  });

  it('the student has exactly 20,490 parameters (70× fewer than the teacher)', () => {
    // conv1 3·3·1·16+16 = 160, conv2 3·3·16·32+32 = 4,640, dense 7·7·32·10+10 = 15,690.
    const student = track(buildStudent({ seed: 1 }));
    expect(student.countParams()).toBe(20_490);
    expect(STUDENT_PARAMS).toBe(20_490);
    expect(convNetParamCount([16, 32])).toBe(20_490);
    expect(Math.round(TEACHER_PARAMS / STUDENT_PARAMS)).toBe(70);
  });

  it('width and explicit filters give narrower teachers whose count matches the formula', () => {
    const quarter = track(buildTeacher({ width: 0.25 }));
    const explicit = track(buildTeacher({ filters: [64, 128] }));
    const expected = convNetParamCount([64, 128]);
    expect(expected).toBe(3 * 3 * 64 + 64 + (3 * 3 * 64 * 128 + 128) + (7 * 7 * 128 * 10 + 10));
    expect(quarter.countParams()).toBe(expected);
    expect(explicit.countParams()).toBe(expected);
    expect(track(buildStudent({ width: 2 })).countParams()).toBe(convNetParamCount([32, 64]));
  });

  it('rejects bad widths and filter counts', () => {
    expect(() => buildTeacher({ width: 0 })).toThrow(RangeError);
    expect(() => buildTeacher({ width: Number.NaN })).toThrow(RangeError);
    expect(() => buildConvNet({ filters: [0, 8] })).toThrow(RangeError);
    expect(() => buildConvNet({ filters: [4, 2.5] })).toThrow(RangeError);
  });
});

describe('architecture', () => {
  it('follows the Keras example layer by layer', () => {
    const student = track(buildStudent({ seed: 3, name: 'my_student' }));
    expect(student.name).toBe('my_student');
    expect(student.layers.map((l) => l.getClassName())).toEqual([
      'Conv2D',
      'LeakyReLU',
      'MaxPooling2D',
      'Conv2D',
      'Flatten',
      'Dense',
    ]);
    const [conv1, relu, pool, conv2, , dense] = student.layers.map((l) => l.getConfig());
    expect(conv1).toMatchObject({
      filters: 16,
      kernelSize: [3, 3],
      strides: [2, 2],
      padding: 'same',
    });
    expect(relu).toMatchObject({ alpha: 0.2 });
    expect(pool).toMatchObject({ poolSize: [2, 2], strides: [1, 1], padding: 'same' });
    expect(conv2).toMatchObject({
      filters: 32,
      kernelSize: [3, 3],
      strides: [2, 2],
      padding: 'same',
    });
    // Logits: no softmax in the model (the losses take logits).
    expect(dense).toMatchObject({ units: 10, activation: 'linear' });
    expect(student.inputs[0].shape).toEqual([null, 28, 28, 1]);
    expect(student.outputs[0].shape).toEqual([null, 10]);
  });

  it('maps a [4, 28, 28, 1] batch to [4, 10] finite logits', () => {
    const student = track(buildStudent({ seed: 5 }));
    const x = tf.randomNormal([4, 28, 28, 1], 0, 1, 'float32', 7);
    const y = student.apply(x, { training: false }) as tf.Tensor;
    expect(y.shape).toEqual([4, 10]);
    expect(Array.from(y.dataSync()).every(Number.isFinite)).toBe(true);
    tf.dispose([x, y]);
  });
});

describe('seeded initialisation and weight copies', () => {
  it('two students built with the same seed are bit-identical', () => {
    const a = track(buildStudent({ seed: 42 }));
    const b = track(buildStudent({ seed: 42 }));
    expectIdentical(snapshot(a), snapshot(b));
  });

  it('different seeds (and unseeded builds) give different kernels', () => {
    const a = snapshot(track(buildStudent({ seed: 42 })));
    const b = snapshot(track(buildStudent({ seed: 43 })));
    const c = snapshot(track(buildStudent()));
    // Kernels are weights 0, 2, 4; biases (1, 3, 5) start at zero for every seed.
    for (const i of [0, 2, 4]) {
      expect(bitDiffs(a[i], b[i])).toBeGreaterThan(a[i].length / 2);
      expect(bitDiffs(a[i], c[i])).toBeGreaterThan(a[i].length / 2);
    }
  });

  it('each layer gets its own random stream (kernels are not prefixes of each other)', () => {
    const w = snapshot(track(buildStudent({ seed: 9 })));
    // With one shared seed the first values of every kernel would be the same uniforms, scaled.
    const ratio = w[2][0] / w[0][0];
    expect(Math.abs(w[2][1] / w[0][1] - ratio)).toBeGreaterThan(1e-3);
  });

  it('setWeightsFrom makes a differently-seeded student identical; training one leaves the other', () => {
    const src = track(buildStudent({ seed: 1 }));
    const dst = track(buildStudent({ seed: 2 }));
    const before = tf.memory().numTensors;
    setWeightsFrom(dst, src);
    expect(tf.memory().numTensors).toBe(before);
    expectIdentical(snapshot(dst), snapshot(src));
    // An optimizer-style update assigns new tensors to dst's variables: src must not move.
    const srcBefore = snapshot(src);
    tf.tidy(() => {
      for (const v of dst.trainableWeights) {
        const variable = v.read() as tf.Variable;
        variable.assign(tf.add(variable, 1));
      }
    });
    expectIdentical(snapshot(src), srcBefore);
    expect(bitDiffs(snapshot(dst)[0], srcBefore[0])).toBe(srcBefore[0].length);
  });

  it('setWeightsFrom rejects a different architecture', () => {
    const student = track(buildStudent({ seed: 1 }));
    const wider = track(buildStudent({ seed: 1, width: 2 }));
    expect(() => setWeightsFrom(student, wider)).toThrow(/architectures differ/);
  });

  it('cloneWeights is a snapshot that survives later updates and is owned by the caller', () => {
    const student = track(buildStudent({ seed: 4 }));
    const before = tf.memory().numTensors;
    const clones = cloneWeights(student);
    expect(clones.length).toBe(6);
    const initial = snapshot(student);
    const doubled = student.getWeights().map((w) => tf.mul(w, 2));
    student.setWeights(doubled);
    tf.dispose(doubled); // the variables hold their own references
    expectIdentical(
      clones.map((c) => (c.dataSync() as Float32Array).slice()),
      initial,
    );
    // Restoring from the snapshot gives the initial weights back.
    student.setWeights(clones);
    expectIdentical(snapshot(student), initial);
    tf.dispose(clones);
    expect(tf.memory().numTensors).toBe(before);
  });
});
