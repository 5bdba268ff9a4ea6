/**
 * The kernel benchmark as text: a shape's line as it finishes, the plan before the run, and
 * the printed report (both clocks, the top-K table and its bar, what each clock is).
 */
import { formatBytes, formatMs, type Spread } from '../lib/stats.js';
import { GPU_CLOCK, WALL_CLOCK } from '../lib/loss-timing.js';
import { textTable } from '../protocol/report-output.js';
import { formatLinearTable } from './linear-format.js';
import { divergenceLabel, reportDivergence, STOCK_BASELINE_TEXT } from './losses.js';
import type {
  KernelReport,
  KernelRunPlan,
  KernelShapeFailure,
  KernelShapeResult,
  KernelSideFigures,
  TopKShapeResult,
} from './report.js';
import { topKShapeName } from './shapes.js';
import { TOPK_TARGETS } from './targets.js';

function ratio(x: number | null, digits = 1): string {
  return x === null ? '—' : `×${x.toFixed(digits)}`;
}

function ms(s: Spread | null): string {
  return s === null ? '—' : formatMs(s);
}

function bytesCell(x: number | null | undefined): string {
  return x === null || x === undefined ? '—' : formatBytes(x);
}

/** One shape's figures on one line (the CLI prints it as each shape finishes). */
export function formatShapeLine(r: KernelShapeResult): string {
  const gpu =
    r.fusedGpu && r.stockGpu
      ? `; ${GPU_CLOCK}: fused ${formatMs(r.fusedGpu)}, stock ${formatMs(r.stockGpu)}, ` +
        `${ratio(r.speedupGpu)}`
      : '';
  const phases =
    r.fusedForward && r.fusedBackward && r.stockForward && r.stockBackward
      ? `; forward fused ${formatMs(r.fusedForward)}, stock ${formatMs(r.stockForward)}; ` +
        `backward fused ${formatMs(r.fusedBackward)}, stock ${formatMs(r.stockBackward)}`
      : '';
  const peak =
    r.fusedPeakBytes != null && r.stockPeakBytes != null
      ? `; peak GPU bytes fused ${formatBytes(r.fusedPeakBytes)}, stock ${formatBytes(r.stockPeakBytes)}`
      : '';
  return (
    `${r.batch}x${r.classes}: ${WALL_CLOCK}: fused ${formatMs(r.fused)} ` +
    `(${r.fusedDispatches} dispatches), stock ${formatMs(r.stock)} (${r.stockDispatches}), ` +
    `${ratio(r.speedup)}; ceiling ${formatMs(r.ceiling)}, fused/ceiling ` +
    `${r.ceilingRatio.toFixed(2)}${gpu}${phases}${peak}`
  );
}

function sideCell(x: KernelSideFigures | null, error: string | null): string {
  return x ? formatMs(x.both) : (error ?? '—');
}

/** One top-K shape's figures on one line (the CLI prints it as each shape finishes). */
export function formatTopKLine(r: TopKShapeResult): string {
  const side = (label: string, x: KernelSideFigures | null, error: string | null) =>
    x ? `${label} ${formatMs(x.both)} (${x.dispatches} dispatches)` : `${label} ${error ?? '—'}`;
  const gpu =
    r.sparse?.gpu && r.dense?.gpu && r.stock?.gpu
      ? `; ${GPU_CLOCK}: sparse ${formatMs(r.sparse.gpu)}, dense ${formatMs(r.dense.gpu)}, ` +
        `stock ${formatMs(r.stock.gpu)}`
      : '';
  return (
    `${topKShapeName([r.batch, r.classes, r.topK])}: ${WALL_CLOCK}: ` +
    `${side('fused sparse', r.sparse, r.sparseError)}, ` +
    `${side('fused dense', r.dense, r.denseError)}, ` +
    `${side('stock sparse', r.stock, r.stockError)}; sparse/dense ` +
    `${r.sparseOverDense === null ? '—' : r.sparseOverDense.toFixed(2)}, stock/sparse ` +
    `${ratio(r.stockOverSparse)}; teacher bytes per row ${formatBytes(r.sparseTeacherBytesPerRow)} ` +
    `vs ${formatBytes(r.denseTeacherBytesPerRow)}${gpu}`
  );
}

