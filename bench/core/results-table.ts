/**
 * The results table that accumulates across devices and runs (bench/results/all-results.csv):
 * one CSV schema for the distillation benchmark and the kernel benchmark, in long format (one
 * row per run × metric × variant × x, like Liger-Kernel's benchmark/data/all_benchmark_data.csv).
 * Host-neutral: the rows, the CSV text, its validation and the README tables generated from it;
 * reading and writing the file is the host's (bench/node/results-file.ts, tools/results.ts).
 *
 * Columns ({@link RESULTS_COLUMNS}, in this order; empty cell = not applicable):
 *
 * - `benchmark`: `distill` (npm run bench, a DistillReport) or `kernel` (npm run bench:kernel).
 * - `metric`: what was measured (see {@link ResultMetric}): distill `step_ms`, `step_speedup`,
 *   `dispatches_per_step`, `test_accuracy`, `test_loss`, `params`, `loss_alone_ms`,
 *   `loss_alone_dispatches`, `loss_alone_speedup`, `curve_max_abs_diff`, `curve_max_rel_diff`,
 *   `total_wall_s`; kernel `time_ms`, `dispatches`, `speedup`, `ceiling_ratio`, `gbps` (wall
 *   clock) and `gpu_time_ms`, `gpu_speedup` (GPU timestamps, when the adapter has them).
 * - `unit`: `ms`, `s`, `fraction` (accuracy, 0–1), `x` (a ratio), `count`, `GB/s`, `` (a loss).
 * - `variant`: which side: `fused`, `stock`, `teacher`, `scratch`, `ceiling` (the memory-bound
 *   kernel), `stock/fused` and `fused/ceiling` (ratios), `fused-stock` (curve difference), or
 *   `all` (a whole-run figure).
 * - `x_name`, `x_value`: the problem size: `preset` and the preset name for the distillation
 *   runs' figures, `shape` and `BxC` (e.g. `256x32768`) for the loss alone and the kernel
 *   benchmark, `steps` and a step count for the curve comparison.
 * - `p50`, `p20`, `p80`: the median and the 20th/80th percentiles of the samples (windows of
 *   many calls, one fence each); a single figure (an accuracy, a count) fills `p50` only. For a
 *   `stock/fused` speedup, `p20` = stock p20 / fused p80 and `p80` = stock p80 / fused p20 (a
 *   conservative band). Numbers are rounded to 6 significant digits.
 * - `n`: the number of samples behind p20/p50/p80, else empty.
 * - `clock`: `wall` (host clock around fenced windows), `gpu-timestamp` (GPU timestamp
 *   queries), or empty for figures that are not times.
 * - `preset`: the distillation preset (`smoke`, `quick`, `full`); empty for the kernel benchmark.
 * - `dataset`: `mnist`, `fashion-mnist`, …; empty for the kernel benchmark (random logits).
 * - `config`: the settings that change the figures besides preset and shape, as `key=value`
 *   pairs separated by spaces (batch, alpha, T, teacher logits, seed).
 * - `host`: `node` (Dawn through the `webgpu` package) or `browser`.
 * - `browser`: browser name and version (e.g. `Chrome 131`) in a page; empty in Node.
 * - `node_version`: Node's version in Node; empty in a page.
 * - `adapter_vendor`, `adapter_architecture`, `adapter_description`: the WebGPU adapter as the
 *   host describes it (`adapter_description` is the label the README shows).
 * - `software`: `true` for a software adapter (lavapipe, SwiftShader), else `false`.
 * - `tfjs_version`: `@tensorflow/tfjs-core`'s version.
 * - `webgpu_version`: the `webgpu` (Dawn) package's version in Node; empty in a page.
 * - `package_version`: tfjs-fused-distill's version when the report names it, else empty (the
 *   commit identifies the code either way).
 * - `commit`: the source's git commit (short), or `unknown`.
 * - `timestamp`: when the run started (ISO 8601, UTC); with the host and the adapter it
 *   identifies the run.
 * - `complete`: `false` when the run was interrupted or the figure's run was cut short.
 * - `note`: free text about the figure: for a `failure` row, how that side failed or why it
 *   was skipped (`binding-limit: …`, `out-of-memory: …`, `skipped: …`); else empty. (Added
 *   after the first tables: a file whose header ends at `complete` still reads, with empty
 *   notes, and is written back with the column.)
 *
 * Kernel metrics of a run with phases (`--sweep vocab`): `forward_ms` (the loss alone, no
 * tape), `backward_ms` (forward+backward − forward of paired windows), `peak_bytes` (unit
 * `bytes`: the peak of tf.memory().numBytesInGPU during one step above its value before), and
 * `failure` (p50 = 1, unit `count`, the text in `note`) for a side that failed or was skipped;
 * the sweep's rows have `sweep=vocab` in `config`.
 *
 * A kernel run of another divergence than forward KL (`--divergence`) has `divergence=NAME` in
 * `config` (and `beta=β` for jsd), its stock side being the exact composition rather than the
 * Keras formula; rows without it (every run before divergences) are forward KL. The README's
 * kernel tables and the sweep's plot show forward-KL runs only.
 *
 * Sparse (top-K) teacher figures of the kernel benchmark (`--topk`, `--sweep topk`): `x_name`
 * `topk_shape`, `x_value` `BxCkK` (e.g. `256x32768k32`); variants `fused-sparse` (the fused op
 * with the top-K), `fused-dense` (the fused op with the logits they came from) and
 * `stock-sparse` (the stock composition with the top-K) for `time_ms`, `gpu_time_ms`,
 * `dispatches`, `peak_bytes` and `failure`; `time_ratio` / `gpu_time_ratio` variant
 * `fused-sparse/fused-dense` (band: sparse p20 / dense p80 … sparse p80 / dense p20);
 * `speedup` / `gpu_speedup` variant `stock-sparse/fused-sparse`; `teacher_bytes_per_row`
 * (unit `bytes`) variants `sparse` (K·8) and `dense` (C·4). The sweep's rows have `sweep=topk`.
 */
