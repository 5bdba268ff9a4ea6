/**
 * Times one `rows × H × V` size of the linear-head mode (`--linear`): the plain matMul of that
 * shape (the arithmetic floor), then each side (linear-report.ts) in turn: refused up front when
 * its arrays cannot be bound or its estimate exceeds the cap; else a checked step (errors, a
 * silent zero output), one step for the GPU bytes and dispatches, one under tf.profile(), and
 * the timed windows (wall; GPU timestamps where the device has them). A side that fails is
 * recorded, never aborting the run.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  failureText,
  releasePooledGpuBuffers,
  uploadToGpu,
  withGpuErrorScopes,
} from '../lib/gpu-memory.js';
import { GPU_CLOCK, timeStepsGpu, timeWindow, WALL_CLOCK } from '../lib/loss-timing.js';
import { spread, type Spread } from '../lib/stats.js';
import { kernelLossConfig, stockLossFor } from './losses.js';
import { Aborted, checkStep, finite, timeSteps } from './measure.js';
import type { KernelBenchOptions } from './options.js';
import { windowsFor } from './plan.js';
import {
  LINEAR_SIDES,
  type LinearMatMulFigures,
  type LinearSettings,
  type LinearShapeResult,
  type LinearSide,
  type LinearSideResult,
} from './linear-report.js';
import { linearShapeName, productFlops, type LinearShape } from './linear-shapes.js';
import {
  checkLinearSide,
  disposeLinearInputs,
  estimateLinearSideBytes,
  gradientBytes,
  linearStep,
  makeLinearInputs,
  matMulShape,
  pastBindingText,
  profileLinearStep,
  refuseLinearSide,
  type LinearInputs,
  type LinearStepConfig,
} from './linear-sides.js';

/** A step longer than this gets no separate warm-up and one call per window. */
const LONG_STEP_MS = 1000;
/** GPU-clock samples per side, at most (each one a whole step). */
const MAX_GPU_SAMPLES = 5;

/** Wall times of a side: timeSteps for short steps; one call per window for long ones. */
async function timeLinearSteps(
  run: () => tf.Tensor,
  windows: number,
  windowMs: number,
  stepMs: number,
  signal: AbortSignal | undefined,
  between: (() => Promise<void>) | undefined,
): Promise<Spread | null> {
  if (stepMs < LONG_STEP_MS) return timeSteps(run, windows, windowMs, signal, between);
  const samples: number[] = [];
  for (let w = 0; w < windows && !signal?.aborted; w++) {
    samples.push(await timeWindow(run, 1));
    await between?.();
  }
  return samples.length > 0 ? spread(samples) : null;
}

function emptySide(side: LinearSide, estimatedBytes: number): LinearSideResult {
  return {
    side,
    status: 'failed',
    error: null,
    wall: null,
    gpu: null,
    windows: 0,
    dispatches: null,
    firstMs: null,
    profilePeakBytes: null,
    profileExtraBytes: null,
    gpuPeakBytes: null,
    check: null,
    estimatedBytes,
  };
}

function relDiff(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-30);
}

