/**
 * Inputs larger than one storage binding: the rows are dispatched in chunks bound at aligned
 * byte offsets of the same buffers (src/kernels/plan.ts rowChunks, shaders/distill-common.wgsl
 * "Row chunks"), and 'mean' / 'sum' reduce over every chunk's rows without a read-back. Each
 * case is compared with the float64 reference element by element (the value, both gradients)
 * with the derived tolerances of src/validation.
 *
 * - Forced small chunks (a test-only binding limit of a few KiB): many chunk boundaries, heads
 *   (rows that start inside an aligned block) and the cross-chunk reduction, cheaply, on every
 *   adapter and both plans.
 * - Real chunks at lavapipe's 128 MiB binding limit: [129, 262144] (two chunks), C whose row
 *   size is not a multiple of 256 bytes (262,143 and 65,537), rank-3 logits. A device with a
 *   larger limit (SwiftShader: 1 GiB) is capped at 128 MiB through the test hook, so these
 *   sizes are chunked, and checked, on every adapter.
 * - Rank-N logits `[..., C]`: 'none' in the leading shape, gradients in the inputs' shapes.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, test } from 'vitest';
import { distillationLoss, type Reduction } from '../src/index.js';
import {
  overrideAdapterClassForTesting,
  overrideBindingLimitForTesting,
  rowChunks,
  type AdapterClass,
} from '../src/kernels/plan.js';
import { deviceLimit } from '../src/tfjs-internals.js';
import { countDispatches } from '../bench/core/lib/dispatch-counter.js';
import { useCheckedWebGPU, withValidationScope } from './helpers/backend.js';
import {
  makeInputs,
  referenceFor,
  tolerancesFor,
  upstreamFor,
  type CaseInputs,
  type CaseSpec,
} from './helpers/cases.js';
import { expectClose } from './helpers/compare.js';

useCheckedWebGPU();

interface ChunkCase extends CaseSpec {
  /** The logits' leading shape (its product is `batch`). Default [batch]. */
  leading?: number[];
  plan: AdapterClass;
}

interface Outputs {
  value: Float32Array;
  valueShape: number[];
  gradStudent: Float32Array;
  gradTeacher: Float32Array | null;
  gradShapes: number[][];
}

/** The op forward + backward on logits of shape [...leading, C] (no reshape on the tape). */
async function runShaped(
  spec: ChunkCase,
  inputs: CaseInputs,
  dyValues: Float32Array | null,
): Promise<Outputs> {
  const leading = spec.leading ?? [spec.batch];
  const shape = [...leading, spec.classes];
  const config = { alpha: spec.alpha, temperature: spec.temperature, reduction: spec.reduction };
  const s = tf.tensor(inputs.student, shape);
  const t = tf.tensor(inputs.teacher, shape);
  const y =
    spec.labelKind === 'index'
      ? tf.tensor(inputs.labels, leading, 'int32')
      : tf.tensor(inputs.labels, shape);
  const dy = dyValues
    ? spec.reduction === 'none'
      ? tf.tensor(dyValues, leading)
      : tf.scalar(dyValues[0]!)
    : undefined;
  const mode = spec.teacherGrad ?? 'lazy';
  const teacherVariable = mode === 'tape' ? tf.variable(t) : undefined;
  try {
    const out =
      mode === 'none'
        ? tf.valueAndGrads((a: tf.Tensor) => distillationLoss(y, a, t, config))([s], dy)
        : tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) => distillationLoss(y, a, b, config))(
            // 'tape': a trainable variable, so that the forward kernel writes both gradients
            // (tf.mul(t, 1) is a stock op, which cannot bind more than one binding's bytes).
            [s, teacherVariable ?? t],
            dy,
          );
    const result: Outputs = {
      value: (await out.value.data()) as Float32Array,
      valueShape: out.value.shape,
      gradStudent: (await out.grads[0]!.data()) as Float32Array,
      gradTeacher: mode === 'none' ? null : ((await out.grads[1]!.data()) as Float32Array),
      gradShapes: out.grads.map((g) => g.shape),
    };
    tf.dispose([out.value, ...out.grads]);
    return result;
  } finally {
    tf.dispose([s, t, y]);
    teacherVariable?.dispose();
    dy?.dispose();
  }
}

