/**
 * `returnComponents: true` on the fused kernels: `{ loss, hardLoss, softLoss }` from the same
 * forward pass (the per-row CE_b and KL_b of the row statistics, one more dispatch for both
 * components), compared with the float64 reference (src/reference.ts) element by element
 * ('none') and reduced, with masks and ignored rows, on both plans and with forced small row
 * chunks. Each component is differentiable: its gradient is the loss's at α = 1 (hardLoss) or
 * α = 0 (softLoss), compared with the reference at that α; the loss's own gradient is the same,
 * bit for bit, with or without components.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, test } from 'vitest';
import { distillationLoss, type DistillationLossComponents, type Reduction } from '../src/index.js';
import { referenceDistillationLoss } from '../src/validation/index.js';
import {
  overrideAdapterClassForTesting,
  overrideBindingLimitForTesting,
  type AdapterClass,
} from '../src/kernels/plan.js';
import { countDispatches } from '../bench/core/lib/dispatch-counter.js';
import { caseReferenceInput } from '../src/validation/cases.js';
import { useCheckedWebGPU, withValidationScope } from './helpers/backend.js';
import { makeInputs, tolerancesFor, type CaseInputs, type CaseSpec } from './helpers/cases.js';
import { expectClose } from './helpers/compare.js';
import { boundsOverCounted, finiteStandIn } from './helpers/counted-rows.js';

useCheckedWebGPU();

const IGNORE = -100;
type Output = 'loss' | 'hardLoss' | 'softLoss';

interface ComponentCase extends CaseSpec {
  plan: AdapterClass;
  ignoreIndex?: number;
  /** Edits the generated inputs (masks, ignored rows). */
  edit?: (inputs: CaseInputs, batch: number, classes: number) => void;
}

function configOf(spec: ComponentCase) {
  return {
    alpha: spec.alpha,
    temperature: spec.temperature,
    reduction: spec.reduction,
    ...(spec.ignoreIndex !== undefined ? { ignoreIndex: spec.ignoreIndex } : {}),
  };
}

interface Tensors {
  s: tf.Tensor;
  t: tf.Tensor;
  y: tf.Tensor;
}

function tensorsOf(spec: ComponentCase, inputs: CaseInputs): Tensors {
  const { batch: B, classes: C } = spec;
  return {
    s: tf.tensor2d(inputs.student, [B, C]),
    t: tf.tensor2d(inputs.teacher, [B, C]),
    y:
      spec.labelKind === 'index'
        ? tf.tensor1d(inputs.labels, 'int32')
        : tf.tensor2d(inputs.labels, [B, C]),
  };
}

function components(
  x: Tensors,
  s: tf.Tensor,
  t: tf.Tensor,
  spec: ComponentCase,
): DistillationLossComponents {
  return distillationLoss(x.y, s, t, { ...configOf(spec), returnComponents: true });
}

/** The three values without a tape; no tensor left behind. */
async function fusedValues(
  spec: ComponentCase,
  inputs: CaseInputs,
): Promise<Record<Output, Float32Array>> {
  overrideAdapterClassForTesting(() => spec.plan);
  const before = tf.memory().numTensors;
  const out = await withValidationScope(async () => {
    const x = tensorsOf(spec, inputs);
    const c = components(x, x.s, x.t, spec);
    expect(c.loss.shape).toEqual(spec.reduction === 'none' ? [spec.batch] : []);
    expect(c.hardLoss.shape).toEqual(c.loss.shape);
    expect(c.softLoss.shape).toEqual(c.loss.shape);
    const r = {
      loss: (await c.loss.data()) as Float32Array,
      hardLoss: (await c.hardLoss.data()) as Float32Array,
      softLoss: (await c.softLoss.data()) as Float32Array,
    };
    tf.dispose([x.s, x.t, x.y, c.loss, c.hardLoss, c.softLoss]);
    return r;
  });
  expect(tf.memory().numTensors, 'leaked tensors').toBe(before);
  return out;
}

