/**
 * The results table that accumulates across devices and runs (bench/results/all-results.csv),
 * host-neutral; its columns are documented in schema.ts. The modules, one job each:
 *   schema.ts           the columns and a row's type;
 *   row-sink.ts         the provenance every row repeats, and the sink that rounds figures;
 *   distill-rows.ts     a distillation report as rows; kernel-rows.ts a kernel report as rows;
 *   report-rows.ts      a report of either kind as rows;
 *   csv.ts              the CSV text, its validation, and merging without duplicates;
 *   runs.ts             rows grouped by run, and the latest complete run per environment;
 *   markdown.ts         the tables' cells and Markdown layout;
 *   linear-rows.ts      the linear-head sizes of a kernel report as rows;
 *   distill-section.ts, kernel-section.ts, top-k-section.ts, linear-section.ts   the
 *                       generated sections;
 *   docs.ts             which doc file holds which section, and rewriting or checking them;
 *   vocab-plot.ts       the vocabulary sweep's plot (Vega-Lite).
 */
export * from './schema.js';
export type { AdapterFields, ReportProvenance } from './row-sink.js';
export { distillResultRows } from './distill-rows.js';
export * from './kernel-rows.js';
export { reportResultRows } from './report-rows.js';
export * from './csv.js';
export { kernelRowDivergence, latestVocabSweeps, type RunGroup } from './runs.js';
export { markdownTable } from './markdown.js';
export { distillResultsSection } from './distill-section.js';
export { kernelResultsSection, vocabResultsSection } from './kernel-section.js';
export { topKResultsSection } from './top-k-section.js';
export { linearResultsSection } from './linear-section.js';
export { addLinearRows, type LinearShapeInput } from './linear-rows.js';
export * from './docs.js';
export { vocabPlotSpec } from './vocab-plot.js';
