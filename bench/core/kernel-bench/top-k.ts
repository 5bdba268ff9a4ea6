/**
 * Times one sparse (top-K) teacher shape `BxCkK` of the kernel benchmark (forward KL): the
 * fused loss with the teacher's top-K and with the dense logits they came from, in alternating
 * windows so that their ratio comes from the same stretch of time, then the stock composition
 * with the same top-K; see {@link TopKShapeResult}.
 */
import * as tf from '@tensorflow/tfjs-core';
import { distillationLoss, topKTeacher, type SparseTeacher } from 'tfjs-fused-distill';
import {
  failureText,
  releasePooledGpuBuffers,
  withGpuErrorScopes,
  type StepFailure,
} from '../lib/gpu-memory.js';
import {
  GPU_CLOCK,
  kerasStockLoss,
  lossStep,
  timeStepsGpu,
  WALL_CLOCK,
} from '../lib/loss-timing.js';
import {
  Aborted,
  checkStep,
  finite,
  makeInputs,
  timeAlternating,
  timeSteps,
  WIDE_CLASSES,
  WIDE_STOCK_WINDOWS,
  type CheckedStep,
} from './measure.js';
import type { KernelBenchOptions } from './options.js';
import { windowsFor } from './plan.js';
import type { KernelSideFigures, TopKShapeResult } from './report.js';
import { topKShapeName, type TopKShape } from './shapes.js';

