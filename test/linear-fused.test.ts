/**
 * `fusedLinearDistillationLoss` on WebGPU against the float64 reference
 * (src/validation/reference-linear.ts), element by element within the derived tolerances of
 * src/validation/tolerance-linear.ts: the value (taped and untaped), the components, and the
 * gradients wrt hidden, weight and bias, over a table of small cases (H ≤ 16, V ≤ 300,
 * rows ≤ 24; test/helpers/linear-cases.ts) covering the divergences, α / T / T², the reductions
 * (with a `[rows]` upstream gradient for 'none' and scalar ones for 'sum'), ignoreIndex,
 * −Infinity masks in the bias, the components, logitScale, softCap, the three teacher kinds,
 * rank 2 and 3 hidden states, one chunk and several. Every case checks for tensor leaks. A wrong
 * reference (the soft cap's derivative dropped, a row left out of the bias's gradient) fails the
 * same comparison, and asking for a teacher's gradient is an error.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-layers';
import { describe, expect, test } from 'vitest';
import { fusedLinearDistillationLoss } from 'tfjs-fused-distill';
import { useCheckedWebGPU } from './helpers/backend.js';
import { linearCaseTable, runLinearCase, wrongReferenceCaught } from './helpers/linear-cases.js';

useCheckedWebGPU();

describe('fusedLinearDistillationLoss on WebGPU against the float64 reference', () => {
  test.each(linearCaseTable('webgpu'))('$name', async (spec) => {
    await runLinearCase(spec, 4321);
  });

  test('a wrong reference fails the comparison', async () => {
    await wrongReferenceCaught(99);
  });

  test("asking for a teacher's gradient is an error naming it a constant", () => {
    const h = tf.randomUniform([4, 6], -1, 1);
    const w = tf.randomUniform([6, 10], -1, 1);
    const t = tf.randomUniform([4, 10], -3, 3);
    const th = tf.randomUniform([4, 5], -1, 1);
    const tw = tf.randomUniform([5, 10], -1, 1);
    const y = tf.tensor1d([1, 2, 3, 4], 'int32');
    expect(() =>
      tf.grads((hh: tf.Tensor, ww: tf.Tensor, tt: tf.Tensor) =>
        fusedLinearDistillationLoss(y, { hidden: hh, weight: ww }, tt),
      )([h, w, t]),
    ).toThrow(/constant/);
    expect(() =>
      tf.grads((hh: tf.Tensor, tw2: tf.Tensor) =>
        fusedLinearDistillationLoss(y, { hidden: hh, weight: w }, { hidden: th, weight: tw2 }),
      )([h, tw]),
    ).toThrow(/constant/);
    tf.dispose([h, w, t, th, tw, y]);
  });
});
