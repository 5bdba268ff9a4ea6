/**
 * Named edge cases of the fused kernels, each against the float64 reference with the derived
 * tolerances (and, where the maths calls for it, exact NaN placement).
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  distillationLoss,
  FUSED_DISTILLATION_LOSS,
  FUSED_DISTILLATION_LOSS_GRAD,
} from '../src/index.js';
import { overrideAdapterClassForTesting } from '../src/kernels/plan.js';
import { uncapturedGpuErrors, useWebGPU, withValidationScope } from './helpers/backend.js';
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

beforeAll(useWebGPU);
afterAll(() => expect(uncapturedGpuErrors()).toEqual([]));

const base: CaseSpec = {
  batch: 7,
  classes: 10,
  temperature: 10,
  alpha: 0.1,
  reduction: 'none',
  labelKind: 'index',
  seed: 42,
  teacherGrad: 'tape',
  upstream: 'random',
};
const plans = ['cpu', 'gpu'] as const;
const sizes = [10, 1271, 4096];

describe.each(plans)("edge cases, '%s' plan", (plan) => {
  test.each(sizes)('logits ±100, C=%i', async (classes) => {
    await checkCase({ ...base, plan, classes, scale: 100 });
  });

  test.each(sizes)('logits ±1e4 at T = 0.05 and T = 100, C=%i', async (classes) => {
    await checkCase({ ...base, plan, classes, scale: 1e4, temperature: 0.05 });
    await checkCase({ ...base, plan, classes, scale: 1e4, temperature: 100, seed: 43 });
  });

  test.each(sizes)('a row shifted by a large constant, C=%i', async (classes) => {
    await checkCase({
      ...base,
      plan,
      classes,
      mutate: ({ student, teacher }) => {
        for (let c = 0; c < classes; c++) {
          student[2 * classes + c]! += 9000;
          teacher[3 * classes + c]! -= 9000;
        }
      },
    });
  });

  test.each(sizes)(
    'identical teacher and student: KL and its gradients vanish, C=%i',
    async (classes) => {
      const spec: CaseSpec = {
        ...base,
        plan,
        classes,
        alpha: 0,
        mutate: (x) => x.teacher.set(x.student),
      };
      await checkCase(spec);
      const inputs = makeInputs(spec);
      const fused = await runFused(spec, inputs, null);
      // With α = 0 the loss is the KL alone: exactly 0 up to the rounding of the log-sums.
      for (const v of fused.value) expect(Math.abs(v)).toBeLessThan(1e-5);
      for (const g of fused.gradStudent) expect(g).toBe(0);
    },
  );

  test.each(sizes)('one-hot teacher (one logit far above the rest), C=%i', async (classes) => {
    await checkCase({
      ...base,
      plan,
      classes,
      temperature: 1,
      mutate: ({ teacher }) => {
        teacher.fill(-50);
        for (let b = 0; b < 7; b++) teacher[b * classes + ((b * 3) % classes)] = 50;
      },
    });
  });

  test.each([10, 1271, 1023, 257])(
    'C not a multiple of the workgroup size or of 4, C=%i',
    async (classes) => {
      await checkCase({ ...base, plan, classes, batch: 5, reduction: 'mean' });
    },
  );

  test('non-unit upstream gradient, scalar and per row', async () => {
    await checkCase({ ...base, plan, classes: 1000, reduction: 'sum', upstream: 'random' });
    await checkCase({ ...base, plan, classes: 1000, reduction: 'none', upstream: 'random' });
    await checkCase({
      ...base,
      plan,
      classes: 1000,
      reduction: 'mean',
      upstream: 'random',
      teacherGrad: 'none',
    });
  });

  test.each(sizes)('NaN propagates to its row only, C=%i', async (classes) => {
    const spec: CaseSpec = {
      ...base,
      plan,
      classes,
      mutate: ({ student, teacher }) => {
        student[1 * classes + (classes >> 1)] = NaN;
        teacher[4 * classes + classes - 1] = NaN;
      },
    };
    await checkCase(spec); // NaN where the reference has NaN, and only there
    const fused = await runFused(spec, makeInputs(spec), null);
    const nanRows = [...fused.value]
      .map((v, b) => (Number.isNaN(v) ? b : -1))
      .filter((b) => b >= 0);
    expect(nanRows).toEqual([1, 4]);
  });

  test.each(sizes)(
    'out-of-range labels make their row NaN without reading out of bounds, C=%i',
    async (classes) => {
      const spec: CaseSpec = {
        ...base,
        plan,
        classes,
        mutate: ({ labels }) => {
          labels[0] = classes;
          labels[3] = -1;
          labels[5] = 2 ** 31 - 1;
        },
      };
      await checkCase(spec);
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
  );
});

test.each(plans)("C = 262144 (the largest supported) and B = 1, '%s' plan", async (plan) => {
  await checkCase({ ...base, plan, batch: 1, classes: 262_144, reduction: 'mean', scale: 20 });
  await checkCase({ ...base, plan, batch: 2, classes: 262_143, reduction: 'none', seed: 7 });
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
        const attrs = {
          alpha: spec.alpha,
          temperature: spec.temperature,
          temperatureSquared: true,
          reduction: spec.reduction,
          writeGradients: 'none',
          gradients: 'both',
        } as unknown as tf.NamedAttrMap;
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
