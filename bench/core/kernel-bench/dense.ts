/**
 * Times one dense `[B, C]` shape of the kernel benchmark: the fused and the stock loss
 * (forward+backward on the wall clock; forward and backward apart with `phases`; the GPU clock
 * with 'timestamp-query'), each after a checked first step, then the memory ceiling. A side
 * that fails or is skipped makes the shape a {@link KernelShapeFailure}.
 */
import * as tf from '@tensorflow/tfjs-core';
import { distillationLoss } from 'tfjs-fused-distill';
import {
  failureText,
  releasePooledGpuBuffers,
  withGpuErrorScopes,
  type StepFailure,
} from '../lib/gpu-memory.js';
import {
  GPU_CLOCK,
  lossStep,
  timeStepsGpu,
  WALL_CLOCK,
  type GpuStepTimes,
  type LossFn,
} from '../lib/loss-timing.js';
import { measureMemoryCeiling } from '../lib/memory-ceiling.js';
import type { Spread } from '../lib/stats.js';
import { kernelLossConfig, stockLossFor } from './losses.js';
import {
  Aborted,
  checkStep,
  finite,
  makeInputs,
  timePhases,
  timeSteps,
  WIDE_CLASSES,
  WIDE_STOCK_WINDOWS,
} from './measure.js';
import type { KernelBenchOptions } from './options.js';
import { windowsFor } from './plan.js';
import type {
  KernelShapeFailure,
  KernelShapeResult,
  KernelSideFigures,
  ShapePlan,
  SidePlan,
} from './report.js';

type SideOutcome = { figures: KernelSideFigures; gpu: GpuStepTimes | null } | StepFailure;

