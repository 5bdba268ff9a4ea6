/**
 * Input checks shared by the fused and the stock op. Everything here runs on shapes and dtypes
 * only (no data is read), before anything is dispatched.
 */
import type { Tensor } from '@tensorflow/tfjs-core';

/** The largest class count the WGSL kernels are built and tested for. */
export const MAX_CLASSES = 262_144;

/** The dimensions that the inputs agree on, and how the labels are given. */
export interface CheckedShapes {
  /** Rows: the product of the logits' leading dimensions (B for `[B, C]`). */
  readonly batch: number;
  readonly classes: number;
  /** The logits' shape without its last dimension: the labels' shape for class indices. */
  readonly leadingShape: readonly number[];
  /** 'index': int32 `[...]` class indices; 'dense': float32 `[..., C]` one-hot or soft labels. */
  readonly labelKind: 'index' | 'dense';
}

/** Whether `x` looks like a tf.Tensor (shape, dtype, dataId), across copies of tfjs-core. */
export function isTensorLike(x: unknown): x is Tensor {
  return (
    typeof x === 'object' &&
    x !== null &&
    Array.isArray((x as Tensor).shape) &&
    typeof (x as Tensor).dtype === 'string' &&
    typeof (x as Tensor).dataId === 'object'
  );
}

function shapeOf(t: Tensor): string {
  return `[${t.shape.join(', ')}]`;
}

function describe(t: Tensor): string {
  return `${t.dtype} ${shapeOf(t)}`;
}

function rows(n: number): string {
  return n === 1 ? 'row' : 'rows';
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Throws an error that names the argument, what was expected and what was given. Logits are
 * `[..., C]` of rank ≥ 2 (`[B, C]`, `[batch, sequence, C]`, …): every leading index is a row.
 * `teacherLogits` null: a sparse teacher, checked by checkSparseTeacher (src/sparse-teacher.ts).
 */
export function checkInputs(
  labels: unknown,
  studentLogits: unknown,
  teacherLogits: unknown,
  op: string,
  maxClasses = Number.POSITIVE_INFINITY,
): CheckedShapes {
  const logits: [string, unknown][] = [['studentLogits', studentLogits]];
  if (teacherLogits !== null) logits.push(['teacherLogits', teacherLogits]);
  for (const [name, x] of logits) {
    if (!isTensorLike(x)) {
      throw new TypeError(`${op}: ${name} must be a tf.Tensor, got ${typeof x}`);
    }
    if (x.isDisposed) throw new Error(`${op}: ${name} has been disposed`);
    if (x.rank < 2) {
      throw new Error(
        `${op}: ${name} must have rank 2 [B, C], got rank ${x.rank} ${describe(x)} ` +
          '(or a higher rank [..., C]: every leading index is a row)',
      );
    }
    if (x.dtype !== 'float32') {
      throw new TypeError(`${op}: ${name} must be float32, got ${describe(x)}`);
    }
  }
  const s = studentLogits as Tensor;
  const classes = s.shape[s.rank - 1]!;
  const leadingShape = s.shape.slice(0, -1);
  const batch = leadingShape.reduce((a, b) => a * b, 1);
  if (batch < 1 || classes < 1) {
    throw new Error(
      `${op}: studentLogits must have B ≥ 1 and C ≥ 1 (rows and classes), got ${describe(s)}`,
    );
  }
  if (classes > maxClasses) {
    throw new RangeError(
      `${op}: studentLogits has C = ${classes} classes; at most ${maxClasses} are supported`,
    );
  }
  if (teacherLogits !== null) checkTeacherShape(s, teacherLogits as Tensor, op);
  return checkLabels(labels, s, op);
}

/** A dense teacher's shape against the student's (`[..., C]` both, same C). */
function checkTeacherShape(s: Tensor, t: Tensor, op: string): void {
  const classes = s.shape[s.rank - 1]!;
  const leadingShape = s.shape.slice(0, -1);
  const teacherClasses = t.shape[t.rank - 1]!;
  if (
    t.rank === s.rank &&
    sameShape(t.shape.slice(0, -1), leadingShape) &&
    teacherClasses !== classes
  ) {
    throw new Error(
      `${op}: teacher has ${teacherClasses} classes, student ${classes}: pad the smaller with ` +
        `-Infinity to the same size (see README, "Vocabularies of different sizes"); ` +
        `studentLogits ${shapeOf(s)}, teacherLogits ${shapeOf(t)}`,
    );
  }
  if (!sameShape(t.shape, s.shape)) {
    throw new Error(
      `${op}: studentLogits has shape ${shapeOf(s)} but teacherLogits has shape ${shapeOf(t)}: ` +
        'they must match',
    );
  }
}

/** The labels against the student's `[..., C]`: int32 leading shape or float32 `[..., C]`. */
function checkLabels(labels: unknown, s: Tensor, op: string): CheckedShapes {
  const classes = s.shape[s.rank - 1]!;
  const leadingShape = s.shape.slice(0, -1);
  const batch = leadingShape.reduce((a, b) => a * b, 1);
  if (!isTensorLike(labels)) {
    throw new TypeError(`${op}: labels must be a tf.Tensor, got ${typeof labels}`);
  }
  if (labels.isDisposed) throw new Error(`${op}: labels has been disposed`);
  const leading = `[${leadingShape.join(', ')}]`;
  if (labels.dtype === 'int32') {
    if (labels.rank !== s.rank - 1) {
      throw new Error(
        `${op}: int32 labels must have rank ${s.rank - 1} ${s.rank === 2 ? '[B]' : leading} ` +
          `(class indices), got ${describe(labels)}` +
          (labels.rank === s.rank ? '; one-hot or soft labels must be float32' : ''),
      );
    }
    if (!sameShape(labels.shape, leadingShape)) {
      const what =
        s.rank === 2
          ? `has ${labels.shape[0]} ${rows(labels.shape[0]!)} but studentLogits has ${batch}`
          : `has shape ${shapeOf(labels)} but the logits' leading shape is ${leading}`;
      throw new Error(
        `${op}: labels ${what} ` +
          `(labels ${describe(labels)}, studentLogits ${describe(s)}): one class index per row`,
      );
    }
    return { batch, classes, leadingShape, labelKind: 'index' };
  }
  if (labels.dtype === 'float32') {
    if (labels.rank !== s.rank) {
      throw new Error(
        `${op}: float32 labels must have rank ${s.rank} ${s.rank === 2 ? '[B, C]' : shapeOf(s)} ` +
          `(one-hot or soft labels), got ${describe(labels)}` +
          (labels.rank === s.rank - 1 ? '; class indices must be int32' : ''),
      );
    }
    if (!sameShape(labels.shape, s.shape)) {
      throw new Error(
        `${op}: labels has shape ${shapeOf(labels)} but studentLogits has shape ${shapeOf(s)}: ` +
          'float32 (one-hot or soft) labels must match the logits',
      );
    }
    return { batch, classes, leadingShape, labelKind: 'dense' };
  }
  throw new TypeError(
    `${op}: labels must be int32 [B] class indices or float32 [B, C] one-hot/soft labels ` +
      `(for [..., C] logits: the leading shape, or the logits' shape), got ${describe(labels)}`,
  );
}
