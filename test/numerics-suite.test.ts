/**
 * The shared numerics suite (src/validation/): evaluateCase's reports (a pass, a failure
 * against a deliberately wrong reference, an exception), the quick suite's coverage of every
 * axis, the runner, and that the tests and the app use the same cases and tolerances.
 */
import { describe, expect, test } from 'vitest';
import * as numerics from '../src/validation/index.js';
import {
  COVERAGE_AXES,
  EXTREME_TEMPERATURES,
  GRID_ALPHAS,
  GRID_BATCHES,
  GRID_CLASSES,
  GRID_LABEL_KINDS,
  GRID_REDUCTIONS,
  GRID_TEMPERATURES,
  QUICK_MAX_ELEMENTS,
  coverageOf,
  gridCases,
  sharedCases,
  validationSuite,
  type NamedCase,
} from '../src/validation/suite.js';
import { rowBounds } from '../src/validation/tolerance.js';
import { MAX_CLASSES } from '../src/index.js';
import { useCheckedWebGPU, useCpu, useWebGPU } from './helpers/backend.js';
import * as helpers from './helpers/cases.js';
import { expectReportPasses } from './helpers/cases.js';

useCheckedWebGPU();

const spec: numerics.CaseSpec = {
  batch: 4,
  classes: 1000,
  temperature: 10,
  alpha: 0.1,
  reduction: 'none',
  labelKind: 'index',
  seed: 42,
  teacherGrad: 'tape',
  upstream: 'random',
};

describe('evaluateCase', () => {
  test('a correct case passes: every check within tolerance, its worst element included', async () => {
    const report = await numerics.evaluateCase(spec, { name: 'correct' });
    expect(report.name).toBe('correct');
    expect(report.pass).toBe(true);
    expect(report.error).toBeUndefined();
    expect(report.gpuValidationError).toBeUndefined();
    expect(report.leakedTensors).toBe(0);
    expect(report.checks.map((c) => c.what)).toEqual(['loss value', '∂L/∂student', '∂L/∂teacher']);
    expect(report.checks.map((c) => c.elements)).toEqual([4, 4000, 4000]);
    for (const check of report.checks) {
      expect(check.mismatches).toBe(0);
      expect(check.nonFiniteMismatches).toBe(0);
      const w = check.worst!;
      expect(w.ratio).toBeLessThanOrEqual(1);
      expect(w.diff).toBeLessThanOrEqual(w.tolerance);
      expect(w.diff).toBe(Math.abs(w.actual - w.expected));
      expect(w.row * check.columns + w.column).toBe(w.index);
    }
    expect(report.ms).toBeGreaterThan(0);
    // data only: the report survives JSON (a page can keep or download it)
    expect(JSON.parse(JSON.stringify(report)).spec).toEqual(report.spec);
    expectReportPasses(report);
  });

  test('a wrong reference (T × 1.001, α + 1e-3) fails, naming the outputs it broke', async () => {
    for (const [referenceConfig, mustBreak] of [
      // ∂L/∂t is the soft term's alone: a wrong temperature moves all of it
      [{ temperature: spec.temperature * 1.001 }, '∂L/∂teacher'],
      // α weighs the hard term in ∂L/∂s: σ − y moves by 1e-3 of itself
      [{ alpha: spec.alpha + 1e-3 }, '∂L/∂student'],
    ] as const) {
      const report = await numerics.evaluateCase(spec, { referenceConfig });
      const label = JSON.stringify(referenceConfig);
      const failed = report.checks.filter((c) => c.mismatches > 0).map((c) => c.what);
      expect(report.pass, label).toBe(false);
      expect(report.error).toBeUndefined();
      expect(report.gpuValidationError).toBeUndefined();
      expect(report.leakedTensors).toBe(0);
      expect(failed, label).toContain(mustBreak);
      for (const check of report.checks) {
        // the worst element is the one out of tolerance, or within it when none is
        if (check.mismatches > 0) expect(check.worst!.ratio).toBeGreaterThan(1);
        else expect(check.worst!.ratio).toBeLessThanOrEqual(1);
        expect(check.firstMismatches.length).toBe(Math.min(8, check.mismatches));
      }
      // and the assertion wrapper fails on it, with the first broken output's table
      expect(() => expectReportPasses(report)).toThrow(
        `${failed[0]}: ${report.checks.find((c) => c.what === failed[0])!.mismatches} of`,
      );
    }
  });

  test('an exception of the op is reported, not thrown or swallowed', async () => {
    // (teacherGrad 'lazy': with 'tape', 2 tensors of the ×1 on tfjs' tape outlive the forward
    // pass that throws, and the report counts them as leaked)
    const report = await numerics.evaluateCase({
      ...spec,
      batch: 1,
      classes: MAX_CLASSES + 1,
      teacherGrad: 'lazy',
    });
    expect(report.pass).toBe(false);
    expect(report.error).toMatch(/class/i);
    expect(report.checks).toEqual([]);
    expect(report.leakedTensors).toBe(0);
    expect(() => expectReportPasses(report)).toThrow(report.error);
  });

  test('a mutated case reports its spec as data', async () => {
    const c = numerics.edgeCases().find((e) => e.kind === 'NaN' && e.spec.classes === 10)!;
    const report = await numerics.evaluateCase(c.spec, { name: c.name });
    expect(report.pass).toBe(true);
    expect(report.spec).not.toHaveProperty('mutate');
    expect(report.spec.mutated).toBe(true);
    // NaN rows match NaN rows: counted neither as mismatches nor as the worst element
    expect(report.checks[0]!.worst!.ratio).toBeLessThanOrEqual(1);
  });
});