/** One output's value and gradients (teacher as a variable: both written by the forward pass). */
async function fusedGrads(
  spec: ComponentCase,
  inputs: CaseInputs,
  output: Output | 'plain',
): Promise<{ value: Float32Array; gradStudent: Float32Array; gradTeacher: Float32Array }> {
  overrideAdapterClassForTesting(() => spec.plan);
  const before = tf.memory().numTensors;
  const out = await withValidationScope(async () => {
    const x = tensorsOf(spec, inputs);
    const tv = spec.teacherGrad === 'tape' ? tf.variable(x.t) : undefined;
    const f = (a: tf.Tensor, b: tf.Tensor) =>
      output === 'plain'
        ? distillationLoss(x.y, a, b, configOf(spec))
        : components(x, a, b, spec)[output];
    const g = tf.valueAndGrads(f)([x.s, tv ?? x.t]);
    const r = {
      value: (await g.value.data()) as Float32Array,
      gradStudent: (await g.grads[0]!.data()) as Float32Array,
      gradTeacher: (await g.grads[1]!.data()) as Float32Array,
    };
    tf.dispose([x.s, x.t, x.y, g.value, ...g.grads]);
    tv?.dispose();
    return r;
  });
  expect(tf.memory().numTensors, 'leaked tensors').toBe(before);
  return out;
}

function referenceOf(spec: ComponentCase, inputs: CaseInputs, alpha = spec.alpha) {
  return referenceDistillationLoss(caseReferenceInput(spec, inputs), { ...configOf(spec), alpha });
}

/** Derived tolerances of the loss at `alpha` (hardLoss: 1, softLoss: 0), 'mean' over N rows. */
function tolerances(spec: ComponentCase, inputs: CaseInputs, alpha: number) {
  const standIn = finiteStandIn(spec, inputs, { ignoreIndex: spec.ignoreIndex, nanAsZero: true });
  const tol = tolerancesFor({ ...spec, alpha }, standIn, null, spec.plan);
  return boundsOverCounted(spec, tol, referenceOf(spec, inputs).counted);
}

const ALPHA: Record<Output, (spec: ComponentCase) => number> = {
  loss: (spec) => spec.alpha,
  hardLoss: () => 1,
  softLoss: () => 0,
};

async function checkComponents(spec: ComponentCase, withGradients: boolean): Promise<void> {
  const inputs = makeInputs(spec);
  spec.edit?.(inputs, spec.batch, spec.classes);
  const context = JSON.stringify({ ...spec, edit: spec.edit ? 'yes' : undefined });
  const ref = referenceOf(spec, inputs);
  const expected: Record<Output, Float64Array> = {
    loss: ref.value,
    hardLoss: ref.hardLoss,
    softLoss: ref.softLoss,
  };
  const values = await fusedValues(spec, inputs);
  for (const output of ['loss', 'hardLoss', 'softLoss'] as const) {
    const tol = tolerances(spec, inputs, ALPHA[output](spec));
    expectClose(output, values[output], expected[output], tol.value, context);
  }
  if (!withGradients) return;
  for (const output of ['hardLoss', 'softLoss', 'loss'] as const) {
    const alpha = ALPHA[output](spec);
    const r = referenceOf(spec, inputs, alpha);
    const tol = tolerances(spec, inputs, alpha);
    const g = await fusedGrads(spec, inputs, output);
    const C = spec.classes;
    expectClose(`${output} (taped)`, g.value, expected[output], tol.value, context);
    expectClose(`∂${output}/∂s`, g.gradStudent, r.gradStudent, tol.gradStudent, context, C);
    expectClose(`∂${output}/∂t`, g.gradTeacher, r.gradTeacher, tol.gradTeacher, context, C);
  }
}

