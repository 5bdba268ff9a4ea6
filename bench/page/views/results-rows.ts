/**
 * The "row for the results table" download: a report's rows in the committed table's schema
 * (bench/core/results-table/, bench/results/all-results.csv), with its header, ready for
 * `npm run results -- append` or to paste under the table's last line.
 */
import {
  distillResultRows,
  kernelResultRows,
  toResultsCsv,
} from '../../core/results-table/index.js';
import type { DistillReport } from '../../core/protocol.js';
import type { KernelReport } from '../../core/kernel-bench/index.js';

export function resultRowsDownload(report: DistillReport | KernelReport): {
  label: string;
  name: string;
  text: () => string;
  type: string;
} {
  const rows =
    report.kind === 'kernel-benchmark' ? kernelResultRows(report) : distillResultRows(report);
  return {
    label: 'Results-table rows (CSV)',
    name: `results-rows-${report.kind}-${report.timestamp.replace(/[:.]/g, '-')}.csv`,
    text: () => toResultsCsv(rows, { header: true }),
    type: 'text/csv',
  };
}
