/**
 * Runs the kernel benchmark: the shapes (a list or a named sweep), the plan within the memory
 * budget, each dense shape, then each top-K shape, into one {@link KernelReport}.
 */
import { GPU_CLOCK_TEXT, gpuClockAvailability, WALL_CLOCK_TEXT } from '../lib/loss-timing.js';
import { timeShape } from './dense.js';
import { timeLinearShape } from './linear.js';
import type { LinearSettings, LinearShapeResult } from './linear-report.js';
import { parseLinearSizes } from './linear-shapes.js';
import { parseDivergenceOptions, stockBaselineOf } from './losses.js';
import { Aborted } from './measure.js';
import type { KernelBenchOptions } from './options.js';
import {
  calibrateKernelBench,
  CALIBRATION_SHAPE,
  DEFAULT_MEMORY_BUDGET_GIB,
  GiB,
  planKernelRun,
} from './plan.js';
import {
  isShapeFailure,
  type KernelMemoryModel,
  type KernelReport,
  type KernelShapeFailure,
  type KernelShapeResult,
  type TopKShapeResult,
} from './report.js';
import {
  checkTopKDivergence,
  parseShapes,
  parseTopKShapes,
  sweepShapes,
  topKSweepShapes,
} from './shapes.js';
import { timeTopKShape } from './top-k.js';

/**
 * Times every shape: the fused and the stock loss (forward+backward, wall clock; GPU clock too
 * with 'timestamp-query'; forward and backward apart with `phases`), their dispatches and peak
 * memory, and the memory ceiling. A side that fails (out of memory, a binding past the
 * adapter's limit, a lost device, any error) or is skipped by the memory budget is recorded in
 * `failures` and the run goes on. Stops cleanly on abort (complete: false, the shapes done so
 * far). Throws on a tensor leak.
 */
