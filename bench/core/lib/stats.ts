/** Order statistics for benchmark samples: medians with spread, never means alone. */

export interface Spread {
  readonly p20: number;
  readonly p50: number;
  readonly p80: number;
  readonly n: number;
}

/** Linear-interpolated quantile of unsorted samples, q in [0, 1]. */
export function quantile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function spread(samples: readonly number[]): Spread {
  return {
    p20: quantile(samples, 0.2),
    p50: quantile(samples, 0.5),
    p80: quantile(samples, 0.8),
    n: samples.length,
  };
}

/** "12.3 ms [11.9–13.0]": median with the p20–p80 band. */
export function formatMs(s: Spread): string {
  const f = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
  return `${f(s.p50)} ms [${f(s.p20)}–${f(s.p80)}]`;
}

/** "1.50 GiB", "64.0 MiB", "512 KiB": binary units, about 3 significant digits. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let x = bytes;
  let u = 0;
  while (Math.abs(x) >= 1024 && u < units.length - 1) {
    x /= 1024;
    u++;
  }
  const digits = u === 0 || x >= 100 ? 0 : x >= 10 ? 1 : 2;
  return `${x.toFixed(digits)} ${units[u]}`;
}
