/**
 * The kernel benchmark's generated tables: the latest complete run per adapter, host and dense
 * shape (forward KL, sweeps left out), and the latest complete vocabulary sweep per adapter and
 * host with its targets.
 */
import { shapeName } from '../kernel-bench/shapes.js';
import { VOCAB_TARGETS } from '../kernel-bench/targets.js';
import {
  bytesCell,
  countCell,
  dateCell,
  DASH,
  fixedCell,
  hostCell,
  markdownTable,
  msCell,
  NO_ROWS,
  ratioCell,
} from './markdown.js';
import {
  byShape,
  byText,
  compareEnv,
  find,
  groupRuns,
  isSweep,
  kernelRowDivergence,
  latestVocabSweeps,
  type RunGroup,
} from './runs.js';
import type { ResultMetric, ResultRow } from './schema.js';

function shapeSize(x: string): number {
  const m = /^(\d+)x(\d+)$/.exec(x);
  return m ? Number(m[1]) * Number(m[2]) : Infinity;
}

/** The kernel section: per adapter, host and shape, the latest complete run's figures. */
export function kernelResultsSection(rows: readonly ResultRow[]): string {
  type Cell = { g: RunGroup; shape: string };
  const cells = new Map<string, Cell>();
  for (const g of groupRuns(rows, 'kernel')) {
    if (!g.complete || isSweep(g) || kernelRowDivergence(g.first) !== 'forward-kl') continue;
    const dense = g.rows.filter((r) => r.x_name === 'shape');
    for (const shape of new Set(dense.map((r) => r.x_value))) {
      const f = g.first;
      const k = [f.adapter_description, f.host, f.browser, shape].join('\u0000');
      const cur = cells.get(k);
      if (!cur || Date.parse(f.timestamp) >= Date.parse(cur.g.first.timestamp)) {
        cells.set(k, { g, shape });
      }
    }
  }
  const list = [...cells.values()].sort(
    (a, b) =>
      compareEnv(a.g.first, b.g.first) ||
      shapeSize(a.shape) - shapeSize(b.shape) ||
      byText(a.shape, b.shape),
  );
  if (list.length === 0) return NO_ROWS;
  const gpu = list.some(({ g, shape }) => find(g, 'gpu_time_ms', 'fused', shape));
  const header = ['adapter', 'host', 'B×C', 'fused', 'stock', 'stock/fused'];
  if (gpu) header.push('GPU fused', 'GPU stock', 'GPU stock/fused');
  header.push(
    'dispatches fused/stock',
    'memory ceiling',
    'fused/ceiling',
    'GB/s fused/ceiling',
    'commit',
    'date',
  );
  const body = list.map(({ g, shape }) => {
    const f = g.first;
    const get = (m: ResultMetric, v: string) => find(g, m, v, shape);
    const gbps = (v: string) => {
      const r = get('gbps', v);
      return r ? r.p50.toFixed(2) : DASH;
    };
    const row = [
      f.adapter_description,
      hostCell(f),
      shape.replace('x', '×'),
      msCell(get('time_ms', 'fused')),
      msCell(get('time_ms', 'stock')),
      ratioCell(get('speedup', 'stock/fused')),
    ];
    if (gpu) {
      row.push(
        msCell(get('gpu_time_ms', 'fused')),
        msCell(get('gpu_time_ms', 'stock')),
        ratioCell(get('gpu_speedup', 'stock/fused')),
      );
    }
    row.push(
      `${countCell(get('dispatches', 'fused'))}/${countCell(get('dispatches', 'stock'))}`,
      msCell(get('time_ms', 'ceiling')),
      fixedCell(get('ceiling_ratio', 'fused/ceiling'), 2),
      `${gbps('fused')}/${gbps('ceiling')}`,
      `\`${f.commit}\``,
      dateCell(f),
    );
    return row;
  });
  return markdownTable(header, body);
}

