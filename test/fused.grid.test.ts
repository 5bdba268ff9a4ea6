/**
 * The fused kernels against the float64 reference over the grid of the issue: B × C, each
 * crossed with every temperature, and α, reduction and label kind rotated so that every value
 * of every axis meets every B and every C. Values and both gradients are compared element by
 * element with the tolerances derived in helpers/tolerance.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { Reduction } from '../src/index.js';
import { uncapturedGpuErrors, useWebGPU } from './helpers/backend.js';
import { checkCase, type CaseSpec } from './helpers/cases.js';

const BATCHES = [1, 7, 64, 300];
const CLASSES = [1, 2, 10, 1000, 1271, 32768];
const TEMPERATURES = [0.5, 1, 4, 10, 20];
const ALPHAS = [0, 0.1, 0.5, 1];
const REDUCTIONS: Reduction[] = ['mean', 'sum', 'none'];
const LABEL_KINDS = ['index', 'dense'] as const;

beforeAll(useWebGPU);
afterAll(() => expect(uncapturedGpuErrors()).toEqual([]));

function gridCases(): CaseSpec[] {
  const cases: CaseSpec[] = [];
  BATCHES.forEach((batch, bi) =>
    CLASSES.forEach((classes, ci) =>
      TEMPERATURES.forEach((temperature, ti) => {
        const k = bi + ci + ti;
        cases.push({
          batch,
          classes,
          temperature,
          alpha: ALPHAS[(k + bi) % ALPHAS.length]!,
          reduction: REDUCTIONS[k % REDUCTIONS.length]!,
          labelKind: LABEL_KINDS[(bi + ti) % 2]!,
          seed: 1000 + cases.length,
          // every gradient path: student only (training), teacher on the tape, teacher lazily
          teacherGrad: (['none', 'tape', 'lazy'] as const)[(ci + ti) % 3]!,
          // labelKind follows ti's parity, upstream ⌊ti/2⌋'s: every (B, C) sees all four pairs
          upstream: (Math.floor(ti / 2) + bi + ci) % 2 === 0 ? 'unit' : 'random',
        });
      }),
    ),
  );
  return cases;
}

describe('fused vs float64 reference (adapter plan)', () => {
  // The 300 × 32768 cases dominate; they run too, but one temperature in two.
  const cases = gridCases().filter((c) => c.batch * c.classes < 1e6 || c.temperature !== 4);
  test.each(
    cases.map((c) => [
      `B=${c.batch} C=${c.classes} T=${c.temperature} α=${c.alpha} ${c.reduction} ${c.labelKind} ${c.teacherGrad} dy=${c.upstream}`,
      c,
    ]),
  )('%s', async (_name, spec) => {
    await checkCase(spec as CaseSpec);
  });
});

describe("fused vs float64 reference ('gpu' plan: workgroup per row, shared-memory trees)", () => {
  // The hardware plan, forced on the software adapter so that CI proves it too.
  const cases = gridCases().filter((c) => c.batch * c.classes < 1e6 || c.temperature === 10);
  test.each(
    cases.map((c) => [
      `B=${c.batch} C=${c.classes} T=${c.temperature} α=${c.alpha} ${c.reduction} ${c.labelKind}`,
      c,
    ]),
  )('%s', async (_name, spec) => {
    await checkCase({ ...(spec as CaseSpec), plan: 'gpu' });
  });
});
