/**
 * The linear op's memory: the extra bytes it holds (the GPU bytes in use at their high-water
 * mark during a forward and backward pass, less its inputs and the gradients it returns) stay within the
 * chunk plan's bound and the budget it was given, and no tensor outlives the call.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import {
  fusedLinearDistillationLoss,
  type FusedLinearDistillationLossConfig,
} from 'tfjs-fused-distill';
import { planLinearChunks } from '../src/linear/chunks.js';
import { resolveLinearConfig } from '../src/linear/config.js';
import { checkLinearInputs } from '../src/linear/inputs.js';
import {
  maxStorageBufferBindingSize,
  releaseDisposedBuffers,
  trackGpuBytesInUse,
} from '../src/tfjs-internals.js';
import { useCheckedWebGPU } from './helpers/backend.js';

useCheckedWebGPU();

const ROWS = 64;
const H = 32;
const V = 4096;
const BUDGET = 2 * 1024 * 1024;

const CASES: [string, 'head' | 'dense', FusedLinearDistillationLossConfig][] = [
  ['teacher head, mean', 'head', {}],
  ['teacher head, soft cap and logit scale', 'head', { softCap: 30, logitScale: 2 }],
  ['dense teacher, jsd', 'dense', { divergence: 'jsd' }],
  ['dense teacher, none (the backward recomputes)', 'dense', { reduction: 'none' }],
];

/**
 * `x` in a GPU buffer: tf.randomNormal makes its values on the CPU, and their upload at first
 * use would count as the op's.
 */
function onGpu<T extends tf.Tensor>(x: T): T {
  const y = tf.add(x, 0) as T;
  x.dispose();
  return y;
}

describe('fusedLinearDistillationLoss memory', () => {
  for (const [name, teacherKind, extra] of CASES) {
    it(`${name}: the high-water mark stays within the plan and the budget`, async () => {
      const hidden = onGpu(tf.randomNormal([ROWS, H], 0, 1, 'float32', 1));
      const weight = onGpu(tf.randomNormal([H, V], 0, 0.2, 'float32', 2));
      const bias = onGpu(tf.randomNormal([V], 0, 0.2, 'float32', 3));
      const teacherHidden = onGpu(tf.randomNormal([ROWS, H], 0, 1, 'float32', 4));
      const teacherWeight = onGpu(tf.randomNormal([H, V], 0, 0.2, 'float32', 5));
      const teacherLogits = tf.matMul(teacherHidden, teacherWeight);
      const labels = tf.randomUniform([ROWS], 0, V, 'int32', 6);
      const dy = onGpu(tf.randomNormal([ROWS], 0, 1, 'float32', 7));
      const teacher =
        teacherKind === 'head' ? { hidden: teacherHidden, weight: teacherWeight } : teacherLogits;
      const config = {
        ...extra,
        memoryBudgetBytes: BUDGET,
      } as FusedLinearDistillationLossConfig & { returnComponents?: false };
      const student = { hidden, weight, bias };
      const shapes = checkLinearInputs(labels, student, teacher, 'test');
      const resolved = resolveLinearConfig(config, 'test');
      const plan = planLinearChunks(
        shapes,
        resolved.transform,
        extra.reduction === 'none' ? 'recompute' : 'eager',
        BUDGET,
        maxStorageBufferBindingSize(),
        'test',
      );
      expect(plan.chunks).toBeGreaterThan(1);
      expect(plan.peakExtraBytes).toBeLessThanOrEqual(BUDGET);

      const tensorsBefore = tf.memory().numTensors;
      const returnedBytes = (ROWS * H + H * V + V) * 4;
      const upstream = extra.reduction === 'none' ? dy : undefined;
      releaseDisposedBuffers(); // what earlier tests disposed is not the op's to release
      const tracker = trackGpuBytesInUse();
      try {
        const grads = tf.grads((h: tf.Tensor, w: tf.Tensor, b: tf.Tensor) =>
          fusedLinearDistillationLoss(labels, { hidden: h, weight: w, bias: b }, teacher, config),
        )([hidden, weight, bias], upstream);
        tracker.stop();
        // Read back after tracking: the read's staging buffer is the test's, not the op's.
        expect((await grads[1]!.data()).some((g) => g !== 0)).toBe(true);
        tf.dispose(grads);
      } finally {
        tracker.stop();
      }
      const extraBytes = tracker.peakBytes - tracker.startBytes - returnedBytes;
      console.log(
        `${name}: ${plan.chunks} chunks of ${plan.rowsPerChunk} rows, measured extra ` +
          `${extraBytes} bytes, plan bound ${plan.peakExtraBytes}, budget ${BUDGET}`,
      );
      expect(extraBytes).toBeLessThanOrEqual(plan.peakExtraBytes);
      expect(tf.memory().numTensors).toBe(tensorsBefore);
      tf.dispose([hidden, weight, bias, teacherHidden, teacherWeight, teacherLogits, labels, dy]);
    });
  }
});
