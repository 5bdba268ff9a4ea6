/**
 * The distillation report's output: the rows of the result files (a CSV row per run, a CSV of
 * the per-step loss curves) and the printed summary with its text tables. Writing the files is
 * the host's (bench/node/report-files.ts).
 */
import { formatMs } from '../lib/stats.js';
import type { DistillReport, PhaseTimes, RunName, RunRecord } from './report.js';

/** One CSV row per run that started. */
export function csvRows(report: DistillReport): Record<string, string | number | boolean>[] {
  const rows: Record<string, string | number | boolean>[] = [];
  for (const [name, r] of Object.entries(report.runs) as [RunName, RunRecord | null][]) {
    if (!r) continue;
    rows.push({
      preset: report.preset,
      adapter: report.adapter.description,
      complete: report.complete,
      run: name,
      loss: r.loss,
      filters: r.filters.join('x'),
      params: r.params,
      epochs: r.epochs.length,
      steps: r.steps,
      test_accuracy: r.testAccuracy ?? '',
      test_loss: r.testLoss ?? '',
      step_p20_ms: r.stepMs?.p20 ?? '',
      step_p50_ms: r.stepMs?.p50 ?? '',
      step_p80_ms: r.stepMs?.p80 ?? '',
      dispatches_per_step: r.dispatchesPerStep ?? '',
      end_tensors: r.epochs.at(-1)?.memory.numTensors ?? '',
      memory_growth_flagged: r.memoryGrowth?.flagged ?? '',
      wall_ms: r.wallMs,
    });
  }
  return rows;
}

/** One CSV row per distillation step: fused and stock loss side by side (and scratch). */
export function curveRows(report: DistillReport): Record<string, string | number>[] {
  const f = report.runs.distilledFused?.lossCurve ?? [];
  const s = report.runs.distilledStock?.lossCurve ?? [];
  const c = report.runs.scratch?.lossCurve ?? [];
  const n = Math.max(f.length, s.length, c.length);
  return Array.from({ length: n }, (_, i) => ({
    step: i + 1,
    fused_loss: f[i] ?? '',
    stock_loss: s[i] ?? '',
    scratch_loss: c[i] ?? '',
  }));
}

/** Left-aligned text columns with a header rule. */
export function textTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

const RUN_LABELS: Record<RunName, string> = {
  teacher: 'teacher',
  distilledFused: 'student, distilled (fused loss)',
  distilledStock: 'student, distilled (stock loss)',
  scratch: 'student from scratch',
};

function pct(x: number | null): string {
  return x === null ? '—' : `${(100 * x).toFixed(2)} %`;
}

function num(x: number | null | undefined, digits = 4): string {
  return x === null || x === undefined || Number.isNaN(x) ? '—' : x.toFixed(digits);
}

function memoryCell(r: RunRecord): string {
  const end = r.epochs.at(-1)?.memory;
  if (!end) return '—';
  const g = r.memoryGrowth;
  const growth = !g ? '' : g.flagged ? ` GREW +${g.tensors} t/+${g.bytes} B` : ' (flat)';
  return `${end.numTensors} t, ${(end.numBytes / 1e6).toFixed(1)} MB${growth}`;
}

function runsTable(report: DistillReport): string {
  const rows = (Object.keys(RUN_LABELS) as RunName[]).map((name) => {
    const r = report.runs[name];
    if (!r) return [RUN_LABELS[name], '—', 'not run', '—', '—', '—', '—', '—'];
    const done = r.complete ? `${r.epochs.length} ep / ${r.steps}` : `${r.steps} (cut)`;
    return [
      RUN_LABELS[name],
      `${r.params}`,
      r.source === 'loaded' ? 'loaded' : done,
      pct(r.testAccuracy),
      num(r.testLoss),
      r.stepMs ? formatMs(r.stepMs) : '—',
      r.dispatchesPerStep === null ? '—' : `${r.dispatchesPerStep}`,
      memoryCell(r),
    ];
  });
  const header = ['model', 'params', 'epochs/steps', 'test acc', 'test loss'];
  return textTable([...header, 'step [p20–p80]', 'dispatches/step', 'tfjs memory at end'], rows);
}

