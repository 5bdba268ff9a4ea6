/**
 * Element-wise comparison with per-element tolerances (bench/core/numerics/compare.ts), as an
 * assertion: a failure names the seed and the case, counts the mismatches (NaN/Inf mismatches
 * separately) and prints the first ones as an aligned actual / expected / |diff| / tolerance
 * table.
 */
import { compareElements, formatMismatches } from '../../src/validation/compare.js';

export { findMismatches, type Mismatch } from '../../src/validation/compare.js';

/** Throws with a readable report when any element is out of tolerance. */
export function expectClose(
  what: string,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: number | ArrayLike<number>,
  context: string,
  columns = 1,
): void {
  const comparison = compareElements(actual, expected, tolerance, columns);
  if (comparison.mismatches === 0) return;
  throw new Error(formatMismatches(what, comparison, context, columns));
}
