/** Writing the distillation report's result files (JSON and two CSVs) in Node. */
import type { DistillReport } from '../core/protocol/report.js';
import { csvRows, curveRows } from '../core/protocol/report-output.js';
import { fileStamp, toCsv, writeFileAtomic } from './lib/results.js';

/** Where {@link writeReport} put the files. */
export interface WrittenFiles {
  json: string;
  csv: string;
  curvesCsv: string;
}

/**
 * Writes the report atomically: JSON (`jsonPath`, else `<outDir>/distill-<preset>-<stamp>.json`),
 * a CSV with one row per run, and a CSV of the per-step loss curves.
 */
export function writeReport(
  report: DistillReport,
  outDir: string,
  jsonPath?: string,
): WrittenFiles {
  const base = `${outDir}/distill-${report.preset}-${fileStamp(new Date(report.timestamp))}`;
  const files: WrittenFiles = {
    json: jsonPath ?? `${base}.json`,
    csv: `${base}.csv`,
    curvesCsv: `${base}-curves.csv`,
  };
  writeFileAtomic(files.json, JSON.stringify(report, null, 2) + '\n');
  writeFileAtomic(files.csv, toCsv(csvRows(report)));
  writeFileAtomic(files.curvesCsv, toCsv(curveRows(report)));
  return files;
}
