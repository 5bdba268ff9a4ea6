/**
 * The case table and the element-wise check of `fusedLinearDistillationLoss` against its float64
 * reference (src/validation/reference-linear.ts) within the derived tolerances
 * (src/validation/tolerance-linear.ts): shared by test/linear-fused.test.ts (WebGPU) and
 * test/linear-cpu.test.ts (the tfjs cpu backend's composition).
 */
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';
import { fusedLinearDistillationLoss } from 'tfjs-fused-distill';
import type { DistillationLossComponents } from '../../src/index.js';
import {
  planLinearChunks,
  workingTensorsPerRow,
  type LinearGradients,
} from '../../src/linear/chunks.js';
import type { LinearShapes } from '../../src/linear/inputs.js';
import type { LinearHead, LinearTeacher } from '../../src/linear/types.js';
import { compareElements, formatMismatches } from '../../src/validation/compare.js';
import {
  makeLinearCase,
  referenceFusedLinearDistillationLoss,
  type LinearCaseSpec,
  type LinearReferenceFault,
  type LinearReferenceInput,
  type LinearReferenceResult,
} from '../../src/validation/reference-linear.js';
import { linearTolerances, type LinearTolerances } from '../../src/validation/tolerance-linear.js';

export interface NamedLinearCase extends LinearCaseSpec {
  readonly name: string;
  /** Rows per chunk under a tape (a memoryBudgetBytes that fits that many); default: one chunk. */
  readonly chunkRows?: number;
}

const base = { leading: [12], hiddenSize: 8, vocab: 40 } as const;
const ignore = { ignoreIndex: -100 } as const;

