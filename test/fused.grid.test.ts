/**
 * The fused kernels against the float64 reference over the grid of the issue: B × C, each
 * crossed with every temperature, and α, reduction and label kind rotated so that every value
 * of every axis meets every B and every C (bench/core/numerics/suite.ts, shared with the app).
 * Values and both gradients are compared element by element with the tolerances derived in
 * bench/core/numerics/tolerance.ts.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { gpuPlanGridCases, gridCases } from '../src/validation/suite.js';
import { uncapturedGpuErrors, useWebGPU } from './helpers/backend.js';
import { checkCase } from './helpers/cases.js';

beforeAll(useWebGPU);
afterAll(() => expect(uncapturedGpuErrors()).toEqual([]));

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