export async function runKernelBenchmark(options: KernelBenchOptions): Promise<KernelReport> {
  const started = performance.now();
  const { divergence, beta } = parseDivergenceOptions(options.divergence, options.beta);
  const sweep = options.sweep ?? null;
  const shapes = sweep
    ? sweepShapes(sweep)
    : typeof options.shapes === 'string'
      ? parseShapes(options.shapes)
      : options.shapes.map(([b, c]): [number, number] => [b, c]);
  const topKShapes: [number, number, number][] =
    sweep === 'topk'
      ? topKSweepShapes()
      : sweep !== null || options.topK == null
        ? []
        : typeof options.topK === 'string'
          ? parseTopKShapes(options.topK)
          : options.topK.map(([b, c, k]): [number, number, number] => [b, c, k]);
  checkTopKDivergence(topKShapes, sweep, divergence);
  const linearShapes: [number, number, number][] =
    options.linear == null
      ? []
      : typeof options.linear === 'string'
        ? parseLinearSizes(options.linear)
        : options.linear.map(([r, h, v]): [number, number, number] => [r, h, v]);
  const phases = options.phases ?? sweep !== null;
  const memoryBudgetBytes =
    options.memoryBudgetBytes !== undefined
      ? options.memoryBudgetBytes
      : sweep
        ? DEFAULT_MEMORY_BUDGET_GIB * GiB
        : null;
  const maxSideMs = options.maxSideMs !== undefined ? options.maxSideMs : sweep ? 30_000 : null;
  const linear: LinearSettings | null =
    linearShapes.length > 0
      ? {
          shapes: linearShapes,
          opBudgetBytes: options.linearOpBudgetBytes ?? null,
          capBytes: memoryBudgetBytes ?? DEFAULT_MEMORY_BUDGET_GIB * GiB,
          tryPastBinding: options.linearTryPastBinding ?? false,
          singleStep: options.linearSingleStep ?? false,
          teacherLogits: 'inside-step-constant',
        }
      : null;
  const availability = gpuClockAvailability();
  let lostMessage: string | null = null;
  void options.device.lost.then((info) => {
    lostMessage = `the GPU device was lost (${info.reason}): ${info.message}`;
  });
  const report: KernelReport = {
    kind: 'kernel-benchmark',
    schemaVersion: 1,
    timestamp: new Date().toISOString(),
    adapter: options.meta.adapter,
    software: options.meta.software,
    commit: options.meta.commit,
    versions: options.meta.versions,
    settings: {
      shapes,
      windows: options.windows,
      windowMs: options.windowMs,
      alpha: options.alpha,
      temperature: options.temperature,
      seed: options.seed,
      sweep,
      phases,
      memoryBudgetBytes,
      maxSideMs,
      topKShapes,
      divergence,
      beta,
      stockBaseline: stockBaselineOf(divergence),
      ...(linear ? { linear } : {}),
    },
    results: [],
    failures: [],
    topK: [],
    ...(linear ? { linear: [] as LinearShapeResult[] } : {}),
    plan: null,
    clocks: {
      wall: WALL_CLOCK_TEXT,
      gpu: availability.available
        ? `${GPU_CLOCK_TEXT}; the ceiling: one pass of a window's dispatches with timestampWrites, per dispatch`
        : `no GPU-clock figures: ${availability.reason}`,
      gpuAvailable: availability.available,
    },
    complete: false,
    totalWallMs: 0,
  };
  try {
    const limits = options.device.limits;
    let memory: KernelMemoryModel | null = null;
    if (memoryBudgetBytes !== null && shapes.length > 0) {
      options.onProgress?.(
        `calibrating the memory model and the time estimate at ${CALIBRATION_SHAPE.join('x')}`,
      );
      memory = await calibrateKernelBench({ ...options, divergence, beta });
    }
    const plan = planKernelRun(shapes, memory, {
      budgetBytes: memoryBudgetBytes,
      maxBufferSize: limits.maxBufferSize,
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      windows: options.windows,
      windowMs: options.windowMs,
      phases,
      gpuClock: availability.available,
      maxSideMs,
    });
    report.plan = plan;
    options.onPlan?.(plan);
    let done = 0;
    for (const [i, shapePlan] of plan.shapes.entries()) {
      if (options.signal?.aborted) break;
      let r: KernelShapeResult | KernelShapeFailure;
      try {
        r = await timeShape(options, shapePlan, {
          gpuClock: availability.available,
          phases,
          maxSideMs,
          deviceLost: () => lostMessage,
        });
      } catch (err) {
        if (err instanceof Aborted) break;
        throw err;
      }
      done++;
      if (isShapeFailure(r)) {
        report.failures!.push(r);
        options.onFailure?.(r, i, shapes.length);
      } else {
        report.results.push(r);
        options.onShape?.(r, i, shapes.length);
      }
    }
    let topKDone = 0;
    for (const [i, shape] of topKShapes.entries()) {
      if (options.signal?.aborted) break;
      let r: TopKShapeResult;
      try {
        r = await timeTopKShape(options, shape, {
          gpuClock: availability.available,
          maxSideMs,
          deviceLost: () => lostMessage,
        });
      } catch (err) {
        if (err instanceof Aborted) break;
        throw err;
      }
      topKDone++;
      report.topK!.push(r);
      options.onTopKShape?.(r, i, topKShapes.length);
    }
    let linearDone = 0;
    for (const [i, shape] of linearShapes.entries()) {
      if (options.signal?.aborted || !linear) break;
      let r: LinearShapeResult;
      try {
        r = await timeLinearShape(options, shape, linear, {
          gpuClock: availability.available,
          maxSideMs: maxSideMs ?? 30_000,
          deviceLost: () => lostMessage,
        });
      } catch (err) {
        if (err instanceof Aborted) break;
        throw err;
      }
      linearDone++;
      report.linear!.push(r);
      options.onLinearShape?.(r, i, linearShapes.length);
    }
    report.complete =
      done === shapes.length &&
      topKDone === topKShapes.length &&
      linearDone === linearShapes.length;
    const resolution = report.results.find((r) => r.gpuResolutionMs !== null)?.gpuResolutionMs;
    if (resolution != null && resolution >= 0.001) {
      report.clocks.gpu +=
        `; pass times came in multiples of ${(resolution * 1000).toFixed(3)} µs (the ` +
        "implementation's timestamp quantization): a pass shorter than that reads as 0 or one step";
    }
  } finally {
    report.totalWallMs = performance.now() - started;
  }
  return report;
}
