/**
 * The public surface's types as the contract: every call below either compiles and works, or is
 * marked `@ts-expect-error` because the library refuses it at run time too. Checked by
 * `npm run typecheck` (tsc over test/); never executed (the run-time side is in
 * test/types.test.ts and the op and Distiller tests). A `@ts-expect-error` that stops erroring
 * fails the typecheck, so a type that starts accepting what the code refuses is caught.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { expectTypeOf } from 'vitest';
import * as api from 'tfjs-fused-distill';
import {
  DEFAULT_CONFIG,
  Distiller,
  distillationLoss,
  fusedLinearDistillationLoss,
  stockDistillationLoss,
  type DistillationLossComponents,
  type DistillationLossConfig,
  type DistillerOptions,
  type Reduction,
  type SparseTeacher,
  type StockDistillationLossConfig,
} from 'tfjs-fused-distill';
import * as validation from 'tfjs-fused-distill/validation';

declare const y: tf.Tensor;
declare const s: tf.Tensor;
declare const t: tf.Tensor;
declare const s2: tf.Tensor2D;
declare const s3: tf.Tensor3D;
declare const sparse: SparseTeacher;
declare const someConfig: DistillationLossConfig;
declare const someReduction: Reduction;
declare const student: LayersModel;
declare const teacher: LayersModel;
declare const optimizer: tf.Optimizer;
type Minimize = tf.Optimizer['minimize'];

/**
 * Both losses: the result type follows the reduction and the student's rank. The fused loss
 * goes wherever the stock one does (its options are a superset).
 */
export function resultTypes(): void {
  resultTypesOf(stockDistillationLoss);
  resultTypesOf(distillationLoss);
}

function resultTypesOf(loss: typeof stockDistillationLoss): void {
  {
    expectTypeOf(() => loss(y, s, t)).returns.toEqualTypeOf<tf.Scalar>();
    expectTypeOf(() => loss(y, s, t, {})).returns.toEqualTypeOf<tf.Scalar>();
    expectTypeOf(() =>
      loss(y, s, t, { alpha: 0.5, temperature: 4 }),
    ).returns.toEqualTypeOf<tf.Scalar>();
    expectTypeOf(() => loss(y, s, t, { reduction: 'sum' })).returns.toEqualTypeOf<tf.Scalar>();
    expectTypeOf(() => loss(y, s, t, undefined)).returns.toEqualTypeOf<tf.Scalar>();
    expectTypeOf(() => loss(y, s2, t, { reduction: 'none' })).returns.toEqualTypeOf<tf.Tensor1D>();
    expectTypeOf(() => loss(y, s3, t, { reduction: 'none' })).returns.toEqualTypeOf<tf.Tensor2D>();
    expectTypeOf(() => loss(y, s, t, { reduction: 'none' })).returns.toEqualTypeOf<tf.Tensor>();
    expectTypeOf(() => loss(y, s, sparse)).returns.toEqualTypeOf<tf.Scalar>();
    expectTypeOf(() =>
      loss(y, s3, sparse, { reduction: 'none' }),
    ).returns.toEqualTypeOf<tf.Tensor2D>();
    expectTypeOf(() =>
      loss(y, s, t, { reduction: someReduction }),
    ).returns.toEqualTypeOf<tf.Tensor>();
    // a scalar loss goes to optimizer.minimize without a cast; a [B] vector does not
    expectTypeOf<Minimize>().toBeCallableWith(() => loss(y, s, t, { reduction: 'sum' }));
    // @ts-expect-error a [B] vector is not a scalar to minimize
    optimizer.minimize(() => loss(y, s2, t, { reduction: 'none' }));
  }
}