import { formatBytes, formatMs, type Spread } from './lib/stats.js';
import type { DistillReport, RunName, RunRecord } from './protocol/report.js';

/** The columns of the results table, in file order. */
export const RESULTS_COLUMNS = [
  'benchmark',
  'metric',
  'unit',
  'variant',
  'x_name',
  'x_value',
  'p50',
  'p20',
  'p80',
  'n',
  'clock',
  'preset',
  'dataset',
  'config',
  'host',
  'browser',
  'node_version',
  'adapter_vendor',
  'adapter_architecture',
  'adapter_description',
  'software',
  'tfjs_version',
  'webgpu_version',
  'package_version',
  'commit',
  'timestamp',
  'complete',
  'note',
] as const;

/** The header of tables written before the `note` column (still read). */
const LEGACY_COLUMNS = RESULTS_COLUMNS.slice(0, -1);

export type ResultsColumn = (typeof RESULTS_COLUMNS)[number];
export type BenchmarkKind = 'distill' | 'kernel';
export type ResultHost = 'node' | 'browser';
export type ResultClock = 'wall' | 'gpu-timestamp' | '';

export type ResultMetric =
  | 'step_ms'
  | 'step_speedup'
  | 'dispatches_per_step'
  | 'test_accuracy'
  | 'test_loss'
  | 'params'
  | 'loss_alone_ms'
  | 'loss_alone_dispatches'
  | 'loss_alone_speedup'
  | 'curve_max_abs_diff'
  | 'curve_max_rel_diff'
  | 'total_wall_s'
  | 'time_ms'
  | 'gpu_time_ms'
  | 'gpu_speedup'
  | 'dispatches'
  | 'speedup'
  | 'ceiling_ratio'
  | 'gbps'
  | 'forward_ms'
  | 'backward_ms'
  | 'peak_bytes'
  | 'failure'
  | 'time_ratio'
  | 'gpu_time_ratio'
  | 'teacher_bytes_per_row';

/** One row of the results table; null = an empty cell. */
export interface ResultRow {
  benchmark: BenchmarkKind;
  metric: string;
  unit: string;
  variant: string;
  x_name: string;
  x_value: string;
  p50: number;
  p20: number | null;
  p80: number | null;
  n: number | null;
  clock: ResultClock;
  preset: string;
  dataset: string;
  config: string;
  host: ResultHost;
  browser: string;
  node_version: string;
  adapter_vendor: string;
  adapter_architecture: string;
  adapter_description: string;
  software: boolean;
  tfjs_version: string;
  webgpu_version: string;
  package_version: string;
  commit: string;
  timestamp: string;
  complete: boolean;
  note: string;
}

/** The adapter fields the table reads (DistillReport's and KernelReport's adapter have them). */
interface AdapterFields {
  readonly description: string;
  readonly vendor: string;
  readonly architecture: string;
}

/** The provenance fields every report has. */
interface ReportProvenance {
  adapter: AdapterFields;
  software: boolean;
  commit: string;
  timestamp: string;
  versions: Record<string, string>;
  /** Set by the page ('browser'); absent in Node's reports. */
  host?: ResultHost;
}

/** A spread as the table reads it (bench/core/lib/stats.ts's Spread). */
interface SpreadFields {
  readonly p20: number;
  readonly p50: number;
  readonly p80: number;
  readonly n: number;
}

/** One shape of a kernel benchmark: the fields the table reads (KernelShapeResult has them). */
export interface KernelShapeInput {
  batch: number;
  classes: number;
  fused: SpreadFields;
  stock: SpreadFields;
  ceiling: SpreadFields;
  fusedDispatches: number;
  stockDispatches: number;
  fusedGBps: number;
  ceilingGBps: number;
  /** GPU-timestamp times (per step; the ceiling per dispatch); null or absent without. */
  fusedGpu?: SpreadFields | null;
  stockGpu?: SpreadFields | null;
  ceilingGpu?: SpreadFields | null;
  /** Forward alone, backward (paired difference), peak GPU bytes; absent in older reports. */
  fusedForward?: SpreadFields | null;
  stockForward?: SpreadFields | null;
  fusedBackward?: SpreadFields | null;
  stockBackward?: SpreadFields | null;
  fusedPeakBytes?: number | null;
  stockPeakBytes?: number | null;
}

/** One side of a shape that could not be measured whole (KernelSideFigures has these). */
interface KernelSideInput {
  both: SpreadFields;
  forward?: SpreadFields | null;
  backward?: SpreadFields | null;
  gpu?: SpreadFields | null;
  dispatches: number;
  peakBytes?: number | null;
}

/** A shape with a failed or skipped side (KernelShapeFailure has these fields). */
export interface KernelFailureInput {
  batch: number;
  classes: number;
  fusedError: string | null;
  stockError: string | null;
  ceilingError?: string | null;
  fused: KernelSideInput | null;
  stock: KernelSideInput | null;
  ceiling: SpreadFields | null;
  ceilingGpu?: SpreadFields | null;
  fusedGBps: number | null;
  ceilingGBps: number | null;
}

/** One sparse (top-K) teacher shape (bench/core/kernel-bench.ts's TopKShapeResult has these). */
export interface TopKShapeInput {
  batch: number;
  classes: number;
  topK: number;
  denseTeacherBytesPerRow: number;
  sparseTeacherBytesPerRow: number;
  sparse: KernelSideInput | null;
  dense: KernelSideInput | null;
  stock: KernelSideInput | null;
  sparseError: string | null;
  denseError: string | null;
  stockError: string | null;
}

/** A kernel benchmark's report, structurally: bench:kernel's JSON and the page's. */
export interface KernelReportInput extends ReportProvenance {
  kind: 'kernel-benchmark';
  /** Absent in reports that are always complete. */
  complete?: boolean;
  /** The loss settings: `settings` (KernelReport) or `config` (older JSON). */
  settings?: {
    alpha?: number;
    temperature?: number;
    seed?: number;
    sweep?: string | null;
    /** Absent in reports from before divergences: forward-kl. */
    divergence?: string;
    beta?: number | null;
  };
  config?: { alpha?: number; temperature?: number };
  seed?: number;
  results: readonly KernelShapeInput[];
  /** Shapes with a failed or skipped side; absent in older reports. */
  failures?: readonly KernelFailureInput[];
  /** Sparse (top-K) teacher shapes; absent in older reports. */
  topK?: readonly TopKShapeInput[];
}

