/** The cells of the docs' result tables, and a Markdown table laid out as Prettier lays it out. */
import { formatBytes, formatMs, type Spread } from '../lib/stats.js';
import type { ResultRow } from './schema.js';

/** An empty cell. */
export const DASH = '—';

/** Milliseconds, with the p20–p80 band when the row has one. */
export function msCell(r: ResultRow | undefined): string {
  if (!r) return DASH;
  if (r.p20 === null || r.p80 === null) return `${msFigure(r.p50)} ms`;
  const s: Spread = { p20: r.p20, p50: r.p50, p80: r.p80, n: r.n ?? 0 };
  return formatMs(s);
}

/** A time as {@link formatMs} prints it: 3 significant digits or so. */
function msFigure(x: number): string {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

function times(x: number): string {
  return `×${x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)}`;
}

/** A ratio `×N`, with its band when the row has one. */
export function ratioCell(r: ResultRow | undefined): string {
  if (!r) return DASH;
  const band =
    r.p20 === null || r.p80 === null ? '' : ` [${times(r.p20).slice(1)}–${times(r.p80).slice(1)}]`;
  return times(r.p50) + band;
}

/** A count with thousands separators. */
export function countCell(r: ResultRow | undefined): string {
  if (!r) return DASH;
  return String(Math.round(r.p50)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** A fraction as a percentage. */
export function pctCell(r: ResultRow | undefined): string {
  return r ? `${(100 * r.p50).toFixed(2)} %` : DASH;
}

/** The median with `digits` decimals. */
export function fixedCell(r: ResultRow | undefined, digits: number): string {
  return r ? r.p50.toFixed(digits) : DASH;
}

/** The host: the browser, or Node and its version. */
export function hostCell(r: ResultRow): string {
  if (r.host === 'browser') return r.browser || 'browser';
  return r.node_version ? `Node ${r.node_version}` : 'Node';
}

/** The run's date (UTC). */
export function dateCell(r: ResultRow): string {
  return r.timestamp.slice(0, 10);
}

/** A Markdown table laid out as Prettier lays it out (padded cells, a dash rule). */
export function markdownTable(header: readonly string[], rows: readonly string[][]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const all = [header.map(esc), ...rows.map((r) => r.map(esc))];
  const widths = header.map((_, i) => Math.max(3, ...all.map((r) => [...(r[i] ?? '')].length)));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((c, i) => c + ' '.repeat(widths[i]! - [...c].length)).join(' | ')} |`;
  return [line(all[0]!), line(widths.map((w) => '-'.repeat(w))), ...all.slice(1).map(line)].join(
    '\n',
  );
}

/** The text of a section with no complete run. */
export const NO_ROWS = '_No complete run in bench/results/all-results.csv yet._';

/** Bytes, as formatBytes prints them. */
export function bytesCell(r: ResultRow | undefined): string {
  return r ? formatBytes(r.p50) : DASH;
}