/** The vocabulary sweep's section: per adapter and host, the latest complete sweep. */
export function vocabResultsSection(rows: readonly ResultRow[]): string {
  const runs = latestVocabSweeps(rows);
  if (runs.length === 0)
    return '_No complete vocabulary sweep in bench/results/all-results.csv yet._';
  const blocks = runs.map((g) => {
    const f = g.first;
    const shapes = [...new Set(g.rows.map((r) => r.x_value))].sort(byShape);
    const get = (m: ResultMetric, v: string, shape: string) => find(g, m, v, shape);
    const failures = (shape: string) =>
      g.rows.filter((r) => r.metric === 'failure' && r.x_value === shape);
    const body = shapes.map((shape) => {
      const gbps = (v: string) => {
        const r = get('gbps', v, shape);
        return r ? r.p50.toFixed(2) : DASH;
      };
      const fails = failures(shape)
        .map((r) => `${r.variant}: ${r.note.split(':')[0]}`)
        .join('; ');
      return [
        shape.replace('x', '×'),
        msCell(get('forward_ms', 'fused', shape)),
        msCell(get('backward_ms', 'fused', shape)),
        msCell(get('time_ms', 'fused', shape)),
        msCell(get('forward_ms', 'stock', shape)),
        msCell(get('backward_ms', 'stock', shape)),
        msCell(get('time_ms', 'stock', shape)),
        ratioCell(get('speedup', 'stock/fused', shape)),
        msCell(get('time_ms', 'ceiling', shape)),
        fixedCell(get('ceiling_ratio', 'fused/ceiling', shape), 2),
        `${gbps('fused')}/${gbps('ceiling')}`,
        `${bytesCell(get('peak_bytes', 'fused', shape))} / ${bytesCell(get('peak_bytes', 'stock', shape))}`,
        fails || DASH,
      ];
    });
    const table = markdownTable(
      [
        'B×C',
        'fused fwd',
        'fused bwd',
        'fused fwd+bwd',
        'stock fwd',
        'stock bwd',
        'stock fwd+bwd',
        'stock/fused',
        'ceiling',
        'fused/ceiling',
        'GB/s fused/ceiling',
        'peak fused / stock',
        'failed or skipped',
      ],
      body,
    );
    // One note per side and kind of failure: the shapes, and the first message.
    const kinds = new Map<string, { shapes: string[]; note: string }>();
    for (const r of g.rows.filter((x) => x.metric === 'failure')) {
      const k = `${r.variant}, ${r.note.split(':')[0]}`;
      const e = kinds.get(k);
      if (e) e.shapes.push(r.x_value.replace('x', '×'));
      else kinds.set(k, { shapes: [r.x_value.replace('x', '×')], note: r.note });
    }
    const notes = [...kinds.entries()].map(([k, { shapes: at, note }]) => {
      const text = note
        .slice(note.indexOf(':') + 1)
        .trim()
        .replace(/\|/g, '\\|');
      return at.length === 1
        ? `- ${k} at ${at[0]}: ${text}`
        : `- ${k} at ${at.join(', ')}; at ${at[0]}: ${text}`;
    });
    const targets = VOCAB_TARGETS.shapes.map(shapeName).map((shape) => {
      const ratio = get('ceiling_ratio', 'fused/ceiling', shape);
      const speedup = get('speedup', 'stock/fused', shape);
      const at = shape.replace('x', ' × ');
      if (!ratio && !speedup) return `- ${at}: not measured in this run.`;
      const met = (ok: boolean) => (ok ? 'met' : 'not met');
      return (
        `- ${at}: fused forward+backward ${ratio ? `${ratio.p50.toFixed(2)}×` : DASH} the ` +
        `ceiling's time (target ≤ ${VOCAB_TARGETS.maxCeilingRatio}×: ` +
        `${ratio ? met(ratio.p50 <= VOCAB_TARGETS.maxCeilingRatio) : DASH}); stock/fused ` +
        `${ratioCell(speedup)} (target ≥ ${VOCAB_TARGETS.minSpeedup}×: ` +
        `${speedup ? met(speedup.p50 >= VOCAB_TARGETS.minSpeedup) : DASH}).`
      );
    });
    const head =
      `**${f.adapter_description}**, ${hostCell(f)}, commit \`${f.commit}\`, ${dateCell(f)} ` +
      `(${f.config}):`;
    return [
      head,
      '',
      table,
      ...(notes.length ? ['', 'Failed or skipped sides:', '', ...notes] : []),
      '',
      'Targets, same run:',
      '',
      ...targets,
    ].join('\n');
  });
  return blocks.join('\n\n');
}