/** Rounds to 6 significant digits, so that a row survives the CSV unchanged. */
function round6(x: number): number {
  return Number(x.toPrecision(6));
}

/** 'node' or 'browser': the report's own field, else a browser's entries in `versions`. */
function reportHost(r: ReportProvenance): ResultHost {
  if (r.host) return r.host;
  return r.versions.browser !== undefined || r.versions.userAgent !== undefined
    ? 'browser'
    : 'node';
}

type RowBase = Omit<
  ResultRow,
  | 'metric'
  | 'unit'
  | 'variant'
  | 'x_name'
  | 'x_value'
  | 'p50'
  | 'p20'
  | 'p80'
  | 'n'
  | 'clock'
  | 'note'
>;

function baseRow(
  r: ReportProvenance,
  benchmark: BenchmarkKind,
  fields: { preset: string; dataset: string; config: string; complete: boolean },
): RowBase {
  const host = reportHost(r);
  const v = r.versions;
  return {
    benchmark,
    ...fields,
    host,
    browser: host === 'browser' ? (v.browser ?? '') : '',
    node_version: host === 'node' ? (v.node ?? '') : '',
    adapter_vendor: r.adapter.vendor,
    adapter_architecture: r.adapter.architecture,
    adapter_description: r.adapter.description,
    software: r.software,
    tfjs_version: v['tfjs-core'] ?? '',
    webgpu_version: host === 'node' ? (v.webgpu ?? '') : '',
    package_version: v['tfjs-fused-distill'] ?? '',
    commit: r.commit,
    timestamp: r.timestamp,
  };
}

interface Figure {
  metric: ResultMetric;
  unit: string;
  variant: string;
  x_name: string;
  x_value: string;
  clock: ResultClock;
  complete?: boolean;
  note?: string;
}

function isNum(x: number | null | undefined): x is number {
  return typeof x === 'number' && Number.isFinite(x);
}

/** Collects rows, skipping figures that are null or not finite. */
class RowSink {
  readonly rows: ResultRow[] = [];
  constructor(private readonly base: RowBase) {}

  value(f: Figure, x: number | null | undefined): void {
    if (!isNum(x)) return;
    this.push(f, { p50: round6(x), p20: null, p80: null, n: null });
  }

  spread(f: Figure, s: SpreadFields | null | undefined): void {
    if (!s || !isNum(s.p50) || !isNum(s.p20) || !isNum(s.p80)) return;
    this.push(f, { p50: round6(s.p50), p20: round6(s.p20), p80: round6(s.p80), n: s.n });
  }

  /** stock/fused: p50 ratio, band stock p20 / fused p80 … stock p80 / fused p20. */
  ratio(f: Figure, fused: SpreadFields, stock: SpreadFields): void {
    const p50 = stock.p50 / fused.p50;
    const p20 = stock.p20 / fused.p80;
    const p80 = stock.p80 / fused.p20;
    if (!isNum(p50) || !isNum(p20) || !isNum(p80)) return;
    this.push(f, { p50: round6(p50), p20: round6(p20), p80: round6(p80), n: null });
  }

  private push(f: Figure, nums: Pick<ResultRow, 'p50' | 'p20' | 'p80' | 'n'>): void {
    const { complete, note, ...rest } = f;
    this.rows.push({
      ...this.base,
      ...rest,
      ...nums,
      complete: this.base.complete && complete !== false,
      note: note ?? '',
    });
  }
}

const RUN_VARIANTS: Record<RunName, string> = {
  teacher: 'teacher',
  distilledFused: 'fused',
  distilledStock: 'stock',
  scratch: 'scratch',
};

/** The distillation report's figures as table rows (complete=false for an incomplete run). */
export function distillResultRows(report: DistillReport): ResultRow[] {
  const st = report.settings;
  const sink = new RowSink(
    baseRow(report, 'distill', {
      preset: report.preset,
      dataset: report.dataset.name,
      config:
        `batch=${st.batchSize} alpha=${st.alpha} T=${st.temperature} ` +
        `teacher_logits=${st.teacherLogits} seed=${st.seed}`,
      complete: report.complete,
    }),
  );
  const px = { x_name: 'preset', x_value: report.preset };
  for (const [name, r] of Object.entries(report.runs) as [RunName, RunRecord | null][]) {
    if (!r) continue;
    const variant = RUN_VARIANTS[name];
    const run = { ...px, variant, complete: r.complete };
    sink.spread({ ...run, metric: 'step_ms', unit: 'ms', clock: 'wall' }, r.stepMs);
    sink.value(
      { ...run, metric: 'dispatches_per_step', unit: 'count', clock: '' },
      r.dispatchesPerStep,
    );
    sink.value({ ...run, metric: 'test_accuracy', unit: 'fraction', clock: '' }, r.testAccuracy);
    sink.value({ ...run, metric: 'test_loss', unit: '', clock: '' }, r.testLoss);
    sink.value({ ...run, metric: 'params', unit: 'count', clock: '' }, r.params);
  }
  const { distilledFused: fused, distilledStock: stock } = report.runs;
  if (fused?.stepMs && stock?.stepMs) {
    sink.ratio(
      {
        ...px,
        metric: 'step_speedup',
        unit: 'x',
        variant: 'stock/fused',
        clock: 'wall',
        complete: fused.complete && stock.complete,
      },
      fused.stepMs,
      stock.stepMs,
    );
  }
  const l = report.lossOnly;
  if (l) {
    const sx = { x_name: 'shape', x_value: `${l.shape[0]}x${l.shape[1]}` };
    for (const variant of ['fused', 'stock'] as const) {
      sink.spread(
        { ...sx, variant, metric: 'loss_alone_ms', unit: 'ms', clock: 'wall' },
        l[variant],
      );
      sink.value(
        { ...sx, variant, metric: 'loss_alone_dispatches', unit: 'count', clock: '' },
        l.dispatches[variant],
      );
    }
    sink.ratio(
      { ...sx, variant: 'stock/fused', metric: 'loss_alone_speedup', unit: 'x', clock: 'wall' },
      l.fused,
      l.stock,
    );
  }
  const c = report.curves;
  if (c && c.steps > 0) {
    const cx = {
      x_name: 'steps',
      x_value: `${c.steps}`,
      variant: 'fused-stock',
      clock: '' as const,
    };
    sink.value({ ...cx, metric: 'curve_max_abs_diff', unit: '' }, c.maxAbsDiff);
    sink.value({ ...cx, metric: 'curve_max_rel_diff', unit: '' }, c.maxRelDiff);
  }
  sink.value(
    { ...px, variant: 'all', metric: 'total_wall_s', unit: 's', clock: 'wall' },
    report.totalWallMs / 1000,
  );
  return sink.rows;
}