/** Padded vocabulary (last `pad` columns masked on both sides), labels off the masks. */
function padded(pad: number) {
  return (inputs: CaseInputs, B: number, C: number) => {
    for (let b = 0; b < B; b++) {
      for (let c = C - pad; c < C; c++) {
        inputs.student[b * C + c] = -Infinity;
        inputs.teacher[b * C + c] = -Infinity;
      }
    }
    if (inputs.labels.length === B) {
      for (let b = 0; b < B; b++) inputs.labels[b] = inputs.labels[b]! % (C - pad);
    } else {
      for (let b = 0; b < B; b++) for (let c = C - pad; c < C; c++) inputs.labels[b * C + c] = 0;
    }
  };
}

/** Padded, plus teacher-only masks on a few columns and every fourth row ignored (index). */
function paddedAndIgnored(pad: number) {
  return (inputs: CaseInputs, B: number, C: number) => {
    padded(pad)(inputs, B, C);
    for (let b = 0; b < B; b += 3) inputs.teacher[b * C + ((b * 7) % (C - pad))] = -Infinity;
    if (inputs.labels.length === B) {
      for (let b = 1; b < B; b += 4) {
        inputs.labels[b] = IGNORE;
        inputs.student[b * C] = NaN; // ignored rows are 0 whatever they hold
      }
    }
  };
}

const reductions: Reduction[] = ['none', 'mean', 'sum'];

describe('components vs the float64 reference', () => {
  for (const plan of ['software', 'hardware'] as const) {
    test(`${plan} plan: every reduction, both label kinds, masks and ignored rows, gradients`, async () => {
      for (const reduction of reductions) {
        for (const labelKind of ['index', 'dense'] as const) {
          await checkComponents(
            {
              batch: 37,
              classes: 24,
              temperature: 4,
              alpha: 0.3,
              reduction,
              labelKind,
              seed: 101,
              plan,
              teacherGrad: 'tape',
              ...(labelKind === 'index' ? { ignoreIndex: IGNORE } : {}),
              edit: paddedAndIgnored(5),
            },
            true,
          );
        }
      }
    });

    test(`${plan} plan: odd C (scalar chunks), a large C, lazy teacher gradient`, async () => {
      for (const [batch, classes] of [
        [9, 10],
        [3, 4099],
      ] as const) {
        for (const reduction of reductions) {
          await checkComponents(
            {
              batch,
              classes,
              temperature: 2,
              alpha: 0.6,
              reduction,
              labelKind: 'index',
              seed: 7 + classes,
              plan,
              teacherGrad: 'lazy',
              ignoreIndex: IGNORE,
              edit: paddedAndIgnored(3),
            },
            true,
          );
        }
      }
    });

    test(`${plan} plan: forced small row chunks`, async () => {
      overrideBindingLimitForTesting(4096);
      for (const reduction of reductions) {
        for (const labelKind of ['index', 'dense'] as const) {
          await checkComponents(
            {
              batch: 70,
              classes: 60,
              temperature: 3,
              alpha: 0.25,
              reduction,
              labelKind,
              seed: 55,
              plan,
              teacherGrad: 'tape',
              ...(labelKind === 'index' ? { ignoreIndex: IGNORE } : {}),
              edit: paddedAndIgnored(4),
            },
            reduction !== 'sum',
          );
        }
      }
    });

    test(`${plan} plan: a batch beyond one workgroup (B = 600), mean with ignored rows`, async () => {
      await checkComponents(
        {
          batch: 600,
          classes: 16,
          temperature: 5,
          alpha: 0.5,
          reduction: 'mean',
          labelKind: 'index',
          seed: 3,
          plan,
          ignoreIndex: IGNORE,
          edit: paddedAndIgnored(2),
        },
        false,
      );
    });
  }
});

