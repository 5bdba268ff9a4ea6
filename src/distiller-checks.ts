/**
 * The Distiller's input checks: shapes and dtypes only (no data is read), so a bad argument
 * throws an error naming it before anything is dispatched.
 */
import type { Tensor } from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { LinearHead } from './linear/types.js';
import { checkSparseTeacher, isSparseTeacher, type SparseTeacher } from './sparse-teacher.js';
import { isTensorLike } from './validate.js';

/** What the Distiller knows about its models once they are checked. */
export interface ModelShapes {
  /** The input shape without the batch axis (`null`: any size). */
  readonly input: readonly (number | null)[];
  /** Classes C: the width of both models' logits. */
  readonly classes: number;
  /**
   * The logits' axes between the batch and the classes (`null`: any size): none for `[B, C]`,
   * `[S]` for a sequence model's `[B, S, C]`. Every position is a row of the loss.
   */
  readonly steps: readonly (number | null)[];
}

function describe(t: Tensor): string {
  return `${t.dtype} [${t.shape.join(', ')}]`;
}

function shapeText(shape: readonly (number | null)[]): string {
  return `[${shape.map((d) => (d === null ? 'null' : String(d))).join(', ')}]`;
}

/** Throws unless `x` is a live tensor. */
export function checkTensor(x: unknown, name: string, op: string): Tensor {
  if (!isTensorLike(x)) throw new TypeError(`${op}: ${name} must be a tf.Tensor, got ${typeof x}`);
  if (x.isDisposed) throw new Error(`${op}: ${name} has been disposed`);
  return x;
}

/** The single input and output shapes of a built tfjs-layers model whose output is logits. */
function modelShapes(model: LayersModel, role: 'student' | 'teacher'): ModelShapes {
  const op = 'Distiller';
  if (
    typeof model !== 'object' ||
    model === null ||
    typeof (model as { apply?: unknown }).apply !== 'function'
  ) {
    throw new TypeError(`${op}: ${role} must be a tfjs-layers LayersModel, got ${typeof model}`);
  }
  const inputs = model.inputs as LayersModel['inputs'] | undefined;
  const outputs = model.outputs as LayersModel['outputs'] | undefined;
  if (!inputs || !outputs || inputs.length === 0 || outputs.length === 0) {
    throw new Error(
      `${op}: the ${role} '${model.name}' has no known input/output shape; build it first ` +
        `(give its first layer an inputShape, or create it with tf.model({inputs, outputs}))`,
    );
  }
  if (inputs.length !== 1 || outputs.length !== 1) {
    throw new Error(
      `${op}: the ${role} '${model.name}' must have one input and one output, got ` +
        `${inputs.length} inputs and ${outputs.length} outputs`,
    );
  }
  const out = outputs[0]!;
  const classes = out.shape.at(-1);
  if (
    (out.shape.length !== 2 && out.shape.length !== 3) ||
    typeof classes !== 'number' ||
    classes < 1
  ) {
    throw new Error(
      `${op}: the ${role} '${model.name}' must output logits of shape [B, C] (or [B, S, C] for ` +
        `a sequence), got ${shapeText(out.shape)}`,
    );
  }
  const source = out.sourceLayer as { getClassName(): string; getConfig(): object } | undefined;
  const activation = source ? (source.getConfig() as { activation?: unknown }).activation : null;
  if (source && (activation === 'softmax' || source.getClassName() === 'Softmax')) {
    throw new Error(
      `${op}: the ${role} '${model.name}' ends in a softmax: it outputs probabilities, but the ` +
        `distillation loss takes logits (remove the final softmax activation)`,
    );
  }
  return { input: inputs[0]!.shape.slice(1), classes, steps: out.shape.slice(1, -1) };
}

/** Whether two shapes (`null`: any size) can be the same. */
function compatible(a: readonly (number | null)[], b: readonly (number | null)[]): boolean {
  return a.length === b.length && a.every((d, i) => d === null || b[i] === null || d === b[i]);
}

/** `a` with its unknown sizes taken from `b` where `b` knows them. */
function merge(a: readonly (number | null)[], b: readonly (number | null)[]): (number | null)[] {
  return a.map((d, i) => d ?? b[i] ?? null);
}

/** The logits' shape of a batch of `batch` examples, `null` where the models do not say. */
function logitsText(batch: number | string, shapes: ModelShapes): string {
  return shapeText([batch, ...shapes.steps, shapes.classes] as (number | null)[]);
}

/**
 * Checks that `student` and `teacher` are different built single-input, single-output models
 * with logits of the same width, inputs of compatible shapes and no shared trainable variable.
 */
