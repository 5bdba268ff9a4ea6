/**
 * The results table as CSV text: writing rows (one line each), reading and validating a file
 * (an error names the line), and merging new rows into it without duplicates.
 */
import {
  LEGACY_COLUMNS,
  RESULTS_COLUMNS,
  type BenchmarkKind,
  type ResultClock,
  type ResultHost,
  type ResultRow,
  type ResultsColumn,
} from './schema.js';

function cellText(row: ResultRow, col: ResultsColumn): string {
  const v = row[col];
  const s = v === null ? '' : String(v);
  // A line per row, always: newlines inside a value (a user agent, say) become spaces.
  const flat = s.replace(/[\r\n]+/g, ' ');
  return /[",]/.test(flat) || flat !== flat.trim() ? `"${flat.replace(/"/g, '""')}"` : flat;
}

/** The rows as CSV text (one line each, `\n`-terminated), with the header line by default. */
export function toResultsCsv(
  rows: readonly ResultRow[],
  options: { header?: boolean } = {},
): string {
  const lines = rows.map((r) => RESULTS_COLUMNS.map((c) => cellText(r, c)).join(','));
  if (options.header !== false) lines.unshift(RESULTS_COLUMNS.join(','));
  return lines.length === 0 ? '' : lines.join('\n') + '\n';
}

/** The cells of one CSV line (RFC 4180 quoting); throws on a malformed quote. */
function splitCsvLine(line: string, lineNo: number): string[] {
  const cells: string[] = [];
  let i = 0;
  for (;;) {
    if (line[i] === '"') {
      let cell = '';
      i++;
      for (;;) {
        const q = line.indexOf('"', i);
        if (q < 0) throw new Error(`results CSV line ${lineNo}: unterminated quoted field`);
        cell += line.slice(i, q);
        if (line[q + 1] === '"') {
          cell += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      cells.push(cell);
      if (i === line.length) return cells;
      if (line[i] !== ',') {
        throw new Error(`results CSV line ${lineNo}: text after a closing quote`);
      }
      i++;
    } else {
      const comma = line.indexOf(',', i);
      const end = comma < 0 ? line.length : comma;
      const cell = line.slice(i, end);
      if (cell.includes('"')) throw new Error(`results CSV line ${lineNo}: stray quote`);
      cells.push(cell);
      if (comma < 0) return cells;
      i = comma + 1;
    }
  }
}

const BENCHMARKS: readonly string[] = ['distill', 'kernel'];
const HOSTS: readonly string[] = ['node', 'browser'];
const CLOCKS: readonly string[] = ['wall', 'gpu-timestamp', ''];
const REQUIRED: readonly ResultsColumn[] = [
  'metric',
  'variant',
  'x_name',
  'x_value',
  'adapter_description',
  'commit',
  'timestamp',
];

function rowFromCells(
  cells: string[],
  lineNo: number,
  columns: readonly ResultsColumn[],
): ResultRow {
  const fail = (msg: string): never => {
    throw new Error(`results CSV line ${lineNo}: ${msg}`);
  };
  if (cells.length !== columns.length) {
    fail(`${cells.length} fields, expected ${columns.length}`);
  }
  const rec = {
    note: '',
    ...Object.fromEntries(columns.map((c, i) => [c, cells[i]!])),
  } as Record<ResultsColumn, string>;
  for (const c of REQUIRED) if (rec[c] === '') fail(`${c} is empty`);
  const oneOf = (c: ResultsColumn, allowed: readonly string[]): string =>
    allowed.includes(rec[c]) ? rec[c] : fail(`${c} "${rec[c]}" is not one of ${allowed.join('|')}`);
  const bool = (c: ResultsColumn): boolean => oneOf(c, ['true', 'false']) === 'true';
  const num = (c: ResultsColumn, optional: boolean): number | null => {
    const s = rec[c];
    if (s === '') return optional ? null : fail(`${c} is empty`);
    const x = Number(s);
    return Number.isFinite(x) ? x : fail(`${c} "${s}" is not a number`);
  };
  if (Number.isNaN(Date.parse(rec.timestamp))) fail(`timestamp "${rec.timestamp}" is not a date`);
  const p20 = num('p20', true);
  const p80 = num('p80', true);
  if ((p20 === null) !== (p80 === null)) fail('p20 and p80 must both be set or both empty');
  const n = num('n', true);
  if (n !== null && !(Number.isInteger(n) && n > 0)) fail(`n "${rec.n}" is not a count`);
  return {
    ...rec,
    benchmark: oneOf('benchmark', BENCHMARKS) as BenchmarkKind,
    host: oneOf('host', HOSTS) as ResultHost,
    clock: oneOf('clock', CLOCKS) as ResultClock,
    p50: num('p50', false)!,
    p20,
    p80,
    n,
    software: bool('software'),
    complete: bool('complete'),
  };
}

/**
 * Parses and validates a results CSV: the header must be exactly {@link RESULTS_COLUMNS} (or
 * the same without the last column, `note`, as tables were first written), and
 * each row must have every column, its required fields, numbers where numbers go and a known
 * benchmark, host, clock and booleans. An error names the (1-based) line. Blank lines are
 * skipped; an empty text is an empty table.
 */
export function parseResultsCsv(text: string): ResultRow[] {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const rows: ResultRow[] = [];
  let columns: readonly ResultsColumn[] | null = null;
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const cells = splitCsvLine(line, i + 1);
    if (!columns) {
      const want = RESULTS_COLUMNS.join(',');
      const got = cells.join(',');
      if (got === want) columns = RESULTS_COLUMNS;
      else if (got === LEGACY_COLUMNS.join(',')) columns = LEGACY_COLUMNS;
      else throw new Error(`results CSV line ${i + 1}: header is "${line}", expected "${want}"`);
      return;
    }
    rows.push(rowFromCells(cells, i + 1, columns));
  });
  return rows;
}

/** The key that identifies a row: the same figure of the same run. */
export function resultKey(r: ResultRow): string {
  return [
    r.timestamp,
    r.benchmark,
    r.metric,
    r.variant,
    r.x_value,
    r.host,
    r.adapter_description,
  ].join('\u0000');
}

/** `existing` then the rows of `added` whose key is new (the first of each key wins). */
export function mergeResults(
  existing: readonly ResultRow[],
  added: readonly ResultRow[],
): ResultRow[] {
  const seen = new Set<string>();
  const out: ResultRow[] = [];
  for (const r of [...existing, ...added]) {
    const k = resultKey(r);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(r);
  }
  return out;
}
