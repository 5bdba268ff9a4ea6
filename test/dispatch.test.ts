/**
 * Dispatches per forward+backward, counted at GPUComputePassEncoder.dispatchWorkgroups: the
 * fused op within the bounds (≤ 2 for B ≤ 1024, C ≤ 64; ≤ 3 at any size), the stock
 * composition counted and reported.
 */
import * as tf from '@tensorflow/tfjs-core';
// Registers the stock ops' gradients for the stock composition.
import '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { distillationLoss, stockDistillationLoss, type Reduction } from '../src/index.js';
import { countDispatches } from '../bench/lib/dispatch-counter.js';
import { uncapturedGpuErrors, useWebGPU, withValidationScope } from './helpers/backend.js';

beforeAll(useWebGPU);
afterAll(() => expect(uncapturedGpuErrors()).toEqual([]));

type Loss = typeof distillationLoss;

interface Setup {
  y: tf.Tensor;
  s: tf.Tensor;
  t: tf.Variable;
}

function setup(B: number, C: number): Setup {
  return {
    y: tf.tensor1d(
      Array.from({ length: B }, (_, i) => i % C),
      'int32',
    ),
    s: tf.randomNormal([B, C]),
    // A trainable variable: the teacher's gradient can be asked for (online distillation).
    t: tf.variable(tf.randomNormal([B, C])),
  };
}

/** Counts one forward+backward; returns the count after reading the results back. */
async function count(
  loss: Loss,
  { y, s, t }: Setup,
  reduction: Reduction,
  opts: { teacher: boolean; dy: boolean },
): Promise<number> {
  const B = s.shape[0]!;
  const dy = opts.dy ? (reduction === 'none' ? tf.fill([B], 0.5) : tf.scalar(0.5)) : undefined;
  // Put dy on the GPU first so that its upload is not counted as part of the loss.
  if (dy) await tf.add(dy, 0).data();
  let out: { value: tf.Tensor; grads: tf.Tensor[] } | null = null;
  const n = countDispatches(() => {
    out = opts.teacher
      ? tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) => loss(y, a, b, { reduction }))([s, t], dy)
      : tf.valueAndGrads((a: tf.Tensor) => loss(y, a, t, { reduction }))([s], dy);
  });
  const o = out as unknown as { value: tf.Tensor; grads: tf.Tensor[] };
  await o.value.data();
  for (const g of o.grads) await g.data();
  tf.dispose([o.value, ...o.grads]);
  dy?.dispose();
  return n;
}

describe('fused forward+backward dispatches', () => {
  const mnistShapes: [number, number][] = [
    [1, 1],
    [64, 10],
    [1024, 10],
    [1024, 64],
  ];
  for (const [B, C] of mnistShapes) {
    for (const reduction of ['mean', 'sum', 'none'] as const) {
      test(`B=${B} C=${C} ${reduction}: at most 2, with or without the teacher's gradient and dy`, async () => {
        const x = setup(B, C);
        await withValidationScope(async () => {
          for (const teacher of [false, true]) {
            for (const dy of [false, true]) {
              const n = await count(distillationLoss, x, reduction, { teacher, dy });
              expect(n, JSON.stringify({ teacher, dy })).toBeLessThanOrEqual(2);
              expect(n).toBeGreaterThanOrEqual(1);
            }
          }
        });
        tf.dispose([x.y, x.s, x.t]);
      });
    }
  }

  test('B=256 C=32768 and B=3 C=262144: at most 3', async () => {
    for (const [B, C] of [
      [256, 32768],
      [3, 262_144],
    ] as [number, number][]) {
      const x = setup(B, C);
      for (const reduction of ['mean', 'none'] as const) {
        for (const teacher of [false, true]) {
          const n = await count(distillationLoss, x, reduction, { teacher, dy: true });
          expect(n, JSON.stringify({ B, C, reduction, teacher })).toBeLessThanOrEqual(3);
        }
      }
      tf.dispose([x.y, x.s, x.t]);
    }
  });

  test('a forward pass without a tape is one dispatch (two when a large batch is reduced)', () => {
    const small = setup(64, 10);
    const large = setup(256, 32768);
    const n1 = countDispatches(() => distillationLoss(small.y, small.s, small.t).dispose());
    const n2 = countDispatches(() => distillationLoss(large.y, large.s, large.t).dispose());
    expect(n1).toBe(1);
    expect(n2).toBe(2);
    tf.dispose([small.y, small.s, small.t, large.y, large.s, large.t]);
  });

  test('the stock composition, for comparison', async () => {
    const x = setup(64, 10);
    const fused = await count(distillationLoss, x, 'mean', { teacher: false, dy: false });
    const stock = await count(stockDistillationLoss, x, 'mean', { teacher: false, dy: false });
    console.log(`dispatches per forward+backward at 64×10: fused ${fused}, stock ${stock}`);
    expect(stock).toBeGreaterThan(20);
    expect(fused).toBeLessThan(stock);
    tf.dispose([x.y, x.s, x.t]);
  });
});
