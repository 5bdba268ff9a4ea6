/**
 * At run time the results have the shapes their types promise (test/types/public-api.ts holds
 * the type-level contract, checked by `npm run typecheck`): a scalar for 'mean' / 'sum', the
 * leading shape for 'none', `{ loss, hardLoss, softLoss }` with `returnComponents`, and a
 * config spread from DEFAULT_CONFIG means what it says.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-layers'; // registers the stock ops' gradients (as the other tests do)
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { DEFAULT_CONFIG, distillationLoss, stockDistillationLoss } from '../src/index.js';

describe('at run time the results match the types', () => {
  let previous = '';
  beforeAll(async () => {
    previous = tf.getBackend() ?? '';
    await tf.setBackend('cpu');
  });
  afterAll(async () => {
    if (previous && previous !== 'cpu') await tf.setBackend(previous);
  });

  test.each([distillationLoss, stockDistillationLoss])('%o: ranks', (loss) => {
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

  test('returnComponents: three tensors of the reduction shape, loss = α·hard + (1 − α)·soft', async () => {
    const labels = tf.tensor1d([0, 2], 'int32');
    const student = tf.tensor2d([1, 2, 3, -1, 0.5, 2], [2, 3]);
    const teacher = tf.tensor2d([0, 1, 2, 3, 1, -2], [2, 3]);
    const mean = distillationLoss(labels, student, teacher, { returnComponents: true });
    const rows = distillationLoss(labels, student, teacher, {
      returnComponents: true,
      reduction: 'none',
    });
    expect([mean.loss.rank, mean.hardLoss.rank, mean.softLoss.rank]).toEqual([0, 0, 0]);
    expect(rows.softLoss.shape).toEqual([2]);
    const [loss, hard, soft] = await Promise.all(
      [mean.loss, mean.hardLoss, mean.softLoss].map((x) => x.data()),
    );
    const alpha = DEFAULT_CONFIG.alpha;
    expect(loss![0]!).toBeCloseTo(alpha * hard![0]! + (1 - alpha) * soft![0]!, 5);
    tf.dispose([labels, student, teacher, mean, rows]);
  });

  test('{ ...DEFAULT_CONFIG, ignoreIndex: -100 } ignores the -100 rows (no NaN)', async () => {
    const student = tf.tensor2d([1, 2, 3, -1, 0.5, 2, 0, 0, 1], [3, 3]);
    const teacher = tf.tensor2d([0, 1, 2, 3, 1, -2, 1, 1, 1], [3, 3]);
    const padded = tf.tensor1d([0, -100, 2], 'int32');
    const kept = tf.tensor1d([0, 2], 'int32');
    const ignoring = distillationLoss(padded, student, teacher, {
      ...DEFAULT_CONFIG,
      ignoreIndex: -100,
    });
    const rowsKept = [0, 2];
    const direct = distillationLoss(
      kept,
      tf.gather(student, rowsKept),
      tf.gather(teacher, rowsKept),
      DEFAULT_CONFIG,
    );
    const [a, b] = await Promise.all([ignoring.data(), direct.data()]);
    expect(Number.isFinite(a[0]!)).toBe(true);
    expect(a[0]!).toBeCloseTo(b[0]!, 5);
    tf.dispose([student, teacher, padded, kept, ignoring, direct]);
  });
});
