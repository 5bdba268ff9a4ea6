/**
 * `fusedLinearDistillationLoss` on the tfjs cpu backend (no fused kernels: the op falls back to
 * the stock composition) against the float64 reference, within the same derived tolerances
 * (src/validation/tolerance-linear.ts): a handful of cases of test/helpers/linear-cases.ts's
 * table (every teacher kind, divergence and reduction once, masks, ignoreIndex, chunks).
 */
import '@tensorflow/tfjs-layers';
import { beforeAll, describe, test } from 'vitest';
import { useCpu } from './helpers/backend.js';
import { linearCaseTable, runLinearCase, wrongReferenceCaught } from './helpers/linear-cases.js';

beforeAll(useCpu);

describe('fusedLinearDistillationLoss on the cpu backend against the float64 reference', () => {
  test.each(linearCaseTable('cpu'))('$name', async (spec) => {
    await runLinearCase(spec, 2468);
  });

  test('a wrong reference fails the comparison', async () => {
    await wrongReferenceCaught(99);
  });
});
