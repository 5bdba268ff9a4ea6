/**
 * The kernel benchmark's report (`npm run bench:kernel`, the page) as results-table rows: the
 * dense shapes, the shapes with a failed or skipped side, and the top-K shapes. The report is
 * read through views of its one schema (bench/core/kernel-bench/report.ts) that keep only the
 * fields the rows need, so that older reports, without the fields added since, read too.
 */
import type {
  KernelReport,
  KernelShapeFailure,
  KernelShapeResult,
  KernelSideFigures,
  LegacyKernelReportFields,
  TopKShapeResult,
} from '../kernel-bench/report.js';
import type { Spread } from '../lib/stats.js';
import { addLinearRows, type LinearShapeInput } from './linear-rows.js';
import { baseRow, RowSink, type AdapterFields, type ReportProvenance } from './row-sink.js';
import type { ResultRow } from './schema.js';

/** One shape of a kernel benchmark: the fields the table reads. */
export type KernelShapeInput = Pick<
  KernelShapeResult,
  | 'batch'
  | 'classes'
  | 'fused'
  | 'stock'
  | 'ceiling'
  | 'fusedDispatches'
  | 'stockDispatches'
  | 'fusedGBps'
  | 'ceilingGBps'
> &
  Partial<
    Pick<
      KernelShapeResult,
      | 'fusedGpu'
      | 'stockGpu'
      | 'ceilingGpu'
      | 'fusedForward'
      | 'stockForward'
      | 'fusedBackward'
      | 'stockBackward'
      | 'fusedPeakBytes'
      | 'stockPeakBytes'
    >
  >;

/** One side of a shape that could not be measured whole, or of a top-K shape. */
export type KernelSideInput = Pick<KernelSideFigures, 'both' | 'dispatches'> &
  Partial<Pick<KernelSideFigures, 'forward' | 'backward' | 'gpu' | 'peakBytes'>>;

/** A shape with a failed or skipped side. */
export type KernelFailureInput = Pick<
  KernelShapeFailure,
  'batch' | 'classes' | 'fusedError' | 'stockError' | 'ceiling' | 'fusedGBps' | 'ceilingGBps'
> &
  Partial<Pick<KernelShapeFailure, 'ceilingError' | 'ceilingGpu'>> & {
    fused: KernelSideInput | null;
    stock: KernelSideInput | null;
  };

/** One sparse (top-K) teacher shape. */
export type TopKShapeInput = Pick<
  TopKShapeResult,
  | 'batch'
  | 'classes'
  | 'topK'
  | 'denseTeacherBytesPerRow'
  | 'sparseTeacherBytesPerRow'
  | 'sparseError'
  | 'denseError'
  | 'stockError'
> & {
  sparse: KernelSideInput | null;
  dense: KernelSideInput | null;
  stock: KernelSideInput | null;
};

/** A kernel benchmark's report as the table reads it: bench:kernel's JSON and the page's. */
export interface KernelReportInput extends ReportProvenance, LegacyKernelReportFields {
  kind: KernelReport['kind'];
  adapter: AdapterFields;
  /** Absent in the first reports, which were always complete. */
  complete?: boolean;
  /** The loss settings (the first reports: `config` and `seed` instead). */
  settings?: Partial<
    Pick<
      KernelReport['settings'],
      'alpha' | 'temperature' | 'seed' | 'sweep' | 'divergence' | 'beta' | 'linear'
    >
  >;
  results: readonly KernelShapeInput[];
  failures?: readonly KernelFailureInput[];
  topK?: readonly TopKShapeInput[];
  /** Linear-head sizes (absent in older reports and without `--linear`). */
  linear?: readonly LinearShapeInput[];
}

