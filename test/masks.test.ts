/**
 * −Infinity logits in the fused kernels (masks: padded vocabularies, one-sided masks), compared
 * with the float64 reference (src/reference.ts) element by element on both plans, with the row
 * chunks forced small too. The tolerances are the derived ones of the same rows with every
 * −Infinity replaced by a finite logit far below the row (the reference itself is computed on
 * the real −Infinity inputs: its exact zeros, +Infinity and NaN must be matched exactly).
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, test } from 'vitest';
import { distillationLoss, type Reduction } from '../src/index.js';
import { referenceDistillationLoss } from '../src/validation/index.js';
import {
  overrideAdapterClassForTesting,
  overrideBindingLimitForTesting,
  type AdapterClass,
} from '../src/kernels/plan.js';
import { useCheckedWebGPU, withValidationScope } from './helpers/backend.js';
import {
  makeInputs,
  tolerancesFor,
  upstreamFor,
  type CaseInputs,
  type CaseSpec,
} from './helpers/cases.js';
import { expectClose } from './helpers/compare.js';
import { boundsOverCounted, expectWithin, finiteStandIn } from './helpers/counted-rows.js';

useCheckedWebGPU();

const IGNORE = -100;

interface MaskCase extends CaseSpec {
  plan: AdapterClass;
  /** Sets −Infinity entries (and labels) in the generated inputs. */
  mask: (inputs: CaseInputs, batch: number, classes: number) => void;
  ignoreIndex?: number;
}

interface FusedResult {
  value: Float32Array;
  gradStudent: Float32Array;
  gradTeacher: Float32Array;
}

async function runFusedMasked(spec: MaskCase, inputs: CaseInputs): Promise<FusedResult> {
  const { batch: B, classes: C } = spec;
  const dyValues = upstreamFor(spec);
  const config = {
    alpha: spec.alpha,
    temperature: spec.temperature,
    reduction: spec.reduction,
    ...(spec.ignoreIndex !== undefined ? { ignoreIndex: spec.ignoreIndex } : {}),
  };
  overrideAdapterClassForTesting(() => spec.plan);
  const before = tf.memory().numTensors;
  const result = await withValidationScope(async () => {
    const s = tf.tensor2d(inputs.student, [B, C]);
    const t = tf.tensor2d(inputs.teacher, [B, C]);
    const tv = spec.teacherGrad === 'tape' ? tf.variable(t) : undefined;
    const y =
      spec.labelKind === 'index'
        ? tf.tensor1d(inputs.labels, 'int32')
        : tf.tensor2d(inputs.labels, [B, C]);
    const dy = dyValues
      ? spec.reduction === 'none'
        ? tf.tensor1d(dyValues)
        : tf.scalar(dyValues[0]!)
      : undefined;
    const out = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) => distillationLoss(y, a, b, config))(
      [s, tv ?? t],
      dy,
    );
    const r = {
      value: (await out.value.data()) as Float32Array,
      gradStudent: (await out.grads[0]!.data()) as Float32Array,
      gradTeacher: (await out.grads[1]!.data()) as Float32Array,
    };
    tf.dispose([s, t, y, out.value, ...out.grads]);
    tv?.dispose();
    dy?.dispose();
    return r;
  });
  expect(tf.memory().numTensors, 'leaked tensors').toBe(before);
  return result;
}

