/**
 * Named edge cases of the fused kernels, each against the float64 reference with the derived
 * tolerances (and, where the maths calls for it, exact NaN placement).
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, test } from 'vitest';
import { distillationLoss } from '../src/index.js';
import { resolveConfig } from '../src/config.js';
import {
  FUSED_DISTILLATION_LOSS,
  FUSED_DISTILLATION_LOSS_GRAD,
  type DistillAttrs,
} from '../src/kernels/names.js';
import { overrideAdapterClassForTesting } from '../src/kernels/plan.js';
import {
  EDGE_BASE,
  edgeCases,
  largestCases,
  PLANS,
  type EdgeKind,
} from '../src/validation/suite.js';
import { useCheckedWebGPU, withValidationScope } from './helpers/backend.js';
import {
  adapterOf,
  checkCase,
  makeInputs,
  referenceFor,
  runFused,
  tolerancesFor,
  type CaseSpec,
} from './helpers/cases.js';
import { expectClose, findMismatches } from './helpers/compare.js';

useCheckedWebGPU();

// The suite's edge-case base and plans (src/validation/suite.ts), shared with the app.
const base: CaseSpec = EDGE_BASE;
const plans = PLANS;

/** What some edge cases check beyond the comparison with the reference. */
const beyondTheReference: Partial<Record<EdgeKind, (spec: CaseSpec) => Promise<void>>> = {
  identical: async (spec) => {
    const fused = await runFused(spec, makeInputs(spec), null);
    // With α = 0 the loss is the KL alone: exactly 0 up to the rounding of the log-sums.
    for (const v of fused.value) expect(Math.abs(v)).toBeLessThan(1e-5);
    for (const g of fused.gradStudent) expect(g).toBe(0);
  },
  NaN: async (spec) => {
    // checkCase held NaN where the reference has NaN, and only there; the rows, explicitly:
    const fused = await runFused(spec, makeInputs(spec), null);
    const nanRows = [...fused.value]
      .map((v, b) => (Number.isNaN(v) ? b : -1))
      .filter((b) => b >= 0);
    expect(nanRows).toEqual([1, 4]);
  },
  // … without reading out of bounds (the validation scope and the comparison)
  'labels out of range': async (spec) => {
    const fused = await runFused(spec, makeInputs(spec), null);
    expect([...fused.value].map(Number.isNaN)).toEqual([
      true,
      false,
      false,
      true,
      false,
      true,
      false,
    ]);
    // The teacher's gradient does not depend on the labels: finite everywhere.
    expect(fused.gradTeacher!.every(Number.isFinite)).toBe(true);
  },
};

// The named edge cases on both plans (src/validation/suite.ts, shared with the app).
describe('edge cases', () => {
  test.each(edgeCases().map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    await checkCase(c.spec);
    await beyondTheReference[c.kind as EdgeKind]?.(c.spec);
  });
});

test.each(largestCases().map((c) => [c.name, c.spec] as const))('%s', async (_name, spec) => {
  await checkCase(spec);
});

test('the tolerances are tight enough to catch a 1e-3 error in the temperature or alpha', async () => {
  // Guards against tolerances so loose that a wrong kernel would pass: a reference computed at
  // a slightly wrong temperature or alpha must be rejected by the same comparison.
  const spec: CaseSpec = {
    ...base,
    classes: 1000,
    batch: 4,
    teacherGrad: 'lazy',
    upstream: 'unit',
  };
  const inputs = makeInputs(spec);
  const fused = await runFused(spec, inputs, null);
  const tol = tolerancesFor(spec, inputs, null, adapterOf(spec));
  const right = referenceFor(spec, inputs, null);
  expectClose('∂L/∂student', fused.gradStudent, right.gradStudent, tol.gradStudent, 'exact');
  for (const config of [
    { temperature: spec.temperature * (1 + 1e-3) },
    { alpha: spec.alpha + 1e-3 },
  ]) {
    const wrong = referenceFor(spec, inputs, null, config);
    const caught =
      findMismatches(fused.value, wrong.value, tol.value).length +
      findMismatches(fused.gradStudent, wrong.gradStudent, tol.gradStudent).length +
      findMismatches(fused.gradTeacher!, wrong.gradTeacher, tol.gradTeacher).length;
    expect(caught, JSON.stringify(config)).toBeGreaterThan(0);
  }
});

