/**
 * The kernel benchmark's linear-head mode (bench/core/kernel-bench/linear*.ts) on the Node
 * WebGPU adapter, at tiny sizes: its sizes and refusals, the three sides measured with their
 * peak bytes and the floor, the check that fails a side on a zero output, a refused side on a
 * device whose binding limit is smaller, the CSV and results-table rows, no tensor leak.
 */
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs-core';
// Registers the stock ops' gradients for the stock composition.
import '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, test } from 'vitest';
import {
  formatKernelReport,
  formatLinearLine,
  kernelCsvRows,
  LINEAR_SIDES,
  linearGridShapes,
  parseLinearSizes,
  runKernelBenchmark,
  type KernelBenchOptions,
  type KernelReport,
} from '../bench/core/kernel-bench/index.js';
import {
  checkLinearSide,
  disposeLinearInputs,
  makeLinearInputs,
  matMulShape,
  pastBindingText,
  refuseLinearSide,
} from '../bench/core/kernel-bench/linear-sides.js';
import { kernelResultRows, linearResultsSection } from '../bench/core/results-table/index.js';
import { kerasStockLoss } from '../bench/core/lib/loss-timing.js';
import { tfDevice, useCheckedWebGPU } from './helpers/backend.js';

useCheckedWebGPU();

const CEILING_SHADER = readFileSync(
  new URL('../bench/core/memory-ceiling.wgsl', import.meta.url),
  'utf8',
);

/** The tiny size every GPU test here runs: rows 64, H 32, V 1024. */
const TINY: [number, number, number] = [64, 32, 1024];

function options(overrides: Partial<KernelBenchOptions> = {}): KernelBenchOptions {
  return {
    device: tfDevice(),
    ceilingShader: CEILING_SHADER,
    shapes: [],
    topK: null,
    linear: [TINY],
    windows: 3,
    windowMs: 15,
    alpha: 0.1,
    temperature: 10,
    seed: 7,
    meta: {
      adapter: { description: 'test adapter', vendor: '', architecture: '', device: '', icd: '' },
      software: true,
      commit: 'test',
      versions: {},
    },
    ...overrides,
  };
}