/** The top-K shapes as a table, and the bar at {@link TOPK_TARGETS} when it was measured. */
export function formatTopKTable(results: readonly TopKShapeResult[]): string {
  const gpu = results.some((r) => r.sparse?.gpu);
  const header = [
    'B×C, K',
    'fused sparse (wall)',
    'fused dense (wall)',
    'stock sparse (wall)',
    'sparse/dense',
    'stock/sparse',
  ];
  if (gpu) header.push('sparse/dense GPU', 'stock/sparse GPU');
  header.push('dispatches sparse/dense/stock', 'teacher B/row sparse/dense');
  const rows = results.map((r) => {
    const row = [
      `${r.batch}×${r.classes}, ${r.topK}`,
      sideCell(r.sparse, r.sparseError),
      sideCell(r.dense, r.denseError),
      sideCell(r.stock, r.stockError),
      r.sparseOverDense === null ? '—' : r.sparseOverDense.toFixed(2),
      ratio(r.stockOverSparse),
    ];
    if (gpu) {
      row.push(
        r.sparseOverDenseGpu === null ? '—' : r.sparseOverDenseGpu.toFixed(2),
        ratio(r.stockOverSparseGpu),
      );
    }
    const d = (x: KernelSideFigures | null) => (x ? String(x.dispatches) : '—');
    row.push(
      `${d(r.sparse)}/${d(r.dense)}/${d(r.stock)}`,
      `${formatBytes(r.sparseTeacherBytesPerRow)}/${formatBytes(r.denseTeacherBytesPerRow)}`,
    );
    return row;
  });
  const lines = [textTable(header, rows)];
  const [tb, tc, tk] = TOPK_TARGETS.shape;
  const bar = results.find((r) => r.batch === tb && r.classes === tc && r.topK === tk);
  if (bar) {
    const met = (ok: boolean | null) => (ok === null ? '—' : ok ? 'met' : 'not met');
    lines.push(
      '',
      `Bar at ${tb} × ${tc}, K = ${tk}, same run: sparse/dense ` +
        `${bar.sparseOverDense === null ? '—' : bar.sparseOverDense.toFixed(2)} (target ≤ ` +
        `${TOPK_TARGETS.maxSparseOverDense}: ` +
        `${met(bar.sparseOverDense === null ? null : bar.sparseOverDense <= TOPK_TARGETS.maxSparseOverDense)}); ` +
        `stock/sparse ${ratio(bar.stockOverSparse)} (target ≥ ${TOPK_TARGETS.minStockOverSparse}: ` +
        `${met(bar.stockOverSparse === null ? null : bar.stockOverSparse >= TOPK_TARGETS.minStockOverSparse)}).`,
    );
  }
  return lines.join('\n');
}

/** A failed or skipped shape on one line. */
export function formatFailureLine(f: KernelShapeFailure): string {
  const side = (name: string, error: string | null, x: KernelSideFigures | null) =>
    error !== null
      ? `${name} ${error}`
      : x
        ? `${name} ${formatMs(x.both)} (peak ${bytesCell(x.peakBytes)})`
        : `${name} —`;
  return (
    `${f.batch}x${f.classes}: ${side('fused', f.fusedError, f.fused)}; ` +
    `${side('stock', f.stockError, f.stock)}; ` +
    (f.ceilingError !== null ? `ceiling ${f.ceilingError}` : `ceiling ${ms(f.ceiling)}`)
  );
}

/** The plan before a run: what will be skipped and why, and the time estimate. */
export function formatKernelPlan(plan: KernelRunPlan): string {
  const lines: string[] = [];
  if (plan.memory) {
    const m = plan.memory;
    lines.push(
      `memory model (measured at ${m.shape.join('x')}): one step holds ` +
        `${m.fusedLiveArrays.toFixed(2)} (fused) and ${m.stockLiveArrays.toFixed(2)} (stock) ` +
        '[rows, C] float32 arrays at its peak besides its inputs',
    );
  }
  lines.push(
    `limits: budget ${plan.budgetBytes === null ? 'none' : formatBytes(plan.budgetBytes)}, ` +
      `maxBufferSize ${formatBytes(plan.maxBufferSize)}, maxStorageBufferBindingSize ` +
      `${formatBytes(plan.maxStorageBufferBindingSize)}`,
  );
  for (const p of plan.shapes) {
    const skips = (['fused', 'stock', 'ceiling'] as const)
      .filter((k) => p[k].skip !== null)
      .map((k) => `${k} skipped: ${p[k].skip}`);
    if (skips.length > 0) lines.push(`  ${p.batch}x${p.classes}: ${skips.join('; ')}`);
  }
  if (plan.estimatedSeconds !== null) {
    lines.push(
      `estimated time: ${(plan.estimatedSeconds / 60).toFixed(1)} min for ${plan.shapes.length} ` +
        'shapes (scaled from the calibration step; failing sides end sooner)',
    );
  }
  return lines.join('\n');
}