async function checkMasked(spec: MaskCase): Promise<void> {
  const { batch: B, classes: C } = spec;
  const context = JSON.stringify({ ...spec, mask: undefined });
  const inputs = makeInputs(spec);
  spec.mask(inputs, B, C);
  const fused = await runFusedMasked(spec, inputs);
  const dyValues = upstreamFor(spec);
  const ref = referenceDistillationLoss(
    {
      batch: B,
      classes: C,
      student: inputs.student,
      teacher: inputs.teacher,
      labels: inputs.labels,
      labelKind: spec.labelKind,
      ...(dyValues ? { dy: dyValues } : {}),
    },
    {
      alpha: spec.alpha,
      temperature: spec.temperature,
      reduction: spec.reduction,
      ...(spec.ignoreIndex !== undefined ? { ignoreIndex: spec.ignoreIndex } : {}),
    },
  );
  const standIn = finiteStandIn(spec, inputs, { ignoreIndex: spec.ignoreIndex });
  const tol = boundsOverCounted(
    spec,
    tolerancesFor(spec, standIn, dyValues, spec.plan),
    ref.counted,
  );
  expectWithin(fused, ref, tol, context, C);
  // Masked on both sides: exactly 0 in both gradients (probability 0 at −∞, derivative 0).
  for (let i = 0; i < B * C; i++) {
    if (inputs.student[i] === -Infinity && inputs.teacher[i] === -Infinity) {
      if (Number.isNaN(ref.gradStudent[i])) continue;
      expect(Math.abs(fused.gradStudent[i]!), `∂/∂s at ${i} — ${context}`).toBe(0);
      expect(Math.abs(fused.gradTeacher[i]!), `∂/∂t at ${i} — ${context}`).toBe(0);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// masks

/** The last `pad` columns of every row −Infinity in teacher and student (a padded vocabulary). */
function padded(pad: number) {
  return (inputs: CaseInputs, B: number, C: number) => {
    for (let b = 0; b < B; b++) {
      for (let c = C - pad; c < C; c++) {
        inputs.student[b * C + c] = -Infinity;
        inputs.teacher[b * C + c] = -Infinity;
      }
    }
    keepLabelsOffStudentMasks(inputs, B, C);
  };
}

/** Labels moved off columns the student masks (dense: that mass set to 0), as in training. */
function keepLabelsOffStudentMasks(inputs: CaseInputs, B: number, C: number): void {
  if (inputs.labels.length === B) {
    for (let b = 0; b < B; b++) {
      let l = inputs.labels[b]!;
      while (inputs.student[b * C + l] === -Infinity) l = (l + 1) % C;
      inputs.labels[b] = l;
    }
  } else {
    for (let i = 0; i < B * C; i++) if (inputs.student[i] === -Infinity) inputs.labels[i] = 0;
  }
}

/**
 * A padded vocabulary plus one-sided masks: rows b % 4 == 1 mask a few teacher columns (the
 * student has mass there: KL finite), rows b % 4 == 2 mask a student column where the teacher
 * has mass (forward KL +Infinity), rows b % 4 == 3 both.
 */
function paddedAndOneSided(pad: number) {
  return (inputs: CaseInputs, B: number, C: number) => {
    padded(pad)(inputs, B, C);
    const real = C - pad;
    for (let b = 0; b < B; b++) {
      if (b % 4 === 1 || b % 4 === 3) {
        for (const c of [b % real, (b * 7 + 3) % real]) inputs.teacher[b * C + c] = -Infinity;
      }
      if (b % 4 === 2 || b % 4 === 3) inputs.student[b * C + ((b * 5 + 1) % real)] = -Infinity;
    }
    keepLabelsOffStudentMasks(inputs, B, C);
  };
}

const base = { temperature: 4, alpha: 0.3, seed: 5 } as const;

describe('−Infinity masks in the fused kernels match the reference', () => {
  for (const plan of ['software', 'hardware'] as const) {
    test(`${plan} plan: padded vocabulary 10 → 16, every reduction, both label kinds`, async () => {
      for (const labelKind of ['index', 'dense'] as const) {
        for (const reduction of ['none', 'mean', 'sum'] as Reduction[]) {
          await checkMasked({
            ...base,
            batch: 9,
            classes: 16,
            labelKind,
            reduction,
            teacherGrad: 'tape',
            plan,
            mask: padded(6),
          });
        }
      }
    });

    test(`${plan} plan: one-sided masks (+Infinity rows), every reduction, lazy and tape`, async () => {
      for (const [batch, classes, pad] of [
        [13, 16, 6],
        [9, 1024, 24],
        [5, 1027, 3],
      ] as const) {
        for (const labelKind of ['index', 'dense'] as const) {
          for (const [reduction, teacherGrad, upstream] of [
            ['none', 'lazy', 'random'],
            ['mean', 'tape', 'unit'],
            ['sum', 'lazy', 'unit'],
          ] as const) {
            await checkMasked({
              ...base,
              batch,
              classes,
              labelKind,
              reduction,
              teacherGrad,
              upstream,
              plan,
              mask: paddedAndOneSided(pad),
            });
          }
        }
      }
    });

    test(`${plan} plan: 1000 → 1024 and 32768 → 32896 padded, teacher-only masks`, async () => {
      for (const [batch, classes, pad] of [
        [37, 1024, 24],
        [3, 32896, 128],
      ] as const) {
        for (const reduction of ['none', 'mean'] as Reduction[]) {
          await checkMasked({
            ...base,
            batch,
            classes,
            labelKind: 'index',
            reduction,
            teacherGrad: reduction === 'none' ? 'lazy' : 'tape',
            upstream: 'random',
            plan,
            mask: (inputs, B, C) => {
              padded(pad)(inputs, B, C);
              for (let b = 1; b < B; b += 2)
                inputs.teacher[b * C + ((b * 11) % (C - pad))] = -Infinity;
            },
          });
        }
      }
    });

    test(`${plan} plan: a label on a student-masked column, zero weights, all-masked rows`, async () => {
      const C = 16;
      const edge = (inputs: CaseInputs, B: number) => {
        padded(4)(inputs, B, C);
        // row 0: index label on a column the student masks (CE +Infinity); dense: label mass
        inputs.student[0 * C + 3] = -Infinity;
        if (inputs.labels.length === B) inputs.labels[0] = 3;
        else inputs.labels[0 * C + 3] = 0.25;
        // rows 1, 2: masked everywhere (student; teacher); row 3: teacher-only, all but one
        inputs.student.fill(-Infinity, 1 * C, 2 * C);
        inputs.teacher.fill(-Infinity, 2 * C, 3 * C);
        inputs.teacher.fill(-Infinity, 3 * C, 3 * C + 11);
        // row 4: +Infinity logit (NaN row)
        inputs.teacher[4 * C + 2] = Infinity;
      };
      for (const labelKind of ['index', 'dense'] as const) {
        for (const alpha of [0, 0.3, 1]) {
          for (const reduction of ['none', 'sum'] as Reduction[]) {
            await checkMasked({
              ...base,
              alpha,
              batch: 6,
              classes: C,
              labelKind,
              reduction,
              teacherGrad: 'tape',
              plan,
              mask: edge,
            });
          }
        }
      }
    });

    test(`${plan} plan: ignoreIndex rows (masked everywhere, or not) add nothing`, async () => {
      for (const reduction of ['mean', 'none'] as Reduction[]) {
        await checkMasked({
          ...base,
          batch: 12,
          classes: 1024,
          labelKind: 'index',
          reduction,
          teacherGrad: 'lazy',
          upstream: 'random',
          plan,
          ignoreIndex: IGNORE,
          mask: (inputs, B, C) => {
            paddedAndOneSided(24)(inputs, B, C);
            for (let b = 0; b < B; b += 3) inputs.labels[b] = IGNORE;
            inputs.student.fill(-Infinity, 3 * C, 4 * C); // ignored and masked everywhere
          },
        });
      }
    });

    test(`${plan} plan: forced small row chunks`, async () => {
      overrideBindingLimitForTesting(4096);
      for (const labelKind of ['index', 'dense'] as const) {
        await checkMasked({
          ...base,
          batch: 300,
          classes: 37,
          labelKind,
          reduction: 'mean',
          teacherGrad: 'lazy',
          upstream: 'random',
          plan,
          mask: paddedAndOneSided(5),
        });
      }
    });

    test(`${plan} plan: columns masked in both equal deleting them (fused path)`, async () => {
      for (const [C, keep] of [
        [16, 10],
        [1024, 1000],
      ] as const) {
        const B = 7;
        const spec = { ...base, batch: B, labelKind: 'index', reduction: 'none', plan } as const;
        const small = makeInputs({ ...spec, classes: keep });
        const big: CaseInputs = {
          student: new Float32Array(B * C).fill(-Infinity),
          teacher: new Float32Array(B * C).fill(-Infinity),
          labels: small.labels,
        };
        for (let b = 0; b < B; b++) {
          big.student.set(small.student.subarray(b * keep, (b + 1) * keep), b * C);
          big.teacher.set(small.teacher.subarray(b * keep, (b + 1) * keep), b * C);
        }
        const a = await runFusedMasked({ ...spec, classes: keep, mask: () => {} }, small);
        const z = await runFusedMasked({ ...spec, classes: C, mask: () => {} }, big);
        const refSmall = referenceDistillationLoss(
          { batch: B, classes: keep, ...small, labelKind: 'index' },
          { alpha: base.alpha, temperature: base.temperature, reduction: 'none' },
        );
        // the same rows up to the kernels' float32 roundings (another summation order)
        const tol = tolerancesFor({ ...spec, classes: keep }, small, null, plan);
        const twice = (x: ArrayLike<number>) => Array.from(x, (v) => 2 * v);
        expectClose('loss', z.value, a.value, twice(tol.value), `C ${C}`);
        expectClose('loss vs reference', z.value, refSmall.value, tol.value, `C ${C}`);
        for (let b = 0; b < B; b++) {
          for (let c = 0; c < C; c++) {
            const gs = z.gradStudent[b * C + c]!;
            const gt = z.gradTeacher[b * C + c]!;
            if (c >= keep) {
              expect(Math.abs(gs)).toBe(0);
              expect(Math.abs(gt)).toBe(0);
            }
          }
          const row = (x: Float32Array, n: number, w: number) => x.subarray(b * w, b * w + n);
          expectClose(
            '∂/∂s',
            row(z.gradStudent, keep, C),
            row(a.gradStudent, keep, keep),
            twice(tol.gradStudent.subarray(b * keep, (b + 1) * keep)),
            `C ${C} row ${b}`,
          );
          expectClose(
            '∂/∂t',
            row(z.gradTeacher, keep, C),
            row(a.gradTeacher, keep, keep),
            twice(tol.gradTeacher.subarray(b * keep, (b + 1) * keep)),
            `C ${C} row ${b}`,
          );
        }
      }
    });
  }
});
