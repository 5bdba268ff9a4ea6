// The accumulated results table (bench/core/results-table/): rows from both report kinds,
// the CSV round trip and its validation, dedupe, and the docs' generated sections against the
// committed table (so the docs cannot drift from bench/results/all-results.csv).
import { existsSync, readFileSync } from 'node:fs';
import Papa from 'papaparse';
import { describe, expect, it } from 'vitest';
import { PRESETS } from '../bench/core/presets.js';
import type { DistillReport, RunRecord } from '../bench/core/protocol/report.js';
import { renderVocabPlotSvg, VOCAB_PLOT_FILE } from '../bench/node/results-file.js';
import {
  distillResultRows,
  kernelResultRows,
  mergeResults,
  parseResultsCsv,
  reportResultRows,
  RESULTS_COLUMNS,
  RESULTS_SECTION_FILES,
  RESULTS_SECTIONS,
  resultsDocs,
  resultsSection,
  resultsSectionText,
  staleResultsSections,
  toResultsCsv,
  updateResultsSections,
  vocabPlotSpec,
  type KernelReportInput,
  type ResultRow,
  type TopKShapeInput,
} from '../bench/core/results-table/index.js';

const spread = (p20: number, p50: number, p80: number, n = 5) => ({ p20, p50, p80, n });

function run(over: Partial<RunRecord>): RunRecord {
  return {
    source: 'trained',
    loss: 'fused',
    filters: [16, 32],
    params: 20490,
    complete: true,
    steps: 8,
    epochs: [],
    lossCurve: [],
    accuracyCurve: [],
    stepMs: spread(180, 185.6319729999998, 191.5),
    stepMsSamples: [],
    dispatchesPerStep: 116,
    memoryAfterWarmup: null,
    memoryGrowth: null,
    wallMs: 1500,
    testAccuracy: 0.841,
    testLoss: 0.511,
    ...over,
  };
}

function distillReport(over: Partial<DistillReport> = {}): DistillReport {
  return {
    kind: 'distill-benchmark',
    schemaVersion: 1,
    complete: true,
    interrupted: null,
    preset: 'quick',
    presetReason: '--preset quick',
    reductions: [],
    adapter: {
      description: 'lavapipe (mesa, software, llvmpipe)',
      vendor: 'mesa',
      architecture: 'software',
      device: 'llvmpipe',
      icd: 'dawn default',
    },
    software: true,
    timestamp: '2026-11-29T04:37:55.412Z',
    commit: 'abc1234',
    versions: { node: 'v20.20.2', 'tfjs-core': '4.22.0', webgpu: '0.6.2' },
    flags: {},
    settings: PRESETS.quick.settings,
    dataset: { name: 'mnist', source: 'test', trainImages: 3200, testImages: 2000 },
    runs: {
      teacher: run({ loss: 'cross-entropy', params: 137226, dispatchesPerStep: 131 }),
      distilledFused: run({}),
      distilledStock: run({ loss: 'stock', stepMs: spread(317, 326, 330), dispatchesPerStep: 169 }),
      scratch: run({ loss: 'cross-entropy', testAccuracy: 0.85, stepMs: null }),
    },
    dispatchesPerStep: { fused: 116, stock: 169, scratch: 129, teacher: 131, note: '' },
    speedup: null,
    lossOnly: {
      shape: [64, 10],
      fused: spread(0.11, 0.12, 0.15),
      stock: spread(2.13, 2.18, 2.22),
      speedup: 18.2,
      dispatches: { fused: 1, stock: 52 },
    },
    phases: { method: '', fused: null, stock: null },
    curves: { steps: 50, maxAbsDiff: 4.8e-6, maxRelDiff: 7e-7, points: [] },
    memoryGrowthFlagged: false,
    totalWallMs: 338_000,
    ...over,
  };
}

function kernelReport(over: Partial<KernelReportInput> = {}): KernelReportInput {
  return {
    kind: 'kernel-benchmark',
    adapter: { description: 'NVIDIA H200', vendor: 'nvidia', architecture: 'hopper' },
    software: false,
    commit: 'def5678',
    timestamp: '2026-11-30T10:00:00.000Z',
    versions: {
      browser: 'Chrome 131',
      userAgent: 'Mozilla/5.0 (X11, Linux)',
      'tfjs-core': '4.22.0',
    },
    settings: { alpha: 0.1, temperature: 10, seed: 1234 },
    results: [
      {
        batch: 256,
        classes: 32768,
        fused: spread(0.9, 1, 1.1),
        stock: spread(20, 21, 22),
        ceiling: spread(0.4, 0.5, 0.6),
        fusedDispatches: 2,
        stockDispatches: 52,
        fusedGBps: 100.66,
        ceilingGBps: 201.3,
        fusedGpu: spread(0.7, 0.8, 0.9),
        stockGpu: null,
      },
    ],
    ...over,
  };
}