/** The printed report: a table of both clocks, then what each clock is. */
export function formatKernelReport(report: KernelReport): string {
  const phases = report.results.some((r) => r.fusedForward);
  const peaks = report.results.some((r) => r.fusedPeakBytes != null);
  const rows = report.results.map((r) => {
    const row = [`${r.batch}×${r.classes}`, formatMs(r.fused), formatMs(r.stock), ratio(r.speedup)];
    if (phases) {
      row.push(
        ms(r.fusedForward ?? null),
        ms(r.fusedBackward ?? null),
        ms(r.stockForward ?? null),
        ms(r.stockBackward ?? null),
      );
    }
    row.push(
      ms(r.fusedGpu),
      ms(r.stockGpu),
      ratio(r.speedupGpu),
      `${r.fusedDispatches}/${r.stockDispatches}`,
      formatMs(r.ceiling),
      ms(r.ceilingGpu),
      `${r.ceilingRatio.toFixed(2)}/${r.ceilingRatioGpu === null ? '—' : r.ceilingRatioGpu.toFixed(2)}`,
      `${r.fusedGBps.toFixed(2)}/${r.ceilingGBps.toFixed(2)}`,
    );
    if (peaks) row.push(`${bytesCell(r.fusedPeakBytes)}/${bytesCell(r.stockPeakBytes)}`);
    return row;
  });
  const header = ['B×C', 'fused (wall)', 'stock (wall)', 'stock/fused'];
  if (phases) header.push('fused fwd', 'fused bwd', 'stock fwd', 'stock bwd');
  header.push(
    'fused (GPU)',
    'stock (GPU)',
    'stock/fused GPU',
    'dispatches fused/stock',
    'ceiling (wall)',
    'ceiling (GPU)',
    'fused/ceiling wall/GPU',
    'GB/s fused/ceiling (wall)',
  );
  if (peaks) header.push('peak GPU bytes fused/stock');
  const table = textTable(header, rows);
  const { divergence, beta, baseline } = reportDivergence(report);
  const failures = report.failures ?? [];
  const topK = report.topK ?? [];
  const linear = report.linear ?? [];
  const denseRun =
    report.results.length > 0 || failures.length > 0 || (topK.length === 0 && linear.length === 0);
  return [
    ...(denseRun ? [] : [`On ${report.adapter.description}:`]),
    ...(denseRun
      ? [
          `Forward+backward per step on ${report.adapter.description} (median [p20–p80], ms), ` +
            `divergence ${divergenceLabel(divergence, beta)}` +
            (report.complete ? '' : ' — INCOMPLETE (stopped early)'),
          table,
        ]
      : []),
    ...(failures.length > 0
      ? [
          '',
          'Shapes with a failed or skipped side:',
          ...failures.map((f) => `  ${formatFailureLine(f)}`),
        ]
      : []),
    ...(topK.length > 0
      ? [
          '',
          'Sparse (top-K) teacher, forward+backward per step (median [p20–p80], ms): fused with ' +
            'the top-K, fused with the dense logits they came from (alternating windows), stock ' +
            'composition with the top-K' +
            (report.complete ? '' : ' — INCOMPLETE (stopped early)'),
          formatTopKTable(topK),
        ]
      : []),
    ...(linear.length > 0
      ? [
          '',
          'Linear head, forward+backward w.r.t. hidden, weight and bias per step (median ' +
            '[p20–p80], ms): the fused linear op with a teacher head, matMul + the fused loss, ' +
            'matMul + the stock composition' +
            (report.complete ? '' : ' — INCOMPLETE (stopped early)'),
          formatLinearTable(linear),
        ]
      : []),
    '',
    `(wall) ${report.clocks.wall}.`,
    `(GPU)  ${report.clocks.gpu}.`,
    ...(denseRun || linear.length > 0 ? [`(stock) ${STOCK_BASELINE_TEXT[baseline]}.`] : []),
    ...(phases
      ? [
          '(fwd)  the loss alone, no tape; (bwd) forward+backward − forward of back-to-back ' +
            'windows, per pair.',
        ]
      : []),
    ...(peaks
      ? [
          '(peak) the largest tf.memory().numBytesInGPU during one forward+backward step, above ' +
            'its value before the step (inputs excluded).',
        ]
      : []),
  ].join('\n');
}
