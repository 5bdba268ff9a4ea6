/**
 * The results table that accumulates across devices and runs (bench/results/all-results.csv):
 * one CSV schema for the distillation benchmark and the kernel benchmark, in long format (one
 * row per run × metric × variant × x, like Liger-Kernel's benchmark/data/all_benchmark_data.csv).
 * Host-neutral: the rows, the CSV text, its validation and the docs' tables generated from it;
 * reading and writing the files is the host's (bench/node/results-file.ts, tools/results.ts).
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
 *   host describes it (`adapter_description` is the label the docs' tables show).
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
 * Keras formula; rows without it (every run before divergences) are forward KL. The docs'
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
 *
 * Linear-head figures of the kernel benchmark (`--linear`): `x_name` `linear_shape`, `x_value`
 * `RxHxV` (rows, hidden width, vocabulary, e.g. `512x256x32768`); variants `fused-linear`
 * (fusedLinearDistillationLoss with a teacher head), `matmul-fused` (matMul + bias, then
 * distillationLoss) and `matmul-stock` (matMul + bias, then the stock composition), each
 * forward+backward w.r.t. hidden, weight and bias, for `time_ms`, `gpu_time_ms`, `dispatches`,
 * `peak_bytes` (numBytesInGPU, as above), `profile_peak_bytes` (tf.profile() peakBytes minus
 * tf.memory().numBytes before the step), `profile_extra_bytes` (that minus the returned
 * gradients' bytes) and `failure` (a side that failed or was refused, the reason in `note`);
 * `time_ratio` / `gpu_time_ratio` variant `fused-linear/matmul-fused`; `speedup` /
 * `gpu_speedup` variant `matmul-stock/fused-linear`; `flops` (unit `count`) variants `student`
 * (3 products of 2·rows·H·V) and `teacher` (1); variant `matmul` (a plain tf.matMul of the
 * shape, cut to fit one storage binding, the shape timed in `note`): `time_ms`, `gflops` (unit
 * `GFLOP/s`, wall and GPU clock) and `floor_ms` (all four products' FLOPs at that
 * throughput). `linear_op_budget=BYTES` and `linear_past_binding=true` in `config` when set.
 */

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
export const LEGACY_COLUMNS = RESULTS_COLUMNS.slice(0, -1);

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
  | 'teacher_bytes_per_row'
  | 'profile_peak_bytes'
  | 'profile_extra_bytes'
  | 'flops'
  | 'gflops'
  | 'floor_ms';

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
