/** The linear-head mode as text: a size's line, the table, and the CSV rows. */
import { WALL_CLOCK } from '../lib/loss-timing.js';
import { formatBytes, formatMs, type Spread } from '../lib/stats.js';
import { textTable } from '../protocol/report-output.js';
import {
  LINEAR_SIDE_TEXT,
  LINEAR_SIDES,
  type LinearShapeResult,
  type LinearSideResult,
} from './linear-report.js';
import { linearShapeLabel, linearShapeName, type LinearShape } from './linear-shapes.js';

function ms(s: Spread | null): string {
  return s === null ? '—' : formatMs(s);
}

function ratio(x: number | null): string {
  return x === null ? '—' : `×${x.toFixed(2)}`;
}

function bytes(x: number | null): string {
  return x === null ? '—' : formatBytes(x);
}

/** A side in one cell: its time, or `failed: …` / `refused: …`. */
function sideCell(r: LinearSideResult, clock: 'wall' | 'gpu' = 'wall'): string {
  if (r.status === 'ok') return ms(clock === 'wall' ? r.wall : r.gpu);
  if (clock === 'gpu') return '—';
  if (r.status === 'refused') return r.error ?? 'refused';
  return `failed: ${r.error ?? '—'}`;
}

function gflop(x: number): string {
  if (x < 1e8) return `${(x / 1e6).toFixed(1)} MFLOP`;
  return `${(x / 1e9).toFixed(x >= 1e10 ? 0 : 2)} GFLOP`;
}

/** One size's figures on one line (the CLI prints it as each size finishes). */
export function formatLinearLine(r: LinearShapeResult): string {
  const shape: LinearShape = [r.rows, r.hidden, r.vocab];
  const m = r.matmul;
  const parts = LINEAR_SIDES.map((s) => {
    const x = r.sides[s];
    if (x.status !== 'ok') return `${s} ${sideCell(x)}`;
    return (
      `${s} ${ms(x.wall)} (${x.dispatches} dispatches, peak ${bytes(x.profilePeakBytes)}, ` +
      `extra ${bytes(x.profileExtraBytes)})`
    );
  });
  const floor =
    m.gflops !== null
      ? `floor ${r.floorMs!.toFixed(1)} ms at ${m.gflops.toFixed(1)} GFLOP/s (plain matMul ` +
        `${m.shape.join('x')}, ${ms(m.wall)})`
      : `floor — (plain matMul ${m.error ?? 'not measured'})`;
  return (
    `${linearShapeName(shape)}: ${WALL_CLOCK}: ${parts.join('; ')}; fused/matmul-fused ` +
    `${ratio(r.fusedOverMatmulFused)}, matmul-stock/fused ${ratio(r.stockOverFused)}; ` +
    `${gflop(r.studentFlops)} + ${gflop(r.teacherFlops)} teacher, ${floor}` +
    (r.fusedVsMatmulRelDiff !== null
      ? `; fused vs matmul-fused rel. diff ${r.fusedVsMatmulRelDiff.toExponential(1)}`
      : '')
  );
}

/** The linear sizes as a table, then what each column is. */
export function formatLinearTable(results: readonly LinearShapeResult[]): string {
  const gpu = results.some((r) => LINEAR_SIDES.some((s) => r.sides[s].gpu));
  const header = [
    'rows×H×V',
    'FLOP student+teacher',
    'matMul GFLOP/s',
    'floor',
    'fused-linear',
    'matmul-fused',
    'matmul-stock',
    'fused/matmul-fused',
    'matmul-stock/fused',
  ];
  if (gpu)
    header.push('GPU fused-linear', 'GPU matmul-fused', 'GPU matmul-stock', 'GPU f/mf', 'GPU ms/f');
  header.push('peak / extra (profile) f, mf, ms', 'peak GPU bytes f, mf, ms', 'dispatches f/mf/ms');
  const rows = results.map((r) => {
    const [a, b, c] = LINEAR_SIDES.map((s) => r.sides[s]) as [
      LinearSideResult,
      LinearSideResult,
      LinearSideResult,
    ];
    const row = [
      linearShapeLabel([r.rows, r.hidden, r.vocab]),
      `${gflop(r.studentFlops)} + ${gflop(r.teacherFlops)}`,
      r.matmul.gflops === null ? (r.matmul.error ?? '—') : r.matmul.gflops.toFixed(1),
      r.floorMs === null ? '—' : `${r.floorMs.toFixed(1)} ms`,
      sideCell(a),
      sideCell(b),
      sideCell(c),
      ratio(r.fusedOverMatmulFused),
      ratio(r.stockOverFused),
    ];
    if (gpu) {
      row.push(
        sideCell(a, 'gpu'),
        sideCell(b, 'gpu'),
        sideCell(c, 'gpu'),
        ratio(r.fusedOverMatmulFusedGpu),
        ratio(r.stockOverFusedGpu),
      );
    }
    row.push(
      [a, b, c]
        .map((x) => `${bytes(x.profilePeakBytes)} / ${bytes(x.profileExtraBytes)}`)
        .join(', '),
      [a, b, c].map((x) => bytes(x.gpuPeakBytes)).join(', '),
      [a, b, c].map((x) => (x.dispatches === null ? '—' : String(x.dispatches))).join('/'),
    );
    return row;
  });
  return [
    textTable(header, rows),
    '',
    ...LINEAR_SIDES.map((s) => `(${s}) ${LINEAR_SIDE_TEXT[s]}.`),
    '(teacher logits) the matMul sides compute them inside each timed step, outside the ' +
      'differentiated function (a constant): every side runs the same four products.',
    '(floor) (3 student products + 1 teacher product, 2·rows·H·V FLOPs each) / the throughput ' +
      'of a plain tf.matMul [rows, H]·[H, V] on this adapter (cut to fit one storage binding).',
    '(peak / extra) tf.profile() peakBytes minus tf.memory().numBytes before the step; extra: ' +
      'also minus the returned gradients (hidden, weight, bias). (peak GPU bytes) the largest ' +
      'tf.memory().numBytesInGPU during one step above its value before.',
  ].join('\n');
}

/** The CSV rows of the linear sizes (kernelCsvRows appends them). */
export function linearCsvRows(
  adapter: string,
  results: readonly LinearShapeResult[],
): Record<string, string | number>[] {
  const cell = (x: number | null | undefined): number | string => x ?? '';
  return results.flatMap((r) =>
    LINEAR_SIDES.map((s) => {
      const x = r.sides[s];
      return {
        adapter,
        batch: r.rows,
        hidden: r.hidden,
        classes: r.vocab,
        linear_side: s,
        linear_status: x.status,
        linear_p20_ms: cell(x.wall?.p20),
        linear_p50_ms: cell(x.wall?.p50),
        linear_p80_ms: cell(x.wall?.p80),
        linear_gpu_p50_ms: cell(x.gpu?.p50),
        linear_dispatches: cell(x.dispatches),
        linear_profile_peak_bytes: cell(x.profilePeakBytes),
        linear_profile_extra_bytes: cell(x.profileExtraBytes),
        linear_gpu_peak_bytes: cell(x.gpuPeakBytes),
        linear_flops: r.studentFlops + r.teacherFlops,
        linear_matmul_gflops: cell(r.matmul.gflops),
        linear_floor_ms: cell(r.floorMs),
        linear_fused_over_matmul_fused: cell(r.fusedOverMatmulFused),
        linear_stock_over_fused: cell(r.stockOverFused),
        wall_clock: WALL_CLOCK,
        error: x.error ?? '',
      };
    }),
  );
}
