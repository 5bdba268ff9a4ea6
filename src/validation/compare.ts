/**
 * Element-wise comparison with per-element tolerances, host-neutral: the test helpers turn it
 * into assertions (test/helpers/compare.ts), the app into a pass/fail line per case.
 *
 * An element matches when |actual − expected| ≤ tolerance, or when both are the same special
 * value (NaN and NaN, +Inf and +Inf, −Inf and −Inf); a NaN or an infinity on one side only is a
 * mismatch whatever the tolerance.
 */
export interface Mismatch {
  index: number;
  actual: number;
  expected: number;
  tolerance: number;
}

/** The element furthest out of (or closest to leaving) its tolerance. */
export interface WorstElement {
  index: number;
  /** index ÷ columns and index mod columns (row 0 / column index for a vector). */
  row: number;
  column: number;
  actual: number;
  expected: number;
  /** |actual − expected|: 0 for matching special values, NaN/Inf for special mismatches. */
  diff: number;
  tolerance: number;
  /** diff / tolerance: ≤ 1 within tolerance; Infinity for a NaN/Inf mismatch. */
  ratio: number;
}

export interface Comparison {
  elements: number;
  mismatches: number;
  /** Mismatches where actual or expected is NaN or infinite. */
  nonFiniteMismatches: number;
  /** The element of largest ratio (the first one on ties); null for empty arrays. */
  worst: WorstElement | null;
  /** The first mismatches, in index order (at most `sampleLimit`). */
  firstMismatches: Mismatch[];
}

function sameSpecial(a: number, e: number): boolean | null {
  if (Number.isNaN(e) || Number.isNaN(a)) return Number.isNaN(e) && Number.isNaN(a);
  if (!Number.isFinite(e) || !Number.isFinite(a)) return a === e;
  return null;
}

function checkLengths(actual: ArrayLike<number>, expected: ArrayLike<number>): void {
  if (actual.length !== expected.length) {
    throw new Error(`length mismatch: actual ${actual.length}, expected ${expected.length}`);
  }
}

/** Whether one element matches (see the module's header). */
export function withinTolerance(actual: number, expected: number, tolerance: number): boolean {
  return sameSpecial(actual, expected) ?? Math.abs(actual - expected) <= tolerance;
}

/** Returns the mismatches; `tolerance` is a number (same for all) or one bound per element. */
export function findMismatches(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: number | ArrayLike<number>,
): Mismatch[] {
  checkLengths(actual, expected);
  const out: Mismatch[] = [];
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const tol = typeof tolerance === 'number' ? tolerance : tolerance[i]!;
    if (!withinTolerance(a, e, tol)) out.push({ index: i, actual: a, expected: e, tolerance: tol });
  }
  return out;
}

function isNonFinite(m: { actual: number; expected: number }): boolean {
  return !Number.isFinite(m.actual) || !Number.isFinite(m.expected);
}

/**
 * Compares every element (the same rule as findMismatches) and summarises: counts, the worst
 * element by |diff| / tolerance, and the first `sampleLimit` mismatches.
 * @param columns the row length, to name the worst element's row and column.
 */
export function compareElements(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: number | ArrayLike<number>,
  columns = 1,
  sampleLimit = 8,
): Comparison {
  checkLengths(actual, expected);
  let mismatches = 0;
  let nonFiniteMismatches = 0;
  let worst: WorstElement | null = null;
  const firstMismatches: Mismatch[] = [];
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const tol = typeof tolerance === 'number' ? tolerance : tolerance[i]!;
    const special = sameSpecial(a, e);
    const ok = special ?? Math.abs(a - e) <= tol;
    let diff: number;
    let ratio: number;
    if (special === true) {
      diff = 0;
      ratio = 0;
    } else {
      diff = Math.abs(a - e);
      // NaN/Inf on one side, or a NaN tolerance: as far out as it gets
      ratio = ok
        ? diff === 0
          ? 0
          : diff / tol
        : Number.isFinite(diff / tol)
          ? diff / tol
          : Infinity;
    }
    if (!ok) {
      mismatches++;
      if (isNonFinite({ actual: a, expected: e })) nonFiniteMismatches++;
      if (firstMismatches.length < sampleLimit) {
        firstMismatches.push({ index: i, actual: a, expected: e, tolerance: tol });
      }
    }
    if (worst === null || ratio > worst.ratio) {
      worst = {
        index: i,
        row: Math.floor(i / columns),
        column: i % columns,
        actual: a,
        expected: e,
        diff,
        tolerance: tol,
        ratio,
      };
    }
  }
  return { elements: expected.length, mismatches, nonFiniteMismatches, worst, firstMismatches };
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toExponential(6) : String(x);
}

/**
 * The readable failure report: the count (NaN/Inf mismatches separately), the context, and an
 * aligned actual / expected / |diff| / tolerance table of the first mismatches.
 */
export function formatMismatches(
  what: string,
  comparison: Pick<
    Comparison,
    'elements' | 'mismatches' | 'nonFiniteMismatches' | 'firstMismatches'
  >,
  context: string,
  columns = 1,
): string {
  const rows = comparison.firstMismatches.map((m) => {
    const where =
      columns > 1 ? `[${Math.floor(m.index / columns)}, ${m.index % columns}]` : `[${m.index}]`;
    return `  ${where.padEnd(14)} ${fmt(m.actual).padStart(15)} ${fmt(m.expected).padStart(15)} ${fmt(Math.abs(m.actual - m.expected)).padStart(15)} ${fmt(m.tolerance).padStart(15)}`;
  });
  return [
    `${what}: ${comparison.mismatches} of ${comparison.elements} elements out of tolerance ` +
      `(${comparison.nonFiniteMismatches} NaN/Inf mismatches) — ${context}`,
    `  ${'index'.padEnd(14)} ${'actual'.padStart(15)} ${'expected'.padStart(15)} ${'|diff|'.padStart(15)} ${'tolerance'.padStart(15)}`,
    ...rows,
  ].join('\n');
}
