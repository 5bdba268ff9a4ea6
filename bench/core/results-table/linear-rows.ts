/**
 * The linear-head mode's sizes of a kernel report (`KernelReport.linear`) as results-table
 * rows: `x_name` `linear_shape`, `x_value` `RxHxV`; see schema.ts.
 */
import type { LinearShapeResult, LinearSide } from '../kernel-bench/linear-report.js';
import { LINEAR_SIDES } from '../kernel-bench/linear-report.js';
import type { RowSink } from './row-sink.js';

/** One linear size as the table reads it. */
export type LinearShapeInput = Pick<
  LinearShapeResult,
  | 'rows'
  | 'hidden'
  | 'vocab'
  | 'studentFlops'
  | 'teacherFlops'
  | 'matmul'
  | 'floorMs'
  | 'floorGpuMs'
  | 'sides'
>;

/** Adds the rows of the linear sizes to `sink`. */
export function addLinearRows(sink: RowSink, results: readonly LinearShapeInput[]): void {
  for (const r of results) {
    const sx = { x_name: 'linear_shape', x_value: `${r.rows}x${r.hidden}x${r.vocab}` };
    for (const variant of LINEAR_SIDES) {
      const s = r.sides[variant];
      sink.spread({ ...sx, variant, metric: 'time_ms', unit: 'ms', clock: 'wall' }, s.wall);
      sink.spread(
        { ...sx, variant, metric: 'gpu_time_ms', unit: 'ms', clock: 'gpu-timestamp' },
        s.gpu,
      );
      sink.value({ ...sx, variant, metric: 'dispatches', unit: 'count', clock: '' }, s.dispatches);
      sink.value(
        { ...sx, variant, metric: 'peak_bytes', unit: 'bytes', clock: '' },
        s.gpuPeakBytes,
      );
      sink.value(
        { ...sx, variant, metric: 'profile_peak_bytes', unit: 'bytes', clock: '' },
        s.profilePeakBytes,
      );
      sink.value(
        { ...sx, variant, metric: 'profile_extra_bytes', unit: 'bytes', clock: '' },
        s.profileExtraBytes,
      );
      if (s.status !== 'ok') {
        const note = s.error ?? s.status;
        sink.value({ ...sx, variant, metric: 'failure', unit: 'count', clock: '', note }, 1);
      }
    }
    const side = (v: LinearSide) => r.sides[v];
    const [a, b, c] = [side('fused-linear'), side('matmul-fused'), side('matmul-stock')];
    if (a.wall && b.wall) {
      // ratio(f, denominator, numerator): fused-linear / matmul-fused.
      const v = 'fused-linear/matmul-fused';
      sink.ratio(
        { ...sx, metric: 'time_ratio', unit: 'x', variant: v, clock: 'wall' },
        b.wall,
        a.wall,
      );
      if (a.gpu && b.gpu) {
        sink.ratio(
          { ...sx, metric: 'gpu_time_ratio', unit: 'x', variant: v, clock: 'gpu-timestamp' },
          b.gpu,
          a.gpu,
        );
      }
    }
    if (a.wall && c.wall) {
      const v = 'matmul-stock/fused-linear';
      sink.ratio(
        { ...sx, metric: 'speedup', unit: 'x', variant: v, clock: 'wall' },
        a.wall,
        c.wall,
      );
      if (a.gpu && c.gpu) {
        sink.ratio(
          { ...sx, metric: 'gpu_speedup', unit: 'x', variant: v, clock: 'gpu-timestamp' },
          a.gpu,
          c.gpu,
        );
      }
    }
    sink.value(
      { ...sx, variant: 'student', metric: 'flops', unit: 'count', clock: '' },
      r.studentFlops,
    );
    sink.value(
      { ...sx, variant: 'teacher', metric: 'flops', unit: 'count', clock: '' },
      r.teacherFlops,
    );
    const m = r.matmul;
    const note = `matMul ${m.shape.join('x')}`;
    sink.spread(
      { ...sx, variant: 'matmul', metric: 'time_ms', unit: 'ms', clock: 'wall', note },
      m.wall,
    );
    sink.value(
      { ...sx, variant: 'matmul', metric: 'gflops', unit: 'GFLOP/s', clock: 'wall', note },
      m.gflops,
    );
    sink.value(
      {
        ...sx,
        variant: 'matmul',
        metric: 'gflops',
        unit: 'GFLOP/s',
        clock: 'gpu-timestamp',
        note,
      },
      m.gpuGflops,
    );
    sink.value(
      { ...sx, variant: 'matmul', metric: 'floor_ms', unit: 'ms', clock: 'wall', note },
      r.floorMs,
    );
    sink.value(
      { ...sx, variant: 'matmul', metric: 'floor_ms', unit: 'ms', clock: 'gpu-timestamp', note },
      r.floorGpuMs,
    );
    if (m.error !== null) {
      sink.value(
        { ...sx, variant: 'matmul', metric: 'failure', unit: 'count', clock: '', note: m.error },
        1,
      );
    }
  }
}