describe('special rows: each component NaN / +Infinity / 0 as the reference has it', () => {
  // row 0 plain; 1 a NaN teacher logit (hard finite, soft NaN); 2 a NaN student logit (both
  // NaN); 3 an out-of-range label (hard NaN, soft finite); 4 the label on a column only the
  // student masks (both +Infinity); 5 the student masks a column the teacher does not (soft
  // +Infinity); 6 ignored, with NaN logits (both 0); 7 the teacher masked everywhere (soft NaN).
  const B = 8;
  const C = 12;
  const edit = (inputs: CaseInputs) => {
    inputs.teacher[1 * C + 2] = NaN;
    inputs.student[2 * C + 5] = NaN;
    inputs.labels[3] = C + 3;
    inputs.student[4 * C + inputs.labels[4]!] = -Infinity;
    const c5 = (inputs.labels[5]! + 1) % C;
    inputs.student[5 * C + c5] = -Infinity;
    inputs.labels[6] = IGNORE;
    inputs.student[6 * C + 1] = NaN;
    inputs.teacher[6 * C + 1] = NaN;
    for (let c = 0; c < C; c++) inputs.teacher[7 * C + c] = -Infinity;
  };
  for (const plan of ['software', 'hardware'] as const) {
    test(`${plan} plan: 'none' values and the components' gradients`, async () => {
      for (const alpha of [0.3, 0, 1]) {
        const spec: ComponentCase = {
          batch: B,
          classes: C,
          temperature: 2,
          alpha,
          reduction: 'none',
          labelKind: 'index',
          seed: 17,
          plan,
          ignoreIndex: IGNORE,
          teacherGrad: 'tape',
        };
        const inputs = makeInputs(spec);
        edit(inputs);
        const ref = referenceOf(spec, inputs);
        const values = await fusedValues(spec, inputs);
        const loose = (x: ArrayLike<number>) =>
          Array.from(x, (v) => (Number.isFinite(v) ? 1e-4 * (1 + Math.abs(v)) : 0));
        const context = `special rows, ${plan}, α = ${alpha}`;
        expectClose('loss', values.loss, ref.value, loose(ref.value), context);
        expectClose('hardLoss', values.hardLoss, ref.hardLoss, loose(ref.hardLoss), context);
        expectClose('softLoss', values.softLoss, ref.softLoss, loose(ref.softLoss), context);
        expect(
          Array.from(values.hardLoss.slice(1, 8), (v) => (Number.isFinite(v) ? 'f' : v)),
        ).toEqual(['f', NaN, NaN, Infinity, 'f', 'f', 'f']);
        expect(
          Array.from(values.softLoss.slice(1, 8), (v) => (Number.isFinite(v) ? 'f' : v)),
        ).toEqual([NaN, NaN, 'f', Infinity, Infinity, 'f', NaN]);
        expect([values.loss[6], values.hardLoss[6], values.softLoss[6]]).toEqual([0, 0, 0]);
        if (alpha !== 0.3) continue;
        for (const output of ['hardLoss', 'softLoss'] as const) {
          const r = referenceOf(spec, inputs, ALPHA[output](spec));
          const g = await fusedGrads(spec, inputs, output);
          expectClose(
            `∂${output}/∂s`,
            g.gradStudent,
            r.gradStudent,
            loose(r.gradStudent),
            context,
            C,
          );
          expectClose(
            `∂${output}/∂t`,
            g.gradTeacher,
            r.gradTeacher,
            loose(r.gradTeacher),
            context,
            C,
          );
        }
      }
    });
  }
});

