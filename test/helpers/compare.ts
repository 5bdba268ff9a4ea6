/**
 * Element-wise comparison with per-element tolerances. A failure names the seed and the case,
 * counts the mismatches (NaN/Inf mismatches separately) and prints the first ones as an
 * aligned actual / expected / |diff| / tolerance table.
 */
export interface Mismatch {
  index: number;
  actual: number;
  expected: number;
  tolerance: number;
}

function sameSpecial(a: number, e: number): boolean | null {
  if (Number.isNaN(e) || Number.isNaN(a)) return Number.isNaN(e) && Number.isNaN(a);
  if (!Number.isFinite(e) || !Number.isFinite(a)) return a === e;
  return null;
}

/** Returns the mismatches; `tolerance` is a number (same for all) or one bound per element. */
export function findMismatches(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: number | ArrayLike<number>,
): Mismatch[] {
  if (actual.length !== expected.length) {
    throw new Error(`length mismatch: actual ${actual.length}, expected ${expected.length}`);
  }
  const out: Mismatch[] = [];
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const tol = typeof tolerance === 'number' ? tolerance : tolerance[i]!;
    const special = sameSpecial(a, e);
    const ok = special ?? Math.abs(a - e) <= tol;
    if (!ok) out.push({ index: i, actual: a, expected: e, tolerance: tol });
  }
  return out;
}

function fmt(x: number): string {
  return Number.isFinite(x) ? x.toExponential(6) : String(x);
}

/** Throws with a readable report when any element is out of tolerance. */
export function expectClose(
  what: string,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: number | ArrayLike<number>,
  context: string,
  columns = 1,
): void {
  const bad = findMismatches(actual, expected, tolerance);
  if (bad.length === 0) return;
  const special = bad.filter((m) => !Number.isFinite(m.actual) || !Number.isFinite(m.expected));
  const rows = bad.slice(0, 8).map((m) => {
    const where =
      columns > 1 ? `[${Math.floor(m.index / columns)}, ${m.index % columns}]` : `[${m.index}]`;
    return `  ${where.padEnd(14)} ${fmt(m.actual).padStart(15)} ${fmt(m.expected).padStart(15)} ${fmt(Math.abs(m.actual - m.expected)).padStart(15)} ${fmt(m.tolerance).padStart(15)}`;
  });
  throw new Error(
    [
      `${what}: ${bad.length} of ${expected.length} elements out of tolerance ` +
        `(${special.length} NaN/Inf mismatches) — ${context}`,
      `  ${'index'.padEnd(14)} ${'actual'.padStart(15)} ${'expected'.padStart(15)} ${'|diff|'.padStart(15)} ${'tolerance'.padStart(15)}`,
      ...rows,
    ].join('\n'),
  );
}
