/**
 * The kernel benchmark, host-neutral: the fused distillation loss forward+backward against the
 * stock-op composition (Keras formula) and against a memory ceiling, per `[B, C]` shape, on the
 * WebGPU device that tfjs uses. The CLI (bench/node/kernel.ts) and the page both run
 * {@link runKernelBenchmark}; the host supplies the device, the ceiling's WGSL source
 * (bench/core/memory-ceiling.wgsl) and the provenance, and writes the files.
 *
 * Shapes come from a list or a named sweep (`vocab`: C from 1k to 256k × rows 64/512/2048).
 * Sparse (top-K) teacher shapes `BxCkK` come from their own list or the `topk` sweep: per
 * shape, the fused loss with the teacher's top-K against the dense fused loss on the same
 * logits and against the stock composition with the same sparse teacher.
 * Per shape and side (fused, stock): forward+backward, and with `phases` forward alone and
 * backward as the paired difference; the peak GPU bytes of one step (tf.memory()); dispatches.
 * A side that fails (out of memory, a binding past the adapter's limit, a lost device) or that
 * the memory budget skips is recorded in the report's `failures`, never aborting the run.
 *
 * The soft term's divergence (`divergence`: forward KL by default, reverse KL, or the JSD with
 * its β) is the same on both sides; the stock side of forward KL is the Keras formula, of the
 * others the exact composition from stock ops (losses.ts). Top-K teachers are forward KL only.
 *
 * Two clocks (bench/core/lib/loss-timing.ts), and every figure says which:
 *   - wall, one fence per window: fused, stock and ceiling, always;
 *   - GPU timestamps: fused, stock and ceiling, where the device has 'timestamp-query'
 *     (null otherwise, and the report says why).
 *
 * The modules, one job each:
 *   targets.ts   the named sweeps' grids and the targets the results are held to;
 *   shapes.ts    the shape lists, the sweeps' shapes, top-K shapes per divergence;
 *   losses.ts    the config of both sides and the stock side's loss per divergence;
 *   report.ts    the report's schema (JSON);
 *   options.ts   what a run is asked;
 *   plan.ts      the memory model, the plan within the budget and the time estimate;
 *   measure.ts   inputs, the checked first step and the window schedules;
 *   dense.ts     one dense shape; top-k.ts one top-K shape;
 *   linear-shapes.ts, linear-report.ts, linear-sides.ts, linear.ts, linear-format.ts: the linear-head mode
 *                (`--linear`): fusedLinearDistillationLoss against matMul + the fused loss and
 *                matMul + the stock composition, its sizes, its report, its sides, its text;
 *   runner.ts    the whole run;
 *   format.ts    the printed lines and report; csv.ts the CSV rows.
 */
export * from './targets.js';
export * from './shapes.js';
export * from './losses.js';
export * from './report.js';
export * from './options.js';
export {
  calibrateKernelBench,
  CALIBRATION_SHAPE,
  DEFAULT_MEMORY_BUDGET_GIB,
  planKernelRun,
  windowsFor,
} from './plan.js';
export { runKernelBenchmark } from './runner.js';
export * from './format.js';
export * from './csv.js';
export * from './linear-shapes.js';
export * from './linear-report.js';
export * from './linear-format.js';
export { timeLinearShape } from './linear.js';
