/** The distillation benchmark's report (`npm run bench`, the page) as results-table rows. */
import type { DistillReport, RunName, RunRecord } from '../protocol/report.js';
import { baseRow, RowSink } from './row-sink.js';
import type { ResultRow } from './schema.js';

const RUN_VARIANTS: Record<RunName, string> = {
  teacher: 'teacher',
  distilledFused: 'fused',
  distilledStock: 'stock',
  scratch: 'scratch',
};

/** The distillation report's figures as table rows (complete=false for an incomplete run). */
export function distillResultRows(report: DistillReport): ResultRow[] {
  const st = report.settings;
  const sink = new RowSink(
    baseRow(report, 'distill', {
      preset: report.preset,
      dataset: report.dataset.name,
      config:
        `batch=${st.batchSize} alpha=${st.alpha} T=${st.temperature} ` +
        `teacher_logits=${st.teacherLogits} seed=${st.seed}`,
      complete: report.complete,
    }),
  );
  const px = { x_name: 'preset', x_value: report.preset };
  for (const [name, r] of Object.entries(report.runs) as [RunName, RunRecord | null][]) {
    if (!r) continue;
    const variant = RUN_VARIANTS[name];
    const run = { ...px, variant, complete: r.complete };
    sink.spread({ ...run, metric: 'step_ms', unit: 'ms', clock: 'wall' }, r.stepMs);
    sink.value(
      { ...run, metric: 'dispatches_per_step', unit: 'count', clock: '' },
      r.dispatchesPerStep,
    );
    sink.value({ ...run, metric: 'test_accuracy', unit: 'fraction', clock: '' }, r.testAccuracy);
    sink.value({ ...run, metric: 'test_loss', unit: '', clock: '' }, r.testLoss);
    sink.value({ ...run, metric: 'params', unit: 'count', clock: '' }, r.params);
  }
  const { distilledFused: fused, distilledStock: stock } = report.runs;
  if (fused?.stepMs && stock?.stepMs) {
    sink.ratio(
      {
        ...px,
        metric: 'step_speedup',
        unit: 'x',
        variant: 'stock/fused',
        clock: 'wall',
        complete: fused.complete && stock.complete,
      },
      fused.stepMs,
      stock.stepMs,
    );
  }
  const l = report.lossOnly;
  if (l) {
    const sx = { x_name: 'shape', x_value: `${l.shape[0]}x${l.shape[1]}` };
    for (const variant of ['fused', 'stock'] as const) {
      sink.spread(
        { ...sx, variant, metric: 'loss_alone_ms', unit: 'ms', clock: 'wall' },
        l[variant],
      );
      sink.value(
        { ...sx, variant, metric: 'loss_alone_dispatches', unit: 'count', clock: '' },
        l.dispatches[variant],
      );
    }
    sink.ratio(
      { ...sx, variant: 'stock/fused', metric: 'loss_alone_speedup', unit: 'x', clock: 'wall' },
      l.fused,
      l.stock,
    );
  }
  const c = report.curves;
  if (c && c.steps > 0) {
    const cx = {
      x_name: 'steps',
      x_value: `${c.steps}`,
      variant: 'fused-stock',
      clock: '' as const,
    };
    sink.value({ ...cx, metric: 'curve_max_abs_diff', unit: '' }, c.maxAbsDiff);
    sink.value({ ...cx, metric: 'curve_max_rel_diff', unit: '' }, c.maxRelDiff);
  }
  sink.value(
    { ...px, variant: 'all', metric: 'total_wall_s', unit: 's', clock: 'wall' },
    report.totalWallMs / 1000,
  );
  return sink.rows;
}