/** Times one shape; throws Aborted when the signal fires before its figures are complete. */
export async function timeShape(
  options: KernelBenchOptions,
  plan: ShapePlan,
  run: {
    gpuClock: boolean;
    phases: boolean;
    maxSideMs: number | null;
    deviceLost: () => string | null;
  },
): Promise<KernelShapeResult | KernelShapeFailure> {
  const { batch, classes } = plan;
  const { windows, windowMs, signal } = options;
  const between = options.yieldToEventLoop;
  const progress = (what: string) => options.onProgress?.(`${batch}x${classes}: ${what}`);
  const config = kernelLossConfig(options);
  const before = tf.memory().numTensors;
  const lost = run.deviceLost();
  const skipAll = !!lost || (plan.fused.skip !== null && plan.stock.skip !== null);
  const inputs = skipAll ? null : makeInputs(options.seed, batch, classes);
  const check = <T>(x: T | null): T => {
    if (x === null || signal?.aborted) throw new Aborted();
    return x;
  };
  let outcome: { result: KernelShapeResult | KernelShapeFailure } | { error: unknown };
  try {
    outcome = { result: await measure() };
  } catch (error) {
    outcome = { error };
  }
  if (inputs) tf.dispose([inputs.s, inputs.t, inputs.y]);
  releasePooledGpuBuffers();
  if (tf.memory().numTensors !== before) {
    // A leak outranks an abort or another failure.
    throw new Error(`tensor leak: ${tf.memory().numTensors} tensors, expected ${before}`);
  }
  if ('error' in outcome) throw outcome.error;
  return outcome.result;

  async function side(
    name: 'fused' | 'stock',
    loss: LossFn,
    sidePlan: SidePlan,
    defaultWindows: number,
  ): Promise<SideOutcome> {
    const gone = run.deviceLost();
    if (gone) return { kind: 'device-lost', message: gone };
    if (sidePlan.skip !== null) return { kind: 'skipped', message: sidePlan.skip };
    const { s, t, y } = inputs!;
    const stepRun = () => lossStep(loss, y, s, t, config);
    const forwardRun = () => tf.tidy(() => loss(y, s, t, config));
    const checked = await checkStep(options.device, stepRun, run.deviceLost, () =>
      progress(`${name}, checking one step (errors, peak memory, dispatches)`),
    );
    if ('kind' in checked) return checked;
    const { dispatches, peakBytes, firstMs } = checked;
    const w = Math.max(
      1,
      run.maxSideMs === null
        ? defaultWindows
        : windowsFor(firstMs, defaultWindows, run.maxSideMs, run.phases),
    );
    let both: Spread;
    let forward: Spread | null = null;
    let backward: Spread | null = null;
    if (run.phases) {
      progress(`${name}, forward and forward+backward, ${WALL_CLOCK}`);
      const p = check(await timePhases(stepRun, forwardRun, w, windowMs, firstMs, signal, between));
      ({ both, forward, backward } = p);
    } else {
      progress(`${name}, ${WALL_CLOCK}`);
      both = check(await timeSteps(stepRun, w, windowMs, signal, between));
    }
    let gpu: GpuStepTimes | null = null;
    if (run.gpuClock) {
      progress(`${name}, ${GPU_CLOCK}`);
      gpu = check(await timeStepsGpu(stepRun, w, signal, between));
    }
    return {
      figures: {
        both,
        forward,
        backward,
        gpu: gpu?.step ?? null,
        dispatches,
        peakBytes,
        windows: w,
      },
      gpu,
    };
  }

  async function measure(): Promise<KernelShapeResult | KernelShapeFailure> {
    const stockDefault =
      run.maxSideMs === null
        ? Math.min(windows, classes >= WIDE_CLASSES ? WIDE_STOCK_WINDOWS : windows)
        : windows;
    const fused = await side('fused', distillationLoss, plan.fused, windows);
    const stockLoss = stockLossFor(options.divergence ?? 'forward-kl');
    const stock = await side('stock', stockLoss, plan.stock, stockDefault);
    const fusedOk = 'figures' in fused ? fused : null;
    const stockOk = 'figures' in stock ? stock : null;
    // The ceiling: as many calls per window as the fused step's window held.
    let ceiling: Spread | null = null;
    let ceilingGpu: Spread | null = null;
    let ceilingFailure: StepFailure | null = null;
    const gone = run.deviceLost();
    if (gone) ceilingFailure = { kind: 'device-lost', message: gone };
    else if (plan.ceiling.skip !== null) {
      ceilingFailure = { kind: 'skipped', message: plan.ceiling.skip };
    } else {
      progress('memory ceiling');
      const refMs = fusedOk?.figures.both.p50 ?? (batch * classes * 12) / 1e6;
      const ceilingCalls = Math.max(1, Math.round(windowMs / Math.max(refMs, 0.01)));
      const ceilingWindows = fusedOk?.figures.windows ?? windows;
      const measured = await withGpuErrorScopes(options.device, () =>
        measureMemoryCeiling(
          options.device,
          options.ceilingShader,
          batch * classes,
          ceilingWindows,
          ceilingCalls,
          signal,
        ),
      );
      if (measured.failure) ceilingFailure = measured.failure;
      else {
        ceiling = check(measured.result!.wall.n > 0 ? measured.result!.wall : null);
        ceilingGpu = run.gpuClock ? check(measured.result!.gpu) : null;
      }
    }
    const bytes = 3 * batch * classes * 4;
    const gbps = (ms: number) => bytes / ms / 1e6;
    if (!fusedOk || !stockOk || !ceiling) {
      const err = (o: SideOutcome | StepFailure | null) =>
        o && !('figures' in o) ? failureText(o) : null;
      const kind = (o: SideOutcome | StepFailure | null) =>
        o && !('figures' in o) ? o.kind : null;
      return {
        batch,
        classes,
        fusedError: err(fused),
        stockError: err(stock),
        ceilingError: err(ceilingFailure),
        fusedErrorKind: kind(fused),
        stockErrorKind: kind(stock),
        ceilingErrorKind: kind(ceilingFailure),
        fused: fusedOk?.figures ?? null,
        stock: stockOk?.figures ?? null,
        ceiling,
        ceilingGpu,
        fusedGBps: fusedOk ? gbps(fusedOk.figures.both.p50) : null,
        ceilingGBps: ceiling ? gbps(ceiling.p50) : null,
        ceilingRatio: fusedOk && ceiling ? fusedOk.figures.both.p50 / ceiling.p50 : null,
        estimatedBytes: {
          fused: plan.fused.estimatedBytes,
          stock: plan.stock.estimatedBytes,
          ceiling: plan.ceiling.estimatedBytes,
        },
      };
    }
    const f = fusedOk.figures;
    const st = stockOk.figures;
    const fusedGpu = fusedOk.gpu;
    const stockGpu = stockOk.gpu;
    const resolutions = [fusedGpu?.resolutionMs, stockGpu?.resolutionMs].filter(
      (r): r is number => typeof r === 'number',
    );
    const result: KernelShapeResult = {
      batch,
      classes,
      fused: f.both,
      stock: st.both,
      ceiling,
      fusedDispatches: f.dispatches,
      stockDispatches: st.dispatches,
      speedup: st.both.p50 / f.both.p50,
      ceilingRatio: f.both.p50 / ceiling.p50,
      fusedGBps: gbps(f.both.p50),
      ceilingGBps: gbps(ceiling.p50),
      fusedGpu: fusedGpu?.step ?? null,
      stockGpu: stockGpu?.step ?? null,
      ceilingGpu,
      fusedGpuPasses: fusedGpu?.passes ?? null,
      stockGpuPasses: stockGpu?.passes ?? null,
      // A GPU time below the clock's resolution reads 0: such ratios are null, not Infinity
      // (which JSON cannot hold).
      speedupGpu: finite(fusedGpu && stockGpu ? stockGpu.step.p50 / fusedGpu.step.p50 : null),
      ceilingRatioGpu: finite(fusedGpu && ceilingGpu ? fusedGpu.step.p50 / ceilingGpu.p50 : null),
      fusedGpuGBps: finite(fusedGpu ? gbps(fusedGpu.step.p50) : null),
      ceilingGpuGBps: finite(ceilingGpu ? gbps(ceilingGpu.p50) : null),
      gpuResolutionMs: resolutions.length > 0 ? Math.min(...resolutions) : null,
      clock: {
        fused: WALL_CLOCK,
        stock: WALL_CLOCK,
        ceiling: WALL_CLOCK,
        fusedGpu: fusedGpu ? GPU_CLOCK : null,
        stockGpu: stockGpu ? GPU_CLOCK : null,
        ceilingGpu: ceilingGpu ? `${GPU_CLOCK}, one pass per window` : null,
      },
      fusedForward: f.forward,
      stockForward: st.forward,
      fusedBackward: f.backward,
      stockBackward: st.backward,
      fusedPeakBytes: f.peakBytes,
      stockPeakBytes: st.peakBytes,
      fusedWindows: f.windows,
      stockWindows: st.windows,
    };
    return result;
  }
}