/** Runs a case with its plan (and any binding override already set) and compares everything. */
async function checkChunked(spec: ChunkCase): Promise<void> {
  const context = JSON.stringify({ ...spec, mutate: undefined });
  const before = tf.memory().numTensors;
  const inputs = makeInputs(spec);
  const dyValues = upstreamFor(spec);
  overrideAdapterClassForTesting(() => spec.plan);
  const fused = await withValidationScope(() => runShaped(spec, inputs, dyValues));
  expect(tf.memory().numTensors, `leaked tensors — ${context}`).toBe(before);
  const leading = spec.leading ?? [spec.batch];
  expect(fused.valueShape).toEqual(spec.reduction === 'none' ? leading : []);
  for (const g of fused.gradShapes) expect(g).toEqual([...leading, spec.classes]);
  const ref = referenceFor(spec, inputs, dyValues);
  // The tolerances replay the plan (choosePlan) under the same overrides as the run.
  const tol = tolerancesFor(spec, inputs, dyValues, spec.plan);
  const C = spec.classes;
  expectClose('loss value', fused.value, ref.value, tol.value, context);
  expectClose('∂L/∂student', fused.gradStudent, ref.gradStudent, tol.gradStudent, context, C);
  if (fused.gradTeacher) {
    expectClose('∂L/∂teacher', fused.gradTeacher, ref.gradTeacher, tol.gradTeacher, context, C);
  }
}

const base = {
  temperature: 4,
  alpha: 0.3,
  seed: 7,
} as const;

describe('rowChunks', () => {
  test('one chunk at offset 0 when the rows fit; else aligned offsets, heads, whole rows', () => {
    expect(rowChunks(10, 100, 4000, 256)).toEqual([
      { firstRow: 0, rows: 10, offsetBytes: 0, sizeBytes: 4000, headElements: 0 },
    ]);
    for (const [B, C, limit] of [
      [50, 37, 4096],
      [50, 1000, 12_288],
      [129, 262_144, 128 * 2 ** 20],
      [129, 262_143, 128 * 2 ** 20],
      [520, 65_537, 128 * 2 ** 20],
      [300, 10, 1024],
    ] as const) {
      const chunks = rowChunks(B, C, limit, 256);
      expect(chunks.length).toBeGreaterThan(1);
      let next = 0;
      for (const c of chunks) {
        expect(c.firstRow).toBe(next);
        expect(c.offsetBytes % 256).toBe(0);
        expect(c.sizeBytes).toBeLessThanOrEqual(limit);
        expect(c.sizeBytes % 4).toBe(0);
        expect(c.offsetBytes + 4 * c.headElements).toBe(4 * C * c.firstRow);
        expect(c.headElements).toBeLessThan(64);
        if (C % 4 === 0) expect(c.headElements % 4).toBe(0);
        expect(c.offsetBytes + c.sizeBytes).toBe(4 * C * (c.firstRow + c.rows));
        next += c.rows;
      }
      expect(next).toBe(B);
    }
    expect(rowChunks(129, 262_144, 128 * 2 ** 20, 256).map((c) => c.rows)).toEqual([128, 1]);
    expect(() => rowChunks(2, 1000, 4000, 256)).toThrow(RangeError);
  });
});