const get = (rows: ResultRow[], metric: string, variant: string) =>
  rows.filter((r) => r.metric === metric && r.variant === variant);

/** A top-K shape: fused sparse 6 ms, fused dense 10 ms, stock sparse 300 ms. */
function topKShape(over: Partial<TopKShapeInput> = {}): TopKShapeInput {
  const side = (p50: number, dispatches: number, gpu: boolean) => ({
    both: spread(p50 * 0.9, p50, p50 * 1.1),
    gpu: gpu ? spread(p50 * 0.7, p50 * 0.8, p50 * 0.9) : null,
    dispatches,
    peakBytes: 33554432,
  });
  return {
    batch: 256,
    classes: 32768,
    topK: 32,
    denseTeacherBytesPerRow: 131072,
    sparseTeacherBytesPerRow: 256,
    sparse: side(6, 3, true),
    dense: side(10, 3, true),
    stock: side(300, 40, false),
    sparseError: null,
    denseError: null,
    stockError: null,
    ...over,
  };
}

describe('rows from reports', () => {
  it('turns a distillation report into one row per figure', () => {
    const rows = distillResultRows(distillReport());
    expect(get(rows, 'step_ms', 'fused')).toEqual([
      expect.objectContaining({
        benchmark: 'distill',
        unit: 'ms',
        x_name: 'preset',
        x_value: 'quick',
        p50: 185.632,
        p20: 180,
        p80: 191.5,
        n: 5,
        clock: 'wall',
        preset: 'quick',
        dataset: 'mnist',
        host: 'node',
        browser: '',
        node_version: 'v20.20.2',
        adapter_description: 'lavapipe (mesa, software, llvmpipe)',
        software: true,
        tfjs_version: '4.22.0',
        commit: 'abc1234',
        complete: true,
      }),
    ]);
    // Null figures make no row: the scratch run has no step time, the report no speedup.
    expect(get(rows, 'step_ms', 'scratch')).toEqual([]);
    expect(get(rows, 'test_accuracy', 'scratch')[0]?.p50).toBe(0.85);
    expect(get(rows, 'dispatches_per_step', 'stock')[0]?.p50).toBe(169);
    const speedup = get(rows, 'step_speedup', 'stock/fused')[0]!;
    expect(speedup.p50).toBeCloseTo(326 / 185.632, 4);
    expect(speedup.p20).toBeCloseTo(317 / 191.5, 4);
    expect(get(rows, 'loss_alone_ms', 'stock')[0]).toMatchObject({ x_value: '64x10', p50: 2.18 });
    expect(get(rows, 'loss_alone_dispatches', 'fused')[0]?.p50).toBe(1);
    expect(get(rows, 'curve_max_abs_diff', 'fused-stock')[0]).toMatchObject({ x_value: '50' });
    expect(get(rows, 'total_wall_s', 'all')[0]?.p50).toBe(338);
    for (const r of rows) expect(Object.keys(r).sort()).toEqual([...RESULTS_COLUMNS].sort());
  });

  it('marks the rows of an incomplete report and of a cut run complete=false', () => {
    const partial = distillReport({
      complete: false,
      interrupted: { during: 'scratch', afterSteps: 3 },
    });
    expect(distillResultRows(partial).every((r) => !r.complete)).toBe(true);
    const cut = distillReport({
      runs: { ...distillReport().runs, scratch: run({ complete: false, testAccuracy: null }) },
    });
    const rows = distillResultRows(cut);
    expect(get(rows, 'step_ms', 'scratch')[0]?.complete).toBe(false);
    expect(get(rows, 'step_ms', 'fused')[0]?.complete).toBe(true);
    expect(get(rows, 'test_accuracy', 'scratch')).toEqual([]);
  });

  it('turns a kernel report (a page run) into rows per shape', () => {
    const rows = kernelResultRows(kernelReport());
    expect(rows.every((r) => r.host === 'browser' && r.browser === 'Chrome 131')).toBe(true);
    expect(rows.every((r) => r.x_value === '256x32768' && r.preset === '')).toBe(true);
    expect(rows[0]).toMatchObject({ config: 'alpha=0.1 T=10 seed=1234', node_version: '' });
    expect(get(rows, 'time_ms', 'ceiling')[0]?.p50).toBe(0.5);
    expect(get(rows, 'gpu_time_ms', 'fused')[0]).toMatchObject({
      clock: 'gpu-timestamp',
      p50: 0.8,
    });
    expect(get(rows, 'gpu_time_ms', 'stock')).toEqual([]);
    expect(get(rows, 'speedup', 'stock/fused')[0]).toMatchObject({ p50: 21, p20: 18.1818 });
    expect(get(rows, 'ceiling_ratio', 'fused/ceiling')[0]?.p50).toBe(2);
    expect(get(rows, 'gbps', 'fused')[0]?.p50).toBe(100.66);
    expect(get(rows, 'dispatches', 'stock')[0]?.p50).toBe(52);
  });

  it('adds the top-K shapes: three sides, their ratios, teacher bytes and failures', () => {
    const rows = kernelResultRows(
      kernelReport({
        results: [],
        topK: [
          topKShape(),
          topKShape({
            classes: 131072,
            topK: 8,
            denseTeacherBytesPerRow: 524288,
            sparseTeacherBytesPerRow: 64,
            stock: null,
            stockError: 'out-of-memory: Not enough memory left',
          }),
        ],
      }),
    );
    expect(rows.every((r) => r.x_name === 'topk_shape')).toBe(true);
    const at = (x: string, metric: string, variant: string) =>
      get(rows, metric, variant).filter((r) => r.x_value === x);
    const bar = '256x32768k32';
    expect(at(bar, 'time_ms', 'fused-sparse')[0]).toMatchObject({ p50: 6, clock: 'wall', n: 5 });
    expect(at(bar, 'time_ms', 'fused-dense')[0]?.p50).toBe(10);
    expect(at(bar, 'time_ms', 'stock-sparse')[0]?.p50).toBe(300);
    expect(at(bar, 'gpu_time_ms', 'fused-sparse')[0]).toMatchObject({
      clock: 'gpu-timestamp',
      p50: 4.8,
    });
    expect(at(bar, 'gpu_time_ms', 'stock-sparse')).toEqual([]);
    // sparse / dense: 0.6, band sparse p20 / dense p80 … sparse p80 / dense p20.
    expect(at(bar, 'time_ratio', 'fused-sparse/fused-dense')[0]).toMatchObject({
      p50: 0.6,
      p20: 0.490909,
      p80: 0.733333,
      unit: 'x',
    });
    expect(at(bar, 'gpu_time_ratio', 'fused-sparse/fused-dense')[0]?.p50).toBe(0.6);
    expect(at(bar, 'speedup', 'stock-sparse/fused-sparse')[0]?.p50).toBe(50);
    expect(at(bar, 'gpu_speedup', 'stock-sparse/fused-sparse')).toEqual([]);
    expect(at(bar, 'dispatches', 'stock-sparse')[0]?.p50).toBe(40);
    expect(at(bar, 'peak_bytes', 'fused-dense')[0]?.unit).toBe('bytes');
    expect(
      get(rows, 'teacher_bytes_per_row', 'sparse').map((r) => [r.x_value, r.p50, r.unit]),
    ).toEqual([
      [bar, 256, 'bytes'],
      ['256x131072k8', 64, 'bytes'],
    ]);
    expect(get(rows, 'teacher_bytes_per_row', 'dense').map((r) => r.p50)).toEqual([131072, 524288]);
    const failure = get(rows, 'failure', 'stock-sparse');
    expect(failure.map((r) => [r.x_value, r.p50, r.note])).toEqual([
      ['256x131072k8', 1, 'out-of-memory: Not enough memory left'],
    ]);
    expect(at('256x131072k8', 'speedup', 'stock-sparse/fused-sparse')).toEqual([]);
    // The rows survive the CSV.
    expect(parseResultsCsv(toResultsCsv(rows))).toEqual(rows);
  });

  it('adds forward, backward, peak bytes and failures (with their text in note)', () => {
    const rows = kernelResultRows(
      kernelReport({
        settings: { alpha: 0.1, temperature: 10, seed: 1234, sweep: 'vocab' },
        results: [
          {
            ...kernelReport().results[0]!,
            fusedForward: spread(0.4, 0.5, 0.6),
            fusedBackward: spread(0.4, 0.5, 0.55),
            stockForward: spread(9, 10, 11),
            stockBackward: spread(10, 11, 12),
            fusedPeakBytes: 33554432,
            stockPeakBytes: 872415232,
          },
        ],
        failures: [
          {
            batch: 512,
            classes: 131072,
            fusedError: 'binding-limit: RangeError: too large',
            stockError: 'skipped: estimated 7.00 GiB exceeds the memory budget of 1.00 GiB',
            ceilingError: null,
            fused: null,
            stock: null,
            ceiling: spread(80, 90, 100),
            fusedGBps: null,
            ceilingGBps: 8.9,
          },
          {
            batch: 2048,
            classes: 131072,
            fusedError: null,
            stockError: 'out-of-memory: Failed to allocate',
            ceilingError: null,
            fused: {
              both: spread(900, 1000, 1100),
              forward: spread(400, 500, 600),
              backward: spread(450, 500, 550),
              gpu: null,
              dispatches: 2,
              peakBytes: 1073741824,
            },
            stock: null,
            ceiling: spread(300, 330, 360),
            fusedGBps: 3.2,
            ceilingGBps: 9.8,
          },
        ],
      }),
    );
    expect(rows[0]!.config).toBe('alpha=0.1 T=10 seed=1234 sweep=vocab');
    expect(get(rows, 'forward_ms', 'fused')[0]).toMatchObject({ p50: 0.5, clock: 'wall' });
    expect(get(rows, 'backward_ms', 'stock')[0]).toMatchObject({ p50: 11, p20: 10 });
    expect(get(rows, 'peak_bytes', 'stock')[0]).toMatchObject({ p50: 872415000, unit: 'bytes' }); // 6 significant digits;
    const failures = get(rows, 'failure', 'fused').concat(get(rows, 'failure', 'stock'));
    expect(failures.map((r) => [r.x_value, r.variant, r.note.split(':')[0], r.p50])).toEqual([
      ['512x131072', 'fused', 'binding-limit', 1],
      ['512x131072', 'stock', 'skipped', 1],
      ['2048x131072', 'stock', 'out-of-memory', 1],
    ]);
    // What a failed shape measured anyway.
    const at = (m: string, v: string, x: string) =>
      rows.find((r) => r.metric === m && r.variant === v && r.x_value === x);
    expect(at('time_ms', 'ceiling', '512x131072')?.p50).toBe(90);
    expect(at('time_ms', 'fused', '512x131072')).toBeUndefined();
    expect(at('time_ms', 'fused', '2048x131072')?.p50).toBe(1000);
    expect(at('ceiling_ratio', 'fused/ceiling', '2048x131072')?.p50).toBeCloseTo(1000 / 330, 4);
    expect(at('peak_bytes', 'fused', '2048x131072')?.p50).toBe(1073740000);
    expect(rows.filter((r) => r.metric !== 'failure').every((r) => r.note === '')).toBe(true);
    // The CSV keeps the note.
    expect(parseResultsCsv(toResultsCsv(rows))).toEqual(rows);
  });

  it('picks the converter by kind', () => {
    expect(reportResultRows(kernelReport())[0]?.benchmark).toBe('kernel');
    expect(reportResultRows(distillReport())[0]?.benchmark).toBe('distill');
    expect(() => reportResultRows({ kind: 'other' })).toThrow(/not a benchmark report/);
  });
});

