/**
 * Renders a distillation result (a `DistillReport`, from a run in this page, the CLI or an
 * earlier browser run) as the CLI's table plus charts: loss and accuracy per step for each run,
 * step-time distributions, dispatches per step, the loss alone, and the phase breakdown.
 */
import {
  csvRows,
  curveRows,
  formatReport,
  type DistillReport,
  type RunName,
  type RunRecord,
} from '../../core/protocol.js';
import { toCsv } from '../../core/lib/csv.js';
import { barChart, colour, lineChart, spreadChart, stripChart } from '../charts.js';
import { downloadBar, el, msCell, pct, table } from '../ui.js';
import { resultRowsDownload } from './results-rows.js';

export const RUN_LABELS: Record<RunName, string> = {
  teacher: 'teacher',
  distilledFused: 'distilled, fused loss',
  distilledStock: 'distilled, stock loss',
  scratch: 'from scratch',
};

const RUN_ORDER: RunName[] = ['teacher', 'distilledFused', 'distilledStock', 'scratch'];

function runs(report: DistillReport): [RunName, RunRecord][] {
  return RUN_ORDER.flatMap((n) =>
    report.runs[n] ? [[n, report.runs[n]] as [RunName, RunRecord]] : [],
  );
}

function curve(values: number[]): { x: number; y: number }[] {
  return values.map((y, i) => ({ x: i + 1, y }));
}

/** The final table: one row per run, as the CLI prints it. */
export function runTable(report: DistillReport): HTMLElement {
  return table(
    [
      'run',
      'filters',
      'params',
      'test accuracy',
      'test loss',
      'step time p50 [p20–p80]',
      'dispatches/step',
      'wall',
    ],
    runs(report).map(([name, r]) => [
      RUN_LABELS[name],
      r.filters.join('×'),
      r.params.toLocaleString('en-US'),
      pct(r.testAccuracy),
      r.testLoss === null ? '—' : r.testLoss.toFixed(4),
      msCell(r.stepMs),
      r.dispatchesPerStep === null ? '—' : String(r.dispatchesPerStep),
      `${(r.wallMs / 1000).toFixed(1)} s`,
    ]),
  );
}

/** Everything about one report, appended to `parent` (which is emptied first). */
export function renderDistillReport(parent: HTMLElement, report: DistillReport): void {
  parent.replaceChildren();
  const status = report.complete
    ? 'complete'
    : `incomplete: stopped during ${report.interrupted?.during ?? 'a run'}`;
  parent.append(
    el(
      'p',
      { class: 'meta' },
      `${report.preset} preset on ${report.dataset.name} (${report.dataset.trainImages} training, ` +
        `${report.dataset.testImages} test images), ${report.adapter.description}` +
        `${report.software ? ' (software)' : ''}, ${report.versions.browser ?? `Node ${report.versions.node ?? ''}`}, ` +
        `commit ${report.commit}, ${report.timestamp}: ${status}`,
    ),
    runTable(report),
  );
  const charts = el('div', { class: 'charts' });
  parent.append(charts);
  const present = runs(report);
  lineChart(
    charts,
    'Training loss per step',
    'batch loss',
    present.map(([n, r]) => ({ name: n, label: RUN_LABELS[n], points: curve(r.lossCurve) })),
  );
  lineChart(
    charts,
    'Training accuracy per step',
    'batch accuracy',
    present.map(([n, r]) => ({ name: n, label: RUN_LABELS[n], points: curve(r.accuracyCurve) })),
  );
  stripChart(
    charts,
    'Step time, per timed window',
    'ms per step',
    present.map(([n, r]) => ({ name: n, label: RUN_LABELS[n], samples: r.stepMsSamples })),
  );
  barChart(
    charts,
    'Dispatches per training step',
    'GPU dispatches',
    present.map(([n]) => RUN_LABELS[n]),
    [
      {
        name: 'dispatches',
        label: 'dispatches',
        values: present.map(([, r]) => r.dispatchesPerStep),
        colours: present.map(([n]) => colour(n)),
      },
    ],
  );
  if (report.lossOnly) {
    const lo = report.lossOnly;
    spreadChart(
      charts,
      `The loss alone, forward+backward, [${lo.shape.join(', ')}]: ×${lo.speedup.toFixed(1)}`,
      'ms per call (log)',
      ['fused', 'stock'],
      [
        { name: 'dispatches', label: 'wall clock', values: [lo.fused, lo.stock] },
        ...(lo.gpu
          ? [
              {
                name: 'ceiling',
                label: 'GPU clock (timestamps)',
                values: [lo.gpu.fused, lo.gpu.stock],
              },
            ]
          : []),
      ],
      true,
    );
  }
  if (report.phases.fused || report.phases.stock) {
    const cats = ['fused', 'stock'];
    const p = [report.phases.fused, report.phases.stock];
    barChart(
      charts,
      'Step phases (medians, each phase fenced)',
      'ms',
      cats,
      [
        {
          name: 'teacher',
          label: 'teacher forward',
          values: p.map((x) => x?.teacherForward.p50 ?? null),
        },
        {
          name: 'fused',
          label: 'student fwd + loss + bwd',
          values: p.map((x) => x?.studentForwardLossBackward.p50 ?? null),
        },
        {
          name: 'optimizer',
          label: 'optimizer',
          values: p.map((x) => x?.optimizerApply.p50 ?? null),
        },
      ],
      true,
    );
  }
  const stamp = report.timestamp.replace(/[:.]/g, '-');
  parent.append(
    el(
      'details',
      {},
      el('summary', {}, 'The summary as the CLI prints it'),
      el('pre', {}, formatReport(report)),
    ),
    downloadBar([
      {
        label: 'Result JSON',
        name: `distill-${report.preset}-${stamp}.json`,
        text: () => JSON.stringify(report, null, 2) + '\n',
        type: 'application/json',
      },
      {
        label: 'Runs CSV',
        name: `distill-${report.preset}-${stamp}.csv`,
        text: () => toCsv(csvRows(report)),
        type: 'text/csv',
      },
      {
        label: 'Curves CSV',
        name: `distill-${report.preset}-${stamp}-curves.csv`,
        text: () => toCsv(curveRows(report)),
        type: 'text/csv',
      },
      resultRowsDownload(report),
    ]),
  );
}
