/**
 * Renders a kernel benchmark result (`KernelReport`, from this page or `npm run bench:kernel`):
 * fused vs stock vs the memory ceiling per shape, medians with p20–p80, dispatches, GB/s, and
 * the GPU clock's figures where the adapter has `timestamp-query`.
 */
import type {
  KernelReport,
  KernelShapeResult,
  KernelSideFigures,
} from '../../core/kernel-bench/index.js';
import type { Spread } from '../../core/lib/stats.js';
import { spreadChart } from '../charts.js';
import { downloadBar, el, msCell, table } from '../ui.js';
import { resultRowsDownload } from './results-rows.js';

const shapeName = (r: KernelShapeResult): string => `${r.batch}×${r.classes}`;

/** One table row per measured shape. */
export function kernelRow(r: KernelShapeResult): string[] {
  return [
    shapeName(r),
    msCell(r.fused),
    msCell(r.stock),
    msCell(r.ceiling),
    `×${r.speedup.toFixed(1)}`,
    r.ceilingRatio.toFixed(2),
    `${r.fusedDispatches} / ${r.stockDispatches}`,
    r.fusedGBps.toFixed(1),
    msCell(r.fusedGpu ?? null),
    msCell(r.stockGpu ?? null),
  ];
}

export const KERNEL_HEADER = [
  'B×C',
  'fused (wall)',
  'stock (wall)',
  'memory ceiling',
  'stock / fused',
  'fused / ceiling',
  'dispatches fused / stock',
  'fused GB/s',
  'fused (GPU clock)',
  'stock (GPU clock)',
];

/** The table and chart of `results` into `parent` (live: called again as shapes finish). */
export function renderKernelResults(parent: HTMLElement, results: KernelShapeResult[]): void {
  parent.replaceChildren(table(KERNEL_HEADER, results.map(kernelRow)));
  if (results.length === 0) return;
  const charts = el('div', { class: 'charts' });
  parent.append(charts);
  type Series = { name: string; label: string; values: (Spread | null)[] };
  const series: Series[] = [
    { name: 'fused', label: 'fused', values: results.map((r) => r.fused) },
    { name: 'stock', label: 'stock', values: results.map((r) => r.stock) },
    { name: 'ceiling', label: 'memory ceiling', values: results.map((r) => r.ceiling) },
  ];
  if (results.some((r) => r.fusedGpu)) {
    series.push(
      {
        name: 'fused (GPU clock)',
        label: 'fused (GPU clock)',
        values: results.map((r) => r.fusedGpu ?? null),
      },
      {
        name: 'stock (GPU clock)',
        label: 'stock (GPU clock)',
        values: results.map((r) => r.stockGpu ?? null),
      },
    );
  }
  spreadChart(
    charts,
    'Loss forward+backward per call (log scale)',
    'ms',
    results.map(shapeName),
    series,
    true,
  );
}

/**
 * Shapes where a side failed or was skipped (out of memory, past the binding limit, over the
 * memory budget): what happened to each side, as the report records it.
 */
function failuresTable(report: KernelReport): HTMLElement | string {
  const failures = report.failures ?? [];
  if (failures.length === 0) return '';
  const side = (error: string | null, figures: KernelSideFigures | null): string =>
    error ?? (figures ? msCell(figures.both) : '—');
  return table(
    ['B×C', 'fused', 'stock', 'memory ceiling'],
    failures.map((f) => [
      `${f.batch}×${f.classes}`,
      side(f.fusedError, f.fused),
      side(f.stockError, f.stock),
      f.ceilingError ?? msCell(f.ceiling),
    ]),
    'Shapes not measured on every side',
  );
}

/** A whole report: what ran where, the results, the clocks and the downloads. */
export function renderKernelReport(parent: HTMLElement, report: KernelReport): void {
  const results = el('div');
  renderKernelResults(results, report.results);
  const stamp = report.timestamp.replace(/[:.]/g, '-');
  parent.replaceChildren(
    el(
      'p',
      { class: 'meta' },
      `${report.adapter.description}${report.software ? ' (software)' : ''}, ` +
        `${report.versions.browser ?? `Node ${report.versions.node ?? ''}`}, commit ${report.commit}, ` +
        `${report.timestamp}${report.complete ? '' : ': incomplete (stopped)'}`,
    ),
    el('p', { class: 'meta' }, `Wall clock: ${report.clocks.wall}`),
    el('p', { class: 'meta' }, `GPU clock: ${report.clocks.gpu}`),
    results,
    failuresTable(report),
    downloadBar([
      {
        label: 'Result JSON',
        name: `kernel-${stamp}.json`,
        text: () => JSON.stringify(report, null, 2) + '\n',
        type: 'application/json',
      },
      resultRowsDownload(report),
    ]),
  );
}
