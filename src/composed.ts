/**
 * The exact loss composed from stock tfjs ops, with one custom gradient holding the exact
 * gradients: what `distillationLoss` runs on backends without the fused kernels (cpu, webgl,
 * wasm).
 * Unlike the Keras formula in stock.ts it has no clip, so it computes the same function as the
 * kernels and the float64 reference (up to float32 rounding), with every option: the
 * divergences (their float32 forms are in src/divergences.ts), ignoreIndex, −Infinity masks,
 * components, and logits of any rank `[..., C]` (rows).
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkConfigForLabels, klFactor, type ResolvedConfig } from './config.js';
import { divergenceOf, type TemperedRowsTf } from './divergences.js';
import type { CheckedShapes } from './validate.js';

/**
 * float32 one-hot rows for int32 class indices; any C ≥ 1 (tf.oneHot wants C ≥ 2) and an
 * out-of-range index gives a row of zeros.
 */
export function oneHotFloat(indices: tf.Tensor, classes: number): tf.Tensor {
  return tf.tidy(() =>
    classes >= 2
      ? tf.cast(tf.oneHot(indices as tf.Tensor1D, classes), 'float32')
      : tf.cast(tf.equal(tf.expandDims(indices, 1), tf.range(0, classes, 1, 'int32')), 'float32'),
  );
}

/**
 * The loss and its components, each reduced like the loss (`returnComponents: true`): scalars
 * for 'mean' / 'sum', the per-row losses ({@link RowLosses}) for 'none'. A type alias rather
 * than an interface, so that it is a `tf.TensorContainer` (`tf.dispose(components)` works).
 */
export type DistillationLossComponents<T extends tf.Tensor = tf.Tensor> = {
  /** α · hardLoss + (1 − α) · softLoss (a zero weight drops its term, even an infinite one). */
  readonly loss: T;
  /** The cross-entropy with the labels, unweighted. */
  readonly hardLoss: T;
  /** k · D, the divergence times k (T² under temperatureSquared), unweighted by 1 − α. */
  readonly softLoss: T;
};

/** Rows with a NaN, a +Infinity or no finite entry at all (masked everywhere), `[R, 1]`. */
function badRows(x: tf.Tensor): tf.Tensor {
  return tf.logicalOr(
    tf.any(tf.isNaN(x), -1, true),
    tf.logicalNot(tf.isFinite(tf.max(x, -1, true))),
  );
}

/** weight · value where not bad, NaN where bad; a zero weight drops the term (even ±∞). */
function term(weight: tf.Tensor | number, value: tf.Tensor, bad: tf.Tensor): tf.Tensor {
  const weighted =
    typeof weight === 'number'
      ? weight === 0
        ? tf.zerosLike(value)
        : tf.mul(weight, value)
      : tf.where(
          tf.equal(tf.broadcastTo(weight, value.shape), 0),
          tf.zerosLike(value),
          tf.mul(weight, value),
        );
  return tf.where(tf.broadcastTo(bad, value.shape), tf.fill(value.shape, NaN), weighted);
}

interface Rows {
  /** ℓ_b, hard_b = CE_b and soft_b = k · D_b, `[R]` each, 0 where ignored. */
  loss: tf.Tensor;
  hard: tf.Tensor;
  soft: tf.Tensor;
  /** `[R, 1]` booleans. */
  ignored: tf.Tensor;
  hardBad: tf.Tensor;
  softBad: tf.Tensor;
  /** Number of counted rows, a scalar. */
  count: tf.Tensor;
  /** ∂CE/∂s, ∂D/∂s, ∂D/∂t per row (`[R, C]`), when asked. */
  gradHard?: tf.Tensor;
  gradSoftStudent?: tf.Tensor;
  gradSoftTeacher?: tf.Tensor;
}