describe('the quick suite', () => {
  const quick = validationSuite('quick');
  const full = validationSuite('full');

  test('is a subset of the full suite (same names, same specs), names unique', () => {
    expect(new Set(full.map((c) => c.name)).size).toBe(full.length);
    const byName = new Map(full.map((c) => [c.name, c]));
    for (const c of quick) {
      const same = byName.get(c.name);
      expect(same, c.name).toBeDefined();
      expect(numerics.specData(same!.spec)).toEqual(numerics.specData(c.spec));
      expect([same!.family, same!.kind]).toEqual([c.family, c.kind]);
    }
    expect(quick.length).toBeLessThan(full.length / 4);
    console.log(`[numerics] quick suite: ${quick.length} of ${full.length} cases`);
  });

  test('has no case of QUICK_MAX_ELEMENTS or more (no 300 × 32768)', () => {
    for (const c of quick) expect(c.spec.batch * c.spec.classes).toBeLessThan(QUICK_MAX_ELEMENTS);
    expect(full.some((c) => c.spec.batch === 300 && c.spec.classes === 32768)).toBe(true);
  });

  test('covers every value of every axis that the full suite takes', () => {
    const values = (cases: readonly NamedCase[], axis: keyof typeof COVERAGE_AXES) =>
      new Set(cases.map((c) => COVERAGE_AXES[axis](c)));
    for (const axis of Object.keys(COVERAGE_AXES) as (keyof typeof COVERAGE_AXES)[]) {
      expect([...values(quick, axis)].sort(), axis).toEqual([...values(full, axis)].sort());
    }
    expect([...coverageOf(quick)].sort()).toEqual([...coverageOf(full)].sort());
  });

  test('covers the grid axes, the extreme temperatures, every gradient path, both plans, every divergence, mask kind and ignored rows', () => {
    const has = (axis: keyof typeof COVERAGE_AXES, v: string | number) =>
      quick.some((c) => COVERAGE_AXES[axis](c) === v);
    const required: [keyof typeof COVERAGE_AXES, readonly (string | number)[]][] = [
      ['batch', GRID_BATCHES],
      ['classes', GRID_CLASSES],
      ['temperature', [...GRID_TEMPERATURES, ...EXTREME_TEMPERATURES]],
      ['alpha', GRID_ALPHAS],
      ['reduction', GRID_REDUCTIONS],
      ['labelKind', GRID_LABEL_KINDS],
      ['teacherGrad', ['none', 'tape', 'lazy']],
      ['upstream', ['unit', 'random']],
      ['plan', ['adapter', 'software', 'hardware']],
      ['divergence', ['forward-kl', 'reverse-kl', 'jsd β=0.5', 'jsd β=0.2']],
      ['masks', ['none', 'both', 'one-sided', 'infinite']],
      ['ignoreIndex', ['no', 'yes']],
    ];
    for (const [axis, list] of required) {
      for (const v of list) expect(has(axis, v), `${axis} = ${v}`).toBe(true);
    }
    // every edge kind on both plans, on the hardware plan both with a row per thread and shared
    const kinds = (cases: NamedCase[]) => cases.map(COVERAGE_AXES['kind × plan × row split']);
    const edgeKinds = new Set(kinds(numerics.edgeCases()));
    expect(
      [...edgeKinds].filter((k) => k.endsWith('hardware plan, row shared by invocations')).length,
    ).toBe(new Set(numerics.edgeCases().map((e) => e.kind)).size);
    for (const k of edgeKinds) expect(kinds(quick), k).toContain(k);
  });
});