/** The WebGPU table (~25 cases); 'cpu' takes a handful of them. */
export function linearCaseTable(backend: 'webgpu' | 'cpu'): NamedLinearCase[] {
  const all: NamedLinearCase[] = [
    { name: 'dense, defaults', ...base, teacher: 'dense' },
    {
      name: 'dense, softCap 3, logitScale 1.5, chunked',
      ...base,
      teacher: 'dense',
      chunkRows: 5,
      config: { softCap: 3, logitScale: 1.5, alpha: 0.3, temperature: 2 },
    },
    {
      name: 'dense, sum, T = 1, α 0.5, T² off, dy 0.75',
      ...base,
      teacher: 'dense',
      dy: 0.75,
      config: { reduction: 'sum', temperature: 1, alpha: 0.5, temperatureSquared: false },
    },
    {
      name: 'dense, none with [rows] dy, softCap 2, chunked',
      ...base,
      teacher: 'dense',
      dy: 'rows',
      chunkRows: 4,
      config: { reduction: 'none', softCap: 2, alpha: 0.2, temperature: 3 },
    },
    {
      name: 'reverse KL, softCap 2.5',
      ...base,
      teacher: 'dense',
      config: { divergence: 'reverse-kl', softCap: 2.5, alpha: 0.3, temperature: 2 },
    },
    {
      name: 'JSD β 0.3, sum, chunked',
      ...base,
      teacher: 'dense',
      chunkRows: 5,
      config: { divergence: 'jsd', beta: 0.3, reduction: 'sum', temperature: 2, softCap: 2 },
    },
    {
      name: 'JSD, none with [rows] dy, logitScale 0.8',
      ...base,
      teacher: 'dense',
      dy: 'rows',
      config: { divergence: 'jsd', reduction: 'none', logitScale: 0.8, temperature: 1.5 },
    },
    {
      name: 'ignoreIndex, mean, chunked',
      ...base,
      teacher: 'dense',
      ignoredRows: [0, 5, 6],
      chunkRows: 4,
      config: { ...ignore, softCap: 2, alpha: 0.4, temperature: 2 },
    },
    {
      name: '−Infinity masks in the bias, softCap 2',
      ...base,
      teacher: 'dense',
      masked: [3, 17, 39],
      config: { softCap: 2, alpha: 0.3, temperature: 2 },
    },
    {
      name: 'reverse KL, masks and ignoreIndex, chunked',
      ...base,
      teacher: 'dense',
      masked: [0, 21],
      ignoredRows: [2],
      chunkRows: 5,
      config: { ...ignore, divergence: 'reverse-kl', softCap: 3, temperature: 2 },
    },
    {
      name: 'components, dense, mean, softCap 3',
      ...base,
      teacher: 'dense',
      config: { returnComponents: true, softCap: 3, alpha: 0.3, temperature: 2 },
    },
    {
      name: 'components, top-K, sum, chunked',
      ...base,
      teacher: 'sparse',
      chunkRows: 5,
      config: { returnComponents: true, reduction: 'sum', softCap: 2, temperature: 2 },
    },
    {
      name: 'components, teacher head, none with [rows] dy',
      ...base,
      teacher: 'head',
      dy: 'rows',
      config: { returnComponents: true, reduction: 'none', softCap: 2.5, alpha: 0.5 },
    },
    {
      name: 'top-K, mean, softCap 2, chunked',
      ...base,
      teacher: 'sparse',
      chunkRows: 3,
      config: { softCap: 2, alpha: 0.2, temperature: 2 },
    },
    {
      name: 'top-K, none with [rows] dy, dense labels',
      ...base,
      teacher: 'sparse',
      labels: 'dense',
      dy: 'rows',
      config: { reduction: 'none', temperature: 1.5, logitScale: 1.3 },
    },
    {
      name: 'top-K, masks and ignoreIndex',
      ...base,
      teacher: 'sparse',
      masked: [7, 8],
      ignoredRows: [3, 11],
      config: { ...ignore, softCap: 2, temperature: 2 },
    },
    {
      name: 'teacher head, softCap 2, logitScale 1.2, chunked',
      ...base,
      teacher: 'head',
      chunkRows: 5,
      config: { softCap: 2, logitScale: 1.2, alpha: 0.3, temperature: 2 },
    },
    {
      name: 'teacher head, JSD, sum, dy −1.5',
      ...base,
      teacher: 'head',
      dy: -1.5,
      config: { divergence: 'jsd', reduction: 'sum', softCap: 3, temperature: 2 },
    },
    {
      name: 'teacher head, reverse KL, masks',
      ...base,
      teacher: 'head',
      masked: [1, 30],
      config: { divergence: 'reverse-kl', softCap: 2, alpha: 0.1, temperature: 4 },
    },
    {
      name: 'rank 3, dense, softCap 2, chunked',
      leading: [2, 6],
      hiddenSize: 8,
      vocab: 40,
      teacher: 'dense',
      chunkRows: 5,
      config: { softCap: 2, alpha: 0.3, temperature: 2 },
    },
    {
      name: 'rank 3, teacher head, none with [rows] dy',
      leading: [3, 4],
      hiddenSize: 6,
      vocab: 33,
      teacher: 'head',
      dy: 'rows',
      config: { reduction: 'none', softCap: 2.5, temperature: 2 },
    },
    {
      name: 'H 16, V 300, 24 rows, dense, softCap 3, chunked',
      leading: [24],
      hiddenSize: 16,
      vocab: 300,
      teacher: 'dense',
      chunkRows: 7,
      config: { softCap: 3, alpha: 0.3, temperature: 2 },
    },
    {
      name: 'H 16, V 300, 24 rows, top-K 16, unchunked',
      leading: [24],
      hiddenSize: 16,
      vocab: 300,
      teacher: 'sparse',
      topK: 16,
      config: { softCap: 3, logitScale: 1.5, alpha: 0.2, temperature: 2 },
    },
    {
      name: 'dense labels, α 0.7, T 0.5',
      ...base,
      teacher: 'dense',
      labels: 'dense',
      config: { alpha: 0.7, temperature: 0.5, softCap: 4 },
    },
    {
      name: 'no bias, logitScale 2, rank 3, top-K',
      leading: [2, 5],
      hiddenSize: 8,
      vocab: 36,
      teacher: 'sparse',
      bias: false,
      config: { logitScale: 2, temperature: 2 },
    },
  ];
  if (backend === 'webgpu') return all;
  const names = [
    'dense, softCap 3, logitScale 1.5, chunked',
    'JSD, none with [rows] dy, logitScale 0.8',
    'reverse KL, masks and ignoreIndex, chunked',
    'components, top-K, sum, chunked',
    'teacher head, softCap 2, logitScale 1.2, chunked',
    'rank 3, teacher head, none with [rows] dy',
  ];
  return all.filter((c) => names.includes(c.name));
}

interface CaseTensors {
  labels: tf.Tensor;
  hidden: tf.Tensor;
  weight: tf.Tensor;
  bias: tf.Tensor | undefined;
  teacher: LinearTeacher;
  dy: tf.Tensor | null;
  all: tf.Tensor[];
}

