/**
 * `npm run bench:kernel -- --divergence … [--beta …]` without a GPU clock: the flags' parsing and
 * validation, the stock baseline each divergence is timed against (checked for its value on the
 * cpu backend: the exact composition computes the divergence asked for, stockDistillationLoss
 * would not), and what a report records (settings, printed report, CSV columns, results-table
 * rows and the docs' tables), with reports and rows from before divergences read as forward KL.
 * Pure functions and synthetic reports only: test/kernel-bench.test.ts times the real thing.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, test } from 'vitest';
import {
  checkTopKDivergence,
  DEFAULT_TOPK_SHAPES,
  divergenceLabel,
  formatKernelReport,
  KERNEL_DIVERGENCES,
  kernelCsvRows,
  parseDivergenceOptions,
  reportDivergence,
  STOCK_BASELINE_TEXT,
  stockBaselineOf,
  stockLossFor,
  topKShapesFor,
  topKSweepShapes,
  type KernelReport,
  type KernelShapeResult,
} from '../bench/core/kernel-bench/index.js';
import {
  kernelResultRows,
  kernelResultsSection,
  kernelRowDivergence,
  latestVocabSweeps,
} from '../bench/core/results-table/index.js';
import { kerasStockLoss, lossStep } from '../bench/core/lib/loss-timing.js';
import { DIVERGENCE_NAMES, stockDistillationLoss, type Divergence } from 'tfjs-fused-distill';
import { referenceDistillationLoss } from 'tfjs-fused-distill/validation';
import { useCpu } from './helpers/backend.js';

// A value check of the baselines runs on the cpu backend; nothing here needs a GPU.
beforeAll(useCpu);

describe('--divergence and --beta', () => {
  test('the divergences are the package’s, forward-kl by default', () => {
    expect(KERNEL_DIVERGENCES).toEqual(DIVERGENCE_NAMES);
    expect(parseDivergenceOptions(undefined)).toEqual({ divergence: 'forward-kl', beta: null });
    expect(parseDivergenceOptions('forward-kl')).toEqual({ divergence: 'forward-kl', beta: null });
    expect(parseDivergenceOptions('reverse-kl')).toEqual({ divergence: 'reverse-kl', beta: null });
  });

  test('jsd: β defaults to 0.5; a string or a number in (0, 1)', () => {
    expect(parseDivergenceOptions('jsd')).toEqual({ divergence: 'jsd', beta: 0.5 });
    expect(parseDivergenceOptions('jsd', null)).toEqual({ divergence: 'jsd', beta: 0.5 });
    expect(parseDivergenceOptions('jsd', '0.2')).toEqual({ divergence: 'jsd', beta: 0.2 });
    expect(parseDivergenceOptions('jsd', ' 1e-3 ')).toEqual({ divergence: 'jsd', beta: 0.001 });
    expect(parseDivergenceOptions('jsd', 0.9)).toEqual({ divergence: 'jsd', beta: 0.9 });
  });

  test('an unknown divergence names the flag and the values it accepts', () => {
    for (const bad of ['kl', 'JSD', 'forward', '', 'reverse_kl']) {
      expect(() => parseDivergenceOptions(bad)).toThrow(
        `--divergence: unknown divergence "${bad}" (expected one of: forward-kl, reverse-kl, jsd)`,
      );
    }
  });

  test('β outside (0, 1), not a number, or without jsd is refused, naming --beta', () => {
    for (const bad of ['0', '1', '-0.1', '1.5', 'half', '0.2abc', '', 'NaN', 'Infinity', 0, 1]) {
      expect(() => parseDivergenceOptions('jsd', bad), String(bad)).toThrow(
        /^--beta: expected a number in \(0, 1\)/,
      );
    }
    for (const d of ['forward-kl', 'reverse-kl']) {
      expect(() => parseDivergenceOptions(d, '0.5')).toThrow(
        `--beta: applies to --divergence jsd only (got --divergence ${d})`,
      );
    }
    // the divergence is checked first: its error names --divergence
    expect(() => parseDivergenceOptions('bogus', '7')).toThrow(/^--divergence: unknown/);
  });

  test('labels: the JSD with its β', () => {
    expect(divergenceLabel('forward-kl', null)).toBe('forward-kl');
    expect(divergenceLabel('reverse-kl', undefined)).toBe('reverse-kl');
    expect(divergenceLabel('jsd', 0.2)).toBe('jsd (β = 0.2)');
    expect(divergenceLabel('jsd', null)).toBe('jsd (β = 0.5)');
  });
});

describe('top-K shapes with a divergence', () => {
  test('forward KL: --topk as given, the default included', () => {
    expect(topKShapesFor(DEFAULT_TOPK_SHAPES, false, null, 'forward-kl')).toEqual([
      [256, 32768, 32],
    ]);
    expect(topKShapesFor('8x100k4', true, null, 'forward-kl')).toEqual([[8, 100, 4]]);
    expect(topKShapesFor('none', true, 'topk', 'forward-kl')).toEqual([]);
  });

  test('another divergence: the default top-K shape is dropped, given ones are an error', () => {
    for (const d of ['reverse-kl', 'jsd'] as const) {
      expect(topKShapesFor(DEFAULT_TOPK_SHAPES, false, null, d)).toEqual([]);
      expect(topKShapesFor('none', true, null, d)).toEqual([]);
      expect(() => topKShapesFor('8x100k4,16x300k8', true, null, d)).toThrow(
        `--divergence ${d}: --topk 8x100k4,16x300k8 times top-K teachers, which are ` +
          'forward-kl only (use --topk none, or --divergence forward-kl)',
      );
      expect(() => topKShapesFor(DEFAULT_TOPK_SHAPES, false, 'topk', d)).toThrow(
        `--divergence ${d}: --sweep topk times top-K teachers`,
      );
      // the vocab sweep times no top-K shape: nothing to refuse
      expect(topKShapesFor('8x100k4', true, 'vocab', d)).toEqual([[8, 100, 4]]);
      expect(() => checkTopKDivergence(topKSweepShapes(), 'topk', d)).toThrow(/--sweep topk/);
    }
    expect(() => checkTopKDivergence(topKSweepShapes(), 'topk', 'forward-kl')).not.toThrow();
  });
});

describe('the stock baseline of each divergence', () => {
  test('forward KL: stockDistillationLoss (Keras); the others: the exact composition', () => {
    expect(stockBaselineOf('forward-kl')).toBe('keras');
    expect(stockLossFor('forward-kl')).toBe(kerasStockLoss);
    for (const d of ['reverse-kl', 'jsd'] as const) {
      expect(stockBaselineOf(d)).toBe('exact-composition');
      expect(stockLossFor(d)).not.toBe(kerasStockLoss);
    }
    expect(STOCK_BASELINE_TEXT.keras).toMatch(/stockDistillationLoss, the Keras formula/);
    expect(STOCK_BASELINE_TEXT['exact-composition']).toMatch(
      /exact composition .*exactStockOpsDistillationLoss of tfjs-fused-distill\/validation/,
    );
  });

  test('the Keras baseline is stockDistillationLoss, and refuses another divergence or a β', async () => {
    expect(tf.getBackend()).toBe('cpu');
    const y = tf.tensor1d([1, 0], 'int32');
    const s = tf.tensor2d([0.5, -1, 2, 0.25, 1.5, -0.5], [2, 3]);
    const t = tf.tensor2d([1, 0, -1, -2, 0.5, 3], [2, 3]);
    const config = { alpha: 0.3, temperature: 2 };
    const ours = kerasStockLoss(y, s, t, config);
    const theirs = stockDistillationLoss(y, s, t, config);
    expect(await ours.data()).toEqual(await theirs.data());
    expect(ours.rank).toBe(0);
    expect(() => kerasStockLoss(y, s, t, { ...config, divergence: 'jsd' })).toThrow(
      "stockDistillationLoss has the Keras formula's forward KL only, got divergence jsd",
    );
    expect(() => kerasStockLoss(y, s, t, { ...config, beta: 0.5 })).toThrow(
      /forward KL only, got divergence forward-kl, beta 0\.5/,
    );
    // forward KL named explicitly is the Keras formula's own
    const named = kerasStockLoss(y, s, t, { ...config, divergence: 'forward-kl' });
    expect(await named.data()).toEqual(await theirs.data());
    tf.dispose([y, s, t, ours, theirs, named]);
  });

  test('the exact-composition baseline computes the divergence asked for (value and gradient)', async () => {
    // On the cpu backend (a value check, no timing): the baseline's step against the float64
    // reference of the same divergence, int32 labels, at T = 4.
    expect(tf.getBackend()).toBe('cpu');
    {
      const B = 3;
      const C = 7;
      const s = Float32Array.from({ length: B * C }, (_, i) => Math.sin(i * 1.7) * 3);
      const t = Float32Array.from({ length: B * C }, (_, i) => Math.cos(i * 0.9) * 3);
      const labels = Int32Array.from([1, 6, 0]);
      for (const [divergence, beta] of [
        ['reverse-kl', undefined],
        ['jsd', 0.5],
        ['jsd', 0.2],
      ] as [Divergence, number | undefined][]) {
        const config = {
          alpha: 0.1,
          temperature: 4,
          divergence,
          ...(beta === undefined ? {} : { beta }),
        };
        const ref = referenceDistillationLoss(
          { batch: B, classes: C, student: s, teacher: t, labels, labelKind: 'index' },
          config,
        );
        const loss = stockLossFor(divergence);
        const ys = tf.tensor1d(labels, 'int32');
        const ss = tf.tensor2d(s, [B, C]);
        const ts = tf.tensor2d(t, [B, C]);
        const value = lossStep(loss, ys, ss, ts, config);
        const grad = tf.grad((a: tf.Tensor) => loss(ys, a, ts, config) as tf.Scalar)(ss);
        const v = (await value.data())[0]!;
        const g = await grad.data();
        expect(v, divergence).toBeCloseTo(ref.value[0]!, 4);
        for (let i = 0; i < B * C; i++) expect(g[i]!).toBeCloseTo(ref.gradStudent[i]!, 5);
        // and it is not forward KL (what stockDistillationLoss would have computed)
        const fkl = referenceDistillationLoss(
          { batch: B, classes: C, student: s, teacher: t, labels, labelKind: 'index' },
          { alpha: 0.1, temperature: 4 },
        );
        expect(Math.abs(v - fkl.value[0]!)).toBeGreaterThan(1e-3);
        tf.dispose([ys, ss, ts, value, grad]);
      }
      // a top-K teacher is not a baseline input
      const y = tf.tensor1d([0], 'int32');
      const x = tf.zeros([1, 4]);
      const teacher = { indices: tf.tensor2d([[0]], [1, 1], 'int32'), logProbs: tf.zeros([1, 1]) };
      expect(() =>
        stockLossFor('jsd')(y, x, teacher, { alpha: 0.1, temperature: 4, divergence: 'jsd' }),
      ).toThrow(/dense teacher logits only/);
      tf.dispose([y, x, teacher.indices, teacher.logProbs]);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// What a report records

const spread = (p50: number) => ({ p20: p50 * 0.9, p50, p80: p50 * 1.1, n: 3 });

function shapeResult(batch: number, classes: number): KernelShapeResult {
  return {
    batch,
    classes,
    fused: spread(1),
    stock: spread(20),
    ceiling: spread(0.5),
    fusedDispatches: 1,
    stockDispatches: 40,
    speedup: 20,
    ceilingRatio: 2,
    fusedGBps: 1,
    ceilingGBps: 2,
    fusedGpu: null,
    stockGpu: null,
    ceilingGpu: null,
    fusedGpuPasses: null,
    stockGpuPasses: null,
    speedupGpu: null,
    ceilingRatioGpu: null,
    fusedGpuGBps: null,
    ceilingGpuGBps: null,
    gpuResolutionMs: null,
    clock: {
      fused: 'wall',
      stock: 'wall',
      ceiling: 'wall',
      fusedGpu: null,
      stockGpu: null,
      ceilingGpu: null,
    },
  };
}

/** A report of `divergence` (β for jsd), or one from before divergences (`null`). */
function report(divergence: Divergence | null, beta: number | null = null): KernelReport {
  const settings: KernelReport['settings'] = {
    shapes: [[64, 1000]],
    windows: 3,
    windowMs: 10,
    alpha: 0.1,
    temperature: 10,
    seed: 1234,
  };
  if (divergence !== null) {
    settings.divergence = divergence;
    settings.beta = beta;
    settings.stockBaseline = stockBaselineOf(divergence);
  }
  return {
    kind: 'kernel-benchmark',
    schemaVersion: 1,
    timestamp: divergence === null ? '2026-11-01T00:00:00.000Z' : '2026-11-02T00:00:00.000Z',
    adapter: {
      description: 'test adapter',
      vendor: 'v',
      architecture: 'a',
      device: '',
      icd: 'dawn default',
    },
    software: true,
    commit: 'abc1234',
    versions: { node: 'v20', 'tfjs-core': '4.22.0', webgpu: '0.6' },
    settings,
    results: [shapeResult(64, 1000)],
    failures: [
      {
        batch: 512,
        classes: 131072,
        fusedError: null,
        stockError: 'skipped: too big',
        ceilingError: null,
        fusedErrorKind: null,
        stockErrorKind: 'skipped',
        ceilingErrorKind: null,
        fused: null,
        stock: null,
        ceiling: spread(5),
        ceilingGpu: null,
        fusedGBps: null,
        ceilingGBps: 1,
        ceilingRatio: null,
        estimatedBytes: { fused: 1, stock: 2, ceiling: 3 },
      },
    ],
    topK: [],
    plan: null,
    clocks: { wall: 'wall, one fence per window', gpu: 'none', gpuAvailable: false },
    complete: true,
    totalWallMs: 1,
  };
}

