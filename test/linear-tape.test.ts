/**
 * The linear op inside a model's step: hidden states made inside the differentiated function
 * (which tfjs disposes before the backward pass), refused gradients that leave nothing behind,
 * and inputs past one storage binding refused by name before anything is dispatched.
 */
import * as tf from '@tensorflow/tfjs-core';
// The unfused comparison differentiates stock ops: tfjs-layers registers their gradients.
import '@tensorflow/tfjs-layers';
import { describe, expect, it } from 'vitest';
import {
  distillationLoss,
  fusedLinearDistillationLoss,
  type FusedLinearDistillationLossConfig,
} from 'tfjs-fused-distill';
import { overrideBindingLimitForTesting } from '../src/kernels/plan.js';
import { useCheckedWebGPU } from './helpers/backend.js';

useCheckedWebGPU();

const ROWS = 12;
const IN = 6;
const H = 8;
const V = 40;

/** The largest |a − b| over the largest |b|. */
async function relativeError(a: tf.Tensor, b: tf.Tensor): Promise<number> {
  const [x, y] = await Promise.all([a.data(), b.data()]);
  let err = 0;
  let scale = 0;
  for (let i = 0; i < y.length; i++) {
    err = Math.max(err, Math.abs(x[i]! - y[i]!));
    scale = Math.max(scale, Math.abs(y[i]!));
  }
  return err / scale;
}

describe('fusedLinearDistillationLoss in a model step', () => {
  const cases: [string, FusedLinearDistillationLossConfig][] = [
    ['mean (gradients in the forward pass)', {}],
    ['none (the backward recomputes)', { reduction: 'none', memoryBudgetBytes: 16_000 }],
    ['components (the backward recomputes)', { returnComponents: true }],
  ];
  for (const [name, config] of cases) {
    it(`${name}: hidden states made inside tf.variableGrads give the unfused gradients`, async () => {
      const x = tf.randomNormal([ROWS, IN], 0, 1, 'float32', 1);
      const proj = tf.variable(tf.randomNormal([IN, H], 0, 0.5, 'float32', 2));
      const weight = tf.variable(tf.randomNormal([H, V], 0, 0.5, 'float32', 3));
      const bias = tf.variable(tf.randomNormal([V], 0, 0.5, 'float32', 4));
      const teacher = tf.randomNormal([ROWS, V], 0, 2, 'float32', 5);
      const labels = tf.randomUniform([ROWS], 0, V, 'int32', 6);
      const rowWeights = tf.randomNormal([ROWS], 0, 1, 'float32', 7);
      const lossConfig = { ...config };
      delete lossConfig.memoryBudgetBytes;
      /** The scalar each path minimises: the loss, a weighted sum of rows, or one component. */
      const scalarOf = (out: unknown): tf.Scalar => {
        if (out instanceof tf.Tensor) {
          return (out.rank === 0 ? out : tf.sum(tf.mul(out, rowWeights))) as tf.Scalar;
        }
        return (out as { softLoss: tf.Scalar }).softLoss;
      };
      const tensorsBefore = tf.memory().numTensors;
      const fused = tf.variableGrads(() => {
        const hidden = tf.relu(tf.matMul(x, proj));
        return scalarOf(
          fusedLinearDistillationLoss(labels, { hidden, weight, bias }, teacher, config),
        );
      });
      const unfused = tf.variableGrads(() => {
        const hidden = tf.relu(tf.matMul(x, proj));
        const logits = tf.add(tf.matMul(hidden, weight), bias);
        return scalarOf(distillationLoss(labels, logits, teacher, lossConfig));
      });
      expect(await relativeError(fused.value, unfused.value)).toBeLessThan(1e-5);
      for (const v of [proj, weight, bias]) {
        const error = await relativeError(fused.grads[v.name]!, unfused.grads[v.name]!);
        expect(error, v.name).toBeLessThan(1e-5);
      }
      tf.dispose([fused.value, unfused.value, ...Object.values(fused.grads)]);
      tf.dispose(Object.values(unfused.grads));
      expect(tf.memory().numTensors).toBe(tensorsBefore);
      tf.dispose([x, proj, weight, bias, teacher, labels, rowWeights]);
    });
  }

  it("a refused teacher gradient leaves none of the op's tensors behind", () => {
    const hidden = tf.randomNormal([ROWS, H]);
    const weight = tf.randomNormal([H, V]);
    const teacher = tf.randomNormal([ROWS, V]);
    const labels = tf.randomUniform([ROWS], 0, V, 'int32');
    const before = tf.memory().numTensors;
    for (const config of [{}, { reduction: 'none' as const }]) {
      expect(() =>
        tf.grads((h: tf.Tensor, t: tf.Tensor) =>
          tf.sum(fusedLinearDistillationLoss(labels, { hidden: h, weight }, t, config)),
        )([hidden, teacher]),
      ).toThrow(/teacher is a constant/);
    }
    // What tfjs itself keeps of a backward pass that threw: the gradient it had already taken
    // for the node's other input (one per call); what the op saved for its backward pass
    // (gradients or inputs) it disposes before refusing.
    expect(tf.memory().numTensors - before).toBe(2);
    tf.dispose([hidden, weight, teacher, labels]);
  });

  it('hidden states past one storage binding are refused by name before any dispatch', () => {
    const rows = 64; // hidden [64, 8]: 2,048 bytes, more than the weight's 1,280
    const hidden = tf.randomNormal([rows, H]);
    const weight = tf.randomNormal([H, V]);
    const teacher = tf.randomNormal([rows, V]);
    const labels = tf.randomUniform([rows], 0, V, 'int32');
    overrideBindingLimitForTesting(rows * H * 4 - 4);
    try {
      const before = tf.memory().numTensors;
      expect(() => fusedLinearDistillationLoss(labels, { hidden, weight }, teacher)).toThrow(
        /student\.hidden \[64, 8\] is 2048 bytes, more than this device's maxStorageBufferBindingSize/,
      );
      expect(tf.memory().numTensors).toBe(before);
    } finally {
      overrideBindingLimitForTesting(null);
    }
    tf.dispose([hidden, weight, teacher, labels]);
  });
});