function tensorsOf(spec: NamedLinearCase, x: LinearReferenceInput): CaseTensors {
  const lead = [...spec.leading];
  const V = x.vocab;
  const labels =
    x.labelKind === 'index'
      ? tf.tensor(Int32Array.from(x.labels), lead, 'int32')
      : tf.tensor(Float32Array.from(x.labels), [...lead, V]);
  const hidden = tf.tensor(Float32Array.from(x.hidden), [...lead, x.hiddenSize]);
  const weight = tf.tensor2d(Float32Array.from(x.weight), [x.hiddenSize, V]);
  const bias = x.bias ? tf.tensor1d(Float32Array.from(x.bias)) : undefined;
  const all = [labels, hidden, weight, ...(bias ? [bias] : [])];
  let teacher: LinearTeacher;
  const t = x.teacher;
  if (t.kind === 'dense') {
    teacher = tf.tensor(Float32Array.from(t.logits), [...lead, V]);
    all.push(teacher);
  } else if (t.kind === 'sparse') {
    const indices = tf.tensor(Int32Array.from(t.indices), [...lead, t.k], 'int32');
    const logProbs = tf.tensor(Float32Array.from(t.logProbs), [...lead, t.k]);
    teacher = { indices, logProbs };
    all.push(indices, logProbs);
  } else {
    const th = tf.tensor(Float32Array.from(t.hidden), [...lead, t.hiddenSize]);
    const tw = tf.tensor2d(Float32Array.from(t.weight), [t.hiddenSize, V]);
    const tb = t.bias ? tf.tensor1d(Float32Array.from(t.bias)) : undefined;
    teacher = tb ? { hidden: th, weight: tw, bias: tb } : { hidden: th, weight: tw };
    all.push(th, tw, ...(tb ? [tb] : []));
  }
  let dy: tf.Tensor | null = null;
  if (x.dy !== undefined) {
    dy =
      typeof x.dy === 'number'
        ? tf.scalar(x.dy)
        : x.config?.reduction === 'none'
          ? tf.tensor(Float32Array.from(x.dy), lead)
          : tf.scalar(x.dy[0]!);
    all.push(dy);
  }
  return { labels, hidden, weight, bias, teacher, dy, all };
}

/** A memoryBudgetBytes under which a taped call runs `rows` rows per chunk. */
function budgetFor(spec: NamedLinearCase, x: LinearReferenceInput): number | undefined {
  if (spec.chunkRows === undefined) return undefined;
  const shapes = shapesOf(spec, x);
  const transform = { logitScale: x.config?.logitScale ?? 1, softCap: x.config?.softCap ?? null };
  const gradients: LinearGradients = x.config?.returnComponents
    ? 'recompute-components'
    : x.config?.reduction === 'none'
      ? 'recompute'
      : 'eager';
  const k = workingTensorsPerRow(shapes, transform, gradients);
  const fixed = x.hiddenSize * x.vocab * 4 + x.rows * x.hiddenSize * 4;
  const budget = fixed + spec.chunkRows * x.vocab * 4 * k;
  const plan = planLinearChunks(shapes, transform, gradients, budget, Infinity, 'test');
  expect(plan.chunks, 'the budget gives several chunks').toBeGreaterThan(1);
  expect(plan.rowsPerChunk).toBe(spec.chunkRows);
  return budget;
}

function shapesOf(spec: NamedLinearCase, x: LinearReferenceInput): LinearShapes {
  const t = x.teacher;
  return {
    leadingShape: [...spec.leading],
    rows: x.rows,
    hiddenSize: x.hiddenSize,
    vocab: x.vocab,
    labelKind: x.labelKind,
    teacherKind: t.kind,
    teacherWidth: t.kind === 'dense' ? 0 : t.kind === 'sparse' ? t.k : t.hiddenSize,
  };
}

function check(
  what: string,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tolerance: ArrayLike<number>,
  columns: number,
  context: string,
): void {
  const c = compareElements(actual, expected, tolerance, columns);
  // LINEAR_RATIOS=1: print how much of each tolerance the worst element uses
  if (process.env.LINEAR_RATIOS)
    console.log(`${context} | ${what}: ${c.worst?.ratio.toExponential(2)}`);
  expect(c.mismatches, formatMismatches(what, c, context, columns)).toBe(0);
}

/** The op's outputs on a case: value and components (untaped), value and gradients (taped). */
export interface OpOutputs {
  value: Float32Array;
  tapedValue: Float32Array;
  hardLoss: Float32Array | null;
  softLoss: Float32Array | null;
  gradHidden: Float32Array;
  gradWeight: Float32Array;
  gradBias: Float32Array | null;
}

