/** A benchmark report of either kind as results-table rows, by its `kind`. */
import type { DistillReport } from '../protocol/report.js';
import { distillResultRows } from './distill-rows.js';
import { kernelResultRows, type KernelReportInput } from './kernel-rows.js';
import type { ResultRow } from './schema.js';

/** A report of either kind as table rows, by its `kind`; an error for anything else. */
export function reportResultRows(report: unknown): ResultRow[] {
  const kind = (report as { kind?: unknown } | null)?.kind;
  if (kind === 'distill-benchmark') return distillResultRows(report as DistillReport);
  if (kind === 'kernel-benchmark') return kernelResultRows(report as KernelReportInput);
  throw new Error(
    `not a benchmark report: kind ${JSON.stringify(kind)} (expected "distill-benchmark" or ` +
      `"kernel-benchmark")`,
  );
}
