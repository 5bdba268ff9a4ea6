/**
 * Element-wise comparison with per-element tolerances (src/validation/compare.ts), as an
 * assertion: a failure names the seed and the case, counts the mismatches (NaN/Inf mismatches
 * separately) and prints the first ones as an aligned actual / expected / |diff| / tolerance
 * table.
 */
import { expect } from 'vitest';
import { compareElements, formatMismatches } from '../../src/validation/compare.js';

export { findMismatches, type Mismatch } from '../../src/validation/compare.js';

/** An assertion: throws with a readable report when any element is out of tolerance. */
export function expectClose(
  what: string,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: number | ArrayLike<number>,
  context: string,
  columns = 1,
): void {
  const comparison = compareElements(actual, expected, tolerance, columns);
  if (comparison.mismatches > 0) {
    throw new Error(formatMismatches(what, comparison, context, columns));
  }
  expect(comparison.mismatches, `${what} — ${context}`).toBe(0);
}
