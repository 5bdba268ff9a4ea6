/**
 * The committed results table in Node: reading bench/results/all-results.csv and appending a
 * report's rows to it atomically, without duplicates. The schema, the rows and the CSV text are
 * host-neutral: bench/core/results-table/.
 */
import { existsSync, readFileSync } from 'node:fs';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import {
  mergeResults,
  parseResultsCsv,
  toResultsCsv,
  type ResultRow,
  reportResultRows,
  vocabPlotSpec,
} from '../core/results-table/index.js';
import { writeFileAtomic } from './lib/results.js';

/** The committed table, relative to the repository root. */
export const RESULTS_FILE = 'bench/results/all-results.csv';
/** The vocabulary sweep's plot, generated from the table (`npm run results -- plot`). */
export const VOCAB_PLOT_FILE = 'docs/vocab-sweep.svg';

/**
 * The vocabulary sweep's plot (bench/core/results-table/vocab-plot.ts) as SVG text, rendered
 * by Vega in Node (no canvas: text widths are estimated, so the output depends only on the
 * rows); null when the table holds no complete sweep.
 */
export async function renderVocabPlotSvg(rows: readonly ResultRow[]): Promise<string | null> {
  const spec = vocabPlotSpec(rows);
  if (!spec) return null;
  const { spec: vgSpec } = compile(spec as unknown as TopLevelSpec);
  const view = new vega.View(vega.parse(vgSpec), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    return svg.endsWith('\n') ? svg : svg + '\n';
  } finally {
    view.finalize();
  }
}

/** The table's rows; an empty table when the file does not exist. Throws on a bad file. */
export function readResultsFile(path: string = RESULTS_FILE): ResultRow[] {
  if (!existsSync(path)) return [];
  try {
    return parseResultsCsv(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`${path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/**
 * Appends `rows` to the table at `path` (created with its header when missing), skipping rows
 * already there (same run, metric, variant and x), and rewrites it atomically. Returns how
 * many rows were new.
 */
export function appendResultsFile(path: string, rows: readonly ResultRow[]): number {
  const existing = readResultsFile(path);
  const merged = mergeResults(existing, rows);
  if (merged.length !== existing.length || !existsSync(path)) {
    writeFileAtomic(path, toResultsCsv(merged));
  }
  return merged.length - existing.length;
}

/**
 * `--append-results` of the CLIs: adds a finished report's rows to the committed table and says
 * how to regenerate the docs' tables from it.
 */
export function appendReportToResults(report: unknown, path: string = RESULTS_FILE): string {
  const added = appendResultsFile(path, reportResultRows(report));
  return (
    `results table: ${added} new row(s) in ${path}; ` +
    "run `npm run results -- docs` to regenerate the docs' tables from it"
  );
}