/** Times one linear size; throws Aborted when the signal fires before its figures are done. */
export async function timeLinearShape(
  options: KernelBenchOptions,
  shape: LinearShape,
  settings: LinearSettings,
  run: { gpuClock: boolean; maxSideMs: number | null; deviceLost: () => string | null },
): Promise<LinearShapeResult> {
  const { windows, windowMs, signal } = options;
  const between = options.yieldToEventLoop;
  const [rows, hidden, vocab] = shape;
  const name = linearShapeName(shape);
  const progress = (what: string) => options.onProgress?.(`${name}: ${what}`);
  const limits = options.device.limits;
  const config: LinearStepConfig = {
    loss: kernelLossConfig(options),
    opBudgetBytes: settings.opBudgetBytes,
    stockLoss: stockLossFor(options.divergence ?? 'forward-kl'),
  };
  const flops = productFlops(shape);
  const sides = Object.fromEntries(
    LINEAR_SIDES.map((s) => [
      s,
      emptySide(s, estimateLinearSideBytes(s, shape, settings.opBudgetBytes)),
    ]),
  ) as Record<LinearSide, LinearSideResult>;
  const result: LinearShapeResult = {
    rows,
    hidden,
    vocab,
    studentFlops: 3 * flops,
    teacherFlops: flops,
    matmul: {
      shape: matMulShape(shape, limits.maxStorageBufferBindingSize),
      wall: null,
      gpu: null,
      gflops: null,
      gpuGflops: null,
      error: null,
    },
    floorMs: null,
    floorGpuMs: null,
    sides,
    fusedOverMatmulFused: null,
    stockOverFused: null,
    fusedOverMatmulFusedGpu: null,
    stockOverFusedGpu: null,
    fusedVsMatmulRelDiff: null,
  };
  const check = <T>(x: T | null): T => {
    if (x === null || signal?.aborted) throw new Aborted();
    return x;
  };
  const before = tf.memory().numTensors;
  let inputs: LinearInputs | null = null;
  let error: unknown = null;
  try {
    for (const s of LINEAR_SIDES) {
      const why = refuseLinearSide(s, shape, {
        maxBufferSize: limits.maxBufferSize,
        maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
        capBytes: settings.capBytes,
        opBudgetBytes: settings.opBudgetBytes,
        tryPastBinding: settings.tryPastBinding,
      });
      if (why !== null) Object.assign(sides[s], { status: 'refused', error: `refused: ${why}` });
    }
    const gone = run.deviceLost();
    if (gone) {
      for (const s of LINEAR_SIDES) {
        if (sides[s].status !== 'refused')
          sides[s].error = failureText({ kind: 'device-lost', message: gone });
      }
      result.matmul.error = failureText({ kind: 'device-lost', message: gone });
    } else {
      result.matmul = await timeMatMul(result.matmul.shape);
      if (LINEAR_SIDES.some((s) => sides[s].status !== 'refused')) {
        progress('making the inputs');
        inputs = makeLinearInputs(options.seed, shape);
        for (const s of LINEAR_SIDES) {
          if (sides[s].status !== 'refused') await measureSide(s, inputs);
        }
      }
    }
  } catch (err) {
    error = err;
  }
  if (inputs) disposeLinearInputs(inputs);
  releasePooledGpuBuffers();
  if (error === null && tf.memory().numTensors !== before) {
    const failed = LINEAR_SIDES.filter((s) => sides[s].status === 'failed' && sides[s].error)
      .map((s) => `${s} ${sides[s].error}`)
      .join('; ');
    throw new Error(
      `tensor leak at ${name}: ${tf.memory().numTensors} tensors, expected ${before}` +
        (failed ? ` (after failed sides: ${failed})` : ''),
    );
  }
  if (error !== null) throw error;
  const floorFlops = result.studentFlops + result.teacherFlops;
  const m = result.matmul;
  result.floorMs = m.gflops ? finite(floorFlops / (m.gflops * 1e6)) : null;
  result.floorGpuMs = m.gpuGflops ? finite(floorFlops / (m.gpuGflops * 1e6)) : null;
  const a = sides['fused-linear'];
  const b = sides['matmul-fused'];
  const c = sides['matmul-stock'];
  result.fusedOverMatmulFused = a.wall && b.wall ? finite(a.wall.p50 / b.wall.p50) : null;
  result.stockOverFused = a.wall && c.wall ? finite(c.wall.p50 / a.wall.p50) : null;
  result.fusedOverMatmulFusedGpu = a.gpu && b.gpu ? finite(a.gpu.p50 / b.gpu.p50) : null;
  result.stockOverFusedGpu = a.gpu && c.gpu ? finite(c.gpu.p50 / a.gpu.p50) : null;
  if (a.check && b.check && a.status === 'ok' && b.status === 'ok') {
    result.fusedVsMatmulRelDiff = finite(
      Math.max(
        relDiff(a.check.loss, b.check.loss),
        relDiff(a.check.hiddenGradAbsSum, b.check.hiddenGradAbsSum),
        relDiff(a.check.weightGradAbsSum, b.check.weightGradAbsSum),
        relDiff(a.check.biasGradAbsSum, b.check.biasGradAbsSum),
      ),
    );
  }
  return result;

  function windowsOf(stepMs: number): number {
    return Math.max(1, windowsFor(stepMs, windows, run.maxSideMs, false));
  }

  /** The plain matMul `[rows', H] · [H, V']`: its throughput on this adapter. */
  async function timeMatMul([r, h, v]: [number, number, number]): Promise<LinearMatMulFigures> {
    const figures: LinearMatMulFigures = {
      shape: [r, h, v],
      wall: null,
      gpu: null,
      gflops: null,
      gpuGflops: null,
      error: null,
    };
    progress(`plain matMul [${r}, ${h}] · [${h}, ${v}], ${WALL_CLOCK}`);
    const a = tf.randomUniform([r, h], -1, 1, 'float32', options.seed);
    const w = tf.randomUniform([h, v], -1, 1, 'float32', options.seed + 1);
    uploadToGpu([a, w]);
    try {
      const matmul = () => tf.matMul(a, w);
      const checked = await withGpuErrorScopes(options.device, async () => {
        const t0 = performance.now();
        const s = tf.tidy(() => tf.sum(tf.abs(matmul())));
        try {
          return { sum: (await s.data())[0]!, ms: performance.now() - t0 };
        } finally {
          s.dispose();
        }
      });
      if (checked.failure || !checked.result) {
        figures.error = failureText(checked.failure ?? { kind: 'error', message: 'no result' });
        return figures;
      }
      if (!(checked.result.sum > 0 && Number.isFinite(checked.result.sum))) {
        figures.error = `error: the product reads ${checked.result.sum}`;
        return figures;
      }
      const stepMs = checked.result.ms;
      const w_ = windowsOf(stepMs);
      figures.wall = check(await timeLinearSteps(matmul, w_, windowMs, stepMs, signal, between));
      const productGflop = (2 * r * h * v) / 1e9;
      figures.gflops = finite(productGflop / (figures.wall.p50 / 1000));
      if (run.gpuClock) {
        progress(`plain matMul, ${GPU_CLOCK}`);
        const gpu = check(
          await timeStepsGpu(matmul, Math.min(w_, MAX_GPU_SAMPLES), signal, between),
        );
        figures.gpu = gpu.step;
        figures.gpuGflops = finite(productGflop / (gpu.step.p50 / 1000));
      }
      return figures;
    } finally {
      tf.dispose([a, w]);
    }
  }

  async function measureSide(s: LinearSide, x: LinearInputs): Promise<void> {
    const side = sides[s];
    const stepRun = () => linearStep(s, x, config);
    progress(`${s}, checking one step (errors, a zero or non-finite output)`);
    const past =
      s === 'fused-linear' ? null : pastBindingText(shape, limits.maxStorageBufferBindingSize);
    const checked = await checkLinearSide(options.device, s, x, config, past);
    side.check = checked.check;
    side.firstMs = checked.ms;
    if (checked.failure) {
      side.error = failureText(checked.failure);
      return;
    }
    const stepped = await checkStep(options.device, stepRun, run.deviceLost, () =>
      progress(`${s}, one step (peak GPU bytes, dispatches)`),
    );
    if ('kind' in stepped) {
      side.error = failureText(stepped);
      return;
    }
    side.dispatches = stepped.dispatches;
    side.gpuPeakBytes = stepped.peakBytes;
    if (settings.singleStep) {
      side.wall = spread([stepped.firstMs]);
      side.windows = 1;
      side.status = 'ok';
      side.error = null;
      return;
    }
    progress(`${s}, one step under tf.profile() (peak bytes)`);
    const profiled = await profileLinearStep(stepRun, gradientBytes(shape));
    side.profilePeakBytes = profiled?.raw ?? null;
    side.profileExtraBytes = profiled?.extra ?? null;
    const stepMs = stepped.firstMs;
    const w = windowsOf(stepMs);
    progress(`${s}, ${WALL_CLOCK}`);
    side.wall = check(await timeLinearSteps(stepRun, w, windowMs, stepMs, signal, between));
    side.windows = w;
    if (run.gpuClock) {
      progress(`${s}, ${GPU_CLOCK}`);
      side.gpu = check(
        await timeStepsGpu(stepRun, Math.min(w, MAX_GPU_SAMPLES), signal, between),
      ).step;
    }
    side.status = 'ok';
    side.error = null;
  }
}
