/**
 * The exact loss with a sparse (top-K) teacher composed from stock tfjs ops, with one custom
 * gradient holding the exact student gradient: what `distillationLoss` runs on backends without
 * the fused kernels (cpu, wasm, webgl). Same function as shaders/distill-sparse.wgsl and the
 * float64 reference (src/reference-sparse.ts), special rows included (src/sparse-teacher.ts).
 * It builds `[rows, C]` temporaries (log-softmaxes, the scattered teacher in the gradient):
 * the fused kernel is the one that does not.
 */
import * as tf from '@tensorflow/tfjs-core';
import { klFactor, type ResolvedConfig } from './config.js';
import { oneHotFloat, type DistillationLossComponents } from './composed.js';
import type { SparseTeacher } from './sparse-teacher.js';
import type { CheckedShapes } from './validate.js';

/** Everything one row-loss evaluation needs, as `[R, ·]` tensors. */
interface SparseRows {
  readonly rows: number;
  readonly classes: number;
  readonly topK: number;
  readonly labels: tf.Tensor;
  readonly labelKind: 'index' | 'dense';
  readonly ids: tf.Tensor2D;
  readonly logProbs: tf.Tensor2D;
}

/** `[R]` booleans: rows whose int32 label is the ignore index (none without one). */
function ignoredRows(r: SparseRows, cfg: ResolvedConfig): tf.Tensor {
  return r.labelKind === 'index' && cfg.hasIgnoreIndex
    ? tf.equal(r.labels, cfg.ignoreIndex)
    : tf.zeros([r.rows], 'bool');
}

/** The per-row statistics both passes use (inside tidy scopes of the caller). */
function rowTerms(s: tf.Tensor, r: SparseRows, cfg: ResolvedConfig) {
  const T = cfg.temperature;
  const { classes: C } = r;
  const masked = tf.equal(s, -Infinity);
  const studentBad = tf.logicalOr(
    tf.any(tf.logicalOr(tf.isNaN(s), tf.equal(s, Infinity)), -1),
    tf.all(masked, -1),
  );
  const logSigma = tf.logSoftmax(s);
  const logQ = tf.logSoftmax(tf.div(s, T));
  // Labels: dense y, Σ y, CE and whether they are unusable.
  let y: tf.Tensor;
  let labelBad: tf.Tensor;
  if (r.labelKind === 'index') {
    const inRange = tf.logicalAnd(tf.greaterEqual(r.labels, 0), tf.less(r.labels, C));
    labelBad = tf.logicalNot(inRange);
    // (an out-of-range label gives a row of zeros; the row is NaN anyway)
    y = oneHotFloat(r.labels, C);
  } else {
    y = r.labels;
    labelBad = tf.logicalOr(
      tf.any(tf.isNaN(y), -1),
      tf.any(tf.logicalAnd(masked, tf.less(y, 0)), -1),
    );
  }
  const ySum = tf.sum(y, -1);
  const ce = tf.neg(tf.sum(tf.where(tf.notEqual(y, 0), tf.mul(y, logSigma), tf.zerosLike(y)), -1));
  // Entries: listed, bad (a NaN row), and the student's log q at each listed id.
  const { ids, logProbs: lp } = r;
  const idInRange = tf.logicalAnd(tf.greaterEqual(ids, 0), tf.less(ids, C));
  const entryBad = tf.logicalOr(
    tf.logicalOr(tf.less(ids, -1), tf.greaterEqual(ids, C)),
    tf.logicalAnd(tf.notEqual(ids, -1), tf.logicalOr(tf.isNaN(lp), tf.equal(lp, Infinity))),
  );
  const listed = tf.logicalAnd(
    idInRange,
    tf.logicalAnd(tf.logicalNot(entryBad), tf.notEqual(lp, -Infinity)),
  );
  const safeIds = tf.where(idInRange, ids, tf.zerosLike(ids));
  const logQAt = tf.gather(logQ, safeIds, 1, 1) as tf.Tensor2D;
  const maskedAt = tf.logicalAnd(listed, tf.equal(logQAt, -Infinity));
  // p over the listed entries, relative to their maximum.
  const v = tf.where(
    listed,
    tf.div(tf.where(listed, lp, tf.zerosLike(lp)), T),
    tf.fill(lp.shape, -1e30),
  );
  const m = tf.max(v, -1, true);
  const ev = tf.where(listed, tf.exp(tf.sub(v, m)), tf.zerosLike(v));
  const zp = tf.sum(ev, -1, true);
  const logP = tf.sub(tf.sub(v, m), tf.log(zp));
  const p = tf.where(listed, tf.div(ev, zp), tf.zerosLike(ev));
  const klTerms = tf.where(
    tf.logicalAnd(listed, tf.logicalNot(maskedAt)),
    tf.mul(p, tf.sub(logP, logQAt)),
    tf.zerosLike(p),
  );
  const noneListed = tf.logicalNot(tf.any(listed, -1));
  const softBad = tf.logicalOr(tf.logicalOr(tf.any(entryBad, -1), noneListed), studentBad);
  const klInf = tf.any(maskedAt, -1);
  return { logSigma, logQ, y, ySum, ce, labelBad, studentBad, softBad, klInf, klTerms, p, safeIds };
}

/** weight · value, 0 for a zero weight (even where the value is ±∞), NaN where `bad`. */
function weighted(weight: number, value: tf.Tensor, bad: tf.Tensor): tf.Tensor {
  const w = weight === 0 ? tf.zerosLike(value) : tf.mul(value, weight);
  return tf.where(bad, tf.fill(value.shape, NaN), w);
}