describe('the CSV', () => {
  const rows = [...distillResultRows(distillReport()), ...kernelResultRows(kernelReport())];

  it('round-trips every row, quotes where needed, and agrees with papaparse', () => {
    const text = toResultsCsv(rows);
    expect(text.split('\n')[0]).toBe(RESULTS_COLUMNS.join(','));
    expect(parseResultsCsv(text)).toEqual(rows);
    expect(text).toContain('"lavapipe (mesa, software, llvmpipe)"');
    const papa = Papa.parse<Record<string, string>>(text, { header: true, skipEmptyLines: true });
    expect(papa.errors).toEqual([]);
    expect(papa.data.map((r) => r.adapter_description)).toEqual(
      rows.map((r) => r.adapter_description),
    );
    expect(toResultsCsv(rows, { header: false }).split('\n')[0]).toBe(text.split('\n')[1]);
    expect(parseResultsCsv('')).toEqual([]);
  });

  it('rejects a wrong header, naming the line', () => {
    const text = toResultsCsv(rows);
    expect(() => parseResultsCsv(text.replace('benchmark,metric', 'metric,benchmark'))).toThrow(
      /line 1: header/,
    );
    expect(() =>
      parseResultsCsv('\n' + text.replace(',complete,note\n', ',complete,notes\n')),
    ).toThrow(/line 2: header/);
  });

  it('reads a table written before the note column, with empty notes', () => {
    const text = toResultsCsv(rows);
    const legacy = text
      .split('\n')
      .map((l) => (l === '' ? l : l.replace(/,[^,]*$/, '')))
      .join('\n');
    expect(legacy.split('\n')[0]!.endsWith(',complete')).toBe(true);
    expect(parseResultsCsv(legacy)).toEqual(rows.map((r) => ({ ...r, note: '' })));
    // A legacy header with a row of the new width is an error.
    const mixed = [legacy.split('\n')[0], text.split('\n')[1]].join('\n');
    expect(() => parseResultsCsv(mixed)).toThrow(/line 2: 28 fields, expected 27/);
  });

  it('rejects a bad row, naming the line', () => {
    const lines = toResultsCsv(rows).split('\n');
    const bad = (i: number, line: string) =>
      [...lines.slice(0, i), line, ...lines.slice(i + 1)].join('\n');
    expect(() => parseResultsCsv(bad(3, lines[3]!.replace(/^distill/, 'other')))).toThrow(
      /line 4: benchmark "other"/,
    );
    expect(() => parseResultsCsv(bad(2, lines[2]!.replace(/,abc1234,/, ',,')))).toThrow(
      /line 3: commit is empty/,
    );
    expect(() => parseResultsCsv(bad(2, lines[2]! + ',extra'))).toThrow(/line 3: 29 fields/);
    const at = lines.findIndex((l) => l.includes(',185.632,'));
    expect(() => parseResultsCsv(bad(at, lines[at]!.replace(',185.632,', ',fast,')))).toThrow(
      new RegExp(`line ${at + 1}: p50 "fast"`),
    );
    expect(() => parseResultsCsv(bad(2, lines[2]!.replace('"lavapipe', '"lavapipe"x')))).toThrow(
      /line 3: text after a closing quote/,
    );
  });
});

