/**
 * Input checks shared by the fused and the stock op. Everything here runs on shapes and dtypes
 * only (no data is read), before anything is dispatched.
 */
import type { Tensor } from '@tensorflow/tfjs-core';

/** The largest class count the WGSL kernels are built and tested for. */
export const MAX_CLASSES = 262_144;

/** The dimensions that the inputs agree on, and how the labels are given. */
export interface CheckedShapes {
  readonly batch: number;
  readonly classes: number;
  /** 'index': int32 `[B]` class indices; 'dense': float32 `[B, C]` one-hot or soft labels. */
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

/** Throws an error that names the argument, what was expected and what was given. */
export function checkInputs(
  labels: unknown,
  studentLogits: unknown,
  teacherLogits: unknown,
  op: string,
  maxClasses = Number.POSITIVE_INFINITY,
): CheckedShapes {
  const logits: [string, unknown][] = [
    ['studentLogits', studentLogits],
    ['teacherLogits', teacherLogits],
  ];
  for (const [name, x] of logits) {
    if (!isTensorLike(x)) {
      throw new TypeError(`${op}: ${name} must be a tf.Tensor, got ${typeof x}`);
    }
    if (x.isDisposed) throw new Error(`${op}: ${name} has been disposed`);
    if (x.rank !== 2) {
      throw new Error(`${op}: ${name} must have rank 2 [B, C], got rank ${x.rank} ${describe(x)}`);
    }
    if (x.dtype !== 'float32') {
      throw new TypeError(`${op}: ${name} must be float32, got ${describe(x)}`);
    }
  }
  const s = studentLogits as Tensor;
  const t = teacherLogits as Tensor;
  const [batch, classes] = s.shape as [number, number];
  if (batch < 1 || classes < 1) {
    throw new Error(`${op}: studentLogits must have B ≥ 1 and C ≥ 1, got ${describe(s)}`);
  }
  if (classes > maxClasses) {
    throw new RangeError(
      `${op}: studentLogits has C = ${classes} classes; at most ${maxClasses} are supported`,
    );
  }
  if (t.shape[0] !== batch || t.shape[1] !== classes) {
    throw new Error(
      `${op}: studentLogits has shape ${shapeOf(s)} but teacherLogits has shape ${shapeOf(t)}: ` +
        'they must match',
    );
  }
  if (!isTensorLike(labels)) {
    throw new TypeError(`${op}: labels must be a tf.Tensor, got ${typeof labels}`);
  }
  if (labels.isDisposed) throw new Error(`${op}: labels has been disposed`);
  if (labels.dtype === 'int32') {
    if (labels.rank !== 1) {
      throw new Error(
        `${op}: int32 labels must have rank 1 [B] (class indices), got ${describe(labels)}` +
          (labels.rank === 2 ? '; one-hot or soft labels must be float32' : ''),
      );
    }
    if (labels.shape[0] !== batch) {
      throw new Error(
        `${op}: labels has ${labels.shape[0]} ${rows(labels.shape[0]!)} but studentLogits has ${batch} ` +
          `(labels ${describe(labels)}, studentLogits ${describe(s)}): one class index per row`,
      );
    }
    return { batch, classes, labelKind: 'index' };
  }
  if (labels.dtype === 'float32') {
    if (labels.rank !== 2) {
      throw new Error(
        `${op}: float32 labels must have rank 2 [B, C] (one-hot or soft labels), got ${describe(labels)}` +
          (labels.rank === 1 ? '; class indices must be int32' : ''),
      );
    }
    if (labels.shape[0] !== batch || labels.shape[1] !== classes) {
      throw new Error(
        `${op}: labels has shape ${shapeOf(labels)} but studentLogits has shape ${shapeOf(s)}: ` +
          'float32 (one-hot or soft) labels must match the logits',
      );
    }
    return { batch, classes, labelKind: 'dense' };
  }
  throw new TypeError(
    `${op}: labels must be int32 [B] class indices or float32 [B, C] one-hot/soft labels, got ${describe(labels)}`,
  );
}
