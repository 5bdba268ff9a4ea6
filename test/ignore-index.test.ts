/**
 * ignoreIndex in the fused kernels: a row whose int32 label equals it adds nothing to the loss
 * or either gradient (even when its logits hold NaN) and is not counted by 'mean', which
 * divides by the rows counted on the GPU (no read-back); a batch of ignored rows only is 0
 * with zero gradients (src/reference.ts). Compared with the float64 reference element by
 * element on both plans, with the row chunks forced small too, and the dispatch counts are
 * those without an ignore index.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, test } from 'vitest';
import { DEFAULT_CONFIG, distillationLoss, type Reduction } from '../src/index.js';
import { mulberry32 } from '../src/validation/random.js';
import { referenceDistillationLoss } from '../src/validation/index.js';
import {
  overrideAdapterClassForTesting,
  overrideBindingLimitForTesting,
  type AdapterClass,
} from '../src/kernels/plan.js';
import { FUSED_DISTILLATION_LOSS } from '../src/kernels/names.js';
import { countDispatches } from '../bench/core/lib/dispatch-counter.js';
import { useCheckedWebGPU, withValidationScope } from './helpers/backend.js';
import { makeInputs, tolerancesFor, upstreamFor, type CaseSpec } from './helpers/cases.js';
import { expectClose } from './helpers/compare.js';
import { boundsOverCounted, expectWithin } from './helpers/counted-rows.js';

useCheckedWebGPU();

const IGNORE = -100;

interface IgnoreCase extends CaseSpec {
  plan: AdapterClass;
  /** Rows whose label becomes IGNORE (their logits get a NaN too, when `nanInIgnored`). */
  ignored: (b: number) => boolean;
  nanInIgnored?: boolean;
}

async function checkIgnored(spec: IgnoreCase): Promise<void> {
  const context = JSON.stringify({ ...spec, ignored: undefined });
  const inputs = makeInputs(spec);
  // The tolerances come from the rows as generated (an ignored row's bounds then only widen
  // the reduced loss's bound; its own outputs are checked to be exactly 0 below).
  const plain = makeInputs(spec);
  const C = spec.classes;
  for (let b = 0; b < spec.batch; b++) {
    if (!spec.ignored(b)) continue;
    inputs.labels[b] = IGNORE;
    if (spec.nanInIgnored) inputs.student[b * C + (b % C)] = NaN;
  }
  const dyValues = upstreamFor(spec);
  const config = {
    alpha: spec.alpha,
    temperature: spec.temperature,
    reduction: spec.reduction,
    ignoreIndex: IGNORE,
  };
  overrideAdapterClassForTesting(() => spec.plan);
  const before = tf.memory().numTensors;
  const fused = await withValidationScope(async () => {
    const s = tf.tensor2d(inputs.student, [spec.batch, C]);
    const t = tf.tensor2d(inputs.teacher, [spec.batch, C]);
    const tv = spec.teacherGrad === 'tape' ? tf.variable(t) : undefined;
    const y = tf.tensor1d(inputs.labels, 'int32');
    const dy = dyValues
      ? spec.reduction === 'none'
        ? tf.tensor1d(dyValues)
        : tf.scalar(dyValues[0]!)
      : undefined;
    const out = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) => distillationLoss(y, a, b, config))(
      [s, tv ?? t],
      dy,
    );
    const result = {
      value: await out.value.data(),
      gradStudent: await out.grads[0]!.data(),
      gradTeacher: await out.grads[1]!.data(),
    };
    tf.dispose([s, t, y, out.value, ...out.grads]);
    tv?.dispose();
    dy?.dispose();
    return result;
  });
  expect(tf.memory().numTensors, `leaked tensors — ${context}`).toBe(before);
  const ref = referenceDistillationLoss(
    {
      batch: spec.batch,
      classes: C,
      student: inputs.student,
      teacher: inputs.teacher,
      labels: inputs.labels,
      labelKind: 'index',
      ...(dyValues ? { dy: dyValues } : {}),
    },
    config,
  );
  // The derived tolerances, per row (an ignored row's gradients are exactly 0 either way);
  // 'mean' divides by N instead of B: the bounds scale by B / max(N, 1).
  const tol = boundsOverCounted(spec, tolerancesFor(spec, plain, dyValues, spec.plan), ref.counted);
  expectWithin(fused, ref, tol, context, C);
  // Ignored rows: exactly 0 everywhere.
  for (let b = 0; b < spec.batch; b++) {
    if (!spec.ignored(b)) continue;
    if (spec.reduction === 'none') expect(Math.abs(fused.value[b]!)).toBe(0);
    for (let c = 0; c < C; c++) {
      expect(Math.abs(fused.gradStudent[b * C + c])).toBe(0);
      expect(Math.abs(fused.gradTeacher[b * C + c])).toBe(0);
    }
  }
}

const base = { temperature: 4, alpha: 0.3, seed: 11, labelKind: 'index' } as const;

