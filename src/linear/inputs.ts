/**
 * The linear op's input checks (shapes and dtypes only, before anything is dispatched) and the
 * flattening of its inputs to rows.
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkSparseTeacher, isSparseTeacher, type SparseTeacher } from '../sparse-teacher.js';
import { isTensorLike, MAX_CLASSES } from '../validate.js';
import type { LinearHead, LinearTeacher } from './types.js';

/** The dimensions the inputs agree on. */
export interface LinearShapes {
  /** The hidden states' shape without H: the labels' shape for class indices. */
  readonly leadingShape: readonly number[];
  readonly rows: number;
  /** The student head's H. */
  readonly hiddenSize: number;
  /** V, the classes. */
  readonly vocab: number;
  readonly labelKind: 'index' | 'dense';
  readonly teacherKind: 'dense' | 'sparse' | 'head';
  /** K of a top-K teacher, H of a teacher head; 0 for dense logits. */
  readonly teacherWidth: number;
}

function describe(t: tf.Tensor): string {
  return `${t.dtype} [${t.shape.join(', ')}]`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function tensorArg(
  x: unknown,
  name: string,
  dtype: string,
  expected: string,
  op: string,
): tf.Tensor {
  if (!isTensorLike(x)) {
    throw new TypeError(
      `${op}: ${name} must be a tf.Tensor (${dtype} ${expected}), got ${typeof x}`,
    );
  }
  if (x.isDisposed) throw new Error(`${op}: ${name} has been disposed`);
  if (x.dtype !== dtype) {
    throw new TypeError(`${op}: ${name} must be ${dtype} ${expected}, got ${describe(x)}`);
  }
  return x;
}

/** Whether `x` is a {@link LinearHead} (an object with tensor `hidden` and `weight`). */
export function isLinearHead(x: unknown): x is LinearHead {
  return typeof x === 'object' && x !== null && !isTensorLike(x) && 'hidden' in x && 'weight' in x;
}

/** A head's hidden, weight and bias against each other; returns [leading shape, H, V]. */
function checkHead(head: unknown, name: string, op: string): [number[], number, number] {
  if (!isLinearHead(head)) {
    throw new TypeError(
      `${op}: ${name} must be { hidden: float32 [..., H], weight: float32 [H, V], bias?: float32 [V] }`,
    );
  }
  const hidden = tensorArg(
    head.hidden,
    `${name}.hidden`,
    'float32',
    '[rows, H] or [batch, seq, H]',
    op,
  );
  if (hidden.rank !== 2 && hidden.rank !== 3) {
    throw new Error(
      `${op}: ${name}.hidden must have rank 2 [rows, H] or 3 [batch, seq, H], got ${describe(hidden)}`,
    );
  }
  const size = hidden.shape[hidden.rank - 1]!;
  const weight = tensorArg(head.weight, `${name}.weight`, 'float32', `[${size}, V]`, op);
  if (weight.rank !== 2 || weight.shape[0] !== size) {
    throw new Error(
      `${op}: ${name}.weight must be [H, V] with H = ${size} (${name}.hidden ${describe(hidden)}), ` +
        `got ${describe(weight)}`,
    );
  }
  const vocab = weight.shape[1]!;
  if (head.bias !== undefined) {
    const bias = tensorArg(head.bias, `${name}.bias`, 'float32', `[${vocab}]`, op);
    if (bias.rank !== 1 || bias.shape[0] !== vocab) {
      throw new Error(
        `${op}: ${name}.bias must be [V] with V = ${vocab} (${name}.weight ${describe(weight)}), ` +
          `got ${describe(bias)}`,
      );
    }
  }
  const leading = hidden.shape.slice(0, -1);
  if (size < 1 || vocab < 1 || leading.some((d) => d < 1)) {
    throw new Error(
      `${op}: ${name} must have at least one row, H ≥ 1 and V ≥ 1, got hidden ` +
        `${describe(hidden)}, weight ${describe(weight)}`,
    );
  }
  return [leading, size, vocab];
}

/** Checks every input; throws an error naming the argument, what was expected and what came. */
export function checkLinearInputs(
  labels: unknown,
  student: unknown,
  teacher: unknown,
  op: string,
): LinearShapes {
  const [leadingShape, hiddenSize, vocab] = checkHead(student, 'student', op);
  if (vocab > MAX_CLASSES) {
    throw new RangeError(`${op}: student.weight has V = ${vocab} classes; at most ${MAX_CLASSES}`);
  }
  const rows = leadingShape.reduce((a, b) => a * b, 1);
  const leading = `[${leadingShape.join(', ')}]`;
  let teacherKind: LinearShapes['teacherKind'];
  let teacherWidth = 0;
  if (isSparseTeacher(teacher)) {
    teacherKind = 'sparse';
    teacherWidth = checkSparseTeacher(teacher, [...leadingShape, vocab], op).topK;
  } else if (isLinearHead(teacher)) {
    teacherKind = 'head';
    const [teacherLeading, size, teacherVocab] = checkHead(teacher, 'teacher', op);
    if (!sameShape(teacherLeading, leadingShape) || teacherVocab !== vocab) {
      throw new Error(
        `${op}: the teacher head must have the student's rows and V: teacher.hidden leading ` +
          `shape [${teacherLeading.join(', ')}] and V = ${teacherVocab}, student ${leading} ` +
          `and V = ${vocab}`,
      );
    }
    teacherWidth = size;
  } else {
    teacherKind = 'dense';
    const t = tensorArg(
      teacher,
      'teacher',
      'float32',
      `[${[...leadingShape, vocab].join(', ')}]`,
      op,
    );
    if (!sameShape(t.shape, [...leadingShape, vocab])) {
      throw new Error(
        `${op}: dense teacher logits must have shape [${[...leadingShape, vocab].join(', ')}] ` +
          `(student.hidden's leading shape, then V), got ${describe(t)}`,
      );
    }
  }
  if (!isTensorLike(labels)) {
    throw new TypeError(`${op}: labels must be a tf.Tensor, got ${typeof labels}`);
  }
  if (labels.isDisposed) throw new Error(`${op}: labels has been disposed`);
  let labelKind: LinearShapes['labelKind'];
  if (labels.dtype === 'int32' && sameShape(labels.shape, leadingShape)) labelKind = 'index';
  else if (labels.dtype === 'float32' && sameShape(labels.shape, [...leadingShape, vocab])) {
    labelKind = 'dense';
  } else {
    throw new Error(
      `${op}: labels must be int32 ${leading} class indices or float32 ` +
        `[${[...leadingShape, vocab].join(', ')}] one-hot / soft labels (student.hidden's ` +
        `leading shape), got ${describe(labels)}`,
    );
  }
  return { leadingShape, rows, hiddenSize, vocab, labelKind, teacherKind, teacherWidth };
}

/** The teacher, flattened to rows. */
export type RowTeacher =
  | { readonly kind: 'dense'; readonly logits: tf.Tensor2D }
  | { readonly kind: 'sparse'; readonly indices: tf.Tensor2D; readonly logProbs: tf.Tensor2D }
  | {
      readonly kind: 'head';
      readonly hidden: tf.Tensor2D;
      readonly weight: tf.Tensor2D;
      readonly bias?: tf.Tensor1D;
    };

/** The inputs as rows: `[rows, H]`, `[rows]` or `[rows, V]` labels, and the teacher's rows. */
export interface RowInputs {
  readonly labels: tf.Tensor;
  readonly hidden: tf.Tensor2D;
  readonly weight: tf.Tensor2D;
  readonly bias?: tf.Tensor1D;
  readonly teacher: RowTeacher;
}

/** Reshapes (no copy) the checked inputs to rows. */
export function toRows(
  labels: tf.Tensor,
  student: LinearHead,
  teacher: LinearTeacher,
  shapes: LinearShapes,
): RowInputs {
  const { rows, vocab } = shapes;
  const flat = (x: tf.Tensor): tf.Tensor2D => tf.reshape(x, [rows, x.shape[x.rank - 1]!]);
  let rowTeacher: RowTeacher;
  if (isSparseTeacher(teacher)) {
    const t: SparseTeacher = teacher;
    rowTeacher = { kind: 'sparse', indices: flat(t.indices), logProbs: flat(t.logProbs) };
  } else if (isLinearHead(teacher)) {
    rowTeacher = {
      kind: 'head',
      hidden: flat(teacher.hidden),
      weight: teacher.weight as tf.Tensor2D,
      ...(teacher.bias ? { bias: teacher.bias as tf.Tensor1D } : {}),
    };
  } else {
    rowTeacher = { kind: 'dense', logits: flat(teacher) };
  }
  return {
    labels:
      shapes.labelKind === 'index' ? tf.reshape(labels, [rows]) : tf.reshape(labels, [rows, vocab]),
    hidden: flat(student.hidden),
    weight: student.weight as tf.Tensor2D,
    ...(student.bias ? { bias: student.bias as tf.Tensor1D } : {}),
    teacher: rowTeacher,
  };
}

/** Rows [start, start + count) of every row input (copies of `count` rows). */
export function sliceRows(
  inputs: RowInputs,
  start: number,
  count: number,
): { labels: tf.Tensor; hidden: tf.Tensor2D; teacher: RowTeacher } {
  const rowsOf = <T extends tf.Tensor>(x: T): T => {
    const begin = x.shape.map((_, i) => (i === 0 ? start : 0));
    const size = x.shape.map((d, i) => (i === 0 ? count : d));
    return tf.slice(x, begin, size) as T;
  };
  const t = inputs.teacher;
  const teacher: RowTeacher =
    t.kind === 'dense'
      ? { kind: 'dense', logits: rowsOf(t.logits) }
      : t.kind === 'sparse'
        ? { kind: 'sparse', indices: rowsOf(t.indices), logProbs: rowsOf(t.logProbs) }
        : { ...t, hidden: rowsOf(t.hidden) };
  return { labels: rowsOf(inputs.labels), hidden: rowsOf(inputs.hidden), teacher };
}

/** The op's arguments. */
export interface LinearArgs {
  readonly labels: tf.Tensor;
  readonly student: LinearHead;
  readonly teacher: LinearTeacher;
}

/** Every tensor of the arguments, in a fixed order (see {@link argsFromTensors}). */
export function argTensors({ labels, student, teacher }: LinearArgs): tf.Tensor[] {
  const heads = (h: LinearHead) => [h.hidden, h.weight, ...(h.bias ? [h.bias] : [])];
  const teacherTensors = isSparseTeacher(teacher)
    ? [teacher.indices, teacher.logProbs]
    : isLinearHead(teacher)
      ? heads(teacher)
      : [teacher];
  return [labels, ...heads(student), ...teacherTensors];
}

/** The arguments shaped like `like`, with the tensors of `list` (as {@link argTensors} orders them). */
export function argsFromTensors(list: readonly tf.Tensor[], like: LinearArgs): LinearArgs {
  let i = 0;
  const next = () => list[i++]!;
  const head = (h: LinearHead): LinearHead => {
    const hidden = next();
    const weight = next();
    return h.bias ? { hidden, weight, bias: next() } : { hidden, weight };
  };
  const labels = next();
  const student = head(like.student);
  const t = like.teacher;
  const teacher: LinearTeacher = isSparseTeacher(t)
    ? { indices: next(), logProbs: next() }
    : isLinearHead(t)
      ? head(t)
      : next();
  return { labels, student, teacher };
}