describe('forced small chunks (test-only binding limit): every adapter, both plans', () => {
  const limit = 4096;
  const shapes: [string, number[], number, number][] = [
    ['C=10 (40-byte rows, heads everywhere)', [300], 10, limit],
    ['C=37 (odd C, scalar chunks)', [5, 11], 37, limit],
    // 4000-byte rows: 4 KiB would not hold a row behind a head of up to 252 bytes
    ['C=1000 (vec4, 4000-byte rows, 12 KiB bindings)', [13], 1000, 3 * limit],
  ];
  const variants: [Reduction, 'index' | 'dense', 'tape' | 'lazy' | 'none', 'unit' | 'random'][] = [
    ['mean', 'index', 'tape', 'unit'],
    ['sum', 'dense', 'lazy', 'random'],
    ['none', 'index', 'lazy', 'random'],
    ['mean', 'dense', 'none', 'random'],
  ];
  for (const plan of ['software', 'hardware'] as const) {
    for (const [name, leading, classes, bindingLimit] of shapes) {
      test.each(variants)(
        `${plan} plan, ${name}: %s %s teacher=%s dy=%s`,
        async (reduction, labelKind, teacherGrad, upstream) => {
          const batch = leading.reduce((a, b) => a * b, 1);
          overrideBindingLimitForTesting(bindingLimit);
          expect(rowChunks(batch, classes, bindingLimit, 256).length).toBeGreaterThan(2);
          await checkChunked({
            ...base,
            batch,
            classes,
            leading,
            reduction,
            labelKind,
            teacherGrad,
            upstream,
            plan,
            seed: base.seed + classes,
          });
        },
      );
    }
  }

  test('dispatches: one forward per chunk, one reduction over all of them, scale per chunk', async () => {
    const B = 300;
    const C = 10;
    overrideBindingLimitForTesting(limit);
    const chunks = rowChunks(B, C, limit, deviceLimit('minStorageBufferOffsetAlignment')).length;
    expect(chunks).toBeGreaterThan(2);
    const s = tf.randomNormal([B, C]);
    const t = tf.randomNormal([B, C]);
    const y = tf.tensor1d(
      Array.from({ length: B }, (_, i) => i % C),
      'int32',
    );
    const forward = countDispatches(() => distillationLoss(y, s, t).dispose());
    expect(forward).toBe(chunks + 1);
    const none = countDispatches(() => distillationLoss(y, s, t, { reduction: 'none' }).dispose());
    expect(none).toBe(chunks);
    const dy = tf.scalar(0.5);
    let grads: tf.Tensor[] = [];
    const step = countDispatches(() => {
      const out = tf.valueAndGrads((a: tf.Tensor) => distillationLoss(y, a, t))([s], dy);
      grads = [out.value, ...out.grads];
    });
    expect(step).toBe(chunks + 1 + chunks);
    tf.dispose([s, t, y, dy, ...grads]);
  });

  test('every divergence and option runs in the kernel row chunks (no composition of stock ops)', () => {
    const B = 300;
    const C = 10;
    overrideBindingLimitForTesting(limit);
    const chunks = rowChunks(B, C, limit, deviceLimit('minStorageBufferOffsetAlignment')).length;
    expect(chunks).toBeGreaterThan(2);
    const s = tf.randomNormal([B, C]);
    const t = tf.randomNormal([B, C]);
    const y = tf.tensor1d(
      Array.from({ length: B }, (_, i) => (i % 7 === 3 ? -100 : i % C)),
      'int32',
    );
    for (const config of [
      { divergence: 'jsd' },
      { divergence: 'reverse-kl', reduction: 'sum' },
      { divergence: 'jsd', beta: 0.2, ignoreIndex: -100 },
    ] as const) {
      // One forward dispatch per chunk and one reduction: a composition would take dozens.
      const dispatches = countDispatches(() => distillationLoss(y, s, t, config).dispose());
      expect(dispatches, JSON.stringify(config)).toBe(chunks + 1);
    }
    const components = countDispatches(() => {
      const out = distillationLoss(y, s, t, {
        divergence: 'reverse-kl',
        ignoreIndex: -100,
        returnComponents: true,
      });
      tf.dispose([out.loss, out.hardLoss, out.softLoss]);
    });
    expect(components).toBe(chunks + 2); // one more dispatch writes both components
    tf.dispose([s, t, y]);
  });
});