/** The kernel benchmark's figures as table rows, per shape. */
export function kernelResultRows(report: KernelReportInput): ResultRow[] {
  const alpha = report.settings?.alpha ?? report.config?.alpha;
  const temperature = report.settings?.temperature ?? report.config?.temperature;
  const seed = report.settings?.seed ?? report.seed;
  const sweep = report.settings?.sweep ?? null;
  const divergence = report.settings?.divergence ?? 'forward-kl';
  const beta = report.settings?.beta;
  const config = [
    alpha === undefined ? '' : `alpha=${alpha}`,
    temperature === undefined ? '' : `T=${temperature}`,
    seed === undefined ? '' : `seed=${seed}`,
    sweep ? `sweep=${sweep}` : '',
    // forward KL's rows read as they did before divergences
    divergence === 'forward-kl' ? '' : `divergence=${divergence}`,
    divergence === 'jsd' && typeof beta === 'number' ? `beta=${beta}` : '',
    // the linear mode's settings that change its figures
    typeof report.settings?.linear?.opBudgetBytes === 'number'
      ? `linear_op_budget=${report.settings.linear.opBudgetBytes}`
      : '',
    report.settings?.linear?.tryPastBinding ? 'linear_past_binding=true' : '',
  ]
    .filter((s) => s !== '')
    .join(' ');
  const sink = new RowSink(
    baseRow(report, 'kernel', {
      preset: '',
      dataset: '',
      config,
      complete: report.complete !== false,
    }),
  );
  type Side = 'fused' | 'stock';
  const sideRows = (
    sx: { x_name: string; x_value: string },
    variant: Side,
    f: {
      both: Spread;
      forward?: Spread | null;
      backward?: Spread | null;
      gpu?: Spread | null;
      dispatches: number;
      peakBytes?: number | null;
      gbps?: number | null;
    },
  ) => {
    sink.spread({ ...sx, variant, metric: 'time_ms', unit: 'ms', clock: 'wall' }, f.both);
    sink.spread({ ...sx, variant, metric: 'forward_ms', unit: 'ms', clock: 'wall' }, f.forward);
    sink.spread({ ...sx, variant, metric: 'backward_ms', unit: 'ms', clock: 'wall' }, f.backward);
    sink.spread(
      { ...sx, variant, metric: 'gpu_time_ms', unit: 'ms', clock: 'gpu-timestamp' },
      f.gpu,
    );
    sink.value({ ...sx, variant, metric: 'dispatches', unit: 'count', clock: '' }, f.dispatches);
    sink.value({ ...sx, variant, metric: 'peak_bytes', unit: 'bytes', clock: '' }, f.peakBytes);
    if (variant === 'fused') {
      sink.value({ ...sx, variant, metric: 'gbps', unit: 'GB/s', clock: 'wall' }, f.gbps);
    }
  };
  for (const r of report.results) {
    const sx = { x_name: 'shape', x_value: `${r.batch}x${r.classes}` };
    const wall = { ...sx, metric: 'time_ms' as const, unit: 'ms', clock: 'wall' as const };
    sink.spread({ ...wall, variant: 'fused' }, r.fused);
    sink.spread({ ...wall, variant: 'stock' }, r.stock);
    sink.spread({ ...wall, variant: 'ceiling' }, r.ceiling);
    const gpu = {
      ...sx,
      metric: 'gpu_time_ms' as const,
      unit: 'ms',
      clock: 'gpu-timestamp' as const,
    };
    sink.spread({ ...gpu, variant: 'fused' }, r.fusedGpu);
    sink.spread({ ...gpu, variant: 'stock' }, r.stockGpu);
    sink.spread({ ...gpu, variant: 'ceiling' }, r.ceilingGpu);
    if (r.fusedGpu && r.stockGpu) {
      sink.ratio(
        { ...sx, metric: 'gpu_speedup', unit: 'x', variant: 'stock/fused', clock: 'gpu-timestamp' },
        r.fusedGpu,
        r.stockGpu,
      );
    }
    const count = { ...sx, metric: 'dispatches' as const, unit: 'count', clock: '' as const };
    sink.value({ ...count, variant: 'fused' }, r.fusedDispatches);
    sink.value({ ...count, variant: 'stock' }, r.stockDispatches);
    sink.ratio(
      { ...sx, metric: 'speedup', unit: 'x', variant: 'stock/fused', clock: 'wall' },
      r.fused,
      r.stock,
    );
    sink.value(
      { ...sx, metric: 'ceiling_ratio', unit: 'x', variant: 'fused/ceiling', clock: 'wall' },
      r.fused.p50 / r.ceiling.p50,
    );
    const gbps = { ...sx, metric: 'gbps' as const, unit: 'GB/s', clock: 'wall' as const };
    sink.value({ ...gbps, variant: 'fused' }, r.fusedGBps);
    sink.value({ ...gbps, variant: 'ceiling' }, r.ceilingGBps);
    for (const [variant, fw, bw, peak] of [
      ['fused', r.fusedForward, r.fusedBackward, r.fusedPeakBytes],
      ['stock', r.stockForward, r.stockBackward, r.stockPeakBytes],
    ] as const) {
      sink.spread({ ...sx, variant, metric: 'forward_ms', unit: 'ms', clock: 'wall' }, fw);
      sink.spread({ ...sx, variant, metric: 'backward_ms', unit: 'ms', clock: 'wall' }, bw);
      sink.value({ ...sx, variant, metric: 'peak_bytes', unit: 'bytes', clock: '' }, peak);
    }
  }
  for (const f of report.failures ?? []) {
    const sx = { x_name: 'shape', x_value: `${f.batch}x${f.classes}` };
    if (f.fused) sideRows(sx, 'fused', { ...f.fused, gbps: f.fusedGBps });
    if (f.stock) sideRows(sx, 'stock', f.stock);
    if (f.ceiling) {
      sink.spread(
        { ...sx, variant: 'ceiling', metric: 'time_ms', unit: 'ms', clock: 'wall' },
        f.ceiling,
      );
      sink.spread(
        { ...sx, variant: 'ceiling', metric: 'gpu_time_ms', unit: 'ms', clock: 'gpu-timestamp' },
        f.ceilingGpu,
      );
      sink.value(
        { ...sx, variant: 'ceiling', metric: 'gbps', unit: 'GB/s', clock: 'wall' },
        f.ceilingGBps,
      );
    }
    if (f.fused && f.stock) {
      sink.ratio(
        { ...sx, metric: 'speedup', unit: 'x', variant: 'stock/fused', clock: 'wall' },
        f.fused.both,
        f.stock.both,
      );
    }
    if (f.fused && f.ceiling) {
      sink.value(
        { ...sx, metric: 'ceiling_ratio', unit: 'x', variant: 'fused/ceiling', clock: 'wall' },
        f.fused.both.p50 / f.ceiling.p50,
      );
    }
    for (const [variant, error] of [
      ['fused', f.fusedError],
      ['stock', f.stockError],
      ['ceiling', f.ceilingError ?? null],
    ] as const) {
      if (error === null) continue;
      sink.value({ ...sx, variant, metric: 'failure', unit: 'count', clock: '', note: error }, 1);
    }
  }
  for (const r of report.topK ?? []) {
    const sx = { x_name: 'topk_shape', x_value: `${r.batch}x${r.classes}k${r.topK}` };
    for (const [variant, side, error] of [
      ['fused-sparse', r.sparse, r.sparseError],
      ['fused-dense', r.dense, r.denseError],
      ['stock-sparse', r.stock, r.stockError],
    ] as const) {
      if (side) {
        sink.spread({ ...sx, variant, metric: 'time_ms', unit: 'ms', clock: 'wall' }, side.both);
        sink.spread(
          { ...sx, variant, metric: 'gpu_time_ms', unit: 'ms', clock: 'gpu-timestamp' },
          side.gpu,
        );
        sink.value(
          { ...sx, variant, metric: 'dispatches', unit: 'count', clock: '' },
          side.dispatches,
        );
        sink.value(
          { ...sx, variant, metric: 'peak_bytes', unit: 'bytes', clock: '' },
          side.peakBytes,
        );
      }
      if (error !== null) {
        sink.value({ ...sx, variant, metric: 'failure', unit: 'count', clock: '', note: error }, 1);
      }
    }
    const { sparse, dense, stock } = r;
    if (sparse && dense) {
      const v = 'fused-sparse/fused-dense';
      // ratio(f, denominator, numerator): sparse / dense, band sparse p20 / dense p80 … .
      sink.ratio(
        { ...sx, metric: 'time_ratio', unit: 'x', variant: v, clock: 'wall' },
        dense.both,
        sparse.both,
      );
      if (sparse.gpu && dense.gpu) {
        sink.ratio(
          { ...sx, metric: 'gpu_time_ratio', unit: 'x', variant: v, clock: 'gpu-timestamp' },
          dense.gpu,
          sparse.gpu,
        );
      }
    }
    if (sparse && stock) {
      const v = 'stock-sparse/fused-sparse';
      sink.ratio(
        { ...sx, metric: 'speedup', unit: 'x', variant: v, clock: 'wall' },
        sparse.both,
        stock.both,
      );
      if (sparse.gpu && stock.gpu) {
        sink.ratio(
          { ...sx, metric: 'gpu_speedup', unit: 'x', variant: v, clock: 'gpu-timestamp' },
          sparse.gpu,
          stock.gpu,
        );
      }
    }
    const bytes = {
      ...sx,
      metric: 'teacher_bytes_per_row' as const,
      unit: 'bytes',
      clock: '' as const,
    };
    sink.value({ ...bytes, variant: 'sparse' }, r.sparseTeacherBytesPerRow);
    sink.value({ ...bytes, variant: 'dense' }, r.denseTeacherBytesPerRow);
  }
  addLinearRows(sink, report.linear ?? []);
  return sink.rows;
}