/** Everything per row, on `[R, C]` logits and `[R]` / `[R, C]` labels. */
function rowTerms(
  labels: tf.Tensor,
  s: tf.Tensor,
  t: tf.Tensor,
  labelKind: 'index' | 'dense',
  cfg: ResolvedConfig,
  withGradients: boolean,
): Rows {
  const [R, C] = s.shape as [number, number];
  const T = cfg.temperature;
  const k = klFactor(cfg);
  // hard term: CE with the labels (0 · log 0 = 0, so masked columns without label mass add 0)
  const lse1 = tf.logSumExp(s, -1, true);
  const logSigma = tf.sub(s, lse1);
  let y: tf.Tensor;
  let ySum: tf.Tensor;
  let hardBad = badRows(s);
  let ignored: tf.Tensor = tf.zeros([R, 1], 'bool');
  if (labelKind === 'index') {
    const valid = tf.logicalAnd(tf.greaterEqual(labels, 0), tf.less(labels, C));
    y = oneHotFloat(labels, C);
    ySum = tf.ones([R, 1]);
    hardBad = tf.logicalOr(hardBad, tf.expandDims(tf.logicalNot(valid), 1));
    if (cfg.hasIgnoreIndex) ignored = tf.expandDims(tf.equal(labels, cfg.ignoreIndex), 1);
  } else {
    y = labels;
    ySum = tf.sum(y, -1, true);
    hardBad = tf.logicalOr(hardBad, tf.isNaN(ySum));
  }
  const ce = tf.neg(
    tf.sum(tf.where(tf.equal(y, 0), tf.zerosLike(y), tf.mul(y, logSigma)), -1, true),
  );
  // soft term: the divergence, relative to the row maxima
  const softBad = tf.logicalOr(badRows(s), badRows(t));
  const u = tf.div(tf.sub(s, tf.max(s, -1, true)), T);
  const v = tf.div(tf.sub(t, tf.max(t, -1, true)), T);
  const rows: TemperedRowsTf = {
    u,
    v,
    logZS: tf.logSumExp(u, -1, true),
    logZT: tf.logSumExp(v, -1, true),
    temperature: T,
  };
  const d = divergenceOf(cfg).composed(rows, cfg, withGradients);
  const D = tf.expandDims(d.value, 1);
  const zeroRow = tf.zeros([R, 1]);
  const keep = (x: tf.Tensor) => tf.squeeze(tf.where(ignored, zeroRow, x), [1]);
  const lossRows = tf.add(term(cfg.alpha, ce, hardBad), term((1 - cfg.alpha) * k, D, softBad));
  const out: Rows = {
    loss: keep(lossRows),
    hard: keep(term(1, ce, hardBad)),
    soft: keep(term(k, D, softBad)),
    ignored,
    hardBad,
    softBad,
    count: tf.sum(tf.cast(tf.logicalNot(ignored), 'float32')),
  };
  if (withGradients) {
    out.gradHard = tf.sub(tf.mul(tf.exp(logSigma), ySum), y);
    out.gradSoftStudent = d.gradStudent!;
    out.gradSoftTeacher = d.gradTeacher!;
  }
  return out;
}

type Output = 'loss' | 'hard' | 'soft';

/**
 * The loss and/or its components of logits `[..., C]` and labels of the leading shape (int32
 * indices) or `[..., C]` (float32), each `[]` ('mean', 'sum') or the leading shape ('none').
 * The rows are computed once; each output is a tf.customGrad of its own whose gradient holds
 * the exact formulas of src/divergences.ts (recomputed from the saved inputs in the backward
 * pass), so tfjs differentiates no stock op and needs no gradient registered for any.
 */