describe('dispatches, gradients of the loss, leaks', () => {
  function setup(B: number, C: number) {
    return {
      y: tf.tensor1d(
        Array.from({ length: B }, (_, i) => i % C),
        'int32',
      ),
      s: tf.randomNormal([B, C], 0, 3, 'float32', 1),
      t: tf.randomNormal([B, C], 0, 3, 'float32', 2),
    };
  }

  async function countOf(
    fn: () =>
      | tf.Tensor
      | tf.Tensor[]
      | DistillationLossComponents
      | { value: tf.Tensor; grads: tf.Tensor[] },
  ): Promise<number> {
    const before = tf.memory().numTensors;
    let out: unknown;
    const n = countDispatches(() => {
      out = fn();
    });
    const tensors: tf.Tensor[] = [];
    const collect = (x: unknown) => {
      if (x instanceof tf.Tensor) tensors.push(x);
      else if (Array.isArray(x)) x.forEach(collect);
      else if (x && typeof x === 'object') Object.values(x).forEach(collect);
    };
    collect(out);
    for (const t of tensors) await t.data();
    tf.dispose(tensors);
    expect(tf.memory().numTensors, 'leaked tensors').toBe(before);
    return n;
  }

  for (const [B, C] of [
    [64, 10],
    [2048, 64],
    [8, 4096],
  ] as const) {
    test(`B=${B}, C=${C}: one more dispatch for both components, none without them`, async () => {
      const { y, s, t } = setup(B, C);
      for (const reduction of reductions) {
        const plain = await countOf(() => distillationLoss(y, s, t, { reduction }));
        const comps = await countOf(() =>
          distillationLoss(y, s, t, { reduction, returnComponents: true }),
        );
        expect(comps, reduction).toBe(plain + 1);
        // under a tape: the loss's gradient path is unchanged (no dispatch for unused components)
        const plainGrad = await countOf(() =>
          tf.valueAndGrads((a: tf.Tensor) => distillationLoss(y, a, t, { reduction }))([s]),
        );
        const compsGrad = await countOf(() =>
          tf.valueAndGrads(
            (a: tf.Tensor) => distillationLoss(y, a, t, { reduction, returnComponents: true }).loss,
          )([s]),
        );
        expect(compsGrad, reduction).toBe(plainGrad + 1);
        // a component's gradient: one backward dispatch (the backward kernel at α = 1 or 0)
        for (const output of ['hardLoss', 'softLoss'] as const) {
          const n = await countOf(() =>
            tf.valueAndGrads(
              (a: tf.Tensor) =>
                distillationLoss(y, a, t, { reduction, returnComponents: true })[output],
            )([s]),
          );
          expect(n, `${output}, ${reduction}`).toBe(plainGrad + 2);
        }
      }
      tf.dispose([y, s, t]);
    });
  }

  test("the loss's gradient is bit-identical with or without components; sums of outputs differentiate", async () => {
    const { y, s, t } = setup(33, 20);
    const tv = tf.variable(t);
    for (const reduction of reductions) {
      const cfg = { reduction, alpha: 0.4, temperature: 3 } as const;
      const plain = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) =>
        distillationLoss(y, a, b, cfg),
      )([s, tv]);
      const comps = tf.valueAndGrads(
        (a: tf.Tensor, b: tf.Tensor) =>
          distillationLoss(y, a, b, { ...cfg, returnComponents: true }).loss,
      )([s, tv]);
      expect(await comps.value.data()).toEqual(await plain.value.data());
      expect(await comps.grads[0]!.data()).toEqual(await plain.grads[0]!.data());
      expect(await comps.grads[1]!.data()).toEqual(await plain.grads[1]!.data());
      // α · hardLoss + (1 − α) · softLoss through the tape: the loss's gradient (to rounding)
      const mixed = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) => {
        const c = distillationLoss(y, a, b, { ...cfg, returnComponents: true });
        return tf.sum(tf.add(tf.mul(0.4, c.hardLoss), tf.mul(0.6, c.softLoss)));
      })([s, tv]);
      const sum = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(distillationLoss(y, a, b, cfg)),
      )([s, tv]);
      for (let i = 0; i < 2; i++) {
        const got = await mixed.grads[i]!.data();
        const want = await sum.grads[i]!.data();
        expectClose(`mixed ∂${i}`, got, want, 1e-4, reduction, 20);
      }
      tf.dispose([plain.value, ...plain.grads, comps.value, ...comps.grads]);
      tf.dispose([mixed.value, ...mixed.grads, sum.value, ...sum.grads]);
    }
    tf.dispose([y, s, t, tv]);
  });
});