/** Times one top-K shape; throws Aborted when the signal fires before its figures are done. */
export async function timeTopKShape(
  options: KernelBenchOptions,
  [batch, classes, topK]: TopKShape,
  run: { gpuClock: boolean; maxSideMs: number | null; deviceLost: () => string | null },
): Promise<TopKShapeResult> {
  const { windows, windowMs, signal } = options;
  const between = options.yieldToEventLoop;
  const name = topKShapeName([batch, classes, topK]);
  const progress = (what: string) => options.onProgress?.(`${name}: ${what}`);
  const config = { alpha: options.alpha, temperature: options.temperature };
  const before = tf.memory().numTensors;
  const result: TopKShapeResult = {
    batch,
    classes,
    topK,
    denseTeacherBytesPerRow: classes * 4,
    sparseTeacherBytesPerRow: topK * 8,
    sparse: null,
    dense: null,
    stock: null,
    sparseError: null,
    denseError: null,
    stockError: null,
    sparseOverDense: null,
    stockOverSparse: null,
    sparseOverDenseGpu: null,
    stockOverSparseGpu: null,
  };
  const check = <T>(x: T | null): T => {
    if (x === null || signal?.aborted) throw new Aborted();
    return x;
  };
  let inputs: { s: tf.Tensor; t: tf.Tensor; y: tf.Tensor; teacher: SparseTeacher } | null = null;
  let error: unknown = null;
  try {
    const gone = run.deviceLost();
    if (gone) {
      const text = failureText({ kind: 'device-lost', message: gone });
      result.sparseError = result.denseError = result.stockError = text;
    } else {
      const { s, t, y } = makeInputs(options.seed, batch, classes);
      // The sparse teacher of the same logits, built on the GPU (nothing read back).
      const built = await withGpuErrorScopes(options.device, () =>
        Promise.resolve(topKTeacher(t, topK)),
      );
      if (built.failure || !built.result) {
        tf.dispose([s, t, y]);
        const text = `topKTeacher ${failureText(built.failure ?? { kind: 'error', message: '' })}`;
        result.sparseError = result.denseError = result.stockError = text;
      } else {
        inputs = { s, t, y, teacher: built.result };
        await measure(inputs);
      }
    }
  } catch (err) {
    error = err;
  }
  if (inputs)
    tf.dispose([inputs.s, inputs.t, inputs.y, inputs.teacher.indices, inputs.teacher.logProbs]);
  releasePooledGpuBuffers();
  if (tf.memory().numTensors !== before) {
    throw new Error(`tensor leak: ${tf.memory().numTensors} tensors, expected ${before}`);
  }
  if (error !== null) throw error;
  return result;

  /** One checked step: errors, peak memory, dispatches, its time; or how it failed. */
  function checkSide(side: string, stepRun: () => tf.Tensor): Promise<CheckedStep | StepFailure> {
    return checkStep(options.device, stepRun, run.deviceLost, () =>
      progress(`${side}, checking one step (errors, peak memory, dispatches)`),
    );
  }

  function windowsOf(firstMs: number, wide: boolean): number {
    if (run.maxSideMs !== null) return windowsFor(firstMs, windows, run.maxSideMs, false);
    return wide ? Math.min(windows, WIDE_STOCK_WINDOWS) : windows;
  }

  async function gpuTimes(side: string, stepRun: () => tf.Tensor, w: number) {
    if (!run.gpuClock) return null;
    progress(`${side}, ${GPU_CLOCK}`);
    return check(await timeStepsGpu(stepRun, w, signal, between));
  }

  async function measure(x: NonNullable<typeof inputs>): Promise<void> {
    const { s, t, y, teacher } = x;
    const sparseRun = () => lossStep(distillationLoss, y, s, teacher, config);
    const denseRun = () => lossStep(distillationLoss, y, s, t, config);
    const stockRun = () => lossStep(kerasStockLoss, y, s, teacher, config);
    const sparseCheck = await checkSide('fused sparse', sparseRun);
    const denseCheck = await checkSide('fused dense', denseRun);
    if ('kind' in sparseCheck) result.sparseError = failureText(sparseCheck);
    if ('kind' in denseCheck) result.denseError = failureText(denseCheck);
    const fusedRuns: [string, () => tf.Tensor, Exclude<typeof sparseCheck, StepFailure>][] = [];
    if (!('kind' in sparseCheck)) fusedRuns.push(['sparse', sparseRun, sparseCheck]);
    if (!('kind' in denseCheck)) fusedRuns.push(['dense', denseRun, denseCheck]);
    if (fusedRuns.length > 0) {
      const w = Math.max(1, Math.min(...fusedRuns.map(([, , c]) => windowsOf(c.firstMs, false))));
      progress(
        `fused ${fusedRuns.map(([n]) => n).join(' and ')}, alternating windows, ${WALL_CLOCK}`,
      );
      const spreads = check(
        await timeAlternating(
          fusedRuns.map(([, r]) => r),
          w,
          windowMs,
          signal,
          between,
        ),
      );
      for (const [i, [side, stepRun, c]] of fusedRuns.entries()) {
        const gpu = await gpuTimes(`fused ${side}`, stepRun, w);
        const figures: KernelSideFigures = {
          both: spreads[i]!,
          forward: null,
          backward: null,
          gpu: gpu?.step ?? null,
          dispatches: c.dispatches,
          peakBytes: c.peakBytes,
          windows: w,
        };
        if (side === 'sparse') result.sparse = figures;
        else result.dense = figures;
      }
    }
    const stockCheck = await checkSide('stock sparse', stockRun);
    if ('kind' in stockCheck) {
      result.stockError = failureText(stockCheck);
    } else {
      const w = Math.max(1, windowsOf(stockCheck.firstMs, classes >= WIDE_CLASSES));
      progress(`stock sparse, ${WALL_CLOCK}`);
      const both = check(await timeSteps(stockRun, w, windowMs, signal, between));
      const gpu = await gpuTimes('stock sparse', stockRun, w);
      result.stock = {
        both,
        forward: null,
        backward: null,
        gpu: gpu?.step ?? null,
        dispatches: stockCheck.dispatches,
        peakBytes: stockCheck.peakBytes,
        windows: w,
      };
    }
    const { sparse, dense, stock } = result;
    result.sparseOverDense = sparse && dense ? finite(sparse.both.p50 / dense.both.p50) : null;
    result.stockOverSparse = sparse && stock ? finite(stock.both.p50 / sparse.both.p50) : null;
    result.sparseOverDenseGpu =
      sparse?.gpu && dense?.gpu ? finite(sparse.gpu.p50 / dense.gpu.p50) : null;
    result.stockOverSparseGpu =
      sparse?.gpu && stock?.gpu ? finite(stock.gpu.p50 / sparse.gpu.p50) : null;
  }
}