describe('mergeResults', () => {
  it('skips rows already in the table and keeps new ones in order', () => {
    const a = distillResultRows(distillReport());
    const b = distillResultRows(distillReport({ timestamp: '2026-12-01T00:00:00.000Z' }));
    expect(mergeResults(a, a)).toEqual(a);
    expect(mergeResults(a, [...b, ...b])).toEqual([...a, ...b]);
    const other = kernelResultRows(kernelReport({ software: true }));
    expect(mergeResults([], [...other, ...other])).toHaveLength(other.length);
  });
});

describe("the docs' generated sections", () => {
  it('generates sections from rows, and replaces only what is between the markers', () => {
    const rows = [...distillResultRows(distillReport()), ...kernelResultRows(kernelReport())];
    const readme = [
      'intro',
      '<!-- results:distill:begin -->',
      'old',
      '<!-- results:distill:end -->',
      'middle',
      '<!-- results:kernel:begin -->',
      '<!-- results:kernel:end -->',
      '<!-- results:vocab:begin -->',
      '<!-- results:vocab:end -->',
      '<!-- results:topk:begin -->',
      '<!-- results:topk:end -->',
      '<!-- results:linear:begin -->',
      '<!-- results:linear:end -->',
      'outro',
    ].join('\n');
    const all = RESULTS_SECTIONS;
    const out = updateResultsSections(readme, rows, all);
    expect(staleResultsSections(readme, rows, all)).toEqual([
      'distill',
      'kernel',
      'vocab',
      'topk',
      'linear',
    ]);
    expect(staleResultsSections(out, rows, all)).toEqual([]);
    expect(updateResultsSections(out, rows, all)).toBe(out);
    // Only the sections asked for are rewritten or checked.
    const distillOnly = updateResultsSections(readme, rows, ['distill']);
    expect(staleResultsSections(distillOnly, rows, all)).toEqual([
      'kernel',
      'vocab',
      'topk',
      'linear',
    ]);
    expect(resultsSectionText(distillOnly, 'kernel')).toBe('');
    expect(out.startsWith('intro\n')).toBe(true);
    expect(out).toContain('\nmiddle\n');
    const kernel = resultsSectionText(out, 'kernel');
    expect(kernel).toContain('| NVIDIA H200 | Chrome 131 | 256×32768 |');
    expect(kernel).toContain('GPU fused');
    const distill = resultsSectionText(out, 'distill');
    expect(distill).toContain('preset `quick`');
    expect(distill).toMatch(/\| student from scratch +\| 20,490 +\| 85.00 %/);
    // An incomplete run does not replace the latest complete one.
    const later = distillResultRows(
      distillReport({ complete: false, timestamp: '2027-01-01T00:00:00.000Z' }),
    );
    expect(resultsSection('distill', [...rows, ...later])).toBe(resultsSection('distill', rows));
    expect(() => updateResultsSections('no markers', rows, all)).toThrow(/results:distill:begin/);
  });

  it('generates the sweep section and plot from the latest complete sweep only', async () => {
    const sweep = (timestamp: string, complete = true) =>
      kernelResultRows(
        kernelReport({
          timestamp,
          complete,
          settings: { alpha: 0.1, temperature: 10, seed: 1, sweep: 'vocab' },
          results: [
            {
              ...kernelReport().results[0]!,
              batch: 512,
              classes: 32768,
              fusedPeakBytes: 67108864,
              stockPeakBytes: 1744830464,
            },
          ],
          failures: [
            {
              batch: 2048,
              classes: 262144,
              fusedError: 'binding-limit: RangeError: too large',
              stockError: 'skipped: estimated 56.0 GiB exceeds the memory budget of 8.00 GiB',
              fused: null,
              stock: null,
              ceiling: null,
              ceilingError: 'skipped: too big',
              fusedGBps: null,
              ceilingGBps: null,
            },
          ],
        }),
      );
    const plain = kernelResultRows(kernelReport());
    const rows = [...sweep('2026-12-01T00:00:00.000Z'), ...plain];
    const text = resultsSection('vocab', rows);
    expect(text).toContain('**NVIDIA H200**, Chrome 131');
    expect(text).toMatch(/\| 512×32768 +\| — +\| — +\| 1.00 ms \[0.90–1.10\]/);
    expect(text).toContain('64.0 MiB / 1.62 GiB');
    expect(text).toMatch(
      /\| 2048×262144 .*\| fused: binding-limit; stock: skipped; ceiling: skipped \|/,
    );
    expect(text).toContain('- fused, binding-limit at 2048×262144: RangeError: too large');
    // 512×32768: fused/ceiling 2.00 (target met), stock/fused ×21 (not met); 128×131072 absent.
    expect(text).toMatch(
      /512 × 32768: fused forward\+backward 2\.00× .*: met\); stock\/fused ×21.0 .*not met\)/,
    );
    expect(text).toContain('- 128 × 131072: not measured in this run.');
    // The plain kernel section leaves the sweep out; an incomplete later sweep changes nothing.
    expect(resultsSection('kernel', rows)).toBe(resultsSection('kernel', plain));
    const later = [...rows, ...sweep('2027-01-01T00:00:00.000Z', false)];
    expect(resultsSection('vocab', later)).toBe(text);
    expect(vocabPlotSpec(plain)).toBeNull();
    const spec = vocabPlotSpec(rows)!;
    const values = (spec.data as { values: { series: string; classes: number }[] }).values;
    expect(values.map((v) => `${v.series} ${v.classes}`)).toEqual([
      'fused 32768',
      'memory ceiling 32768',
      'stock composition 32768',
    ]);
    const svg = (await renderVocabPlotSvg(rows))!;
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('ms per call');
    // Deterministic: the same rows give the same text.
    expect(await renderVocabPlotSvg(rows)).toBe(svg);
    expect(await renderVocabPlotSvg(plain)).toBeNull();
  });

  it('generates the top-K section per shape from the latest complete run, with the bar', () => {
    const sweep = (timestamp: string, complete = true, over: Partial<TopKShapeInput> = {}) =>
      kernelResultRows(
        kernelReport({
          timestamp,
          complete,
          results: [],
          settings: { alpha: 0.1, temperature: 10, seed: 1, sweep: 'topk' },
          topK: [
            topKShape(over),
            topKShape({
              classes: 131072,
              topK: 128,
              denseTeacherBytesPerRow: 524288,
              sparseTeacherBytesPerRow: 1024,
              stock: null,
              stockError: 'skipped: too big',
            }),
          ],
        }),
      );
    const plain = kernelResultRows(kernelReport());
    const rows = [...sweep('2026-12-01T00:00:00.000Z'), ...plain];
    const text = resultsSection('topk', rows);
    expect(text).toMatch(
      /\| NVIDIA H200 \| Chrome 131 \| 256×32768 +\| 32 +\| 256 B \/ 128 KiB +\| 6\.00 ms \[5\.40–6\.60\] +\| 10\.0 ms \[9\.00–11\.0\] +\| 300 ms \[270–330\] +\| 0\.60 \[0\.49–0\.73\] +\| ×50\.0 \[40\.9–61\.1\] +\| — +\| `def5678` \| 2026-12-01 \|/,
    );
    // Sorted by C then K; a failed side says how.
    expect(text.indexOf('256×32768')).toBeLessThan(text.indexOf('256×131072'));
    expect(text).toMatch(
      /\| 256×131072 +\| 128 +\| 1\.00 KiB \/ 512 KiB .*\| stock-sparse: skipped \|/,
    );
    expect(text).toContain(
      '- NVIDIA H200, Chrome 131 (commit `def5678`): sparse/dense 0.60 [0.49–0.73] (target ≤ 0.7: met); ' +
        'stock/sparse ×50.0 [40.9–61.1] (target ≥ 25×: met).',
    );
    // The dense kernel section leaves the top-K rows out, and a default run's top-K row too.
    expect(resultsSection('kernel', rows)).toBe(resultsSection('kernel', plain));
    const withDefault = [
      ...rows,
      ...kernelResultRows(
        kernelReport({ timestamp: '2026-12-02T00:00:00.000Z', topK: [topKShape()] }),
      ),
    ];
    expect(resultsSection('kernel', withDefault)).not.toContain('k32');
    // A later complete run replaces the bar's cell only; a later incomplete one changes nothing.
    const slower = sweep('2027-01-01T00:00:00.000Z', true, {
      sparse: { ...topKShape().sparse!, both: spread(9, 10, 11) },
      dense: { ...topKShape().dense!, both: spread(9, 10, 11) },
    }).filter((r) => r.x_value === '256x32768k32');
    const later = resultsSection('topk', [...rows, ...slower]);
    expect(later).toContain('sparse/dense 1.00 [0.82–1.22] (target ≤ 0.7: not met)');
    expect(later).toContain('2026-12-01 |');
    expect(resultsSection('topk', [...rows, ...sweep('2027-02-01T00:00:00.000Z', false)])).toBe(
      text,
    );
    expect(resultsSection('topk', plain)).toBe(
      '_No complete top-K run in bench/results/all-results.csv yet._',
    );
  });

  it('the plot matches the committed table (run `npm run results -- plot` after appending)', async () => {
    const table = parseResultsCsv(readFileSync('bench/results/all-results.csv', 'utf8'));
    const svg = await renderVocabPlotSvg(table);
    const committed = existsSync(VOCAB_PLOT_FILE) ? readFileSync(VOCAB_PLOT_FILE, 'utf8') : null;
    expect(committed).toBe(svg);
  });

  it('lives in the docs: each section in one file, each file named once per section', () => {
    expect(RESULTS_SECTION_FILES).toEqual({
      distill: 'docs/mnist-benchmark.md',
      kernel: 'docs/kernel-benchmark.md',
      vocab: 'docs/kernel-benchmark.md',
      topk: 'docs/top-k-teachers.md',
      linear: 'docs/kernel-benchmark.md',
    });
    expect(resultsDocs()).toEqual([
      { file: 'docs/mnist-benchmark.md', sections: ['distill'] },
      { file: 'docs/kernel-benchmark.md', sections: ['kernel', 'vocab', 'linear'] },
      { file: 'docs/top-k-teachers.md', sections: ['topk'] },
    ]);
  });

  it('matches the committed table (run `npm run results -- docs` after appending)', () => {
    const table = parseResultsCsv(readFileSync('bench/results/all-results.csv', 'utf8'));
    expect(table.length).toBeGreaterThan(0);
    for (const { file, sections } of resultsDocs()) {
      const doc = readFileSync(file, 'utf8');
      for (const name of sections) {
        expect(resultsSectionText(doc, name), `${file}, section ${name}`).toBe(
          resultsSection(name, table),
        );
      }
    }
  });
});