describe('the report records the divergence, β and the stock baseline', () => {
  test('reportDivergence: a report from before divergences is forward KL against Keras', () => {
    expect(reportDivergence(report(null))).toEqual({
      divergence: 'forward-kl',
      beta: null,
      baseline: 'keras',
    });
    expect(reportDivergence(report('jsd', 0.2))).toEqual({
      divergence: 'jsd',
      beta: 0.2,
      baseline: 'exact-composition',
    });
    expect(reportDivergence(report('reverse-kl'))).toEqual({
      divergence: 'reverse-kl',
      beta: null,
      baseline: 'exact-composition',
    });
  });

  test('the printed report names the divergence and the stock baseline', () => {
    const jsd = formatKernelReport(report('jsd', 0.2));
    expect(jsd).toMatch(
      /^Forward\+backward per step on test adapter .*divergence jsd \(β = 0\.2\)/m,
    );
    expect(jsd).toContain(`(stock) ${STOCK_BASELINE_TEXT['exact-composition']}.`);
    const old = formatKernelReport(report(null));
    expect(old).toMatch(/divergence forward-kl$/m);
    expect(old).toContain(`(stock) ${STOCK_BASELINE_TEXT.keras}.`);
  });

  test('CSV: divergence, beta and stock_baseline columns last, on every row; the old ones kept', () => {
    const before = kernelCsvRows(report(null));
    const jsd = kernelCsvRows(report('jsd', 0.2));
    const rev = kernelCsvRows(report('reverse-kl'));
    for (const rows of [before, jsd, rev]) {
      expect(rows).toHaveLength(2); // one result, one failure
      const keys = Object.keys(rows[0]!);
      expect(keys.slice(-3)).toEqual(['divergence', 'beta', 'stock_baseline']);
      // the columns a file had before divergences, in their order
      expect(keys.slice(0, 4)).toEqual(['adapter', 'batch', 'classes', 'fused_p20_ms']);
      expect(keys).toContain('error');
      for (const r of rows) expect(Object.keys(r)).toEqual(keys);
    }
    expect(before.map((r) => [r.divergence, r.beta, r.stock_baseline])).toEqual([
      ['forward-kl', '', 'keras'],
      ['forward-kl', '', 'keras'],
    ]);
    expect(jsd.map((r) => [r.divergence, r.beta, r.stock_baseline])).toEqual([
      ['jsd', 0.2, 'exact-composition'],
      ['jsd', 0.2, 'exact-composition'],
    ]);
    expect(rev[0]!.divergence).toBe('reverse-kl');
    expect(rev[0]!.beta).toBe('');
    // the figures are unchanged by the new columns
    const figures = (r: Record<string, string | number>) =>
      Object.entries(r).filter(([k]) => !['divergence', 'beta', 'stock_baseline'].includes(k));
    expect(figures(jsd[0]!)).toEqual(figures(before[0]!));
  });

  test('results table: divergence=… in config beside forward KL’s unchanged config', () => {
    const config = (r: KernelReport) => kernelResultRows(r)[0]!.config;
    expect(config(report(null))).toBe('alpha=0.1 T=10 seed=1234');
    expect(config(report('forward-kl'))).toBe('alpha=0.1 T=10 seed=1234');
    expect(config(report('reverse-kl'))).toBe('alpha=0.1 T=10 seed=1234 divergence=reverse-kl');
    expect(config(report('jsd', 0.2))).toBe('alpha=0.1 T=10 seed=1234 divergence=jsd beta=0.2');
    const rows = [...kernelResultRows(report(null)), ...kernelResultRows(report('jsd', 0.2))];
    expect(new Set(rows.map(kernelRowDivergence))).toEqual(new Set(['forward-kl', 'jsd']));
    expect(kernelRowDivergence({ config: '' })).toBe('forward-kl');
    expect(kernelRowDivergence({ config: 'alpha=0.1 sweep=vocab' })).toBe('forward-kl');
  });

  test('docs tables: the latest forward-KL run, not a later run of another divergence', () => {
    const old = kernelResultRows(report(null));
    const jsd = kernelResultRows(report('jsd', 0.2));
    const section = kernelResultsSection([...old, ...jsd]);
    // the JSD run is later, but the table shows the forward-KL run (its commit and date)
    expect(section).toContain('2026-11-01');
    expect(section).not.toContain('2026-11-02');
    expect(kernelResultsSection(jsd)).toMatch(/^_No complete run/);
    // a vocab sweep of the JSD is not the vocabulary sweep's latest
    const sweep = (r: KernelReport) => {
      r.settings.sweep = 'vocab';
      return kernelResultRows(r);
    };
    const sweeps = latestVocabSweeps([...sweep(report(null)), ...sweep(report('jsd', 0.2))]);
    expect(sweeps.map((g) => g.first.timestamp)).toEqual(['2026-11-01T00:00:00.000Z']);
  });
});
