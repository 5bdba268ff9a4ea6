/**
 * The linear-head mode's generated table: per adapter, host and `rows × H × V` size, the latest
 * complete kernel run that timed it (forward KL).
 */
import {
  bytesCell,
  dateCell,
  DASH,
  hostCell,
  markdownTable,
  msCell,
  ratioCell,
} from './markdown.js';
import { compareEnv, find, groupRuns, kernelRowDivergence, type RunGroup } from './runs.js';
import type { ResultMetric, ResultRow } from './schema.js';

/** `RxHxV` → [R, H, V] (NaN for anything else). */
function linearParts(x: string): [number, number, number] {
  const m = /^(\d+)x(\d+)x(\d+)$/.exec(x);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [NaN, NaN, NaN];
}

/** The linear section: per adapter, host and size, the latest complete run's figures. */
export function linearResultsSection(rows: readonly ResultRow[]): string {
  type Cell = { g: RunGroup; shape: string };
  const cells = new Map<string, Cell>();
  for (const g of groupRuns(rows, 'kernel')) {
    if (!g.complete || kernelRowDivergence(g.first) !== 'forward-kl') continue;
    const linear = g.rows.filter((r) => r.x_name === 'linear_shape');
    for (const shape of new Set(linear.map((r) => r.x_value))) {
      const f = g.first;
      const k = [f.adapter_description, f.host, f.browser, shape].join('\u0000');
      const cur = cells.get(k);
      if (!cur || Date.parse(f.timestamp) >= Date.parse(cur.g.first.timestamp)) {
        cells.set(k, { g, shape });
      }
    }
  }
  const list = [...cells.values()].sort((a, b) => {
    const [ra, ha, va] = linearParts(a.shape);
    const [rb, hb, vb] = linearParts(b.shape);
    return compareEnv(a.g.first, b.g.first) || ra - rb || ha - hb || va - vb;
  });
  if (list.length === 0) {
    return '_No complete linear-head run in bench/results/all-results.csv yet._';
  }
  const body = list.map(({ g, shape }) => {
    const f = g.first;
    const get = (m: ResultMetric, v: string) => find(g, m, v, shape);
    const side = (v: string) => {
      const t = get('time_ms', v);
      if (t) return msCell(t);
      const fail = get('failure', v);
      return fail ? fail.note.split(':')[0]! : DASH;
    };
    const flops = (get('flops', 'student')?.p50 ?? NaN) + (get('flops', 'teacher')?.p50 ?? NaN);
    const gflops = g.rows.find(
      (r) =>
        r.metric === 'gflops' &&
        r.variant === 'matmul' &&
        r.clock === 'wall' &&
        r.x_value === shape,
    );
    const floor = g.rows.find(
      (r) =>
        r.metric === 'floor_ms' &&
        r.variant === 'matmul' &&
        r.clock === 'wall' &&
        r.x_value === shape,
    );
    // The GPU bytes in use at the step's high-water mark, less the gradients it returns
    // (hidden, weight, bias): what the step holds beyond its inputs and results.
    const [gr, gh, gv] = linearParts(shape);
    const returned = (gr * gh + gh * gv + gv) * 4;
    const extra = (v: string) => {
      const peak = get('peak_bytes', v);
      return peak ? bytesCell({ ...peak, p50: peak.p50 - returned }) : DASH;
    };
    const failed = g.rows
      .filter((r) => r.metric === 'failure' && r.x_value === shape)
      .map((r) => `${r.variant}: ${r.note.replace(/^refused: /, 'refused, ').split(':')[0]}`)
      .join('; ');
    const [rr, h, v] = linearParts(shape);
    return [
      f.adapter_description,
      hostCell(f),
      `${rr}×${h}×${v}`,
      Number.isFinite(flops) ? (flops / 1e9).toFixed(flops < 1e10 ? 2 : 1) : DASH,
      gflops ? gflops.p50.toFixed(1) : DASH,
      floor ? `${floor.p50.toFixed(1)} ms` : DASH,
      side('fused-linear'),
      side('matmul-fused'),
      side('matmul-stock'),
      ratioCell(get('time_ratio', 'fused-linear/matmul-fused')),
      ratioCell(get('speedup', 'matmul-stock/fused-linear')),
      `${extra('fused-linear')} / ${extra('matmul-fused')} / ${extra('matmul-stock')}`,
      failed || DASH,
      `\`${f.commit}\``,
      dateCell(f),
    ];
  });
  return markdownTable(
    [
      'adapter',
      'host',
      'rows×H×V',
      'GFLOP',
      'matMul GFLOP/s',
      'floor',
      'fused linear',
      'matMul + fused',
      'matMul + stock',
      'fused linear / matMul + fused',
      'matMul + stock / fused linear',
      'extra GPU bytes',
      'failed or refused',
      'commit',
      'date',
    ],
    body,
  );
}
