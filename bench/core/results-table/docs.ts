/**
 * The generated result tables in the docs: each section lives between
 * `<!-- results:NAME:begin -->` and `<!-- results:NAME:end -->` in its file
 * ({@link RESULTS_SECTION_FILES}); `npm run results -- docs` rewrites them from the committed
 * table and `npm run results -- check` (and test/results-table.test.ts) fails when one differs.
 */
import { distillResultsSection } from './distill-section.js';
import { kernelResultsSection, vocabResultsSection } from './kernel-section.js';
import { linearResultsSection } from './linear-section.js';
import type { ResultRow } from './schema.js';
import { topKResultsSection } from './top-k-section.js';

/** The generated sections, by name. */
export const RESULTS_SECTIONS = ['distill', 'kernel', 'vocab', 'topk', 'linear'] as const;
export type ResultsSection = (typeof RESULTS_SECTIONS)[number];

/** The file that holds each section, relative to the repository root. */
export const RESULTS_SECTION_FILES: Readonly<Record<ResultsSection, string>> = {
  distill: 'docs/mnist-benchmark.md',
  kernel: 'docs/kernel-benchmark.md',
  vocab: 'docs/kernel-benchmark.md',
  topk: 'docs/top-k-teachers.md',
  linear: 'docs/kernel-benchmark.md',
};

/** Each file with generated sections, and its sections in {@link RESULTS_SECTIONS} order. */
export function resultsDocs(): { file: string; sections: ResultsSection[] }[] {
  const files = [...new Set(RESULTS_SECTIONS.map((name) => RESULTS_SECTION_FILES[name]))];
  return files.map((file) => ({
    file,
    sections: RESULTS_SECTIONS.filter((name) => RESULTS_SECTION_FILES[name] === file),
  }));
}

/** A generated section's text, without its markers. */
export function resultsSection(name: ResultsSection, rows: readonly ResultRow[]): string {
  if (name === 'distill') return distillResultsSection(rows);
  if (name === 'vocab') return vocabResultsSection(rows);
  if (name === 'topk') return topKResultsSection(rows);
  if (name === 'linear') return linearResultsSection(rows);
  return kernelResultsSection(rows);
}

function markers(name: ResultsSection): [string, string] {
  return [`<!-- results:${name}:begin -->`, `<!-- results:${name}:end -->`];
}

/** The text between a section's markers (trimmed); an error when the markers are missing. */
export function resultsSectionText(doc: string, name: ResultsSection): string {
  const [begin, end] = markers(name);
  const i = doc.indexOf(begin);
  const j = doc.indexOf(end);
  if (i < 0 || j < i) throw new Error(`no ${begin} … ${end} section`);
  return doc.slice(i + begin.length, j).trim();
}

/** `doc` with each of `sections` replaced by what the rows give; nothing else changes. */
export function updateResultsSections(
  doc: string,
  rows: readonly ResultRow[],
  sections: readonly ResultsSection[],
): string {
  let out = doc;
  for (const name of sections) {
    const [begin, end] = markers(name);
    resultsSectionText(out, name); // throws when the markers are missing
    const i = out.indexOf(begin) + begin.length;
    const j = out.indexOf(end);
    out = `${out.slice(0, i)}\n\n${resultsSection(name, rows)}\n\n${out.slice(j)}`;
  }
  return out;
}

/** Those of `sections` whose text in `doc` differs from what the rows give (empty: current). */
export function staleResultsSections(
  doc: string,
  rows: readonly ResultRow[],
  sections: readonly ResultsSection[],
): ResultsSection[] {
  return sections.filter((name) => resultsSectionText(doc, name) !== resultsSection(name, rows));
}