/** The kernel benchmark's figures as table rows, per shape. */
export function kernelResultRows(report: KernelReportInput): ResultRow[] {
  const alpha = report.settings?.alpha ?? report.config?.alpha;
  const temperature = report.settings?.temperature ?? report.config?.temperature;
  const seed = report.settings?.seed ?? report.seed;
  const sweep = report.settings?.sweep ?? null;
  const divergence = report.settings?.divergence ?? 'forward-kl';
  const beta = report.settings?.beta;
  const config = [
    alpha === undefined ? '' : `alpha=${alpha}`,
    temperature === undefined ? '' : `T=${temperature}`,
    seed === undefined ? '' : `seed=${seed}`,
    sweep ? `sweep=${sweep}` : '',
    // forward KL's rows read as they did before divergences
    divergence === 'forward-kl' ? '' : `divergence=${divergence}`,
    divergence === 'jsd' && typeof beta === 'number' ? `beta=${beta}` : '',
  ]
    .filter((s) => s !== '')
    .join(' ');
  const sink = new RowSink(
    baseRow(report, 'kernel', {
      preset: '',
      dataset: '',
      config,
      complete: report.complete !== false,
    }),
  );
  type Side = 'fused' | 'stock';
  const sideRows = (
    sx: { x_name: string; x_value: string },
    variant: Side,
    f: {
      both: SpreadFields;
      forward?: SpreadFields | null;
      backward?: SpreadFields | null;
      gpu?: SpreadFields | null;
      dispatches: number;
      peakBytes?: number | null;
      gbps?: number | null;
    },
  ) => {
    sink.spread({ ...sx, variant, metric: 'time_ms', unit: 'ms', clock: 'wall' }, f.both);
    sink.spread({ ...sx, variant, metric: 'forward_ms', unit: 'ms', clock: 'wall' }, f.forward);
    sink.spread({ ...sx, variant, metric: 'backward_ms', unit: 'ms', clock: 'wall' }, f.backward);
    sink.spread(
      { ...sx, variant, metric: 'gpu_time_ms', unit: 'ms', clock: 'gpu-timestamp' },
      f.gpu,
    );
    sink.value({ ...sx, variant, metric: 'dispatches', unit: 'count', clock: '' }, f.dispatches);
    sink.value({ ...sx, variant, metric: 'peak_bytes', unit: 'bytes', clock: '' }, f.peakBytes);
    if (variant === 'fused') {
      sink.value({ ...sx, variant, metric: 'gbps', unit: 'GB/s', clock: 'wall' }, f.gbps);
    }
  };
  for (const r of report.results) {
    const sx = { x_name: 'shape', x_value: `${r.batch}x${r.classes}` };
    const wall = { ...sx, metric: 'time_ms' as const, unit: 'ms', clock: 'wall' as const };
    sink.spread({ ...wall, variant: 'fused' }, r.fused);
    sink.spread({ ...wall, variant: 'stock' }, r.stock);
    sink.spread({ ...wall, variant: 'ceiling' }, r.ceiling);
    const gpu = {
      ...sx,
      metric: 'gpu_time_ms' as const,
      unit: 'ms',
      clock: 'gpu-timestamp' as const,
    };
    sink.spread({ ...gpu, variant: 'fused' }, r.fusedGpu);
    sink.spread({ ...gpu, variant: 'stock' }, r.stockGpu);
    sink.spread({ ...gpu, variant: 'ceiling' }, r.ceilingGpu);
    if (r.fusedGpu && r.stockGpu) {
      sink.ratio(
        { ...sx, metric: 'gpu_speedup', unit: 'x', variant: 'stock/fused', clock: 'gpu-timestamp' },
        r.fusedGpu,
        r.stockGpu,
      );
    }
    const count = { ...sx, metric: 'dispatches' as const, unit: 'count', clock: '' as const };
    sink.value({ ...count, variant: 'fused' }, r.fusedDispatches);
    sink.value({ ...count, variant: 'stock' }, r.stockDispatches);
    sink.ratio(
      { ...sx, metric: 'speedup', unit: 'x', variant: 'stock/fused', clock: 'wall' },
      r.fused,
      r.stock,
    );
    sink.value(
      { ...sx, metric: 'ceiling_ratio', unit: 'x', variant: 'fused/ceiling', clock: 'wall' },
      r.fused.p50 / r.ceiling.p50,
    );
    const gbps = { ...sx, metric: 'gbps' as const, unit: 'GB/s', clock: 'wall' as const };
    sink.value({ ...gbps, variant: 'fused' }, r.fusedGBps);
    sink.value({ ...gbps, variant: 'ceiling' }, r.ceilingGBps);
    for (const [variant, fw, bw, peak] of [
      ['fused', r.fusedForward, r.fusedBackward, r.fusedPeakBytes],
      ['stock', r.stockForward, r.stockBackward, r.stockPeakBytes],
    ] as const) {
      sink.spread({ ...sx, variant, metric: 'forward_ms', unit: 'ms', clock: 'wall' }, fw);
      sink.spread({ ...sx, variant, metric: 'backward_ms', unit: 'ms', clock: 'wall' }, bw);
      sink.value({ ...sx, variant, metric: 'peak_bytes', unit: 'bytes', clock: '' }, peak);
    }
  }
  for (const f of report.failures ?? []) {
    const sx = { x_name: 'shape', x_value: `${f.batch}x${f.classes}` };
    if (f.fused) sideRows(sx, 'fused', { ...f.fused, gbps: f.fusedGBps });
    if (f.stock) sideRows(sx, 'stock', f.stock);
    if (f.ceiling) {
      sink.spread(
        { ...sx, variant: 'ceiling', metric: 'time_ms', unit: 'ms', clock: 'wall' },
        f.ceiling,
      );
      sink.spread(
        { ...sx, variant: 'ceiling', metric: 'gpu_time_ms', unit: 'ms', clock: 'gpu-timestamp' },
        f.ceilingGpu,
      );
      sink.value(
        { ...sx, variant: 'ceiling', metric: 'gbps', unit: 'GB/s', clock: 'wall' },
        f.ceilingGBps,
      );
    }
    if (f.fused && f.stock) {
      sink.ratio(
        { ...sx, metric: 'speedup', unit: 'x', variant: 'stock/fused', clock: 'wall' },
        f.fused.both,
        f.stock.both,
      );
    }
    if (f.fused && f.ceiling) {
      sink.value(
        { ...sx, metric: 'ceiling_ratio', unit: 'x', variant: 'fused/ceiling', clock: 'wall' },
        f.fused.both.p50 / f.ceiling.p50,
      );
    }
    for (const [variant, error] of [
      ['fused', f.fusedError],
      ['stock', f.stockError],
      ['ceiling', f.ceilingError ?? null],
    ] as const) {
      if (error === null) continue;
      sink.value({ ...sx, variant, metric: 'failure', unit: 'count', clock: '', note: error }, 1);
    }
  }
  for (const r of report.topK ?? []) {
    const sx = { x_name: 'topk_shape', x_value: `${r.batch}x${r.classes}k${r.topK}` };
    for (const [variant, side, error] of [
      ['fused-sparse', r.sparse, r.sparseError],
      ['fused-dense', r.dense, r.denseError],
      ['stock-sparse', r.stock, r.stockError],
    ] as const) {
      if (side) {
        sink.spread({ ...sx, variant, metric: 'time_ms', unit: 'ms', clock: 'wall' }, side.both);
        sink.spread(
          { ...sx, variant, metric: 'gpu_time_ms', unit: 'ms', clock: 'gpu-timestamp' },
          side.gpu,
        );
        sink.value(
          { ...sx, variant, metric: 'dispatches', unit: 'count', clock: '' },
          side.dispatches,
        );
        sink.value(
          { ...sx, variant, metric: 'peak_bytes', unit: 'bytes', clock: '' },
          side.peakBytes,
        );
      }
      if (error !== null) {
        sink.value({ ...sx, variant, metric: 'failure', unit: 'count', clock: '', note: error }, 1);
      }
    }
    const { sparse, dense, stock } = r;
    if (sparse && dense) {
      const v = 'fused-sparse/fused-dense';
      // ratio(f, denominator, numerator): sparse / dense, band sparse p20 / dense p80 … .
      sink.ratio(
        { ...sx, metric: 'time_ratio', unit: 'x', variant: v, clock: 'wall' },
        dense.both,
        sparse.both,
      );
      if (sparse.gpu && dense.gpu) {
        sink.ratio(
          { ...sx, metric: 'gpu_time_ratio', unit: 'x', variant: v, clock: 'gpu-timestamp' },
          dense.gpu,
          sparse.gpu,
        );
      }
    }
    if (sparse && stock) {
      const v = 'stock-sparse/fused-sparse';
      sink.ratio(
        { ...sx, metric: 'speedup', unit: 'x', variant: v, clock: 'wall' },
        sparse.both,
        stock.both,
      );
      if (sparse.gpu && stock.gpu) {
        sink.ratio(
          { ...sx, metric: 'gpu_speedup', unit: 'x', variant: v, clock: 'gpu-timestamp' },
          sparse.gpu,
          stock.gpu,
        );
      }
    }
    const bytes = {
      ...sx,
      metric: 'teacher_bytes_per_row' as const,
      unit: 'bytes',
      clock: '' as const,
    };
    sink.value({ ...bytes, variant: 'sparse' }, r.sparseTeacherBytesPerRow);
    sink.value({ ...bytes, variant: 'dense' }, r.denseTeacherBytesPerRow);
  }
  return sink.rows;
}

