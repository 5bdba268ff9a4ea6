/**
 * The result type follows the config's reduction: `tf.Scalar` for 'mean' (the default) and
 * 'sum', the leading shape's rank for 'none' (`tf.Tensor1D` for `[B, C]` logits, `tf.Tensor2D`
 * for `[B, S, C]`, `tf.Tensor` when the rank is unknown), plain `tf.Tensor` when the reduction
 * is only known at run time. The `expectTypeOf` assertions are checked by `npm run typecheck` (tsc over test/);
 * at run time they are no-ops, and the last test checks that the ranks match the types.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-layers'; // registers the stock ops' gradients (as the other tests do)
import { afterAll, beforeAll, describe, expect, expectTypeOf, test } from 'vitest';
import {
  distillationLoss,
  stockDistillationLoss,
  type DistillationLossConfig,
  type Reduction,
  type SparseTeacher,
} from '../src/index.js';

// Types only: the functions below that use these are never called.
declare const y: tf.Tensor;
declare const s: tf.Tensor;
declare const t: tf.Tensor;
declare const s2: tf.Tensor2D;
declare const s3: tf.Tensor3D;
declare const sparse: SparseTeacher;
declare const someConfig: DistillationLossConfig;
declare const someReduction: Reduction;
type Minimize = tf.Optimizer['minimize'];
declare const optimizer: tf.Optimizer;

for (const loss of [distillationLoss, stockDistillationLoss]) {
  describe(`${loss.name}: result types`, () => {
    test("'mean' (default) and 'sum' give tf.Scalar", () => {
      expectTypeOf(() => loss(y, s, t)).returns.toEqualTypeOf<tf.Scalar>();
      expectTypeOf(() => loss(y, s, t, {})).returns.toEqualTypeOf<tf.Scalar>();
      expectTypeOf(() =>
        loss(y, s, t, { alpha: 0.5, temperature: 4 }),
      ).returns.toEqualTypeOf<tf.Scalar>();
      expectTypeOf(() => loss(y, s, t, { reduction: 'mean' })).returns.toEqualTypeOf<tf.Scalar>();
      expectTypeOf(() => loss(y, s, t, { reduction: 'sum' })).returns.toEqualTypeOf<tf.Scalar>();
      expectTypeOf(() => loss(y, s, t, undefined)).returns.toEqualTypeOf<tf.Scalar>();
    });

    test("'none' gives the leading shape's rank: tf.Tensor1D for [B, C], tf.Tensor2D for [B, S, C]", () => {
      expectTypeOf(() =>
        loss(y, s2, t, { reduction: 'none' }),
      ).returns.toEqualTypeOf<tf.Tensor1D>();
      expectTypeOf(() =>
        loss(y, s2, t, { reduction: 'none', temperature: 2 }),
      ).returns.toEqualTypeOf<tf.Tensor1D>();
      expectTypeOf(() =>
        loss(y, s3, t, { reduction: 'none' }),
      ).returns.toEqualTypeOf<tf.Tensor2D>();
      // a rank unknown at compile time: a tensor of the leading shape
      expectTypeOf(() => loss(y, s, t, { reduction: 'none' })).returns.toEqualTypeOf<tf.Tensor>();
    });

    test('a sparse (top-K) teacher is accepted where logits are', () => {
      expectTypeOf(() => loss(y, s, sparse)).returns.toEqualTypeOf<tf.Scalar>();
      expectTypeOf(() =>
        loss(y, s3, sparse, { reduction: 'none' }),
      ).returns.toEqualTypeOf<tf.Tensor2D>();
    });

    test('a reduction known only at run time gives tf.Tensor', () => {
      expectTypeOf(() => loss(y, s, t, someConfig)).returns.toEqualTypeOf<tf.Tensor>();
      expectTypeOf(() =>
        loss(y, s, t, { reduction: someReduction }),
      ).returns.toEqualTypeOf<tf.Tensor>();
    });

    test('optimizer.minimize takes the loss without a cast', () => {
      expectTypeOf<Minimize>().toBeCallableWith(() => loss(y, s, t));
      expectTypeOf<Minimize>().toBeCallableWith(() =>
        loss(y, s, t, { reduction: 'sum', alpha: 0.2 }),
      );
      const minimizeNone = () =>
        // @ts-expect-error a [B] vector is not a scalar to minimize
        optimizer.minimize(() => loss(y, s2, t, { reduction: 'none' }));
      const minimizeUnknown = () =>
        // @ts-expect-error nor is a loss whose reduction is unknown at compile time
        optimizer.minimize(() => loss(y, s, t, someConfig));
      expectTypeOf(minimizeNone).toBeFunction();
      expectTypeOf(minimizeUnknown).toBeFunction();
    });
  });
}

test('the stock loss has the fused loss’s signature (interchangeable)', () => {
  expectTypeOf(stockDistillationLoss).toEqualTypeOf<typeof distillationLoss>();
});

describe('at run time the ranks match the types', () => {
  let previous = '';
  beforeAll(async () => {
    previous = tf.getBackend() ?? '';
    await tf.setBackend('cpu');
  });
  afterAll(async () => {
    if (previous && previous !== 'cpu') await tf.setBackend(previous);
  });

  test.each([distillationLoss, stockDistillationLoss])('%o', (loss) => {
    tf.tidy(() => {
      const labels = tf.tensor1d([0, 2], 'int32');
      const student = tf.randomNormal([2, 3]);
      const teacher = tf.randomNormal([2, 3]);
      expect(loss(labels, student, teacher).rank).toBe(0);
      expect(loss(labels, student, teacher, { reduction: 'sum' }).rank).toBe(0);
      expect(loss(labels, student, teacher, { reduction: 'none' }).shape).toEqual([2]);
      const w = tf.variable(tf.randomNormal([2, 3]));
      const cost = tf.train.sgd(0.1).minimize(() => loss(labels, w, teacher), true);
      expect(cost?.rank).toBe(0);
      w.dispose();
    });
  });
});
