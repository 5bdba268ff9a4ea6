/**
 * The consumer app's training run, shared by the Node entry (node.js) and the browser entry
 * (main.js). Written as an application would write it: `@tensorflow/tfjs` for models and
 * data, `@tensorflow/tfjs-backend-webgpu` for the backend, `tfjs-fused-distill` from its
 * packed tarball.
 *
 * A tiny teacher and student (dense layers, seeded initializers) on synthetic data (seeded).
 * For each label kind an app would make (int32 class indices, and `tf.oneHot(…).toFloat()`),
 * the student is cloned (same initial weights) and trained STEPS steps with
 * `Distiller.trainStep`, once with the fused loss and once with the stock (Keras) loss; both
 * loss sequences are returned. Whether the fused kernel really ran on the app's tfjs instance
 * is recorded too (kernel names of one profiled step): if the package's kernels had been
 * registered on another copy of tfjs-core, the fused loss would silently take the stock-op
 * path and the comparison would prove nothing.
 */
/* global navigator */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu';
import { Distiller } from 'tfjs-fused-distill';
import { runValidationSuite, validationSuite } from 'tfjs-fused-distill/validation';

/** The fused op's kernel as tfjs' registry and profiler name it (an internal the app checks). */
const FUSED_DISTILLATION_LOSS = 'FusedDistillationLoss';

export const STEPS = 5;
export const BATCH = 32;
const FEATURES = 16;
const CLASSES = 10;
const HIDDEN = 32;
const ALPHA = 0.1;
const TEMPERATURE = 10;

/**
 * @typedef {object} RunResult
 * @property {number[]} losses the loss of each step, read back after the step
 * @property {boolean} fusedKernel whether the package's fused kernel ran in the first step
 *   (profiled)
 * @property {number} kernels how many kernels the first step ran
 * @property {number} leakedTensors tensors left over by the run (0 expected)
 */

/**
 * @typedef {object} ConsumerResult
 * @property {string} backend
 * @property {string} adapter the WebGPU adapter, as `vendor architecture device`
 * @property {Record<'indices' | 'oneHot', {fused: RunResult, stock: RunResult}>} runs
 * @property {{cases: number, passed: number, failed: number}} validation the first
 *   VALIDATION_CASES cases of the package's quick numerics suite, run through its
 *   `/validation` subpath as an app would validate the kernels on its user's GPU
 */

/** How many cases of the quick suite the app runs (the whole suite is the app page's job). */
const VALIDATION_CASES = 4;

/**
 * A dense network with seeded initializers.
 * @param {number[]} units widths of the layers (the last is the logits')
 * @param {number} seed
 */
function denseModel(units, seed) {
  return tf.sequential({
    layers: units.map((u, i) =>
      tf.layers.dense({
        units: u,
        activation: i < units.length - 1 ? 'relu' : 'linear',
        kernelInitializer: tf.initializers.glorotUniform({ seed: seed + i }),
        ...(i === 0 ? { inputShape: [FEATURES] } : {}),
      }),
    ),
  });
}

/**
 * STEPS distillation steps of `student` against `teacher`, batch `step` being rows
 * [step·BATCH, (step+1)·BATCH) of `x` and `y`.
 * @param {'fused' | 'stock'} loss
 * @param {tf.Sequential} student
 * @param {tf.Sequential} teacher
 * @param {tf.Tensor} x
 * @param {tf.Tensor} y
 * @returns {Promise<RunResult>}
 */
async function train(loss, student, teacher, x, y) {
  const before = tf.memory().numTensors;
  const optimizer = tf.train.adam(0.01);
  const distiller = new Distiller({
    student,
    teacher,
    loss,
    optimizer,
    alpha: ALPHA,
    temperature: TEMPERATURE,
  });
  /** @type {number[]} */
  const losses = [];
  /** @type {string[]} */
  let kernels = [];
  for (let step = 0; step < STEPS; step++) {
    const xb = x.slice([step * BATCH, 0], [BATCH, FEATURES]);
    const yb = y.slice(step * BATCH, BATCH);
    /** @type {tf.Scalar | undefined} */
    let value;
    if (step === 0) {
      const profile = await tf.profile(() => {
        value = distiller.trainStep(xb, yb).loss;
        return value;
      });
      kernels = profile.kernels.map((k) => k.name);
    } else {
      value = distiller.trainStep(xb, yb).loss;
    }
    if (value === undefined) throw new Error('trainStep returned no loss');
    losses.push((await value.data())[0] ?? NaN);
    tf.dispose([xb, yb, value]);
  }
  distiller.dispose();
  optimizer.dispose();
  return {
    losses,
    fusedKernel: kernels.includes(FUSED_DISTILLATION_LOSS),
    kernels: kernels.length,
    leakedTensors: tf.memory().numTensors - before,
  };
}

/**
 * Runs everything on the WebGPU backend; throws if there is no adapter.
 * @returns {Promise<ConsumerResult>}
 */
export async function distill() {
  const adapter = await navigator.gpu?.requestAdapter();
  if (!adapter) throw new Error('no WebGPU adapter (navigator.gpu.requestAdapter() gave null)');
  if (!(await tf.setBackend('webgpu')) || tf.getBackend() !== 'webgpu') {
    throw new Error(`tfjs could not initialise its webgpu backend (backend: ${tf.getBackend()})`);
  }
  if (!tf.getKernel(FUSED_DISTILLATION_LOSS, 'webgpu')) {
    throw new Error(`${FUSED_DISTILLATION_LOSS} is not registered on the app's tfjs instance`);
  }
  const { vendor, architecture, device } = adapter.info;

  const n = STEPS * BATCH;
  const x = tf.randomNormal([n, FEATURES], 0, 1, 'float32', 1);
  const indices = tf.randomUniform([n], 0, CLASSES, 'int32', 2);
  const oneHot = tf.oneHot(indices, CLASSES).toFloat();
  const teacher = denseModel([HIDDEN, CLASSES], 10);

  /** @type {Partial<ConsumerResult['runs']>} */
  const runs = {};
  for (const [kind, y] of /** @type {const} */ ([
    ['indices', indices],
    ['oneHot', oneHot],
  ])) {
    const fusedStudent = denseModel([CLASSES], 20);
    const stockStudent = denseModel([CLASSES], 30);
    stockStudent.setWeights(fusedStudent.getWeights()); // identical starting point
    runs[kind] = {
      fused: await train('fused', fusedStudent, teacher, x, y),
      stock: await train('stock', stockStudent, teacher, x, y),
    };
    fusedStudent.dispose();
    stockStudent.dispose();
  }
  teacher.dispose();
  tf.dispose([x, indices, oneHot]);
  const cases = validationSuite('quick').slice(0, VALIDATION_CASES);
  const { passed, failed } = await runValidationSuite(cases);
  return {
    backend: tf.getBackend(),
    adapter: [vendor, architecture, device].filter(Boolean).join(' '),
    runs: /** @type {ConsumerResult['runs']} */ (runs),
    validation: { cases: cases.length, passed, failed },
  };
}