export function checkModels(student: LayersModel, teacher: LayersModel): ModelShapes {
  const op = 'Distiller';
  if (student === teacher) {
    throw new Error(`${op}: student and teacher must be different models`);
  }
  const s = modelShapes(student, 'student');
  const t = modelShapes(teacher, 'teacher');
  if (s.classes !== t.classes) {
    throw new Error(
      `${op}: the teacher outputs ${t.classes} logits per example but the student ${s.classes}; ` +
        `both must have the same number of classes`,
    );
  }
  if (!compatible(s.steps, t.steps)) {
    throw new Error(
      `${op}: the student outputs logits ${shapeText([null, ...s.steps, s.classes])} but the ` +
        `teacher ${shapeText([null, ...t.steps, t.classes])}; both must have the same shape`,
    );
  }
  if (!compatible(s.input, t.input)) {
    throw new Error(
      `${op}: the student takes inputs ${shapeText([null, ...s.input])} but the teacher ` +
        `${shapeText([null, ...t.input])}; both must take the same x`,
    );
  }
  if (student.trainableWeights.length === 0) {
    throw new Error(`${op}: the student '${student.name}' has no trainable weights`);
  }
  const teacherVars = new Set(teacher.weights.map((w) => w.read()));
  const shared = student.trainableWeights.find((w) => teacherVars.has(w.read()));
  if (shared) {
    throw new Error(
      `${op}: the student's trainable weight '${shared.name}' is also a weight of the teacher; ` +
        `training the student would change the teacher`,
    );
  }
  return { input: merge(s.input, t.input), classes: s.classes, steps: merge(s.steps, t.steps) };
}

/**
 * How labels are given: int32 `[B]` class indices or float32 `[B, C]` one-hot / soft labels
 * (`[B, S]` and `[B, S, C]` for a sequence model's `[B, S, C]` logits).
 */
export type LabelKind = 'index' | 'dense';

/** Checks that `x` is a live tensor of the models' input shape with at least one example. */
export function checkInputs(x: unknown, shapes: ModelShapes, op: string, name = 'x'): Tensor {
  const xs = checkTensor(x, name, op);
  const expected = [null, ...shapes.input];
  const fits =
    xs.rank === expected.length &&
    shapes.input.every((d, i) => d === null || xs.shape[i + 1] === d);
  if (!fits) {
    throw new Error(
      `${op}: ${name} must have the models' input shape ${shapeText(expected)}, got ${describe(xs)}`,
    );
  }
  if (xs.shape[0]! < 1) throw new Error(`${op}: ${name} has no examples (${describe(xs)})`);
  return xs;
}

/**
 * Checks a batch (or a data set) `x`, `y` against the models' shapes.
 *
 * @returns the number of examples B, the rows of the loss (B, or B × S for a sequence model)
 *   and how the labels are given.
 */
export function checkData(
  x: unknown,
  y: unknown,
  shapes: ModelShapes,
  op: string,
  names: readonly [string, string] = ['x', 'y'],
): { batch: number; rows: number; labelKind: LabelKind } {
  const [xName, yName] = names;
  const xs = checkInputs(x, shapes, op, xName);
  const batch = xs.shape[0]!;
  const ys = checkTensor(y, yName, op);
  if (ys.shape[0] !== batch) {
    throw new Error(
      `${op}: ${xName} has ${batch} examples (${describe(xs)}) but ${yName} has ` +
        `${ys.shape[0] ?? 0} (${describe(ys)})`,
    );
  }
  const C = shapes.classes;
  const steps = shapes.steps;
  const middle = ys.shape.slice(1, 1 + steps.length);
  const fitsSteps = steps.every((d, i) => d === null || middle[i] === d);
  if (ys.dtype === 'int32' && ys.rank === 1 + steps.length && fitsSteps) {
    return { batch, rows: ys.size, labelKind: 'index' };
  }
  if (
    ys.dtype === 'float32' &&
    ys.rank === 2 + steps.length &&
    fitsSteps &&
    ys.shape.at(-1) === C
  ) {
    return { batch, rows: ys.size / C, labelKind: 'dense' };
  }
  const hint =
    ys.rank === 1 + steps.length && ys.dtype !== 'int32'
      ? ' (cast class indices to int32: tf.cast(y, "int32"))'
      : '';
  const indexShape = shapeText([batch, ...steps]);
  throw new TypeError(
    `${op}: ${yName} must be int32 ${indexShape} class indices or float32 ` +
      `${logitsText(batch, shapes)} one-hot/soft labels, got ${describe(ys)}${hint}`,
  );
}

/**
 * Throws when the option `ignoreIndex` is set and the labels are float32 one-hot / soft labels:
 * it applies to int32 class indices only (the loss's rule, checked before anything runs).
 */
export function checkIgnoredLabels(
  ignoreIndex: number | undefined,
  labelKind: LabelKind,
  op: string,
  name = 'y',
): void {
  if (ignoreIndex !== undefined && labelKind === 'dense') {
    throw new Error(
      `${op}: ignoreIndex (${ignoreIndex}) applies to int32 class-index labels only, but ${name} ` +
        'holds float32 one-hot / soft labels (pass class indices, or leave ignoreIndex out)',
    );
  }
}

/** Throws unless `value` is an integer ≥ 1. */
export function checkPositiveInt(value: unknown, name: string, op: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new RangeError(`${op}: ${name} must be a positive integer, got ${String(value)}`);
  }
  return value;
}

