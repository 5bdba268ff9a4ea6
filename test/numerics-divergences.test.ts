/**
 * The numerics suite's 'divergence' family (src/validation/suite.ts, divergenceCases):
 * reverse KL and the JSD (β = 0.5 and 0.2) in the fused kernels against the float64 reference,
 * element by element (the value and both gradients), with the derived tolerances of
 * src/validation/tolerance-divergence.ts: T ∈ {1, 4, 100}, a thread per row and a
 * workgroup per row, −Infinity masks (both sides, one side, reverse KL's +Infinity), ignored
 * rows; the same cases, names and evaluation as the app's "Validate kernels" panel. And the
 * bounds are not vacuous: the same fused results are rejected against a deliberately wrong
 * reference (α off by 1e-3 in every case; T × 1.001, β off by 1e-3, another divergence in
 * named cases).
 */
import { describe, expect, test } from 'vitest';
import * as numerics from '../src/validation/index.js';
import {
  DIVERGENCE_FAMILY,
  DIVERGENCE_TEMPERATURES,
  divergenceCases,
  divergenceName,
  sharedCases,
  validationSuite,
  type NamedCase,
} from '../src/validation/suite.js';
import { choosePlan } from '../src/kernels/plan.js';
import { expectReportPasses } from './helpers/cases.js';
import { useCheckedWebGPU } from './helpers/backend.js';

useCheckedWebGPU();

const cases = divergenceCases();

/** The largest |fused − reference| / tolerance per output, over the passing cases. */
const worst: Record<string, number> = {};

describe('the divergence family', () => {
  test('every divergence × T × plan, both row splits, every mask kind, ignored rows', () => {
    expect(cases).toHaveLength(DIVERGENCE_FAMILY.length * DIVERGENCE_TEMPERATURES.length * 2 * 2);
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
    const has = (f: (c: NamedCase) => boolean) => cases.some(f);
    for (const d of DIVERGENCE_FAMILY) {
      const name = d.divergence === 'jsd' ? `jsd β=${d.beta}` : d.divergence;
      for (const T of DIVERGENCE_TEMPERATURES) {
        for (const plan of ['software', 'hardware'] as const) {
          expect(
            has(
              (c) =>
                divergenceName(c.spec) === name && c.spec.temperature === T && c.spec.plan === plan,
            ),
            `${name} T=${T} ${plan}`,
          ).toBe(true);
        }
      }
      // a thread per row and a workgroup per row (hardware plan), with masks and ignored rows
      const split = (c: NamedCase) =>
        choosePlan(c.spec.batch, c.spec.classes, c.spec.reduction !== 'none', c.spec.plan).tileCols;
      const mine = cases.filter((c) => divergenceName(c.spec) === name);
      expect(
        new Set(mine.filter((c) => c.spec.plan === 'hardware').map((c) => split(c) > 1)),
      ).toEqual(new Set([false, true]));
      expect(new Set(mine.map((c) => c.spec.masks ?? 'none'))).toEqual(
        new Set(
          d.divergence === 'jsd'
            ? ['none', 'both', 'one-sided']
            : ['none', 'both', 'one-sided', 'infinite'],
        ),
      );
      expect(mine.some((c) => c.spec.ignoreIndex !== undefined)).toBe(true);
      for (const g of ['tape', 'lazy', 'none']) {
        expect(
          mine.some((c) => c.spec.teacherGrad === g),
          `${name} ${g}`,
        ).toBe(true);
      }
    }
  });

  test('in the full suite, and a few of them in the quick one', () => {
    const full = new Map(sharedCases().map((c) => [c.name, c]));
    for (const c of cases) expect(full.get(c.name)?.spec).toEqual(c.spec);
    const quick = validationSuite('quick').filter((c) => c.family === 'divergence');
    console.log(`[numerics] divergence family: ${cases.length} cases, ${quick.length} quick`);
    expect(quick.length).toBeGreaterThanOrEqual(6);
    expect(quick.length).toBeLessThanOrEqual(10);
    // the quick ones: both divergences on every plan and row split, reverse KL's +Infinity
    expect(quick.some((c) => c.spec.masks === 'infinite')).toBe(true);
    for (const beta of [0.5, 0.2]) expect(quick.some((c) => c.spec.beta === beta)).toBe(true);
  });

  test('a case with masks but forward KL has no derived tolerance', () => {
    const c = cases[0]!;
    const spec = { ...c.spec, divergence: undefined, masks: 'both' as const };
    const inputs = numerics.makeInputs(spec);
    expect(() => numerics.tolerancesFor(spec, inputs, null, 'software')).toThrow(
      /masks have derived tolerances for 'reverse-kl' and 'jsd' only/,
    );
  });

  test.each(cases.map((c) => [c.name, c] as const))('%s', async (name, c) => {
    const report = await numerics.evaluateCase(c.spec, { name });
    expectReportPasses(report);
    for (const check of report.checks) {
      worst[check.what] = Math.max(worst[check.what] ?? 0, check.worst?.ratio ?? 0);
    }
    if (c.spec.masks === 'infinite' && c.spec.divergence === 'reverse-kl') {
      // reverse KL is +Infinity in a counted row: the reference says so, and so did the kernel
      const ref = numerics.referenceFor(
        c.spec,
        numerics.makeInputs(c.spec),
        numerics.upstreamFor(c.spec),
      );
      expect(ref.kl.some((d) => d === Infinity)).toBe(true);
    }
  });

  test('the largest error as a fraction of its bound (passing cases)', () => {
    console.log(`[numerics] divergence family, worst |error| / bound: ${JSON.stringify(worst)}`);
    for (const r of Object.values(worst)) expect(r).toBeLessThanOrEqual(1);
  });
});