/** `returnComponents: true` returns `{ loss, hardLoss, softLoss }`, typed by the reduction. */
export function componentTypes(): void {
  expectTypeOf(() => distillationLoss(y, s, t, { returnComponents: true })).returns.toEqualTypeOf<
    DistillationLossComponents<tf.Scalar>
  >();
  expectTypeOf(() =>
    distillationLoss(y, s, sparse, { returnComponents: true, reduction: 'sum' }),
  ).returns.toEqualTypeOf<DistillationLossComponents<tf.Scalar>>();
  expectTypeOf(() =>
    distillationLoss(y, s2, t, { returnComponents: true, reduction: 'none' }),
  ).returns.toEqualTypeOf<DistillationLossComponents<tf.Tensor1D>>();
  expectTypeOf(() =>
    distillationLoss(y, s3, t, { ...DEFAULT_CONFIG, returnComponents: true, reduction: 'none' }),
  ).returns.toEqualTypeOf<DistillationLossComponents<tf.Tensor2D>>();
  expectTypeOf(() =>
    distillationLoss(y, s, t, { returnComponents: false }),
  ).returns.toEqualTypeOf<tf.Scalar>();
  // a reduction known only at run time: components of some shape
  expectTypeOf(() =>
    distillationLoss(y, s, t, { returnComponents: true, reduction: someReduction }),
  ).returns.toEqualTypeOf<DistillationLossComponents>();
  // a flag known only at run time: either
  expectTypeOf(() => distillationLoss(y, s, t, someConfig)).returns.toEqualTypeOf<
    tf.Tensor | DistillationLossComponents
  >();
  // @ts-expect-error the components object is not a scalar to minimize
  optimizer.minimize(() => distillationLoss(y, s, t, { returnComponents: true }));
  // its members are
  optimizer.minimize(() => distillationLoss(y, s, t, { returnComponents: true }).softLoss);
  // and it is a tensor container, disposed whole
  expectTypeOf<DistillationLossComponents<tf.Tensor1D>>().toExtend<tf.TensorContainer>();
}

/** The linear head: the same result types, keyed by the hidden states' rank. */
export function linearHeadTypes(): void {
  const w = {} as tf.Tensor2D;
  const b = {} as tf.Tensor1D;
  const head2 = { hidden: s2, weight: w, bias: b };
  const head3 = { hidden: s3, weight: w };
  expectTypeOf(() => fusedLinearDistillationLoss(y, head2, t)).returns.toEqualTypeOf<tf.Scalar>();
  expectTypeOf(() =>
    fusedLinearDistillationLoss(y, head3, head2, { reduction: 'none', softCap: 30 }),
  ).returns.toEqualTypeOf<tf.Tensor2D>();
  expectTypeOf(() =>
    fusedLinearDistillationLoss(y, head2, sparse, { returnComponents: true }),
  ).returns.toEqualTypeOf<DistillationLossComponents<tf.Scalar>>();
  optimizer.minimize(() =>
    fusedLinearDistillationLoss(y, head2, t, { ...DEFAULT_CONFIG, memoryBudgetBytes: 1 << 26 }),
  );
  // @ts-expect-error the student is a head, not logits
  fusedLinearDistillationLoss(y, s2, t);
  // @ts-expect-error no such option
  fusedLinearDistillationLoss(y, head2, t, { logitsScale: 2 });
}

/** The defaults are plain user values: spreading them gives a config that means what it says. */
export function defaultsAreUserValues(): void {
  distillationLoss(y, s, t, { ...DEFAULT_CONFIG, ignoreIndex: -100 });
  distillationLoss(y, s, t, { ...DEFAULT_CONFIG, divergence: 'jsd', beta: 0.3 });
  stockDistillationLoss(y, s, t, { ...DEFAULT_CONFIG, alpha: 0.5 });
  expectTypeOf(DEFAULT_CONFIG).toExtend<DistillationLossConfig>();
  expectTypeOf(DEFAULT_CONFIG).toExtend<StockDistillationLossConfig>();
  // @ts-expect-error no internal flag rides in the defaults
  void DEFAULT_CONFIG.hasIgnoreIndex;
  // @ts-expect-error nor in a user's config (resolveConfig refuses unknown fields)
  distillationLoss(y, s, t, { hasIgnoreIndex: true });
}