/**
 * Checks the `teacherTopK` option: an integer in [1, C], and only with cached teacher logits
 * (the top-K are taken once from the cached teacher's logits).
 *
 * @returns K, or null when the option is not given.
 */
export function checkTeacherTopK(
  value: unknown,
  mode: 'per-step' | 'cached',
  classes: number,
): number | null {
  const op = 'Distiller';
  if (value === undefined) return null;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > classes) {
    throw new RangeError(
      `${op}: teacherTopK must be an integer in [1, C] = [1, ${classes}] (entries kept per ` +
        `example), got ${String(value)}`,
    );
  }
  if (mode !== 'cached') {
    throw new Error(
      `${op}: teacherTopK needs teacherLogits: 'cached' (the cache keeps the teacher's top-K ` +
        `per example), got teacherLogits '${mode}'`,
    );
  }
  return value;
}

/**
 * Checks batch indices into a cache of `rows` examples: a rank-1 tensor (its values are not
 * read), or integers in [0, rows).
 */
export function checkBatchIndices(
  batchIndices: unknown,
  rows: number,
  op: string,
): Tensor | readonly number[] | Int32Array {
  if (isTensorLike(batchIndices)) {
    checkTensor(batchIndices, 'batchIndices', op);
    if (batchIndices.rank !== 1) {
      throw new Error(
        `${op}: batchIndices must be [B], got shape [${batchIndices.shape.join(', ')}]`,
      );
    }
    return batchIndices;
  }
  if (!Array.isArray(batchIndices) && !(batchIndices instanceof Int32Array)) {
    throw new TypeError(
      `${op}: batchIndices must be a tf.Tensor, a number[] or an Int32Array, got ` +
        `${typeof batchIndices}`,
    );
  }
  const list = batchIndices as readonly number[] | Int32Array;
  const bad = Array.from(list).find((i) => !Number.isInteger(i) || i < 0 || i >= rows);
  if (bad !== undefined) {
    throw new RangeError(`${op}: batch index ${bad} is outside the cache's [0, ${rows})`);
  }
  return list;
}

/**
 * Checks a step's teacher: float32 `[B, C]` logits, or a sparse teacher `{ indices, logProbs }`
 * int32 / float32 `[B, K]`.
 */
export function checkStepTeacher(
  teacher: unknown,
  batch: number,
  shapes: ModelShapes,
  op: string,
): Tensor | SparseTeacher {
  const { classes, steps } = shapes;
  if (isSparseTeacher(teacher)) {
    // Unknown sequence sizes from the teacher itself (the loss checks them against the labels).
    const known = isTensorLike(teacher.indices) ? teacher.indices.shape : [];
    checkSparseTeacher(
      teacher,
      [batch, ...steps.map((d, i) => d ?? known[i + 1] ?? 0), classes],
      op,
    );
    return teacher;
  }
  const logits = checkTensor(teacher, 'teacherLogits', op);
  const leadingText = shapeText([batch, ...steps]).slice(0, -1);
  if (
    logits.dtype !== 'float32' ||
    logits.rank !== 2 + steps.length ||
    logits.shape[0] !== batch ||
    !steps.every((d, i) => d === null || logits.shape[i + 1] === d) ||
    logits.shape.at(-1) !== classes
  ) {
    throw new Error(
      `${op}: teacherLogits must be float32 ${logitsText(batch, shapes)}, got ` +
        `${describe(logits)} (or a sparse teacher { indices, logProbs } ${leadingText}, K])`,
    );
  }
  return logits;
}

/**
 * Checks a step's teacher head `{ hidden, weight, bias? }`: float32 `hidden` `[B, H]`, `weight`
 * `[H, C]` and `bias` `[C]` (the loss checks them again, and everything else).
 */
export function checkTeacherHead(
  head: LinearHead,
  batch: number,
  shapes: ModelShapes,
  op: string,
): LinearHead {
  const { classes, steps } = shapes;
  const hidden = checkTensor(head.hidden, 'teacher head hidden', op);
  const weight = checkTensor(head.weight, 'teacher head weight', op);
  const bias = head.bias === undefined ? null : checkTensor(head.bias, 'teacher head bias', op);
  const width = hidden.shape.at(-1);
  const fits =
    hidden.dtype === 'float32' &&
    hidden.rank === 2 + steps.length &&
    hidden.shape[0] === batch &&
    steps.every((d, i) => d === null || hidden.shape[i + 1] === d) &&
    weight.dtype === 'float32' &&
    weight.rank === 2 &&
    weight.shape[0] === width &&
    weight.shape[1] === classes &&
    (bias === null || (bias.dtype === 'float32' && bias.rank === 1 && bias.shape[0] === classes));
  if (!fits) {
    throw new Error(
      `${op}: a teacher head must be float32 hidden ${shapeText([batch, ...steps]).slice(0, -1)}, ` +
        `H], weight [H, ${classes}] ` +
        `and bias [${classes}], got hidden ${describe(hidden)}, weight ${describe(weight)}` +
        (bias === null ? '' : `, bias ${describe(bias)}`),
    );
  }
  return head;
}
