// The accumulated results table (bench/core/results-table.ts): rows from both report kinds,
// the CSV round trip and its validation, dedupe, and the README's generated sections against
// the committed table (so the README cannot drift from bench/results/all-results.csv).
import { readFileSync } from 'node:fs';
import Papa from 'papaparse';
import { describe, expect, it } from 'vitest';
import { PRESETS } from '../bench/core/presets.js';
import type { DistillReport, RunRecord } from '../bench/core/protocol/report.js';
import {
  distillResultRows,
  kernelResultRows,
  mergeResults,
  parseResultsCsv,
  readmeSection,
  README_SECTIONS,
  readmeSectionText,
  reportResultRows,
  RESULTS_COLUMNS,
  staleReadmeSections,
  toResultsCsv,
  updateReadme,
  type KernelReportInput,
  type ResultRow,
} from '../bench/core/results-table.js';

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
    expect(() => parseResultsCsv('\n' + text.replace(',complete\n', '\n'))).toThrow(
      /line 2: header/,
    );
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
    expect(() => parseResultsCsv(bad(2, lines[2]! + ',extra'))).toThrow(/line 3: 28 fields/);
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

describe('the README', () => {
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
      'outro',
    ].join('\n');
    const out = updateReadme(readme, rows);
    expect(staleReadmeSections(readme, rows)).toEqual(['distill', 'kernel']);
    expect(staleReadmeSections(out, rows)).toEqual([]);
    expect(updateReadme(out, rows)).toBe(out);
    expect(out.startsWith('intro\n')).toBe(true);
    expect(out).toContain('\nmiddle\n');
    const kernel = readmeSectionText(out, 'kernel');
    expect(kernel).toContain('| NVIDIA H200 | Chrome 131 | 256×32768 |');
    expect(kernel).toContain('GPU fused');
    const distill = readmeSectionText(out, 'distill');
    expect(distill).toContain('preset `quick`');
    expect(distill).toMatch(/\| student from scratch +\| 20,490 +\| 85.00 %/);
    // An incomplete run does not replace the latest complete one.
    const later = distillResultRows(
      distillReport({ complete: false, timestamp: '2027-01-01T00:00:00.000Z' }),
    );
    expect(readmeSection('distill', [...rows, ...later])).toBe(readmeSection('distill', rows));
    expect(() => updateReadme('no markers', rows)).toThrow(/results:distill:begin/);
  });

  it('matches the committed table (run `npm run results -- readme` after appending)', () => {
    const table = parseResultsCsv(readFileSync('bench/results/all-results.csv', 'utf8'));
    expect(table.length).toBeGreaterThan(0);
    const readme = readFileSync('README.md', 'utf8');
    for (const name of README_SECTIONS) {
      expect(readmeSectionText(readme, name), `README section ${name}`).toBe(
        readmeSection(name, table),
      );
    }
  });
});
