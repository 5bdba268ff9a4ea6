/**
 * Reverse KL and the JSD in the fused kernels (shaders/distill-divergence.wgsl), against the
 * float64 reference (src/reference.ts) element by element: values, ∂/∂student and ∂/∂teacher,
 * on both plans ('software': a thread per row; 'hardware': a workgroup per row for C > 64, its trees),
 * with both label kinds, every reduction, returnComponents, ignoreIndex, −Infinity masks
 * (one-sided ones where the divergence stays finite, and where it is +Infinity), logits of rank
 * 3 and 4, row chunks forced past a small binding limit and real ones past lavapipe's 128 MiB
 * (a device with a larger limit is capped to 128 MiB, so they are chunked everywhere), the ends of the tested temperature
 * range, rows of 1 to 4 classes and batches of one row, the teacher's gradient written by the forward kernel (teacher on the tape) or
 * recomputed by the backward kernel (lazy), and an explicit upstream gradient. Every case checks
 * that the op ran the fused forward kernel; every divergence runs with the dispatch counts of
 * forward KL.
 *
 * Inputs, runs and bounds: test/helpers/divergence-cases.ts (its header derives the
 * tolerances). The real row chunks past 128 MiB and the ends of the temperature range are in
 * test/divergences-fused-large.test.ts, a file of their own so that they run beside the rest.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, test } from 'vitest';
import { countDispatches } from '../bench/core/lib/dispatch-counter.js';
import {
  DIVERGENCE_NAMES,
  distillationLoss,
  type Divergence,
  type Reduction,
} from '../src/index.js';
import { overrideAdapterClassForTesting } from '../src/kernels/plan.js';
import { useCheckedWebGPU, withValidationScope } from './helpers/backend.js';
import { expectClose } from './helpers/compare.js';
import {
  boundsOf,
  check,
  configOf,
  countFusedCalls,
  FUSED_DIVS,
  fusedVsReference,
  inputsFor,
  referenceOf,
  runFused,
  type FusedCase,
} from './helpers/divergence-cases.js';

useCheckedWebGPU();

const SHAPES = [
  [7, 10],
  [2, 3, 9],
  [16, 100],
  [3, 1, 2, 33],
  [5, 1027],
  [4, 2048],
];

const cases: FusedCase[] = [];
for (const plan of ['software', 'hardware'] as const) {
  for (const d of FUSED_DIVS) {
    for (const T of [1, 4, 10, 1000]) {
      for (const reduction of ['mean', 'sum', 'none'] as Reduction[]) {
        const i = cases.length;
        cases.push({
          ...d,
          T,
          alpha: [0, 0.1, 0.5, 1, 0.3][i % 5]!,
          reduction,
          dense: i % 2 === 1,
          shape: SHAPES[i % SHAPES.length]!,
          scale: [3, 20][(i >> 1) % 2]!,
          masks: (['none', 'finite', 'infinite'] as const)[i % 3]!,
          ignore: i % 4 !== 1,
          components: i % 5 === 2,
          plan,
          teacher: i % 3 === 1 ? 'lazy' : 'tape',
          upstream: i % 4 === 3 ? 'random' : 'unit',
        });
      }
    }
  }
}

describe('reverse KL and the JSD in the fused kernels vs the float64 reference', () => {
  test('every divergence runs the fused forward kernel once, with every option', () => {
    const y = tf.tensor1d([0, -100, 2], 'int32');
    const s = tf.randomNormal([3, 5]);
    const t = tf.randomNormal([3, 5]);
    for (const divergence of DIVERGENCE_NAMES) {
      for (const components of [false, true]) {
        const config = { divergence, ignoreIndex: -100 };
        const { result, fusedCalls } = countFusedCalls(() =>
          components
            ? Object.values(distillationLoss(y, s, t, { ...config, returnComponents: true }))
            : [distillationLoss(y, s, t, config)],
        );
        expect(fusedCalls, JSON.stringify({ divergence, components })).toBe(1);
        expect(result).toHaveLength(components ? 3 : 1);
        tf.dispose(result);
      }
    }
    tf.dispose([y, s, t]);
  });

  test.each(cases.map((c, i) => [JSON.stringify(c), c, 9100 + i] as const))(
    '%s',
    async (_name, c, seed) => {
      await fusedVsReference(c, seed);
    },
  );

  test('tiny rows and batches: C = 1, 2, 3, 4 and B = 1, both plans', async () => {
    let i = 0;
    for (const plan of ['software', 'hardware'] as const) {
      for (const d of FUSED_DIVS.slice(0, 2)) {
        for (const shape of [
          [5, 1],
          [1, 2],
          [4, 3],
          [1, 4],
          [1, 1],
        ]) {
          await fusedVsReference(
            {
              ...d,
              T: 2,
              alpha: 0.4,
              reduction: (['none', 'mean', 'sum'] as const)[i % 3]!,
              dense: i % 2 === 1,
              shape,
              scale: 6,
              masks: shape[1]! > 2 ? 'finite' : 'none',
              ignore: false,
              components: i % 2 === 0,
              plan,
              teacher: i % 2 === 0 ? 'tape' : 'lazy',
              upstream: 'random',
            },
            9700 + i++,
          );
        }
      }
    }
  });

  for (const plan of ['software', 'hardware'] as const) {
    test(`${plan} plan: row chunks forced past a small binding limit, masks, ignored rows`, async () => {
      let i = 0;
      for (const d of FUSED_DIVS.slice(0, 2)) {
        for (const [shape, limit] of [
          [[300, 37], 4096],
          [[2, 20, 1024], 3 * 4096 + 256],
        ] as const) {
          await fusedVsReference(
            {
              ...d,
              T: 4,
              alpha: 0.3,
              reduction: (['mean', 'none'] as const)[i % 2]!,
              dense: i % 2 === 1 && shape[0] === 300,
              shape: [...shape],
              scale: 6,
              masks: 'infinite',
              ignore: true,
              components: i % 2 === 0,
              plan,
              teacher: i % 2 === 0 ? 'lazy' : 'tape',
              upstream: 'random',
              bindingLimit: limit,
            },
            9900 + i++,
          );
        }
      }
    });

    test(`${plan} plan: the components' gradients (the backward kernel at α = 1 and α = 0)`, async () => {
      // ∂softLoss = the loss's gradient at α = 0 (k D), ∂hardLoss at α = 1, scaled by their dy
      const base: FusedCase = {
        divergence: 'reverse-kl',
        T: 3,
        alpha: 0.4,
        reduction: 'mean',
        dense: false,
        shape: [6, 130],
        scale: 6,
        masks: 'finite',
        ignore: true,
        components: true,
        plan,
        teacher: 'tape',
        upstream: 'unit',
      };
      for (const d of FUSED_DIVS.slice(0, 2)) {
        const c = { ...base, ...d };
        const x = inputsFor(c, 77);
        overrideAdapterClassForTesting(() => plan);
        for (const [name, alpha] of [
          ['softLoss', 0],
          ['hardLoss', 1],
        ] as const) {
          const g = await withValidationScope(async () => {
            const y = tf.tensor1d(Int32Array.from(x.labels), 'int32');
            const s = tf.tensor2d(x.s, [x.B, x.C]);
            const t = tf.variable(tf.tensor2d(x.t, [x.B, x.C]));
            const grads = tf.grads(
              (a: tf.Tensor, b: tf.Tensor) =>
                distillationLoss(y, a, b, { ...configOf(c), returnComponents: true })[name],
            )([s, t]);
            const out = await Promise.all(grads.map((h) => h.data()));
            tf.dispose([y, s, t, ...grads]);
            return out as Float32Array[];
          });
          const ref = referenceOf(c, x, null, alpha);
          const tol = boundsOf({ ...c, alpha }, x, ref, null);
          const ctx = `${name} ${JSON.stringify(c)}`;
          expectClose(`∂${name}/∂s`, g[0]!, ref.gradStudent, tol.gradStudent, ctx, x.C);
          expectClose(`∂${name}/∂t`, g[1]!, ref.gradTeacher, tol.gradTeacher, ctx, x.C);
        }
      }
    });
  }

  test('special rows: +Infinity, NaN and ignored rows, a zero weight drops an infinite term', async () => {
    // row 0: the teacher masks a column where the student has mass (reverse KL +Infinity);
    // row 1: the student masks one where the teacher has mass (forward KL's case: finite here);
    // row 2: a NaN student logit; row 3: masked everywhere in the teacher; row 4: ignored (NaN)
    const C = 8;
    const x = inputsFor(
      {
        divergence: 'reverse-kl',
        T: 2,
        alpha: 0,
        reduction: 'none',
        dense: false,
        shape: [6, C],
        scale: 3,
        masks: 'none',
        ignore: false,
        components: false,
        plan: 'software',
        teacher: 'tape',
        upstream: 'unit',
      },
      5,
    );
    x.t[0 * C + 3] = -Infinity;
    x.s[1 * C + 5] = -Infinity;
    x.s[2 * C + 1] = NaN;
    x.t.fill(-Infinity, 3 * C, 4 * C);
    x.s[4 * C + 2] = NaN;
    x.labels.set([0, 0, 0, 0, -100, 1]);
    for (const plan of ['software', 'hardware'] as const) {
      for (const d of FUSED_DIVS.slice(0, 2)) {
        for (const alpha of [0, 0.5, 1]) {
          for (const teacher of ['tape', 'lazy'] as const) {
            const c: FusedCase = {
              ...d,
              T: 2,
              alpha,
              reduction: 'none',
              dense: false,
              shape: [6, C],
              scale: 3,
              masks: 'none',
              ignore: true,
              components: true,
              plan,
              teacher,
              upstream: 'unit',
            };
            const out = await runFused(c, x, null);
            const ref = referenceOf(c, x, null);
            check(c, out, ref, boundsOf(c, x, ref, null), JSON.stringify(c));
            if (d.divergence === 'reverse-kl') {
              expect(ref.softLoss[0]).toBe(Infinity);
              expect(out.softLoss![0]).toBe(Infinity);
            }
          }
        }
      }
    }
  });

  test('every divergence runs with the dispatches of forward KL (1 forward at MNIST size)', async () => {
    for (const [B, C] of [
      [64, 10],
      [256, 1000],
    ] as const) {
      const y = tf.tensor1d(
        Array.from({ length: B }, (_, i) => i % C),
        'int32',
      );
      const s = tf.randomNormal([B, C]);
      const t = tf.randomNormal([B, C]);
      const tv = tf.variable(t);
      const counts: Record<string, number[]> = {};
      for (const d of ['forward-kl', ...FUSED_DIVS.map((x) => x.divergence)] as Divergence[]) {
        const cfg = { divergence: d, ...(d === 'jsd' ? { beta: 0.3 } : {}) };
        const forward = countDispatches(() => distillationLoss(y, s, t, cfg).dispose());
        let grads: tf.Tensor[] = [];
        const both = countDispatches(() => {
          const r = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) =>
            distillationLoss(y, a, b, cfg),
          )([s, tv]);
          grads = [r.value, ...r.grads];
        });
        for (const g of grads) await g.data();
        tf.dispose(grads);
        counts[d] = [forward, both];
      }
      const fkl = counts['forward-kl']!;
      if (B === 64) expect(fkl[0]).toBe(1);
      expect(fkl[1]).toBeLessThanOrEqual(3);
      for (const d of Object.keys(counts)) expect(counts[d], `${d} B=${B} C=${C}`).toEqual(fkl);
      tf.dispose([y, s, t, tv]);
    }
  });
});
