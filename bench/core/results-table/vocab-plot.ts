/**
 * The vocabulary sweep's plot as a Vega-Lite spec, from the latest complete sweep per adapter
 * and host; the host renders it (docs/vocab-sweep.svg: bench/node/results-file.ts).
 */
import { VOCAB_SWEEP_CLASSES } from '../kernel-bench/targets.js';
import { dateCell, hostCell } from './markdown.js';
import { byText, latestVocabSweeps } from './runs.js';
import type { ResultRow } from './schema.js';

/**
 * The vocabulary sweep's plot as a Vega-Lite spec (plain JSON; the host renders it): fused,
 * stock and ceiling forward+backward time against C, one line per rows value, log-log, with the
 * p20–p80 band as a rule; one panel per adapter and host (their latest complete sweep). null
 * without a sweep.
 */
export function vocabPlotSpec(rows: readonly ResultRow[]): Record<string, unknown> | null {
  const runs = latestVocabSweeps(rows);
  if (runs.length === 0) return null;
  const values: Record<string, string | number>[] = [];
  const labels: Record<string, string> = {
    fused: 'fused',
    stock: 'stock composition',
    ceiling: 'memory ceiling',
  };
  for (const g of runs) {
    const env = `${g.first.adapter_description}, ${hostCell(g.first)}, ${dateCell(g.first)}`;
    for (const r of g.rows) {
      if (r.metric !== 'time_ms' || r.clock !== 'wall' || !(r.variant in labels)) continue;
      const [batch, classes] = r.x_value.split('x').map(Number) as [number, number];
      values.push({
        env,
        series: labels[r.variant]!,
        rows: `${batch} rows`,
        batch,
        classes,
        p50: r.p50,
        p20: r.p20 ?? r.p50,
        p80: r.p80 ?? r.p50,
      });
    }
  }
  values.sort(
    (a, b) =>
      byText(String(a.env), String(b.env)) ||
      byText(String(a.series), String(b.series)) ||
      Number(a.batch) - Number(b.batch) ||
      Number(a.classes) - Number(b.classes),
  );
  const x = {
    field: 'classes',
    type: 'quantitative',
    scale: { type: 'log', base: 2 },
    axis: {
      values: [...VOCAB_SWEEP_CLASSES],
      title: 'classes C (1k = 1024)',
      labelExpr: "datum.value / 1024 + 'k'",
      labelOverlap: false,
      labelFlush: false,
    },
  };
  const color = {
    field: 'series',
    type: 'nominal',
    title: null,
    scale: { domain: Object.values(labels), range: ['#1f77b4', '#d62728', '#7f7f7f'] },
  };
  const dash = {
    field: 'rows',
    type: 'ordinal',
    title: null,
    sort: { field: 'batch' },
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'Distillation loss, forward+backward per call against C (log-log)',
      subtitle: 'median of timed windows, p20–p80 as a vertical rule; wall clock',
    },
    background: 'white',
    data: { values },
    facet: {
      row: {
        field: 'env',
        type: 'nominal',
        title: null,
        header: {
          labelAngle: 0,
          labelOrient: 'top',
          labelAnchor: 'start',
          labelFontWeight: 'bold',
        },
      },
    },
    spec: {
      width: 560,
      height: 360,
      layer: [
        {
          mark: { type: 'line', point: true },
          encoding: {
            x,
            y: { field: 'p50', type: 'quantitative', scale: { type: 'log' }, title: 'ms per call' },
            color,
            strokeDash: dash,
            shape: { ...dash, type: 'nominal' },
          },
        },
        {
          mark: { type: 'rule' },
          encoding: { x, y: { field: 'p20', type: 'quantitative' }, y2: { field: 'p80' }, color },
        },
      ],
    },
  };
}