/** A report of either kind as table rows, by its `kind`; an error for anything else. */
export function reportResultRows(report: unknown): ResultRow[] {
  const kind = (report as { kind?: unknown } | null)?.kind;
  if (kind === 'distill-benchmark') return distillResultRows(report as DistillReport);
  if (kind === 'kernel-benchmark') return kernelResultRows(report as KernelReportInput);
  throw new Error(
    `not a benchmark report: kind ${JSON.stringify(kind)} (expected "distill-benchmark" or ` +
      `"kernel-benchmark")`,
  );
}

// ---------------------------------------------------------------------------------------------
// CSV text

function cellText(row: ResultRow, col: ResultsColumn): string {
  const v = row[col];
  const s = v === null ? '' : String(v);
  // A line per row, always: newlines inside a value (a user agent, say) become spaces.
  const flat = s.replace(/[\r\n]+/g, ' ');
  return /[",]/.test(flat) || flat !== flat.trim() ? `"${flat.replace(/"/g, '""')}"` : flat;
}

/** The rows as CSV text (one line each, `\n`-terminated), with the header line by default. */
export function toResultsCsv(
  rows: readonly ResultRow[],
  options: { header?: boolean } = {},
): string {
  const lines = rows.map((r) => RESULTS_COLUMNS.map((c) => cellText(r, c)).join(','));
  if (options.header !== false) lines.unshift(RESULTS_COLUMNS.join(','));
  return lines.length === 0 ? '' : lines.join('\n') + '\n';
}

/** The cells of one CSV line (RFC 4180 quoting); throws on a malformed quote. */
function splitCsvLine(line: string, lineNo: number): string[] {
  const cells: string[] = [];
  let i = 0;
  for (;;) {
    if (line[i] === '"') {
      let cell = '';
      i++;
      for (;;) {
        const q = line.indexOf('"', i);
        if (q < 0) throw new Error(`results CSV line ${lineNo}: unterminated quoted field`);
        cell += line.slice(i, q);
        if (line[q + 1] === '"') {
          cell += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      cells.push(cell);
      if (i === line.length) return cells;
      if (line[i] !== ',') {
        throw new Error(`results CSV line ${lineNo}: text after a closing quote`);
      }
      i++;
    } else {
      const comma = line.indexOf(',', i);
      const end = comma < 0 ? line.length : comma;
      const cell = line.slice(i, end);
      if (cell.includes('"')) throw new Error(`results CSV line ${lineNo}: stray quote`);
      cells.push(cell);
      if (comma < 0) return cells;
      i = comma + 1;
    }
  }
}

const BENCHMARKS: readonly string[] = ['distill', 'kernel'];
const HOSTS: readonly string[] = ['node', 'browser'];
const CLOCKS: readonly string[] = ['wall', 'gpu-timestamp', ''];
const REQUIRED: readonly ResultsColumn[] = [
  'metric',
  'variant',
  'x_name',
  'x_value',
  'adapter_description',
  'commit',
  'timestamp',
];

function rowFromCells(
  cells: string[],
  lineNo: number,
  columns: readonly ResultsColumn[],
): ResultRow {
  const fail = (msg: string): never => {
    throw new Error(`results CSV line ${lineNo}: ${msg}`);
  };
  if (cells.length !== columns.length) {
    fail(`${cells.length} fields, expected ${columns.length}`);
  }
  const rec = {
    note: '',
    ...Object.fromEntries(columns.map((c, i) => [c, cells[i]!])),
  } as Record<ResultsColumn, string>;
  for (const c of REQUIRED) if (rec[c] === '') fail(`${c} is empty`);
  const oneOf = (c: ResultsColumn, allowed: readonly string[]): string =>
    allowed.includes(rec[c]) ? rec[c] : fail(`${c} "${rec[c]}" is not one of ${allowed.join('|')}`);
  const bool = (c: ResultsColumn): boolean => oneOf(c, ['true', 'false']) === 'true';
  const num = (c: ResultsColumn, optional: boolean): number | null => {
    const s = rec[c];
    if (s === '') return optional ? null : fail(`${c} is empty`);
    const x = Number(s);
    return Number.isFinite(x) ? x : fail(`${c} "${s}" is not a number`);
  };
  if (Number.isNaN(Date.parse(rec.timestamp))) fail(`timestamp "${rec.timestamp}" is not a date`);
  const p20 = num('p20', true);
  const p80 = num('p80', true);
  if ((p20 === null) !== (p80 === null)) fail('p20 and p80 must both be set or both empty');
  const n = num('n', true);
  if (n !== null && !(Number.isInteger(n) && n > 0)) fail(`n "${rec.n}" is not a count`);
  return {
    ...rec,
    benchmark: oneOf('benchmark', BENCHMARKS) as BenchmarkKind,
    host: oneOf('host', HOSTS) as ResultHost,
    clock: oneOf('clock', CLOCKS) as ResultClock,
    p50: num('p50', false)!,
    p20,
    p80,
    n,
    software: bool('software'),
    complete: bool('complete'),
  };
}

/**
 * Parses and validates a results CSV: the header must be exactly {@link RESULTS_COLUMNS} (or
 * the same without the last column, `note`, as tables were first written), and
 * each row must have every column, its required fields, numbers where numbers go and a known
 * benchmark, host, clock and booleans. An error names the (1-based) line. Blank lines are
 * skipped; an empty text is an empty table.
 */
export function parseResultsCsv(text: string): ResultRow[] {
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const rows: ResultRow[] = [];
  let columns: readonly ResultsColumn[] | null = null;
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const cells = splitCsvLine(line, i + 1);
    if (!columns) {
      const want = RESULTS_COLUMNS.join(',');
      const got = cells.join(',');
      if (got === want) columns = RESULTS_COLUMNS;
      else if (got === LEGACY_COLUMNS.join(',')) columns = LEGACY_COLUMNS;
      else throw new Error(`results CSV line ${i + 1}: header is "${line}", expected "${want}"`);
      return;
    }
    rows.push(rowFromCells(cells, i + 1, columns));
  });
  return rows;
}

/** The key that identifies a row: the same figure of the same run. */
export function resultKey(r: ResultRow): string {
  return [
    r.timestamp,
    r.benchmark,
    r.metric,
    r.variant,
    r.x_value,
    r.host,
    r.adapter_description,
  ].join('\u0000');
}

/** `existing` then the rows of `added` whose key is new (the first of each key wins). */
export function mergeResults(
  existing: readonly ResultRow[],
  added: readonly ResultRow[],
): ResultRow[] {
  const seen = new Set<string>();
  const out: ResultRow[] = [];
  for (const r of [...existing, ...added]) {
    const k = resultKey(r);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(r);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The README's tables, generated from the rows

/** The README's generated sections: `<!-- results:NAME:begin -->` … `<!-- results:NAME:end -->`. */
export const README_SECTIONS = ['distill', 'kernel', 'vocab', 'topk'] as const;
export type ReadmeSection = (typeof README_SECTIONS)[number];

/** The rows of one run: one benchmark, timestamp, host and adapter. */
interface RunGroup {
  rows: ResultRow[];
  first: ResultRow;
  complete: boolean;
}

function groupRuns(rows: readonly ResultRow[], benchmark: BenchmarkKind): RunGroup[] {
  const groups = new Map<string, ResultRow[]>();
  for (const r of rows) {
    if (r.benchmark !== benchmark) continue;
    const k = [r.timestamp, r.host, r.browser, r.adapter_description].join('\u0000');
    const g = groups.get(k);
    if (g) g.push(r);
    else groups.set(k, [r]);
  }
  return [...groups.values()].map((g) => ({
    rows: g,
    first: g[0]!,
    complete: g.every((r) => r.complete),
  }));
}

const PRESET_ORDER: readonly string[] = ['smoke', 'quick', 'full'];

function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The runs' environments in a stable order: adapter, host, browser. */
function compareEnv(a: ResultRow, b: ResultRow): number {
  return (
    byText(a.adapter_description, b.adapter_description) ||
    byText(a.host, b.host) ||
    byText(a.browser, b.browser)
  );
}

/** The latest complete run per key (ties: the later row in the file). */
function latestComplete(groups: readonly RunGroup[], key: (r: ResultRow) => string): RunGroup[] {
  const best = new Map<string, RunGroup>();
  for (const g of groups) {
    if (!g.complete) continue;
    const k = key(g.first);
    const cur = best.get(k);
    if (!cur || Date.parse(g.first.timestamp) >= Date.parse(cur.first.timestamp)) best.set(k, g);
  }
  return [...best.values()];
}

function find(
  g: RunGroup,
  metric: ResultMetric,
  variant: string,
  xValue?: string,
): ResultRow | undefined {
  return g.rows.find(
    (r) =>
      r.metric === metric &&
      r.variant === variant &&
      (xValue === undefined || r.x_value === xValue),
  );
}

const DASH = '—';

function msCell(r: ResultRow | undefined): string {
  if (!r) return DASH;
  if (r.p20 === null || r.p80 === null) return `${msFigure(r.p50)} ms`;
  const s: Spread = { p20: r.p20, p50: r.p50, p80: r.p80, n: r.n ?? 0 };
  return formatMs(s);
}

/** A time as {@link formatMs} prints it: 3 significant digits or so. */
function msFigure(x: number): string {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
}

function times(x: number): string {
  return `×${x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2)}`;
}

function ratioCell(r: ResultRow | undefined): string {
  if (!r) return DASH;
  const band =
    r.p20 === null || r.p80 === null ? '' : ` [${times(r.p20).slice(1)}–${times(r.p80).slice(1)}]`;
  return times(r.p50) + band;
}

function countCell(r: ResultRow | undefined): string {
  if (!r) return DASH;
  return String(Math.round(r.p50)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

function pctCell(r: ResultRow | undefined): string {
  return r ? `${(100 * r.p50).toFixed(2)} %` : DASH;
}

function fixedCell(r: ResultRow | undefined, digits: number): string {
  return r ? r.p50.toFixed(digits) : DASH;
}

function hostCell(r: ResultRow): string {
  if (r.host === 'browser') return r.browser || 'browser';
  return r.node_version ? `Node ${r.node_version}` : 'Node';
}

function dateCell(r: ResultRow): string {
  return r.timestamp.slice(0, 10);
}

/** A Markdown table laid out as Prettier lays it out (padded cells, a dash rule). */
export function markdownTable(header: readonly string[], rows: readonly string[][]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const all = [header.map(esc), ...rows.map((r) => r.map(esc))];
  const widths = header.map((_, i) => Math.max(3, ...all.map((r) => [...(r[i] ?? '')].length)));
  const line = (cells: readonly string[]) =>
    `| ${cells.map((c, i) => c + ' '.repeat(widths[i]! - [...c].length)).join(' | ')} |`;
  return [line(all[0]!), line(widths.map((w) => '-'.repeat(w))), ...all.slice(1).map(line)].join(
    '\n',
  );
}

const NO_ROWS = '_No complete run in bench/results/all-results.csv yet._';

/** The distillation section: per adapter, host and preset, the latest complete run. */
export function distillReadmeSection(rows: readonly ResultRow[]): string {
  const runs = latestComplete(groupRuns(rows, 'distill'), (r) =>
    [r.adapter_description, r.host, r.browser, r.preset, r.dataset].join('\u0000'),
  ).sort((a, b) => {
    const pa = PRESET_ORDER.indexOf(a.first.preset);
    const pb = PRESET_ORDER.indexOf(b.first.preset);
    return (
      compareEnv(a.first, b.first) ||
      (pa < 0 ? 99 : pa) - (pb < 0 ? 99 : pb) ||
      byText(a.first.preset, b.first.preset) ||
      byText(a.first.dataset, b.first.dataset)
    );
  });
  if (runs.length === 0) return NO_ROWS;
  const blocks = runs.map((g) => {
    const f = g.first;
    const wall = find(g, 'total_wall_s', 'all');
    const head =
      `**${f.adapter_description}**, ${hostCell(f)}, preset \`${f.preset}\` ` +
      `(${f.dataset}; ${f.config}), commit \`${f.commit}\`, ${dateCell(f)}` +
      (wall ? `, ${Math.round(wall.p50)} s wall clock:` : ':');
    const models: [string, string][] = [
      ['teacher', 'teacher'],
      ['fused', 'student distilled, fused loss'],
      ['stock', 'student distilled, stock loss'],
      ['scratch', 'student from scratch'],
    ];
    const table = markdownTable(
      ['model', 'params', 'test accuracy', 'test loss', 'step time [p20–p80]', 'dispatches/step'],
      models.map(([v, label]) => [
        label,
        countCell(find(g, 'params', v)),
        pctCell(find(g, 'test_accuracy', v)),
        fixedCell(find(g, 'test_loss', v), 3),
        msCell(find(g, 'step_ms', v)),
        countCell(find(g, 'dispatches_per_step', v)),
      ]),
    );
    const notes: string[] = [];
    const speedup = find(g, 'step_speedup', 'stock/fused');
    if (speedup) notes.push(`- Whole step, stock/fused: ${ratioCell(speedup)}.`);
    const lossFused = find(g, 'loss_alone_ms', 'fused');
    const lossStock = find(g, 'loss_alone_ms', 'stock');
    if (lossFused && lossStock) {
      const d = (v: string) => {
        const c = countCell(find(g, 'loss_alone_dispatches', v));
        return `${c} ${c === '1' ? 'dispatch' : 'dispatches'}`;
      };
      notes.push(
        `- The loss alone (forward+backward in the training loop, ` +
          `${lossFused.x_value.replace('x', '×')}): fused ${msCell(lossFused)}, ${d('fused')}; ` +
          `stock ${msCell(lossStock)}, ${d('stock')}: ` +
          `${ratioCell(find(g, 'loss_alone_speedup', 'stock/fused'))}.`,
      );
    }
    const abs = find(g, 'curve_max_abs_diff', 'fused-stock');
    const rel = find(g, 'curve_max_rel_diff', 'fused-stock');
    if (abs && rel) {
      notes.push(
        `- Fused and stock losses, same start and batches: max difference ` +
          `${abs.p50.toExponential(1)} (relative ${rel.p50.toExponential(1)}) over the first ` +
          `${abs.x_value} steps.`,
      );
    }
    return [head, '', table, ...(notes.length ? ['', ...notes] : [])].join('\n');
  });
  return blocks.join('\n\n');
}