test('findMismatches reports NaN and Inf mismatches', () => {
  expect(findMismatches([NaN, 1, Infinity], [1, NaN, Infinity], 0.1).map((m) => m.index)).toEqual([
    0, 1,
  ]);
});

test('dense one-hot labels equal integer labels', async () => {
  const B = 6;
  const C = 50;
  const spec: CaseSpec = { ...base, batch: B, classes: C, teacherGrad: 'none', upstream: 'unit' };
  const inputs = makeInputs(spec);
  const oneHot = new Float32Array(B * C);
  for (let b = 0; b < B; b++) oneHot[b * C + inputs.labels[b]!] = 1;
  const a = await runFused(spec, inputs, null);
  const d = await runFused({ ...spec, labelKind: 'dense' }, { ...inputs, labels: oneHot }, null);
  expectClose('value', d.value, a.value, 1e-6, 'one-hot vs index');
  expectClose('∂L/∂s', d.gradStudent, a.gradStudent, 1e-9, 'one-hot vs index');
});

test('no tensor leaks over 100 calls inside tf.tidy, forward and backward', async () => {
  await withValidationScope(async () => {
    const s = tf.randomNormal([64, 10]);
    const t = tf.randomNormal([64, 10]);
    const y = tf.tensor1d(
      Array.from({ length: 64 }, (_, i) => i % 10),
      'int32',
    );
    const before = tf.memory().numTensors;
    for (let i = 0; i < 100; i++) {
      tf.tidy(() => {
        distillationLoss(y, s, t);
        tf.grads((a: tf.Tensor, b: tf.Tensor) => distillationLoss(y, a, b))([s, t]);
      });
    }
    expect(tf.memory().numTensors).toBe(before);
    const last = distillationLoss(y, s, t);
    await last.data();
    last.dispose();
    tf.dispose([s, t, y]);
  });
});

test.each(plans)(
  "the backward kernel's recompute path writes both gradients exactly, '%s' plan",
  async (plan) => {
    // The op reaches this kernel only for a lazily asked teacher gradient; here both of its
    // outputs are checked, by calling the kernels directly: forward (row statistics), then
    // backward with an explicit dy.
    for (const classes of [10, 1271, 4096]) {
      const spec: CaseSpec = { ...base, plan, classes, reduction: 'sum', upstream: 'random' };
      const inputs = makeInputs(spec);
      const dyValue = new Float32Array([-1.75]);
      overrideAdapterClassForTesting(() => plan);
      try {
        const kernelAttrs: DistillAttrs = {
          ...resolveConfig({
            alpha: spec.alpha,
            temperature: spec.temperature,
            reduction: spec.reduction,
          }),
          writeGradients: 'none',
          gradients: 'both',
        };
        // a flat record of primitives, which tfjs' NamedAttrMap does not name as such
        const attrs = kernelAttrs as unknown as tf.NamedAttrMap;
        const labels = tf.tensor1d(inputs.labels, 'int32');
        const studentLogits = tf.tensor2d(inputs.student, [spec.batch, classes]);
        const teacherLogits = tf.tensor2d(inputs.teacher, [spec.batch, classes]);
        const dy = tf.scalar(dyValue[0]!);
        const [value, rowStats] = tf
          .engine()
          .runKernel(
            FUSED_DISTILLATION_LOSS,
            { labels, studentLogits, teacherLogits },
            attrs,
          ) as tf.Tensor[];
        const [gs, gt] = tf
          .engine()
          .runKernel(
            FUSED_DISTILLATION_LOSS_GRAD,
            { dy, labels, studentLogits, teacherLogits, rowStats: rowStats! },
            attrs,
          ) as tf.Tensor[];
        const ref = referenceFor(spec, inputs, dyValue);
        const tol = tolerancesFor(spec, inputs, dyValue, plan);
        const context = `recompute path, ${plan} plan, C=${classes}`;
        expectClose('∂L/∂s', await gs!.data(), ref.gradStudent, tol.gradStudent, context, classes);
        expectClose('∂L/∂t', await gt!.data(), ref.gradTeacher, tol.gradTeacher, context, classes);
        tf.dispose([labels, studentLogits, teacherLogits, dy, value!, rowStats!, gs!, gt!]);
      } finally {
        overrideAdapterClassForTesting(null);
      }
    }
  },
);
