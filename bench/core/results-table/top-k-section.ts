/** The top-K teachers' generated table: per adapter, host and `BxCkK` shape, and the bar. */
import { topKShapeName } from '../kernel-bench/shapes.js';
import { TOPK_TARGETS } from '../kernel-bench/targets.js';
import {
  bytesCell,
  dateCell,
  DASH,
  hostCell,
  markdownTable,
  msCell,
  ratioCell,
} from './markdown.js';
import { compareEnv, find, groupRuns, type RunGroup } from './runs.js';
import type { ResultMetric, ResultRow } from './schema.js';

/** `BxCkK` → [B, C, K] (NaN for anything else). */
function topKParts(x: string): [number, number, number] {
  const m = /^(\d+)x(\d+)k(\d+)$/.exec(x);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [NaN, NaN, NaN];
}

/**
 * The sparse (top-K) teacher section: per adapter, host and `BxCkK` shape, the latest complete
 * kernel run's figures (a `--sweep topk` or a default run), then the bar at 256 × 32768,
 * K = 32, from the run that measured it.
 */
export function topKResultsSection(rows: readonly ResultRow[]): string {
  type Cell = { g: RunGroup; shape: string };
  const cells = new Map<string, Cell>();
  for (const g of groupRuns(rows, 'kernel')) {
    if (!g.complete) continue;
    const topK = g.rows.filter((r) => r.x_name === 'topk_shape');
    for (const shape of new Set(topK.map((r) => r.x_value))) {
      const f = g.first;
      const k = [f.adapter_description, f.host, f.browser, shape].join('\u0000');
      const cur = cells.get(k);
      if (!cur || Date.parse(f.timestamp) >= Date.parse(cur.g.first.timestamp)) {
        cells.set(k, { g, shape });
      }
    }
  }
  const list = [...cells.values()].sort((a, b) => {
    const [ba, ca, ka] = topKParts(a.shape);
    const [bb, cb, kb] = topKParts(b.shape);
    return compareEnv(a.g.first, b.g.first) || ca - cb || ba - bb || ka - kb;
  });
  if (list.length === 0) {
    return '_No complete top-K run in bench/results/all-results.csv yet._';
  }
  const x = (r: ResultRow | undefined) => (r ? r.p50.toFixed(2) : DASH);
  const band = (r: ResultRow | undefined) =>
    r && r.p20 !== null && r.p80 !== null
      ? `${x(r)} [${r.p20.toFixed(2)}–${r.p80.toFixed(2)}]`
      : x(r);
  const failed = (g: RunGroup, shape: string) =>
    g.rows
      .filter((r) => r.metric === 'failure' && r.x_value === shape)
      .map((r) => `${r.variant}: ${r.note.split(':')[0]}`)
      .join('; ');
  const body = list.map(({ g, shape }) => {
    const f = g.first;
    const get = (m: ResultMetric, v: string) => find(g, m, v, shape);
    const [b, c, k] = topKParts(shape);
    return [
      f.adapter_description,
      hostCell(f),
      `${b}×${c}`,
      String(k),
      `${bytesCell(get('teacher_bytes_per_row', 'sparse'))} / ${bytesCell(get('teacher_bytes_per_row', 'dense'))}`,
      msCell(get('time_ms', 'fused-sparse')),
      msCell(get('time_ms', 'fused-dense')),
      msCell(get('time_ms', 'stock-sparse')),
      band(get('time_ratio', 'fused-sparse/fused-dense')),
      ratioCell(get('speedup', 'stock-sparse/fused-sparse')),
      failed(g, shape) || DASH,
      `\`${f.commit}\``,
      dateCell(f),
    ];
  });
  const table = markdownTable(
    [
      'adapter',
      'host',
      'B×C',
      'K',
      'teacher bytes/row sparse / dense',
      'fused sparse',
      'fused dense',
      'stock sparse',
      'sparse/dense',
      'stock/sparse',
      'failed',
      'commit',
      'date',
    ],
    body,
  );
  const T = TOPK_TARGETS;
  const barShape = topKShapeName(T.shape);
  const [tb, tc, tk] = T.shape;
  const bars = list
    .filter(({ shape }) => shape === barShape)
    .map(({ g }) => {
      const f = g.first;
      const ratio = find(g, 'time_ratio', 'fused-sparse/fused-dense', barShape);
      const speedup = find(g, 'speedup', 'stock-sparse/fused-sparse', barShape);
      const met = (ok: boolean) => (ok ? 'met' : 'not met');
      return (
        `- ${f.adapter_description}, ${hostCell(f)} (commit \`${f.commit}\`): sparse/dense ` +
        `${ratio ? band(ratio) : DASH} ` +
        `(target ≤ ${T.maxSparseOverDense}: ${ratio ? met(ratio.p50 <= T.maxSparseOverDense) : DASH}); ` +
        `stock/sparse ${ratioCell(speedup)} (target ≥ ${T.minStockOverSparse}×: ` +
        `${speedup ? met(speedup.p50 >= T.minStockOverSparse) : DASH}).`
      );
    });
  return [
    table,
    ...(bars.length
      ? ['', `Bar at ${tb} × ${tc}, K = ${tk} (medians, same run; band p20–p80):`, '', ...bars]
      : []),
  ].join('\n');
}
