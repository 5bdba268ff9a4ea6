/** The kernel benchmark's report as the rows of its own CSV file (`npm run bench:kernel`). */
import { WALL_CLOCK, GPU_CLOCK } from '../lib/loss-timing.js';
import { linearCsvRows } from './linear-format.js';
import { reportDivergence } from './losses.js';
import type { KernelReport } from './report.js';

/**
 * The CSV rows of a report: one per shape, both clocks (GPU cells empty without). The last
 * columns say what was timed: `divergence` (forward-kl in a report from before divergences),
 * `beta` (jsd's β, else empty) and `stock_baseline` (StockBaseline in report.ts).
 */
export function kernelCsvRows(report: KernelReport): Record<string, string | number>[] {
  const cell = (x: number | null | undefined): number | string => x ?? '';
  const what = reportDivergence(report);
  const timed = {
    divergence: what.divergence,
    beta: cell(what.beta),
    stock_baseline: what.baseline,
  };
  const rows: Record<string, string | number>[] = report.results.map((r) => ({
    adapter: report.adapter.description,
    batch: r.batch,
    classes: r.classes,
    fused_p20_ms: r.fused.p20,
    fused_p50_ms: r.fused.p50,
    fused_p80_ms: r.fused.p80,
    stock_p20_ms: r.stock.p20,
    stock_p50_ms: r.stock.p50,
    stock_p80_ms: r.stock.p80,
    ceiling_p50_ms: r.ceiling.p50,
    speedup: r.speedup,
    fused_over_ceiling: r.ceilingRatio,
    fused_dispatches: r.fusedDispatches,
    stock_dispatches: r.stockDispatches,
    wall_clock: WALL_CLOCK,
    fused_gpu_p20_ms: cell(r.fusedGpu?.p20),
    fused_gpu_p50_ms: cell(r.fusedGpu?.p50),
    fused_gpu_p80_ms: cell(r.fusedGpu?.p80),
    stock_gpu_p20_ms: cell(r.stockGpu?.p20),
    stock_gpu_p50_ms: cell(r.stockGpu?.p50),
    stock_gpu_p80_ms: cell(r.stockGpu?.p80),
    ceiling_gpu_p50_ms: cell(r.ceilingGpu?.p50),
    speedup_gpu: cell(r.speedupGpu),
    fused_over_ceiling_gpu: cell(r.ceilingRatioGpu),
    gpu_clock: r.fusedGpu ? GPU_CLOCK : '',
    fused_forward_p50_ms: cell(r.fusedForward?.p50),
    fused_backward_p50_ms: cell(r.fusedBackward?.p50),
    stock_forward_p50_ms: cell(r.stockForward?.p50),
    stock_backward_p50_ms: cell(r.stockBackward?.p50),
    fused_peak_bytes: cell(r.fusedPeakBytes),
    stock_peak_bytes: cell(r.stockPeakBytes),
    error: '',
    ...timed,
  }));
  for (const f of report.failures ?? []) {
    rows.push({
      adapter: report.adapter.description,
      batch: f.batch,
      classes: f.classes,
      fused_p50_ms: cell(f.fused?.both.p50),
      stock_p50_ms: cell(f.stock?.both.p50),
      ceiling_p50_ms: cell(f.ceiling?.p50),
      fused_peak_bytes: cell(f.fused?.peakBytes),
      stock_peak_bytes: cell(f.stock?.peakBytes),
      error: [
        f.fusedError && `fused ${f.fusedError}`,
        f.stockError && `stock ${f.stockError}`,
        f.ceilingError && `ceiling ${f.ceilingError}`,
      ]
        .filter(Boolean)
        .join('; '),
      ...timed,
    });
  }
  for (const r of report.topK ?? []) {
    rows.push({
      adapter: report.adapter.description,
      batch: r.batch,
      classes: r.classes,
      top_k: r.topK,
      fused_sparse_p20_ms: cell(r.sparse?.both.p20),
      fused_sparse_p50_ms: cell(r.sparse?.both.p50),
      fused_sparse_p80_ms: cell(r.sparse?.both.p80),
      fused_p20_ms: cell(r.dense?.both.p20),
      fused_p50_ms: cell(r.dense?.both.p50),
      fused_p80_ms: cell(r.dense?.both.p80),
      stock_p20_ms: cell(r.stock?.both.p20),
      stock_p50_ms: cell(r.stock?.both.p50),
      stock_p80_ms: cell(r.stock?.both.p80),
      sparse_over_dense: cell(r.sparseOverDense),
      speedup: cell(r.stockOverSparse),
      fused_sparse_dispatches: cell(r.sparse?.dispatches),
      fused_dispatches: cell(r.dense?.dispatches),
      stock_dispatches: cell(r.stock?.dispatches),
      wall_clock: WALL_CLOCK,
      fused_sparse_gpu_p50_ms: cell(r.sparse?.gpu?.p50),
      fused_gpu_p50_ms: cell(r.dense?.gpu?.p50),
      stock_gpu_p50_ms: cell(r.stock?.gpu?.p50),
      gpu_clock: r.sparse?.gpu ? GPU_CLOCK : '',
      fused_sparse_peak_bytes: cell(r.sparse?.peakBytes),
      fused_peak_bytes: cell(r.dense?.peakBytes),
      stock_peak_bytes: cell(r.stock?.peakBytes),
      sparse_teacher_bytes_per_row: r.sparseTeacherBytesPerRow,
      dense_teacher_bytes_per_row: r.denseTeacherBytesPerRow,
      error: [
        r.sparseError && `fused sparse ${r.sparseError}`,
        r.denseError && `fused dense ${r.denseError}`,
        r.stockError && `stock sparse ${r.stockError}`,
      ]
        .filter(Boolean)
        .join('; '),
      ...timed,
    });
  }
  for (const r of linearCsvRows(report.adapter.description, report.linear ?? [])) {
    rows.push({ ...r, ...timed });
  }
  // Every row gets every column (toCsv takes the header from the first row); the columns of
  // older files keep their order, what was timed comes last.
  const last = Object.keys(timed);
  const keys = [
    ...[...new Set(rows.flatMap((r) => Object.keys(r)))].filter((k) => !last.includes(k)),
    ...last,
  ];
  return rows.map((r) => Object.fromEntries(keys.map((k) => [k, r[k] ?? ''])));
}