export async function runOp(spec: NamedLinearCase, x: LinearReferenceInput): Promise<OpOutputs> {
  const before = tf.memory().numTensors;
  const budget = budgetFor(spec, x);
  const config = { ...x.config, ...(budget === undefined ? {} : { memoryBudgetBytes: budget }) };
  const ts = tensorsOf(spec, x);
  const lossOf = (out: tf.Tensor | DistillationLossComponents): tf.Tensor =>
    out instanceof tf.Tensor ? out : out.loss;
  // untaped
  const untaped = fusedLinearDistillationLoss(
    ts.labels,
    { hidden: ts.hidden, weight: ts.weight, ...(ts.bias ? { bias: ts.bias } : {}) },
    ts.teacher,
    config,
  );
  const parts =
    untaped instanceof tf.Tensor ? [untaped] : [untaped.loss, untaped.hardLoss, untaped.softLoss];
  const [value, hardLoss, softLoss] = await Promise.all(
    parts.map(async (t) => (await t.data()) as Float32Array),
  );
  tf.dispose(parts);
  // taped
  const f = (h: tf.Tensor, w: tf.Tensor, b?: tf.Tensor) => {
    const head: LinearHead = b ? { hidden: h, weight: w, bias: b } : { hidden: h, weight: w };
    return lossOf(fusedLinearDistillationLoss(ts.labels, head, ts.teacher, config));
  };
  const args = [ts.hidden, ts.weight, ...(ts.bias ? [ts.bias] : [])];
  const { value: tv, grads } = tf.valueAndGrads(f)(args, ts.dy ?? undefined);
  const out: OpOutputs = {
    value: value!,
    tapedValue: (await tv.data()) as Float32Array,
    hardLoss: hardLoss ?? null,
    softLoss: softLoss ?? null,
    gradHidden: (await grads[0]!.data()) as Float32Array,
    gradWeight: (await grads[1]!.data()) as Float32Array,
    gradBias: ts.bias ? ((await grads[2]!.data()) as Float32Array) : null,
  };
  tf.dispose([tv, ...grads, ...ts.all]);
  expect(tf.memory().numTensors, 'tensors leaked').toBe(before);
  return out;
}

/** Compares the op's outputs with a reference within the tolerances (vitest expectations). */
export function checkOutputs(
  out: OpOutputs,
  ref: LinearReferenceResult,
  tol: LinearTolerances,
  x: LinearReferenceInput,
  context: string,
): void {
  check('loss value (untaped)', out.value, ref.value, tol.value, 1, context);
  check('loss value (taped)', out.tapedValue, ref.value, tol.value, 1, context);
  if (x.config?.returnComponents) {
    check('hard loss', out.hardLoss!, ref.hardLoss, tol.hardLoss, 1, context);
    check('soft loss', out.softLoss!, ref.softLoss, tol.softLoss, 1, context);
  }
  check('∂L/∂hidden', out.gradHidden, ref.gradHidden, tol.gradHidden, x.hiddenSize, context);
  check('∂L/∂weight', out.gradWeight, ref.gradWeight, tol.gradWeight, x.vocab, context);
  if (out.gradBias) check('∂L/∂bias', out.gradBias, ref.gradBias, tol.gradBias, x.vocab, context);
}

/** Runs one case and checks it. */
export async function runLinearCase(spec: NamedLinearCase, seed: number): Promise<void> {
  const x = makeLinearCase(spec, seed);
  const ref = referenceFusedLinearDistillationLoss(x);
  const tol = linearTolerances(x, ref);
  const out = await runOp(spec, x);
  checkOutputs(out, ref, tol, x, `${spec.name} (seed ${seed}, ${tf.getBackend()})`);
}

/** The op passes against the right reference and fails against each wrong one. */
export async function wrongReferenceCaught(seed: number): Promise<void> {
  const spec: NamedLinearCase = {
    name: 'wrong references',
    ...base,
    teacher: 'dense',
    config: { softCap: 2, alpha: 0.3, temperature: 2 },
  };
  const x = makeLinearCase(spec, seed);
  const ref = referenceFusedLinearDistillationLoss(x);
  const tol = linearTolerances(x, ref);
  const out = await runOp(spec, x);
  checkOutputs(out, ref, tol, x, 'the right reference');
  const outside = (fault: LinearReferenceFault, key: 'gradHidden' | 'gradWeight' | 'gradBias') => {
    const wrong = referenceFusedLinearDistillationLoss(x, fault);
    const actual = key === 'gradBias' ? out.gradBias! : out[key];
    return compareElements(actual, wrong[key], tol[key]).mismatches;
  };
  expect(outside('no-softcap-derivative', 'gradHidden')).toBeGreaterThan(0);
  expect(outside('no-softcap-derivative', 'gradWeight')).toBeGreaterThan(0);
  expect(outside('no-softcap-derivative', 'gradBias')).toBeGreaterThan(0);
  expect(outside('bias-missing-row', 'gradBias')).toBeGreaterThan(0);
}