describe('the bounds are not vacuous: a wrong reference fails', () => {
  test.each(cases.map((c) => [c.name, c] as const))('α off by 1e-3: %s', async (name, c) => {
    const alpha = c.spec.alpha + (c.spec.alpha < 0.5 ? 1e-3 : -1e-3);
    const report = await numerics.evaluateCase(c.spec, { name, referenceConfig: { alpha } });
    expect(report.error).toBeUndefined();
    expect(report.pass, name).toBe(false);
  });

  /** Named cases at T ∈ {1, 4} where the divergence's own parameters are tested. */
  const pick = (divergence: string, T: number) =>
    cases.find((c) => divergenceName(c.spec) === divergence && c.spec.temperature === T)!;

  test.each([
    // ∂L/∂t is the soft term's alone: a wrong temperature moves all of it
    ['reverse-kl', 1, { temperature: 1.001 }, '∂L/∂teacher'],
    ['jsd β=0.5', 4, { temperature: 4 * 1.001 }, '∂L/∂teacher'],
    // another divergence, or another β, moves the soft term
    ['reverse-kl', 4, { divergence: 'forward-kl' }, '∂L/∂teacher'],
    ['jsd β=0.5', 1, { divergence: 'reverse-kl' }, '∂L/∂teacher'],
    ['jsd β=0.2', 4, { beta: 0.201 }, '∂L/∂teacher'],
    ['jsd β=0.5', 4, { beta: 0.499 }, '∂L/∂teacher'],
  ] as const)('%s at T = %d, reference with %j: %s fails', async (d, T, referenceConfig, what) => {
    const c = pick(d, T);
    const spec =
      c.spec.teacherGrad === 'none' ? { ...c.spec, teacherGrad: 'lazy' as const } : c.spec;
    const ok = await numerics.evaluateCase(spec);
    expectReportPasses(ok);
    const report = await numerics.evaluateCase(spec, { referenceConfig });
    const failed = report.checks.filter((x) => x.mismatches > 0).map((x) => x.what);
    expect(report.error).toBeUndefined();
    expect(report.pass).toBe(false);
    expect(failed).toContain(what);
    const broken = report.checks.find((x) => x.what === what)!;
    console.log(
      `[numerics] ${d} T=${T} ${JSON.stringify(referenceConfig)}: ${what} worst ` +
        `|error| / bound ${broken.worst!.ratio.toFixed(1)}, ${broken.mismatches} of ${broken.elements}`,
    );
  });
});