function shapeSize(x: string): number {
  const m = /^(\d+)x(\d+)$/.exec(x);
  return m ? Number(m[1]) * Number(m[2]) : Infinity;
}

/** The kernel section: per adapter, host and shape, the latest complete run's figures. */
export function kernelReadmeSection(rows: readonly ResultRow[]): string {
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

/**
 * The divergence of a kernel row: `divergence=NAME` in its config, forward-kl without (every
 * row from before divergences).
 */
export function kernelRowDivergence(r: Pick<ResultRow, 'config'>): string {
  return /(?:^| )divergence=(\S+)/.exec(r.config)?.[1] ?? 'forward-kl';
}

/** A sweep's rows carry `sweep=NAME` in their config; the kernel section leaves them out. */
function isSweep(g: RunGroup, name?: string): boolean {
  const m = /(?:^| )sweep=(\S+)/.exec(g.first.config);
  return m !== null && (name === undefined || m[1] === name);
}

/** Sorts `RxC` shapes by rows, then classes. */
function byShape(a: string, b: string): number {
  const [ra, ca] = a.split('x').map(Number) as [number, number];
  const [rb, cb] = b.split('x').map(Number) as [number, number];
  return ra - rb || ca - cb || byText(a, b);
}

/** The latest complete vocabulary sweep per adapter, host and browser, in a stable order. */
export function latestVocabSweeps(rows: readonly ResultRow[]): RunGroup[] {
  return latestComplete(
    groupRuns(rows, 'kernel').filter(
      (g) => isSweep(g, 'vocab') && kernelRowDivergence(g.first) === 'forward-kl',
    ),
    (r) => [r.adapter_description, r.host, r.browser].join('\u0000'),
  ).sort((a, b) => compareEnv(a.first, b.first));
}

/** The shapes the targets name, and the targets (README "Kernel benchmark"). */
export const VOCAB_TARGETS = {
  shapes: ['512x32768', '128x131072'],
  /** fused forward+backward ≤ this × the ceiling's time. */
  maxCeilingRatio: 2.2,
  /** stock / fused forward+backward ≥ this. */
  minSpeedup: 25,
} as const;

function bytesCell(r: ResultRow | undefined): string {
  return r ? formatBytes(r.p50) : DASH;
}

/** The vocabulary sweep's section: per adapter and host, the latest complete sweep. */
export function vocabReadmeSection(rows: readonly ResultRow[]): string {
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
    const targets = VOCAB_TARGETS.shapes.map((shape) => {
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

/** The bar at 256 × 32768, K = 32 (bench/core/kernel-bench.ts, TOPK_TARGETS). */
export const TOPK_README_TARGETS = {
  shape: '256x32768k32',
  maxSparseOverDense: 0.7,
  minStockOverSparse: 25,
} as const;

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
export function topKReadmeSection(rows: readonly ResultRow[]): string {
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
  const T = TOPK_README_TARGETS;
  const [tb, tc, tk] = topKParts(T.shape);
  const bars = list
    .filter(({ shape }) => shape === T.shape)
    .map(({ g }) => {
      const f = g.first;
      const ratio = find(g, 'time_ratio', 'fused-sparse/fused-dense', T.shape);
      const speedup = find(g, 'speedup', 'stock-sparse/fused-sparse', T.shape);
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
      values: [1024, 4096, 32768, 131072, 262144],
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

/** A generated section's text, without its markers. */
export function readmeSection(name: ReadmeSection, rows: readonly ResultRow[]): string {
  if (name === 'distill') return distillReadmeSection(rows);
  if (name === 'vocab') return vocabReadmeSection(rows);
  if (name === 'topk') return topKReadmeSection(rows);
  return kernelReadmeSection(rows);
}

function markers(name: ReadmeSection): [string, string] {
  return [`<!-- results:${name}:begin -->`, `<!-- results:${name}:end -->`];
}

/** The text between a section's markers (trimmed); an error when the markers are missing. */
export function readmeSectionText(readme: string, name: ReadmeSection): string {
  const [begin, end] = markers(name);
  const i = readme.indexOf(begin);
  const j = readme.indexOf(end);
  if (i < 0 || j < i) throw new Error(`README: no ${begin} … ${end} section`);
  return readme.slice(i + begin.length, j).trim();
}

/** The README with every generated section replaced by what the rows give. */
export function updateReadme(readme: string, rows: readonly ResultRow[]): string {
  let out = readme;
  for (const name of README_SECTIONS) {
    const [begin, end] = markers(name);
    readmeSectionText(out, name); // throws when the markers are missing
    const i = out.indexOf(begin) + begin.length;
    const j = out.indexOf(end);
    out = `${out.slice(0, i)}\n\n${readmeSection(name, rows)}\n\n${out.slice(j)}`;
  }
  return out;
}

/** The sections whose text differs from what the rows give (empty: the README is current). */
export function staleReadmeSections(readme: string, rows: readonly ResultRow[]): ReadmeSection[] {
  return README_SECTIONS.filter(
    (name) => readmeSectionText(readme, name) !== readmeSection(name, rows),
  );
}