describe('real chunks past maxStorageBufferBindingSize', () => {
  /** lavapipe's binding limit; a device with a larger one is capped to it. */
  const realLimit = 128 * 2 ** 20;
  const bindingLimit = () => Math.min(deviceLimit('maxStorageBufferBindingSize'), realLimit);
  const cases: [
    string,
    number[],
    number,
    Reduction,
    'index' | 'dense',
    'tape' | 'lazy' | 'none',
  ][] = [
    [
      '[129, 262144] mean, index labels, both gradients on the tape',
      [129],
      262_144,
      'mean',
      'index',
      'tape',
    ],
    [
      '[129, 262143] none, index labels, lazy teacher gradient',
      [129],
      262_143,
      'none',
      'index',
      'lazy',
    ],
    [
      '[2, 260, 65537] sum, dense labels, student gradient',
      [2, 260],
      65_537,
      'sum',
      'dense',
      'none',
    ],
    [
      '[3, 43, 262144] none, dense labels, both gradients on the tape',
      [3, 43],
      262_144,
      'none',
      'dense',
      'tape',
    ],
  ];
  test.each(cases)(
    '%s',
    async (_name, leading, classes, reduction, labelKind, teacherGrad) => {
      const batch = leading.reduce((a, b) => a * b, 1);
      overrideBindingLimitForTesting(realLimit);
      const alignment = deviceLimit('minStorageBufferOffsetAlignment');
      expect(rowChunks(batch, classes, bindingLimit(), alignment).length).toBeGreaterThan(1);
      await checkChunked({
        ...base,
        batch,
        classes,
        leading,
        reduction,
        labelKind,
        teacherGrad,
        upstream: reduction === 'none' ? 'random' : 'unit',
        plan: 'software',
        seed: 99,
      });
    },
    300_000,
  );

  test('[3, 50, 32768] (rank 3, one chunk) on both plans', async () => {
    for (const plan of ['software', 'hardware'] as const) {
      await checkChunked({
        ...base,
        batch: 150,
        classes: 32_768,
        leading: [3, 50],
        reduction: 'mean',
        labelKind: 'index',
        teacherGrad: 'tape',
        upstream: 'random',
        plan,
        seed: 5,
      });
    }
  }, 120_000);
});

describe('limits beyond chunking: a RangeError before anything is dispatched', () => {
  /** A tensor as the op's checks see it (shape and dtype only): no data is ever allocated. */
  function shapeOnly(shape: number[], dtype: 'float32' | 'int32' = 'float32'): tf.Tensor {
    return {
      shape,
      dtype,
      rank: shape.length,
      dataId: {},
      isDisposed: false,
    } as unknown as tf.Tensor;
  }
  function expectRefused(
    shape: number[],
    message: RegExp,
    config?: Parameters<typeof distillationLoss>[3],
  ): void {
    const s = shapeOnly(shape);
    const y = shapeOnly(shape.slice(0, -1), 'int32');
    let dispatches = -1;
    expect(() => {
      dispatches = countDispatches(() => distillationLoss(y, s, s, config));
    }).toThrow(message);
    expect(dispatches).toBe(-1);
  }

  test('a gradient buffer beyond maxBufferSize', () => {
    const C = 262_144;
    const rows = Math.floor(deviceLimit('maxBufferSize') / (4 * C)) + 1;
    expectRefused([rows, C], /maxBufferSize \(\d+\); split the batch into calls of at most/);
    expectRefused([1, rows, C], /inputs of shape \[1, \d+, 262144\] need/);
  });

  test('row statistics beyond one binding', () => {
    const rows = Math.floor(deviceLimit('maxStorageBufferBindingSize') / 40) + 1;
    expectRefused([rows, 1], /row statistics .* exceed this device's maxStorageBufferBindingSize/);
  });
});