function composedOutputs(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacherLogits: tf.Tensor,
  labelKind: 'index' | 'dense',
  cfg: ResolvedConfig,
  outputs: readonly Output[],
): tf.Tensor[] {
  const shape = studentLogits.shape;
  const C = shape[shape.length - 1]!;
  const leading = shape.slice(0, -1);
  const R = leading.reduce((a, b) => a * b, 1);
  const asRows = (x: tf.Tensor) => tf.reshape(x, [R, C]);
  const labelRows = (l: tf.Tensor) => tf.reshape(l, labelKind === 'index' ? [R] : [R, C]);
  const reduce = (x: tf.Tensor, count: tf.Tensor): tf.Tensor => {
    switch (cfg.reduction) {
      case 'none':
        return tf.reshape(x, leading);
      case 'sum':
        return tf.sum(x);
      case 'mean':
        return tf.div(tf.sum(x), tf.maximum(count, 1));
    }
  };
  const rows = rowTerms(
    labelRows(labels),
    asRows(studentLogits),
    asRows(teacherLogits),
    labelKind,
    cfg,
    false,
  );
  const k = klFactor(cfg);
  const softWeight = (1 - cfg.alpha) * k;
  // the weights of ∂CE/∂s and of ∂D/∂(s, t) in each output
  const weights: Record<Output, [number, number]> = {
    loss: [cfg.alpha, softWeight],
    hard: [1, 0],
    soft: [0, k],
  };
  return outputs.map((output) => {
    const value = reduce(rows[output], rows.count);
    const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [, , save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
      save([args[0] as tf.Tensor, args[1] as tf.Tensor, labels]);
      return {
        value: tf.clone(value),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [s_, t_, labels_] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
          const g = rowTerms(labelRows(labels_), asRows(s_), asRows(t_), labelKind, cfg, true);
          // the upstream gradient per row: [R, 1] ('none') or [1, 1], / N for 'mean'
          let d = tf.reshape(dy, cfg.reduction === 'none' ? [R, 1] : [1, 1]);
          if (cfg.reduction === 'mean') d = tf.div(d, tf.maximum(g.count, 1));
          const [hardWeight, divWeight] = weights[output];
          // a zero weight drops its term (even an infinite one's undefined gradient)
          const hardCoef = hardWeight === 0 ? tf.zerosLike(d) : tf.mul(hardWeight, d);
          const softCoef = divWeight === 0 ? tf.zerosLike(d) : tf.mul(divWeight, d);
          const zero = tf.zeros([R, C]);
          const ignored = tf.broadcastTo(g.ignored, [R, C]);
          const gradS = tf.add(
            term(hardCoef, g.gradHard!, g.hardBad),
            term(softCoef, g.gradSoftStudent!, g.softBad),
          );
          const gradT = term(softCoef, g.gradSoftTeacher!, g.softBad);
          return [
            tf.reshape(tf.where(ignored, zero, gradS), shape),
            tf.reshape(tf.where(ignored, zero, gradT), shape),
          ];
        },
      };
    });
    return f(studentLogits, teacherLogits);
  });
}

/**
 * The exact loss from stock ops with a custom gradient: logits `[..., C]`, labels int32 of the
 * leading shape or float32 `[..., C]`; a scalar for 'mean' / 'sum', the leading shape for 'none'.
 * With `returnComponents`, the loss alone (see {@link composedDistillationLossComponents}).
 */
export function composedDistillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacherLogits: tf.Tensor,
  shapes: Pick<CheckedShapes, 'labelKind'>,
  cfg: ResolvedConfig,
): tf.Tensor {
  checkConfigForLabels(cfg, shapes.labelKind);
  return tf.tidy(
    () =>
      composedOutputs(labels, studentLogits, teacherLogits, shapes.labelKind, cfg, ['loss'])[0]!,
  );
}

/** {@link composedDistillationLoss} with its components, from the same computation. */
export function composedDistillationLossComponents(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacherLogits: tf.Tensor,
  shapes: Pick<CheckedShapes, 'labelKind'>,
  cfg: ResolvedConfig,
): DistillationLossComponents {
  checkConfigForLabels(cfg, shapes.labelKind);
  return tf.tidy(() => {
    const [loss, hardLoss, softLoss] = composedOutputs(
      labels,
      studentLogits,
      teacherLogits,
      shapes.labelKind,
      cfg,
      ['loss', 'hard', 'soft'],
    ) as [tf.Tensor, tf.Tensor, tf.Tensor];
    return { loss, hardLoss, softLoss };
  });
}