/** The stock loss takes the Keras formula's options only (it refuses the others by name). */
export function stockConfig(): void {
  stockDistillationLoss(y, s, t, { alpha: 0.1, temperature: 10, temperatureSquared: true });
  stockDistillationLoss(y, s, t, { divergence: 'forward-kl', returnComponents: false });
  // @ts-expect-error another divergence is not the Keras formula
  stockDistillationLoss(y, s, t, { divergence: 'jsd' });
  // @ts-expect-error nor is beta
  stockDistillationLoss(y, s, t, { beta: 0.5 });
  // @ts-expect-error nor an ignored class
  stockDistillationLoss(y, s, t, { ignoreIndex: -100 });
  // @ts-expect-error nor the components
  stockDistillationLoss(y, s, t, { returnComponents: true });
  // @ts-expect-error a config of the fused loss may hold any of those
  stockDistillationLoss(y, s, t, someConfig);
}

/** The Distiller's options hold exactly what its constructor accepts. */
export function distillerOptions(): void {
  new Distiller({ student, teacher });
  new Distiller({ student, teacher, divergence: 'reverse-kl', temperature: 4 });
  new Distiller({ student, teacher, loss: 'fused', divergence: 'jsd', beta: 0.3 });
  new Distiller({ student, teacher, loss: 'stock', alpha: 0.5 });
  new Distiller({ student, teacher, teacherLogits: 'cached', teacherTopK: 5 });
  new Distiller({ student, teacher, fusedHead: true, divergence: 'jsd', beta: 0.3 });
  new Distiller({ student, teacher, fusedHead: 'auto', teacherLogits: 'cached', teacherTopK: 5 });
  new Distiller({ student, teacher, loss: 'stock', fusedHead: 'auto' });
  // @ts-expect-error the stock loss takes logits: its head is never fused
  new Distiller({ student, teacher, loss: 'stock', fusedHead: true });
  // @ts-expect-error fusedHead is true, false or 'auto'
  new Distiller({ student, teacher, fusedHead: 'always' });
  expectTypeOf<Distiller['fusedHead']>().toEqualTypeOf<boolean>();
  // @ts-expect-error the stock loss is the Keras formula: forward KL only
  new Distiller({ student, teacher, loss: 'stock', divergence: 'jsd' });
  // @ts-expect-error a step's loss is the batch mean: no reduction option
  new Distiller({ student, teacher, reduction: 'sum' });
  // @ts-expect-error nor returnComponents (a step returns the loss)
  new Distiller({ student, teacher, returnComponents: true });
  // ignoreIndex: padded positions of int32 labels, with the fused loss only
  new Distiller({ student, teacher, ignoreIndex: -100 });
  new Distiller({ student, teacher, fusedHead: true, ignoreIndex: -100 });
  // @ts-expect-error the stock loss is the Keras formula: every position counted
  new Distiller({ student, teacher, loss: 'stock', ignoreIndex: -100 });
  expectTypeOf<DistillerOptions['divergence']>().toEqualTypeOf<
    'forward-kl' | 'reverse-kl' | 'jsd' | undefined
  >();
}

/** The main entry exports the user's surface, not the kernels' internals. */
export function publicSurface(): void {
  // @ts-expect-error the plan is the kernels' business
  void api.choosePlan;
  // @ts-expect-error kernel names are tfjs registry internals
  void api.FUSED_DISTILLATION_LOSS;
  // @ts-expect-error the divergences' kernel table is internal
  void api.DIVERGENCES;
  // @ts-expect-error the float64 references live in the validation subpath
  void api.referenceDistillationLoss;
  expectTypeOf(validation.referenceDistillationLoss).toBeFunction();
  expectTypeOf(validation.runValidationSuite).toBeFunction();
  expectTypeOf(validation.validationSuite).parameter(0).toEqualTypeOf<'quick' | 'full'>();
  expectTypeOf(validation.exactStockOpsDistillationLoss).toBeFunction();
}
