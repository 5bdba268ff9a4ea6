/**
 * The fused kernels against the float64 reference over the grid of the issue: B × C, each
 * crossed with every temperature, and α, reduction and label kind rotated so that every value
 * of every axis meets every B and every C (src/validation/suite.ts, shared with the app).
 * Values and both gradients are compared element by element with the tolerances derived in
 * src/validation/tolerance.ts.
 */
import { describe, test } from 'vitest';
import { gpuPlanGridCases, gridCases } from '../src/validation/suite.js';
import { useCheckedWebGPU } from './helpers/backend.js';
import { checkCase } from './helpers/cases.js';

useCheckedWebGPU();

describe('fused vs float64 reference (adapter plan)', () => {
  // The 300 × 32768 cases dominate; they run too, but one temperature in two.
  test.each(gridCases().map((c) => [c.name, c.spec] as const))('%s', async (_name, spec) => {
    await checkCase(spec);
  });
});

describe("fused vs float64 reference ('hardware' plan: workgroup per row, shared-memory trees)", () => {
  // The hardware plan, forced on the software adapter so that CI proves it too (of the
  // 300 × 32768 cases, T = 10 only).
  test.each(gpuPlanGridCases().map((c) => [c.name, c.spec] as const))('%s', async (_name, spec) => {
    await checkCase(spec);
  });
});