test('the tests and the app use the same cases, evaluation and tolerances', () => {
  // test/helpers/cases.ts (checkCase, used by the grid, edge and temperature tests) re-exports
  // the core module's functions: the same objects, not copies.
  expect(helpers.evaluateCase).toBe(numerics.evaluateCase);
  expect(helpers.tolerancesFor).toBe(numerics.tolerancesFor);
  expect(helpers.referenceFor).toBe(numerics.referenceFor);
  expect(helpers.makeInputs).toBe(numerics.makeInputs);
  expect(numerics.gridCases).toBe(gridCases);
  expect(typeof rowBounds).toBe('function');
  // the grid test's cases are the full suite's, under the same names
  const grid = gridCases();
  const full = new Map(sharedCases().map((c) => [c.name, c.spec]));
  for (const c of grid) expect(full.get(c.name)).toEqual(c.spec);
  for (const c of validationSuite('quick').filter((q) => q.family === 'grid')) {
    expect(grid.find((g) => g.name === c.name)?.spec).toEqual(c.spec);
  }
});

describe('runValidationSuite', () => {
  test('runs the quick suite: every case passes, one report per case, in order', async () => {
    const quick = validationSuite('quick');
    const seen: [string, number, number][] = [];
    const start = performance.now();
    const result = await numerics.runValidationSuite(quick, {
      onCase: (r, i, n) => seen.push([r.name, i, n]),
    });
    const seconds = (performance.now() - start) / 1000;
    console.log(
      `[numerics] quick suite: ${quick.length} cases in ${seconds.toFixed(1)} s ` +
        `(adapter plan '${result.adapterPlan}')`,
    );
    const failures = result.reports.filter((r) => !r.pass);
    for (const r of failures) expectReportPasses(r);
    expect(result.failed).toBe(0);
    expect(result.passed).toBe(quick.length);
    expect(result.aborted).toBe(false);
    expect(seen).toEqual(quick.map((c, i) => [c.name, i, quick.length]));
    expect(result.adapterPlan).toBe(numerics.adapterPlan());
  });

  test('stops between cases once aborted', async () => {
    const controller = new AbortController();
    const cases = validationSuite('quick').slice(0, 5);
    const result = await numerics.runValidationSuite(cases, {
      signal: controller.signal,
      onCase: (_r, i) => {
        if (i === 1) controller.abort();
      },
    });
    expect(result.aborted).toBe(true);
    expect(result.reports.map((r) => r.name)).toEqual(cases.slice(0, 2).map((c) => c.name));
  });

  test('refuses a backend other than webgpu', async () => {
    await useCpu();
    try {
      await expect(numerics.runValidationSuite([])).rejects.toThrow(/webgpu/);
    } finally {
      await useWebGPU();
    }
  });
});