function phaseLines(report: DistillReport): string[] {
  const { fused, stock } = report.phases;
  if (!fused && !stock) return [];
  const row = (label: string, p: PhaseTimes | null): string[] =>
    p
      ? [
          label,
          formatMs(p.teacherForward),
          formatMs(p.studentForwardLossBackward),
          formatMs(p.optimizerApply),
        ]
      : [label, '—', '—', '—'];
  const tableText = textTable(
    ['loss', 'teacher forward', 'student fwd + loss + bwd', 'optimizer apply'],
    [row('fused', fused), row('stock', stock)],
  );
  return [
    '',
    'Where a step goes (each phase fenced on its own: a breakdown, not the step time):',
    tableText,
  ];
}

function curveLines(report: DistillReport): string[] {
  const c = report.curves;
  if (!c || c.steps === 0) return [];
  const rows = c.points.map((p) => [
    `${p.step}`,
    num(p.fused, 6),
    num(p.stock, 6),
    Math.abs(p.fused - p.stock).toExponential(2),
  ]);
  return [
    '',
    `Distillation loss per step, same start and batches (max |fused − stock| over the first ` +
      `${c.steps} steps: ${c.maxAbsDiff.toExponential(2)}, relative ${c.maxRelDiff.toExponential(2)}):`,
    textTable(['step', 'fused', 'stock', '|diff|'], rows),
  ];
}

function timingLines(report: DistillReport): string[] {
  const lines: string[] = [''];
  const s = report.speedup;
  if (s) {
    lines.push(
      `Step speedup stock/fused: ×${s.p50.toFixed(3)} [${s.low.toFixed(3)}–${s.high.toFixed(3)}] ` +
        `(p50 ratio; band = stock p20/fused p80 … stock p80/fused p20)`,
    );
  }
  const d = report.dispatchesPerStep;
  lines.push(`Dispatches per step: fused ${d.fused ?? '—'}, stock ${d.stock ?? '—'}`);
  const l = report.lossOnly;
  if (l) {
    lines.push(
      `Loss alone, forward + backward, ${l.shape[0]}×${l.shape[1]}: fused ${formatMs(l.fused)} ` +
        `(${l.dispatches.fused} dispatches), stock ${formatMs(l.stock)} ` +
        `(${l.dispatches.stock} dispatches), ×${l.speedup.toFixed(1)} (wall, one fence per window)`,
    );
    if (l.gpu) {
      lines.push(
        `  on the GPU clock (timestamps, sum of one step's passes): fused ${formatMs(l.gpu.fused)}, ` +
          `stock ${formatMs(l.gpu.stock)}, ×${(l.gpu.stock.p50 / l.gpu.fused.p50).toFixed(1)}`,
      );
    } else if (l.clock) {
      lines.push(`  clocks: ${l.clock}`);
    }
  }
  return lines;
}

/** The printed summary: header, the runs table, timings, phases, loss curves, memory. */
export function formatReport(report: DistillReport): string {
  const st = report.settings;
  const lines = [
    `Distillation benchmark, preset '${report.preset}' (${report.presetReason})`,
    `adapter: ${report.adapter.description}; dataset: ${report.dataset.name}, ` +
      `${report.dataset.trainImages} train / ${report.dataset.testImages} test images; ` +
      `batch ${st.batchSize}; alpha ${st.alpha}, T ${st.temperature}; teacher logits ${st.teacherLogits}`,
    ...report.reductions.map((r) => `  reduced: ${r}`),
    '',
    runsTable(report),
    ...timingLines(report),
    ...phaseLines(report),
    ...curveLines(report),
    '',
    report.memoryGrowthFlagged
      ? 'WARNING: tfjs memory grew during a run after warm-up (see "tfjs memory at end")'
      : 'tfjs memory: no growth after warm-up in any run',
    report.complete
      ? `complete in ${(report.totalWallMs / 1000).toFixed(1)} s`
      : `INCOMPLETE (interrupted during ${report.interrupted?.during ?? 'a run'}); ` +
        `what finished is recorded`,
  ];
  return lines.join('\n');
}
