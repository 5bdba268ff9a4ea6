/**
 * The public API: argument checking before any dispatch (with messages that name the argument,
 * the expectation and what was given), no leaks on success or error, the same values on the
 * CPU backend, agreement with the stock (Keras) loss within its clip's effect, and a clean
 * import of the built package in Node.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import { describe, expect, test } from 'vitest';
import {
  distillationLoss,
  stockDistillationLoss,
  type StockDistillationLossConfig,
} from '../src/index.js';
import { referenceDistillationLoss } from '../src/validation/index.js';
import { countDispatches } from '../bench/core/lib/dispatch-counter.js';
import { mulberry32 } from '../src/validation/random.js';
import { useCheckedWebGPU, useCpu, useWebGPU } from './helpers/backend.js';
import { expectClose } from './helpers/compare.js';

useCheckedWebGPU();

const B = 4;
const C = 5;

describe('bad input is rejected before anything is dispatched', () => {
  const s = () => tf.zeros([B, C]);
  const t = () => tf.zeros([B, C]);
  const y = () => tf.tensor1d([0, 1, 2, 3], 'int32');
  const cases: [
    string,
    () => [tf.Tensor, tf.Tensor, tf.Tensor, StockDistillationLossConfig?],
    RegExp,
  ][] = [
    [
      'student rank 1',
      () => [y(), tf.zeros([B]), t()],
      /studentLogits must have rank 2 \[B, C\], got rank 1 float32 \[4\]/,
    ],
    [
      'teacher rank 3',
      () => [y(), s(), tf.zeros([B, C, 1])],
      /studentLogits has shape \[4, 5\] but teacherLogits has shape \[4, 5, 1\]: they must match/,
    ],
    [
      'int32 logits',
      () => [y(), tf.zeros([B, C], 'int32'), t()],
      /studentLogits must be float32, got int32 \[4, 5\]/,
    ],
    [
      'mismatched C',
      () => [y(), s(), tf.zeros([B, C + 1])],
      /teacher has 6 classes, student 5: pad the smaller with -Infinity to the same size \(see README/,
    ],
    [
      'mismatched B',
      () => [y(), s(), tf.zeros([B + 1, C])],
      /studentLogits has shape \[4, 5\] but teacherLogits has shape \[5, 5\]: they must match/,
    ],
    [
      'a student one row short of the teacher',
      () => [tf.zeros([63], 'int32'), tf.zeros([63, 10]), tf.zeros([64, 10])],
      /studentLogits has shape \[63, 10\] but teacherLogits has shape \[64, 10\]: they must match/,
    ],
    [
      'labels of the wrong length',
      () => [tf.tensor1d([0, 1, 2], 'int32'), s(), t()],
      /labels has 3 rows but studentLogits has 4 \(labels int32 \[3\], studentLogits float32 \[4, 5\]\): one class index per row/,
    ],
    [
      'labels one row short of both logits',
      () => [tf.zeros([63], 'int32'), tf.zeros([64, 10]), tf.zeros([64, 10])],
      /labels has 63 rows but studentLogits has 64/,
    ],
    [
      'int32 labels of rank 2',
      () => [tf.zeros([B, C], 'int32'), s(), t()],
      /int32 labels must have rank 1 \[B\] \(class indices\), got int32 \[4, 5\]; one-hot or soft labels must be float32/,
    ],
    [
      'float labels of another shape',
      () => [tf.zeros([B, C + 1]), s(), t()],
      /labels has shape \[4, 6\] but studentLogits has shape \[4, 5\]: float32 \(one-hot or soft\) labels must match the logits/,
    ],
    [
      'float labels with another batch',
      () => [tf.zeros([B - 1, C]), s(), t()],
      /labels has shape \[3, 5\] but studentLogits has shape \[4, 5\]/,
    ],
    [
      'float labels of rank 1',
      () => [tf.zeros([B]), s(), t()],
      /float32 labels must have rank 2 \[B, C\] \(one-hot or soft labels\), got float32 \[4\]; class indices must be int32/,
    ],
    [
      'bool labels',
      () => [tf.zeros([B], 'bool'), s(), t()],
      /labels must be int32 \[B\] class indices or float32 \[B, C\]/,
    ],
    [
      'alpha < 0',
      () => [y(), s(), t(), { alpha: -0.1 }],
      /config.alpha must be a number in \[0, 1\], got -0.1/,
    ],
    [
      'alpha > 1',
      () => [y(), s(), t(), { alpha: 1.5 }],
      /config.alpha must be a number in \[0, 1\], got 1.5/,
    ],
    [
      'alpha NaN',
      () => [y(), s(), t(), { alpha: NaN }],
      /config.alpha must be a number in \[0, 1\], got NaN/,
    ],
    [
      'temperature 0',
      () => [y(), s(), t(), { temperature: 0 }],
      /config.temperature must be a finite number > 0, got 0/,
    ],
    [
      'temperature −1',
      () => [y(), s(), t(), { temperature: -1 }],
      /config.temperature must be a finite number > 0, got -1/,
    ],
    [
      'temperature Infinity',
      () => [y(), s(), t(), { temperature: Infinity }],
      /config.temperature must be a finite number > 0, got Infinity/,
    ],
    [
      'unknown reduction',
      () => [y(), s(), t(), { reduction: 'avg' as never }],
      /config.reduction must be one of 'mean', 'sum', 'none', got 'avg'/,
    ],
    [
      'unknown config field',
      () => [y(), s(), t(), { temprature: 2 } as never],
      /unknown config field 'temprature'/,
    ],
    [
      'empty batch',
      () => [tf.tensor1d([], 'int32'), tf.zeros([0, C]), tf.zeros([0, C])],
      /B ≥ 1 and C ≥ 1/,
    ],
  ];
  type Loss = (
    labels: tf.Tensor,
    student: tf.Tensor,
    teacher: tf.Tensor,
    config?: StockDistillationLossConfig,
  ) => tf.Tensor;
  const losses: Loss[] = [distillationLoss, stockDistillationLoss];
  for (const loss of losses) {
    test.each(cases)(`${loss.name}: %s`, (_name, make, message) => {
      const args = make();
      const before = tf.memory().numTensors;
      let dispatches = -1;
      expect(() => {
        dispatches = countDispatches(() => loss(...args));
      }).toThrow(message);
      expect(dispatches).toBe(-1); // threw before the count could finish: nothing dispatched
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose(args.filter((a): a is tf.Tensor => a instanceof tf.Tensor));
    });
  }

  // The Keras baseline composes forward KL over every row: asking it for more must not quietly
  // return that loss instead (it would look like a valid baseline for another loss). Its config
  // type refuses these at compile time; the run-time check is what a JavaScript caller meets.
  test.each<[object, RegExp]>([
    [{ divergence: 'jsd' }, /config.divergence 'jsd' is not part of the Keras formula/],
    [{ divergence: 'reverse-kl' }, /config.divergence 'reverse-kl' is not part/],
    [{ ignoreIndex: -100 }, /config.ignoreIndex \(-100\) is not part of the Keras formula/],
    [{ returnComponents: true }, /config.returnComponents is not part of the Keras formula/],
  ])('stockDistillationLoss refuses %o before dispatching', (config, message) => {
    const args = [y(), s(), t()] as const;
    const untyped = config as StockDistillationLossConfig;
    const before = tf.memory().numTensors;
    let dispatches = -1;
    expect(() => {
      dispatches = countDispatches(() => stockDistillationLoss(...args, untyped));
    }).toThrow(message);
    expect(dispatches).toBe(-1);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([...args]);
  });

  test('C above the supported maximum', () => {
    const big = tf.zeros([1, 262_145]);
    expect(() => distillationLoss(tf.tensor1d([0], 'int32'), big, big)).toThrow(
      /C = 262145 classes; at most 262144 are supported/,
    );
    big.dispose();
  });

  test('a disposed input', () => {
    const d = tf.zeros([B, C]);
    d.dispose();
    expect(() => distillationLoss(tf.tensor1d([0, 1, 2, 3], 'int32'), d, d)).toThrow(
      /studentLogits has been disposed/,
    );
  });

  test('asking for a gradient with respect to labels', () => {
    const s = tf.randomNormal([B, C]);
    const y = tf.fill([B, C], 0.2);
    expect(() =>
      tf.grads((a: tf.Tensor, l: tf.Tensor) => distillationLoss(l, a, a))([s, y]),
    ).toThrow(/labels are constants/);
    tf.dispose([s, y]);
  });
});

function randomInputs(seed: number, b: number, c: number, scale: number) {
  const rng = mulberry32(seed);
  return {
    s: Float32Array.from({ length: b * c }, () => (rng() * 2 - 1) * scale),
    t: Float32Array.from({ length: b * c }, () => (rng() * 2 - 1) * scale),
    y: Int32Array.from({ length: b }, () => Math.floor(rng() * c)),
  };
}

test('fused and stock (Keras) agree within the clip’s effect', async () => {
  // Keras clips p and q to [1e-7, 1] before the KL. Where every probability is above 1e-7 the
  // two losses are the same function; their float32 results differ by rounding only.
  for (const [b, c] of [
    [64, 10],
    [8, 1000],
  ]) {
    const { s, t, y } = randomInputs(7 + c, b, c, 4);
    const sT = tf.tensor2d(s, [b, c]);
    const tT = tf.tensor2d(t, [b, c]);
    const yT = tf.tensor1d(y, 'int32');
    for (const reduction of ['mean', 'none'] as const) {
      const f = tf.valueAndGrads((a: tf.Tensor) => distillationLoss(yT, a, tT, { reduction }))([
        sT,
      ]);
      const k = tf.valueAndGrads((a: tf.Tensor) => stockDistillationLoss(yT, a, tT, { reduction }))(
        [sT],
      );
      const ctx = `${b}×${c} ${reduction}`;
      const kv = await k.value.data();
      expectClose(
        'value',
        await f.value.data(),
        kv,
        Array.from(kv, (v) => 1e-4 * Math.abs(v) + 1e-5),
        ctx,
      );
      const kg = await k.grads[0]!.data();
      expectClose(
        '∂/∂s',
        await f.grads[0]!.data(),
        kg,
        2e-5 / (reduction === 'mean' ? b : 1),
        ctx,
        c,
      );
      tf.dispose([f.value, k.value, ...f.grads, ...k.grads]);
    }
    tf.dispose([sT, tT, yT]);
  }
});

test('where the clip bites (probabilities below 1e-7), stock departs from the exact loss and fused does not', async () => {
  const b = 4;
  const c = 10;
  const { s, t, y } = randomInputs(99, b, c, 60);
  const sT = tf.tensor2d(s, [b, c]);
  const tT = tf.tensor2d(t, [b, c]);
  const yT = tf.tensor1d(y, 'int32');
  const cfg = { temperature: 1, reduction: 'none' as const };
  const ref = referenceDistillationLoss(
    { batch: b, classes: c, student: s, teacher: t, labels: y, labelKind: 'index' },
    cfg,
  );
  const fused = await distillationLoss(yT, sT, tT, cfg).data();
  const stock = await stockDistillationLoss(yT, sT, tT, cfg).data();
  const relErr = (x: ArrayLike<number>) =>
    Math.max(...Array.from(x, (v, i) => Math.abs(v - ref.value[i]!) / Math.abs(ref.value[i]!)));
  expect(relErr(fused)).toBeLessThan(1e-5);
  expect(relErr(stock)).toBeGreaterThan(1e-3);
  tf.dispose([sT, tT, yT]);
});

test('the CPU backend gives the same values and gradients (exact composition)', async () => {
  const { s, t, y } = randomInputs(3, 16, 100, 5);
  const run = async () => {
    const sT = tf.tensor2d(s, [16, 100]);
    const tT = tf.tensor2d(t, [16, 100]);
    const yT = tf.tensor1d(y, 'int32');
    const r = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) =>
      distillationLoss(yT, a, b, { reduction: 'none' }),
    )([sT, tT]);
    const out = [await r.value.data(), await r.grads[0]!.data(), await r.grads[1]!.data()];
    tf.dispose([sT, tT, yT, r.value, ...r.grads]);
    return out;
  };
  const gpu = await run();
  await useCpu();
  try {
    const cpu = await run();
    expectClose(
      'value',
      cpu[0]!,
      gpu[0]!,
      Array.from(gpu[0]!, (v) => 1e-5 * (Math.abs(v) + 10)),
      'cpu vs webgpu',
    );
    expectClose('∂/∂s', cpu[1]!, gpu[1]!, 1e-5, 'cpu vs webgpu', 100);
    expectClose('∂/∂t', cpu[2]!, gpu[2]!, 1e-5, 'cpu vs webgpu', 100);
  } finally {
    await useWebGPU();
  }
});

test('no leaks after a thrown error, 100 calls inside tf.tidy', () => {
  const s = tf.randomNormal([B, C]);
  const y = tf.tensor1d([0, 1, 2, 3], 'int32');
  const before = tf.memory().numTensors;
  for (let i = 0; i < 100; i++) {
    expect(() => tf.tidy(() => distillationLoss(y, s, s, { temperature: -1 }))).toThrow();
    tf.tidy(() => {
      distillationLoss(y, s, s);
    });
  }
  expect(tf.memory().numTensors).toBe(before);
  tf.dispose([s, y]);
});

test('the built package imports cleanly in Node (no window/document at import time)', () => {
  const entry = new URL('../dist/index.js', import.meta.url);
  const validation = new URL('../dist/validation.js', import.meta.url);
  for (const file of [entry, validation]) {
    expect(existsSync(file), `${file.pathname} is missing: \`npm test\` builds it (pretest)`).toBe(
      true,
    );
  }
  const script = `
    const before = Object.keys(globalThis).filter((k) => k === 'window' || k === 'document');
    const m = await import(${JSON.stringify(entry.href)});
    if (typeof m.distillationLoss !== 'function') throw new Error('no distillationLoss export');
    if (typeof m.stockDistillationLoss !== 'function') throw new Error('no stockDistillationLoss export');
    if ('referenceDistillationLoss' in m) throw new Error('the main entry exports the reference');
    const v = await import(${JSON.stringify(validation.href)});
    if (typeof v.referenceDistillationLoss !== 'function') throw new Error('no reference export');
    if (typeof v.runValidationSuite !== 'function') throw new Error('no runValidationSuite export');
    const tf = await import('@tensorflow/tfjs-core');
    if (!tf.getGradient('FusedDistillationLoss')) throw new Error('gradient not registered');
    if (!tf.getKernel('FusedDistillationLoss', 'webgpu')) throw new Error('kernel not registered');
    if (before.length || typeof window !== 'undefined' || typeof document !== 'undefined') throw new Error('touched window/document');
    console.log('ok');
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: new URL('..', import.meta.url),
    encoding: 'utf8',
    env: { ...process.env },
  });
  expect(out.trim()).toBe('ok');
});

describe('temperatures outside the tested range are refused, not guessed', () => {
  test.each([5e-5, 2e8])('T = %s', (temperature) => {
    const s = tf.zeros([2, 3]);
    const y = tf.tensor1d([0, 1], 'int32');
    expect(() => distillationLoss(y, s, s, { temperature })).toThrow(
      /config.temperature must be in \[0.0001, 100000000\] \(the range tested against the float64 reference\)/,
    );
    tf.dispose([s, y]);
  });
});