/** tfjs' device with other limits (error scopes and everything else go to the real one). */
function withLimits(limits: Partial<Record<'maxStorageBufferBindingSize', number>>): GPUDevice {
  const device = tfDevice();
  const merged = {
    maxBufferSize: device.limits.maxBufferSize,
    maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
    ...limits,
  };
  return new Proxy(device, {
    get(target, p) {
      if (p === 'limits') return merged;
      const v = Reflect.get(target, p, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

describe('linear sizes and refusals', () => {
  test('parseLinearSizes: the grid by default, lists, errors that name the flag', () => {
    expect(parseLinearSizes('grid')).toEqual(linearGridShapes());
    expect(parseLinearSizes('')).toHaveLength(8);
    expect(linearGridShapes()[0]).toEqual([512, 256, 32768]);
    expect(parseLinearSizes('64x32x1024, 512x256x32768')).toEqual([TINY, [512, 256, 32768]]);
    expect(() => parseLinearSizes('64x1024')).toThrow(/--linear-sizes: expected entries/);
    expect(() => parseLinearSizes('0x32x1024')).toThrow(/positive/);
  });

  test('matMul sides past one binding are refused with the reason; the fused side is not', () => {
    const limits = {
      maxBufferSize: 2 ** 31,
      maxStorageBufferBindingSize: 2 ** 27,
      capBytes: 8 * 2 ** 30,
      opBudgetBytes: null,
      tryPastBinding: false,
    };
    const big: [number, number, number] = [2048, 256, 32768]; // [2048, 32768] = 256 MiB
    expect(pastBindingText(big, limits.maxStorageBufferBindingSize)).toMatch(
      /one \[2048, 32768\] float32 array \(256 MiB\) exceeds maxStorageBufferBindingSize/,
    );
    expect(refuseLinearSide('matmul-fused', big, limits)).toMatch(/matMul past that returns zeros/);
    expect(refuseLinearSide('fused-linear', big, limits)).toBeNull();
    expect(refuseLinearSide('matmul-fused', big, { ...limits, tryPastBinding: true })).toBeNull();
    // 30 [rows, V] arrays of 256 MiB exceed a 4 GiB cap.
    expect(
      refuseLinearSide('matmul-stock', big, { ...limits, tryPastBinding: true, capBytes: 2 ** 32 }),
    ).toMatch(/exceeds the cap of 4.00 GiB/);
    expect(refuseLinearSide('matmul-fused', [512, 256, 32768], limits)).toBeNull();
    // The plain matMul is cut to one binding: [H, V'] and [rows', V'] fit.
    expect(matMulShape([2048, 768, 131072], 2 ** 27)).toEqual([1024, 768, 32768]);
    expect(matMulShape(TINY, 2 ** 27)).toEqual(TINY);
  });
});

describe('runKernelBenchmark with linear sizes', () => {
  let report: KernelReport;

  beforeAll(async () => {
    const seen: string[] = [];
    const before = tf.memory().numTensors;
    report = await runKernelBenchmark(
      options({ onLinearShape: (r, i, n) => seen.push(`${r.rows}x${r.vocab} ${i}/${n}`) }),
    );
    expect(tf.memory().numTensors).toBe(before);
    expect(seen).toEqual(['64x1024 0/1']);
  });

  test('three sides measured, the floor, the ratios, the peak bytes', () => {
    expect(report.complete).toBe(true);
    expect(report.results).toEqual([]);
    expect(report.settings.linear).toMatchObject({ shapes: [TINY], tryPastBinding: false });
    const [r] = report.linear!;
    expect([r!.rows, r!.hidden, r!.vocab]).toEqual(TINY);
    expect(r!.studentFlops).toBe(3 * 2 * 64 * 32 * 1024);
    expect(r!.teacherFlops).toBe(2 * 64 * 32 * 1024);
    expect(r!.matmul.shape).toEqual(TINY);
    expect(r!.matmul.gflops).toBeGreaterThan(0);
    expect(r!.floorMs).toBeCloseTo((4 * 2 * 64 * 32 * 1024) / (r!.matmul.gflops! * 1e6), 6);
    for (const s of LINEAR_SIDES) {
      const x = r!.sides[s];
      expect(x.status, `${s}: ${x.error}`).toBe('ok');
      expect(x.error).toBeNull();
      expect(x.wall!.p50).toBeGreaterThan(0);
      expect(x.wall!.n).toBe(3);
      expect(x.dispatches).toBeGreaterThan(0);
      expect(x.check!.loss).toBeGreaterThan(0);
      expect(x.check!.weightGradAbsSum).toBeGreaterThan(0);
      // The step's gradients alone are (64·32 + 32·1024 + 1024) floats.
      const grads = 4 * (64 * 32 + 32 * 1024 + 1024);
      expect(x.profilePeakBytes).toBeGreaterThanOrEqual(grads);
      expect(x.profileExtraBytes).toBe(x.profilePeakBytes! - grads);
      expect(x.gpuPeakBytes).toBeGreaterThan(0);
    }
    expect(r!.sides['matmul-fused'].check!.studentLogitsAbsMax).toBeGreaterThan(0);
    expect(r!.fusedOverMatmulFused).toBeCloseTo(
      r!.sides['fused-linear'].wall!.p50 / r!.sides['matmul-fused'].wall!.p50,
      10,
    );
    expect(r!.stockOverFused).toBeGreaterThan(0);
    // The fused op and matMul + the fused loss compute the same loss and gradients.
    expect(r!.fusedVsMatmulRelDiff).toBeLessThan(1e-3);
    expect(formatLinearLine(r!)).toMatch(/^64x32x1024: wall, one fence per window: fused-linear /);
    expect(formatKernelReport(report)).toContain('Linear head, forward+backward');
    expect(JSON.parse(JSON.stringify(report))).toEqual(report);
  });

  test('CSV rows and results-table rows', () => {
    const csv = kernelCsvRows(report);
    expect(csv.map((r) => r.linear_side)).toEqual([...LINEAR_SIDES]);
    expect(csv.every((r) => r.linear_status === 'ok' && r.hidden === 32)).toBe(true);
    const rows = kernelResultRows(report);
    const linear = rows.filter((r) => r.x_name === 'linear_shape');
    expect(new Set(linear.map((r) => r.x_value))).toEqual(new Set(['64x32x1024']));
    const time = (v: string) => linear.find((r) => r.metric === 'time_ms' && r.variant === v);
    for (const s of LINEAR_SIDES) expect(time(s)?.p50).toBeGreaterThan(0);
    expect(time('matmul')?.note).toBe('matMul 64x32x1024');
    expect(linear.some((r) => r.metric === 'time_ratio')).toBe(true);
    expect(linear.some((r) => r.metric === 'profile_extra_bytes')).toBe(true);
    expect(linear.some((r) => r.metric === 'failure')).toBe(false);
    expect(linearResultsSection(rows)).toMatch(/\| test adapter \| Node .*\| 64×32×1024 \|/);
  });
});

describe('refusals and failures on the GPU', () => {
  test('a smaller binding limit refuses the matMul sides; the fused side still runs', async () => {
    // [64, 1024] logits are 256 KiB: past a 128 KiB binding.
    const device = withLimits({ maxStorageBufferBindingSize: 128 * 1024 });
    const report = await runKernelBenchmark(options({ device }));
    const r = report.linear![0]!;
    for (const s of ['matmul-fused', 'matmul-stock'] as const) {
      expect(r.sides[s].status).toBe('refused');
      expect(r.sides[s].error).toMatch(/^refused: one \[64, 1024\] float32 array/);
    }
    expect(r.sides['fused-linear'].status).toBe('ok');
    expect(r.fusedOverMatmulFused).toBeNull();
    expect(r.matmul.shape).toEqual([32, 32, 1024]);
    const failures = kernelResultRows(report).filter((x) => x.metric === 'failure');
    expect(failures.map((x) => x.variant).sort()).toEqual(['matmul-fused', 'matmul-stock']);
  });

  test('a zero gradient fails the side, as zeros past the binding limit when one is', async () => {
    const x = makeLinearInputs(3, TINY);
    const zero = tf.zerosLike(x.h);
    const inputs = { ...x, h: zero as tf.Tensor2D };
    const config = {
      loss: { alpha: 0.1, temperature: 10 },
      opBudgetBytes: null,
      stockLoss: kerasStockLoss,
    };
    try {
      const plain = await checkLinearSide(tfDevice(), 'matmul-fused', inputs, config, null);
      expect(plain.failure?.message).toMatch(/^zero output \(Σ\|∂weight\| = 0/);
      const past = await checkLinearSide(
        tfDevice(),
        'fused-linear',
        inputs,
        config,
        'one [64, 1024] …',
      );
      expect(past.failure?.kind).toBe('binding-limit');
      expect(past.failure?.message).toMatch(/^zeros past the binding limit/);
      const ok = await checkLinearSide(tfDevice(), 'matmul-stock', x, config, null);
      expect(ok.failure).toBeNull();
    } finally {
      disposeLinearInputs(x);
      zero.dispose();
    }
  });
});