/**
 * The loss ('loss'), or one of its components: 'hard' = CE (the loss at α = 1, NaN only where
 * the labels or the student are unusable) and 'soft' = k · KL (the loss at α = 0, NaN only where
 * the soft term is), as the reference defines them.
 */
function lossAt(
  student: tf.Tensor,
  r: SparseRows,
  cfg: ResolvedConfig,
  part: 'loss' | 'hard' | 'soft',
): tf.Tensor {
  const factor = klFactor(cfg);
  const alpha = part === 'loss' ? cfg.alpha : part === 'hard' ? 1 : 0;
  const softWeight = (1 - alpha) * factor;
  const withHard = part !== 'soft';
  const withSoft = part !== 'hard';
  const none = (x: tf.Tensor) => tf.cast(tf.zerosLike(x), 'bool');
  // The custom gradient takes the student as given ([..., C]) and reshapes inside: tfjs then
  // differentiates no stock op (none needs a registered gradient).
  const shape = student.shape;
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [given, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const x = tf.reshape(given, [r.rows, r.classes]);
    const t = rowTerms(x, r, cfg);
    const ignored = ignoredRows(r, cfg);
    const kl = tf.where(t.klInf, tf.fill([r.rows], Infinity), tf.sum(t.klTerms, -1));
    const hardBad = withHard ? tf.logicalOr(t.labelBad, t.studentBad) : none(kl);
    const hard = weighted(alpha, t.ce, hardBad);
    const soft = weighted(softWeight, kl, withSoft ? t.softBad : none(kl));
    const rowLoss = tf.where(ignored, tf.zerosLike(hard), tf.add(hard, soft));
    const counted = tf.sum(tf.cast(tf.logicalNot(ignored), 'float32'));
    save([given, counted, r.labels, r.ids, r.logProbs]);
    const value =
      cfg.reduction === 'none'
        ? tf.reshape(rowLoss, shape.slice(0, -1))
        : cfg.reduction === 'sum'
          ? tf.sum(rowLoss)
          : tf.div(tf.sum(rowLoss), tf.maximum(counted, 1));
    return {
      value,
      gradFunc: (dy, saved) => {
        // (the inputs' tensors of the forward scope are gone: the saved ones stand in)
        const [givenSaved, n, labels, ids, logProbs] = saved as tf.Tensor[];
        const rs: SparseRows = {
          ...r,
          labels: labels!,
          ids: ids as tf.Tensor2D,
          logProbs: logProbs as tf.Tensor2D,
        };
        const xs = tf.reshape(givenSaved!, [r.rows, r.classes]);
        const g = rowTerms(xs, rs, cfg);
        const w =
          cfg.reduction === 'none'
            ? tf.reshape(dy, [r.rows, 1])
            : cfg.reduction === 'sum'
              ? tf.reshape(dy, [1, 1])
              : tf.reshape(tf.div(dy, tf.maximum(n!, 1)), [1, 1]);
        const sigma = tf.exp(g.logSigma);
        const q = tf.exp(g.logQ);
        const rowIds = tf.tile(tf.reshape(tf.range(0, r.rows, 1, 'int32'), [r.rows, 1]), [
          1,
          r.topK,
        ]);
        const at = tf.reshape(tf.stack([rowIds, g.safeIds], -1), [r.rows * r.topK, 2]);
        const scattered = tf.scatterND(at, tf.reshape(g.p, [-1]), [r.rows, r.classes]);
        const hardGrad =
          alpha === 0
            ? tf.zerosLike(xs)
            : tf.mul(tf.sub(tf.mul(sigma, tf.expandDims(g.ySum, 1)), g.y), alpha);
        const softGrad =
          softWeight === 0
            ? tf.zerosLike(xs)
            : tf.mul(tf.sub(q, scattered), softWeight / cfg.temperature);
        const hardBad = withHard ? tf.logicalOr(g.labelBad, g.studentBad) : none(g.ySum);
        const bad = tf.expandDims(tf.logicalOr(hardBad, withSoft ? g.softBad : none(g.ySum)), 1);
        const grad = tf.where(
          tf.broadcastTo(bad, xs.shape),
          tf.fill(xs.shape, NaN),
          tf.mul(tf.add(hardGrad, softGrad), w),
        );
        const skip = tf.broadcastTo(tf.expandDims(ignoredRows(rs, cfg), 1), xs.shape);
        return tf.reshape(tf.where(skip, tf.zerosLike(grad), grad), shape);
      },
    };
  });
  return f(student);
}

/** The exact sparse-teacher loss (or its components) on any backend. */
export function composedSparseDistillationLoss(
  labels: tf.Tensor,
  studentLogits: tf.Tensor,
  teacher: SparseTeacher,
  shapes: CheckedShapes,
  cfg: ResolvedConfig,
): tf.Tensor | DistillationLossComponents {
  const { batch: rows, classes } = shapes;
  const topK = teacher.indices.shape[teacher.indices.rank - 1]!;
  return tf.tidy(() => {
    const r: SparseRows = {
      rows,
      classes,
      topK,
      labels:
        shapes.labelKind === 'index'
          ? tf.reshape(labels, [rows])
          : tf.reshape(labels, [rows, classes]),
      labelKind: shapes.labelKind,
      ids: tf.reshape(teacher.indices, [rows, topK]),
      logProbs: tf.reshape(teacher.logProbs, [rows, topK]),
    };
    const loss = lossAt(studentLogits, r, cfg, 'loss');
    if (!cfg.returnComponents) return loss;
    return {
      loss,
      hardLoss: lossAt(studentLogits, r, cfg, 'hard'),
      softLoss: lossAt(studentLogits, r, cfg, 'soft'),
    };
  });
}