describe('ignored rows add nothing and are not counted', () => {
  const shapes: [number, number][] = [
    [64, 10], // one workgroup reduces the batch (and counts it)
    [300, 1000], // forward + reduce; each forward workgroup counts for the gradients
    [7, 1271],
  ];
  const variants: [Reduction, 'tape' | 'lazy', 'unit' | 'random'][] = [
    ['mean', 'tape', 'unit'],
    ['mean', 'lazy', 'random'],
    ['sum', 'tape', 'random'],
    ['none', 'lazy', 'random'],
  ];
  for (const plan of ['software', 'hardware'] as const) {
    for (const [batch, classes] of shapes) {
      test.each(variants)(
        `${plan} plan, [${batch}, ${classes}]: %s teacher=%s dy=%s`,
        async (reduction, teacherGrad, upstream) => {
          await checkIgnored({
            ...base,
            batch,
            classes,
            reduction,
            teacherGrad,
            upstream,
            plan,
            ignored: (b) => b % 3 === 1,
            nanInIgnored: true,
          });
        },
      );
    }
  }

  test.each(['software', 'hardware'] as const)(
    '%s plan: every row ignored: mean 0 with zero gradients',
    async (plan) => {
      for (const [batch, classes] of [
        [5, 10],
        [300, 1000],
      ] as const) {
        await checkIgnored({
          ...base,
          batch,
          classes,
          reduction: 'mean',
          teacherGrad: 'tape',
          plan,
          ignored: () => true,
        });
      }
    },
  );

  test('hardware plan: more rows than the counting grid (1100 rows of 4096, a workgroup each, 1024 workgroups)', async () => {
    await checkIgnored({
      ...base,
      batch: 1100,
      classes: 4096,
      reduction: 'mean',
      teacherGrad: 'tape',
      plan: 'hardware',
      ignored: (b) => b % 5 === 2,
    });
  });

  test.each(['software', 'hardware'] as const)(
    '%s plan: forced small row chunks, the count spans them',
    async (plan) => {
      overrideBindingLimitForTesting(4096);
      for (const reduction of ['mean', 'none'] as const) {
        await checkIgnored({
          ...base,
          batch: 300,
          classes: 37,
          reduction,
          teacherGrad: 'lazy',
          upstream: 'random',
          plan,
          ignored: (b) => b < 40 || b % 7 === 0,
        });
      }
    },
  );
});

describe('the defaults spread with an ignore index', () => {
  test('{ ...DEFAULT_CONFIG, ignoreIndex: -100 }: the rows labelled -100 are ignored', async () => {
    // Were the index dropped, -100 would be a class out of range and make the mean NaN.
    const [B, C] = [6, 10];
    const rng = mulberry32(23);
    const student = Float32Array.from({ length: B * C }, () => 4 * rng() - 2);
    const teacher = Float32Array.from({ length: B * C }, () => 4 * rng() - 2);
    const labels = Int32Array.from([3, IGNORE, 0, 9, IGNORE, 5]);
    const config = { ...DEFAULT_CONFIG, ignoreIndex: IGNORE };
    const s = tf.tensor2d(student, [B, C]);
    const t = tf.tensor2d(teacher, [B, C]);
    const y = tf.tensor1d(labels, 'int32');
    const { value, grads } = tf.valueAndGrads((a: tf.Tensor) => distillationLoss(y, a, t, config))([
      s,
    ]);
    const got = (await value.data())[0]!;
    const gradStudent = await grads[0]!.data();
    tf.dispose([s, t, y, value, ...grads]);
    const ref = referenceDistillationLoss(
      { batch: B, classes: C, student, teacher, labels, labelKind: 'index' },
      config,
    );
    expect(Array.from(ref.counted)).toEqual([1, 0, 1, 1, 0, 1]);
    expect(Number.isFinite(got)).toBe(true);
    expect(Math.abs(got - ref.value[0]!)).toBeLessThanOrEqual(1e-5 * Math.abs(ref.value[0]!));
    for (const b of [1, 4]) {
      expect(Array.from(gradStudent.slice(b * C, (b + 1) * C))).toEqual(new Array(C).fill(0));
    }
    expectClose('∂L/∂s', gradStudent, ref.gradStudent, 1e-5, 'DEFAULT_CONFIG + ignoreIndex', C);
  });
});

describe('dispatches', () => {
  test('unchanged by an ignore index, whether or not a row is ignored', async () => {
    for (const [B, C] of [
      [64, 10],
      [256, 4096],
    ] as const) {
      const s = tf.randomNormal([B, C]);
      const t = tf.randomNormal([B, C]);
      const none = tf.tensor1d(
        Array.from({ length: B }, (_, i) => i % C),
        'int32',
      );
      const some = tf.tensor1d(
        Array.from({ length: B }, (_, i) => (i % 2 ? IGNORE : i % C)),
        'int32',
      );
      for (const reduction of ['mean', 'sum', 'none'] as const) {
        const counts = [undefined, none, some].map((labels) => {
          const y = labels ?? none;
          const config = labels ? { reduction, ignoreIndex: IGNORE } : { reduction };
          let kept: tf.Tensor[] = [];
          const n = countDispatches(() => {
            const out = tf.valueAndGrads((a: tf.Tensor) => distillationLoss(y, a, t, config))([s]);
            kept = [out.value, ...out.grads];
          });
          tf.dispose(kept);
          return n;
        });
        expect(counts, `[${B}, ${C}] ${reduction}`).toEqual([counts[0], counts[0], counts[0]]);
      }
      tf.dispose([s, t, none, some]);
    }
  });

  test('the fused kernel runs (not the composition)', () => {
    const kernel = tf.getKernel(FUSED_DISTILLATION_LOSS, 'webgpu')!;
    const original = kernel.kernelFunc;
    let calls = 0;
    (kernel as { kernelFunc: typeof original }).kernelFunc = (args) => {
      calls++;
      return original(args);
    };
    try {
      const s = tf.randomNormal([4, 10]);
      const y = tf.tensor1d([1, IGNORE, 2, 3], 'int32');
      tf.dispose(distillationLoss(y, s, s, { ignoreIndex: IGNORE }));
      tf.dispose([s, y]);
    } finally {
      (kernel as { kernelFunc: typeof original }).kernelFunc = original;
    }
    expect(calls).toBe(1);
  });
});
