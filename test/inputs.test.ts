/**
 * Every way tfjs (4.22) hands a tensor's data to the fused kernels, on the WebGPU backend,
 * against the float64 reference (the value and both gradients, element by element) and
 * bit for bit against the same numbers given as fresh float32 tensors:
 *
 * - widening casts, which tfjs makes by relabelling the tensor and keeping its int32/bool buffer
 *   (tf.cast(int32 | bool, 'float32'), .toFloat(), tf.oneHot(…).toFloat(), tf.cast(bool,
 *   'int32')): converted on the GPU, one dispatch per such input;
 * - data on the CPU, on the GPU, on another backend; reshaped, sliced, cast to its own dtype;
 *   a tf.variable; the outputs of a tfjs-layers model; tensors made from a GPUBuffer;
 * - what cannot be bound (complex64, a texture, no data, a mapped buffer) throws an error that
 *   names the input, before anything is dispatched.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/public/chained_ops/register_all_chained_ops';
import * as tfl from '@tensorflow/tfjs-layers';
import { describe, expect, test } from 'vitest';
import { distillationLoss } from '../src/index.js';
import { FUSED_DISTILLATION_LOSS } from '../src/kernels/names.js';
import { storedData, webgpuInternals } from '../src/tfjs-internals.js';
import { resolveConfig } from '../src/config.js';
import { countDispatches } from '../bench/core/lib/dispatch-counter.js';
import {
  tfDevice,
  useCheckedWebGPU,
  useCpu,
  useWebGPU,
  withValidationScope,
} from './helpers/backend.js';
import {
  adapterOf,
  makeInputs,
  referenceFor,
  runFused,
  tolerancesFor,
  type CaseInputs,
  type CaseResult,
  type CaseSpec,
} from './helpers/cases.js';
import { expectClose } from './helpers/compare.js';

useCheckedWebGPU();

type Mode = 'lazy' | 'tape';
const modes: Mode[] = ['lazy', 'tape'];

interface Built {
  y: tf.Tensor;
  s: tf.Tensor;
  t: tf.Tensor;
  /** Tensors the construction made on the way, disposed with the inputs. */
  extra?: tf.Tensor[];
}

/** The backend's live data ids (catches leaked temporaries, which are not engine tensors). */
function liveDataIds(): number {
  return tf.backend().numDataIds();
}

/** The input's data as tfjs stores it: its stored dtype, and whether it is still on the CPU. */
function storage(x: tf.Tensor): { dtype: string; onGpu: boolean } {
  const d = storedData(webgpuInternals(tf.backend()), x.dataId);
  return { dtype: d.dtype, onGpu: d.resource != null };
}

/** Uploads a tensor's data to the GPU now (what any GPU op on it would do first). */
function onGpu<T extends tf.Tensor>(x: T): T {
  webgpuInternals(tf.backend()).uploadToGPU(x.dataId);
  return x;
}

function config(spec: CaseSpec) {
  return { alpha: spec.alpha, temperature: spec.temperature, reduction: spec.reduction };
}

/**
 * Forward + backward of the fused op on the built tensors, both gradients. 'lazy': the teacher
 * as given (its gradient recomputed by the backward kernel, which reads every input again);
 * 'tape': the teacher through ×1 on the tape (the forward kernel writes both gradients).
 */
async function runBuilt(spec: CaseSpec, built: Built, mode: Mode): Promise<CaseResult> {
  const out = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) =>
    distillationLoss(built.y, a, mode === 'tape' ? tf.mul(b, 1) : b, config(spec)),
  )([built.s, built.t]);
  const value = (await out.value.data()) as Float32Array;
  const gradStudent = (await out.grads[0]!.data()) as Float32Array;
  const gradTeacher = (await out.grads[1]!.data()) as Float32Array;
  tf.dispose([out.value, ...out.grads]);
  return { value, gradStudent, gradTeacher };
}

/** Fused vs the float64 reference, and bit for bit vs the same inputs as fresh float32 tensors. */
async function expectMatches(
  spec: CaseSpec,
  inputs: CaseInputs,
  fused: CaseResult,
  mode: Mode,
  context: string,
): Promise<void> {
  const ref = referenceFor(spec, inputs, null);
  const tol = tolerancesFor(spec, inputs, null, adapterOf(spec));
  const C = spec.classes;
  expectClose('loss value', fused.value, ref.value, tol.value, context);
  expectClose('∂L/∂student', fused.gradStudent, ref.gradStudent, tol.gradStudent, context, C);
  expectClose('∂L/∂teacher', fused.gradTeacher!, ref.gradTeacher, tol.gradTeacher, context, C);
  const plain = await runFused({ ...spec, teacherGrad: mode }, inputs, null);
  expect([...fused.value], `value vs fresh float32 tensors — ${context}`).toEqual([...plain.value]);
  expect([...fused.gradStudent], `∂L/∂s vs fresh float32 — ${context}`).toEqual([
    ...plain.gradStudent,
  ]);
  expect([...fused.gradTeacher!], `∂L/∂t vs fresh float32 — ${context}`).toEqual([
    ...plain.gradTeacher!,
  ]);
}

/** Builds the inputs one way, runs both modes, checks values, gradients, leaks, GPU errors. */
async function checkConstruction(
  spec: CaseSpec,
  inputs: CaseInputs,
  build: () => Built,
  context: string,
  expectStorage?: (built: Built) => void,
): Promise<void> {
  for (const mode of modes) {
    const tensorsBefore = tf.memory().numTensors;
    const idsBefore = liveDataIds();
    const built = build();
    expectStorage?.(built);
    let fused: CaseResult;
    try {
      fused = await withValidationScope(() => runBuilt(spec, built, mode));
    } finally {
      tf.dispose([built.y, built.s, built.t, ...(built.extra ?? [])]);
    }
    expect(tf.memory().numTensors, `leaked tensors — ${context}`).toBe(tensorsBefore);
    expect(liveDataIds(), `leaked backend data — ${context}`).toBe(idsBefore);
    await expectMatches(spec, inputs, fused, mode, `${context}, ${mode} teacher`);
  }
}

function oneHotOf(indices: ArrayLike<number>, classes: number): Float32Array {
  const out = new Float32Array(indices.length * classes);
  for (let b = 0; b < indices.length; b++) out[b * classes + indices[b]!] = 1;
  return out;
}

function integerLogits(x: CaseInputs): void {
  for (const a of [x.student, x.teacher])
    for (let i = 0; i < a.length; i++) a[i] = Math.round(a[i]!);
}

const base: CaseSpec = {
  batch: 7,
  classes: 12,
  temperature: 4,
  alpha: 0.3,
  reduction: 'mean',
  labelKind: 'index',
  seed: 11,
};

type Where = 'cpu' | 'gpu';
const wheres: Where[] = ['cpu', 'gpu'];
/** Source tensors stay where tfjs created them ('cpu') or are uploaded first ('gpu'). */
const placer = (where: Where) => (x: tf.Tensor) => (where === 'gpu' ? onGpu(x) : x);

describe.each([10, 12])('C = %i', (classes) => {
  const spec = { ...base, classes };
  const dense: CaseSpec = { ...spec, labelKind: 'dense' };

  test.each(wheres)(
    'tf.oneHot(y, C).toFloat() labels (int32 storage), source on the %s',
    async (where) => {
      const index = makeInputs(spec);
      const inputs = { ...index, labels: oneHotOf(index.labels, classes) };
      const put = placer(where);
      await checkConstruction(
        dense,
        inputs,
        () => {
          const idx = put(tf.tensor1d(index.labels as Int32Array, 'int32'));
          const hot = tf.oneHot(idx, classes);
          return {
            y: hot.toFloat(),
            s: tf.tensor2d(inputs.student, [spec.batch, classes]),
            t: tf.tensor2d(inputs.teacher, [spec.batch, classes]),
            extra: [idx, hot],
          };
        },
        `oneHot().toFloat(), ${where}`,
        (b) => expect(storage(b.y).dtype).toBe('int32'),
      );
    },
  );

  test.each(wheres)(
    "tf.cast(int32, 'float32') logits and labels (int32 storage), source on the %s",
    async (where) => {
      const inputs = makeInputs({ ...dense, mutate: integerLogits });
      const put = placer(where);
      const [B, C] = [spec.batch, classes];
      await checkConstruction(
        dense,
        inputs,
        () => {
          const si = put(tf.tensor2d(Int32Array.from(inputs.student), [B, C], 'int32'));
          const ti = put(tf.tensor2d(Int32Array.from(inputs.teacher), [B, C], 'int32'));
          // Soft labels are not integers: integer one-hot rows of the same indices instead.
          return {
            y: tf.tensor2d(inputs.labels, [B, C]),
            s: tf.cast(si, 'float32'),
            t: ti.toFloat(),
            extra: [si, ti],
          };
        },
        `cast(int32) logits, ${where}`,
        (b) => {
          expect(storage(b.s)).toEqual({ dtype: 'int32', onGpu: where === 'gpu' });
          expect(storage(b.t).dtype).toBe('int32');
        },
      );
      const index = makeInputs({ ...spec, mutate: integerLogits });
      const hotInputs = { ...index, labels: oneHotOf(index.labels, C) };
      await checkConstruction(
        dense,
        hotInputs,
        () => {
          const yi = put(tf.tensor2d(Int32Array.from(hotInputs.labels), [B, C], 'int32'));
          const si = put(tf.tensor2d(Int32Array.from(index.student), [B, C], 'int32'));
          return {
            y: tf.cast(yi, 'float32'),
            s: tf.cast(si, 'float32'),
            t: tf.tensor2d(index.teacher, [B, C]),
            extra: [yi, si],
          };
        },
        `cast(int32) labels, ${where}`,
        (b) => expect(storage(b.y).dtype).toBe('int32'),
      );
    },
  );

  test.each(wheres)(
    "tf.cast(bool, 'float32') labels (bool storage), source on the %s",
    async (where) => {
      const index = makeInputs(spec);
      const inputs = { ...index, labels: oneHotOf(index.labels, classes) };
      const put = placer(where);
      await checkConstruction(
        dense,
        inputs,
        () => {
          const yb = put(
            tf.tensor2d(
              Array.from(inputs.labels, (v) => v === 1),
              [spec.batch, classes],
              'bool',
            ),
          );
          return {
            y: tf.cast(yb, 'float32'),
            s: tf.tensor2d(inputs.student, [spec.batch, classes]),
            t: tf.tensor2d(inputs.teacher, [spec.batch, classes]),
            extra: [yb],
          };
        },
        `cast(bool) labels, ${where}`,
        (b) => expect(storage(b.y).dtype).toBe('bool'),
      );
    },
  );

  test("bool made on the GPU by a comparison, then tf.cast(…, 'float32') labels", async () => {
    const index = makeInputs(spec);
    const inputs = { ...index, labels: oneHotOf(index.labels, classes) };
    await checkConstruction(
      dense,
      inputs,
      () => {
        const f = onGpu(tf.tensor2d(inputs.labels, [spec.batch, classes]));
        const yb = tf.greater(f, 0.5);
        return {
          y: tf.cast(yb, 'float32'),
          s: tf.tensor2d(inputs.student, [spec.batch, classes]),
          t: tf.tensor2d(inputs.teacher, [spec.batch, classes]),
          extra: [f, yb],
        };
      },
      'greater() → cast(bool) labels',
      (b) => expect(storage(b.y)).toEqual({ dtype: 'bool', onGpu: true }),
    );
  });

  test.each(wheres)(
    "int32 labels made by tf.cast(bool, 'int32') (bool storage read as i32), source on the %s",
    async (where) => {
      const inputs = makeInputs({
        ...spec,
        mutate: (x) => x.labels.forEach((v, i) => (x.labels[i] = v % 2)),
      });
      const put = placer(where);
      await checkConstruction(
        spec,
        inputs,
        () => {
          const yb = put(
            tf.tensor1d(
              Array.from(inputs.labels, (v) => v === 1),
              'bool',
            ),
          );
          return {
            y: tf.cast(yb, 'int32'),
            s: tf.tensor2d(inputs.student, [spec.batch, classes]),
            t: tf.tensor2d(inputs.teacher, [spec.batch, classes]),
            extra: [yb],
          };
        },
        `cast(bool, int32) labels, ${where}`,
        (b) => expect(storage(b.y).dtype).toBe('bool'),
      );
    },
  );

  test.each(['index', 'dense'] as const)(
    'fresh tensors, data still on the CPU, %s labels',
    async (labelKind) => {
      const s2 = { ...spec, labelKind };
      const inputs = makeInputs(s2);
      const [B, C] = [spec.batch, classes];
      await checkConstruction(
        s2,
        inputs,
        () => ({
          y:
            labelKind === 'index'
              ? tf.tensor1d(inputs.labels, 'int32')
              : tf.tensor2d(inputs.labels, [B, C]),
          s: tf.tensor2d(inputs.student, [B, C]),
          t: tf.tensor2d(inputs.teacher, [B, C]),
        }),
        `fresh CPU tensors, ${labelKind} labels`,
        (b) => {
          for (const x of [b.y, b.s, b.t]) expect(storage(x).onGpu).toBe(false);
        },
      );
    },
  );

  test('data living on the cpu backend (moved by tfjs on first use), int32 cast there', async () => {
    const index = makeInputs({ ...spec, mutate: integerLogits });
    const inputs = { ...index, labels: oneHotOf(index.labels, classes) };
    const [B, C] = [spec.batch, classes];
    for (const mode of modes) {
      const tensorsBefore = tf.memory().numTensors;
      await useCpu();
      const yi = tf.tensor2d(Int32Array.from(inputs.labels), [B, C], 'int32');
      const ti = tf.tensor2d(Int32Array.from(inputs.teacher), [B, C], 'int32');
      const built: Built = {
        y: tf.cast(yi, 'float32'),
        s: tf.tensor2d(inputs.student, [B, C]),
        t: tf.cast(ti, 'float32'),
      };
      await useWebGPU();
      let fused: CaseResult;
      try {
        fused = await withValidationScope(() => runBuilt(dense, built, mode));
        expect(storage(built.y).dtype).toBe('int32');
      } finally {
        tf.dispose([yi, ti, built.y, built.s, built.t]);
      }
      expect(tf.memory().numTensors).toBe(tensorsBefore);
      await expectMatches(dense, inputs, fused, mode, `moved from the cpu backend, ${mode}`);
    }
  });

  test.each(wheres)('reshaped from [B·C] and [B, 1, C], source on the %s', async (where) => {
    const inputs = makeInputs(dense);
    const put = placer(where);
    const [B, C] = [spec.batch, classes];
    await checkConstruction(
      dense,
      inputs,
      () => {
        const flat = put(tf.tensor1d(inputs.student));
        const cube = put(tf.tensor3d(inputs.teacher, [B, 1, C]));
        const yFlat = put(tf.tensor1d(inputs.labels));
        return {
          y: tf.reshape(yFlat, [B, C]),
          s: tf.reshape(flat, [B, C]),
          t: tf.reshape(cube, [B, C]),
          extra: [flat, cube, yFlat],
        };
      },
      `reshaped, ${where}`,
    );
  });

  test.each(wheres)('sliced out of a bigger tensor, source on the %s', async (where) => {
    const inputs = makeInputs(dense);
    const put = placer(where);
    const [B, C] = [spec.batch, classes];
    const embed = (x: Float32Array) => {
      const big = new Float32Array((B + 3) * (C + 5)).fill(1e6);
      for (let b = 0; b < B; b++) big.set(x.subarray(b * C, (b + 1) * C), (b + 2) * (C + 5) + 3);
      return put(tf.tensor2d(big, [B + 3, C + 5]));
    };
    await checkConstruction(
      dense,
      inputs,
      () => {
        const [bs, bt, by] = [
          embed(inputs.student),
          embed(inputs.teacher),
          embed(inputs.labels as Float32Array),
        ];
        const cut = (x: tf.Tensor) => tf.slice(x, [2, 3], [B, C]);
        return { y: cut(by), s: cut(bs), t: cut(bt), extra: [bs, bt, by] };
      },
      `sliced, ${where}`,
    );
  });

  test("tf.cast(x, 'float32') of float32 data, and tf.variable logits", async () => {
    const inputs = makeInputs(dense);
    const [B, C] = [spec.batch, classes];
    await checkConstruction(
      dense,
      inputs,
      () => {
        const [s0, t0, y0] = [inputs.student, inputs.teacher, inputs.labels].map((a) =>
          tf.tensor2d(a, [B, C]),
        );
        return {
          y: tf.cast(y0!, 'float32'),
          s: tf.cast(s0!, 'float32'),
          t: tf.cast(t0!, 'float32'),
          extra: [s0!, t0!, y0!],
        };
      },
      'cast float32 → float32',
    );
    // Variables: the student's, and a trainable teacher (both gradients written forward).
    const before = tf.memory().numTensors;
    const s0 = tf.tensor2d(inputs.student, [B, C]);
    const t0 = tf.tensor2d(inputs.teacher, [B, C]);
    const sv = tf.variable(s0, true, `inputs_test_student_${classes}`);
    const tv = tf.variable(t0, true, `inputs_test_teacher_${classes}`);
    const y = tf.tensor2d(inputs.labels, [B, C]);
    const { value, grads } = tf.variableGrads(
      () => distillationLoss(y, sv, tv, config(dense)) as tf.Scalar,
      [sv, tv],
    );
    const fused: CaseResult = {
      value: (await value.data()) as Float32Array,
      gradStudent: (await grads[sv.name]!.data()) as Float32Array,
      gradTeacher: (await grads[tv.name]!.data()) as Float32Array,
    };
    tf.dispose([value, grads[sv.name]!, grads[tv.name]!, sv, tv, s0, t0, y]);
    expect(tf.memory().numTensors).toBe(before);
    await expectMatches(dense, inputs, fused, 'tape', 'tf.variable student and teacher');
  });
});

test('outputs of a tfjs-layers model (dense layers) as both logits', async () => {
  const [B, F, C] = [9, 6, 10];
  const spec: CaseSpec = { ...base, batch: B, classes: C, labelKind: 'index' };
  const generated = makeInputs({ ...spec, batch: B, classes: F });
  const tensorsBefore = tf.memory().numTensors;
  const dense = (seed: number) => {
    const model = tfl.sequential({
      layers: [tfl.layers.dense({ units: C, inputShape: [F], useBias: true })],
    });
    const w = makeInputs({ ...spec, batch: F, classes: C, seed });
    const weights = [tf.tensor2d(w.student, [F, C]), tf.tensor1d(w.teacher.subarray(0, C))];
    model.layers[0]!.setWeights(weights);
    tf.dispose(weights);
    return model;
  };
  const studentModel = dense(1);
  const teacherModel = dense(2);
  const x = tf.tensor2d(generated.student.subarray(0, B * F), [B, F]);
  const labels = generated.labels.subarray(0, B);
  for (const mode of modes) {
    const s = studentModel.predict(x) as tf.Tensor;
    const t = teacherModel.apply(x) as tf.Tensor;
    const inputs: CaseInputs = {
      student: (await s.data()) as Float32Array,
      teacher: (await t.data()) as Float32Array,
      labels: Int32Array.from(labels),
    };
    const y = tf.tensor1d(inputs.labels, 'int32');
    const fused = await withValidationScope(() => runBuilt(spec, { y, s, t }, mode));
    tf.dispose([s, t, y]);
    await expectMatches(spec, inputs, fused, mode, `tfjs-layers outputs, ${mode}`);
  }
  studentModel.dispose();
  teacherModel.dispose();
  x.dispose();
  expect(tf.memory().numTensors).toBe(tensorsBefore);
});

describe('tensors made from a GPUBuffer: tf.tensor({buffer, zeroCopy?}, shape, dtype)', () => {
  const spec: CaseSpec = { ...base, labelKind: 'dense' };
  const [B, C] = [spec.batch, spec.classes];
  const device = tfDevice;
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  function bufferOf(data: Float32Array | Int32Array): GPUBuffer {
    const buffer = device().createBuffer({ size: data.byteLength, usage });
    device().queue.writeBuffer(
      buffer,
      0,
      data.buffer as ArrayBuffer,
      data.byteOffset,
      data.byteLength,
    );
    return buffer;
  }

  test.each([false, true])('float32 logits and labels, zeroCopy: %s', async (zeroCopy) => {
    const inputs = makeInputs(spec);
    const buffers: GPUBuffer[] = [];
    await checkConstruction(
      spec,
      inputs,
      () => {
        const make = (a: Float32Array) => {
          const buffer = bufferOf(a);
          buffers.push(buffer);
          return tf.tensor({ buffer, zeroCopy }, [B, C], 'float32');
        };
        return {
          y: make(inputs.labels as Float32Array),
          s: make(inputs.student),
          t: make(inputs.teacher),
        };
      },
      `GPUBuffer tensors, zeroCopy ${zeroCopy}`,
    );
    for (const b of buffers) b.destroy();
  });

  test.each([false, true])(
    "int32 GPUBuffers: index labels, and one-hot int32 cast to 'float32' labels, zeroCopy: %s",
    async (zeroCopy) => {
      const index = makeInputs({ ...spec, labelKind: 'index' });
      const buffers: GPUBuffer[] = [];
      const make = (a: Float32Array | Int32Array, shape: number[], dtype: 'float32' | 'int32') => {
        const buffer = bufferOf(a);
        buffers.push(buffer);
        return tf.tensor({ buffer, zeroCopy }, shape, dtype);
      };
      await checkConstruction(
        { ...spec, labelKind: 'index' },
        index,
        () => ({
          y: make(index.labels as Int32Array, [B], 'int32'),
          s: make(index.student, [B, C], 'float32'),
          t: make(index.teacher, [B, C], 'float32'),
        }),
        `int32 GPUBuffer index labels, zeroCopy ${zeroCopy}`,
      );
      const hot = { ...index, labels: oneHotOf(index.labels, C) };
      await checkConstruction(
        spec,
        hot,
        () => {
          const yi = make(Int32Array.from(hot.labels), [B, C], 'int32');
          return {
            y: tf.cast(yi, 'float32'),
            s: make(hot.student, [B, C], 'float32'),
            t: make(hot.teacher, [B, C], 'float32'),
            extra: [yi],
          };
        },
        `int32 GPUBuffer one-hot cast to float32, zeroCopy ${zeroCopy}`,
        (b) => expect(storage(b.y)).toEqual({ dtype: 'int32', onGpu: true }),
      );
      for (const b of buffers) b.destroy();
    },
  );

  test('what tfjs requires of the buffer: STORAGE | COPY_SRC usage, enough bytes', () => {
    const small = device().createBuffer({ size: 4 * B * C - 4, usage });
    const noCopySrc = device().createBuffer({
      size: 4 * B * C,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    });
    const before = tf.memory().numTensors;
    expect(() => tf.tensor({ buffer: small }, [B, C], 'float32')).toThrow(
      /smaller than tensor size/,
    );
    expect(() => tf.tensor({ buffer: noCopySrc, zeroCopy: true }, [B, C], 'float32')).toThrow(
      /STORAGE \| GPUBufferUsage.COPY_SRC/,
    );
    expect(tf.memory().numTensors).toBe(before);
    small.destroy();
    noCopySrc.destroy();
  });

  test('a zeroCopy buffer still mapped is refused by name; unmapped, it works', async () => {
    const inputs = makeInputs(spec);
    const buffer = device().createBuffer({ size: 4 * B * C, usage, mappedAtCreation: true });
    new Float32Array(buffer.getMappedRange()).set(inputs.student);
    const s = tf.tensor({ buffer, zeroCopy: true }, [B, C], 'float32');
    const t = tf.tensor2d(inputs.teacher, [B, C]);
    const y = tf.tensor2d(inputs.labels, [B, C]);
    const n = countDispatches(() =>
      expect(() => distillationLoss(y, s, t, config(spec))).toThrow(
        /input 'studentLogits'.*GPUBuffer is mapped/,
      ),
    );
    expect(n).toBe(0);
    buffer.unmap();
    const fused = await withValidationScope(() => runBuilt(spec, { y, s, t }, 'lazy'));
    tf.dispose([s, t, y]);
    buffer.destroy();
    await expectMatches(spec, inputs, fused, 'lazy', 'zeroCopy buffer after unmap');
  });
});

describe('what cannot be bound throws a named error before any dispatch', () => {
  const [B, C] = [3, 8];
  // The kernel's attributes as the op builds them: the resolved config, plus the gradients.
  const attrs = {
    ...resolveConfig({ temperature: 2 }),
    writeGradients: 'none',
    gradients: 'student',
  } as unknown as tf.NamedAttrMap;

  test('complex64 logits or labels: the op refuses them (validation), the kernel too', () => {
    const before = tf.memory().numTensors;
    const re = tf.randomNormal([B, C]);
    const s = tf.complex(re, re);
    const t = tf.randomNormal([B, C]);
    const y = tf.tensor1d([0, 1, 2], 'int32');
    const yc = tf.complex(t, t);
    const n = countDispatches(() => {
      expect(() => distillationLoss(y, s, t)).toThrow(
        /studentLogits must be float32, got complex64/,
      );
      expect(() => distillationLoss(yc, t, t)).toThrow(/labels must be int32/);
      // Past the op's checks, the kernel names the input and the stored dtype.
      expect(() =>
        tf
          .engine()
          .runKernel(
            FUSED_DISTILLATION_LOSS,
            { labels: y, studentLogits: s, teacherLogits: t },
            attrs,
          ),
      ).toThrow(/input 'studentLogits'.*stored as complex64/);
    });
    expect(n).toBe(0);
    tf.dispose([re, s, t, y, yc]);
    expect(tf.memory().numTensors).toBe(before);
  });

  test('float32 data read as i32 class indices is refused, never reinterpreted', () => {
    const s = tf.randomNormal([B, C]);
    const yf = tf.tensor1d([0, 1, 2]);
    // Relabel as int32 the way a widening cast would, without converting (tfjs never does
    // this for float32 → int32, which is a real conversion; the kernel must not trust dtype).
    const y = tf
      .engine()
      .makeTensorFromTensorInfo({ dataId: yf.dataId, shape: [B], dtype: 'int32' });
    const n = countDispatches(() =>
      expect(() =>
        tf
          .engine()
          .runKernel(
            FUSED_DISTILLATION_LOSS,
            { labels: y, studentLogits: s, teacherLogits: s },
            attrs,
          ),
      ).toThrow(/input 'labels'.*stored as float32 and the kernel reads i32/),
    );
    expect(n).toBe(0);
    tf.dispose([s, y, yf]);
  });

  test('a tensor whose data is a GPUTexture', async () => {
    const s = onGpu(tf.randomNormal([B, C]));
    const t = tf.randomNormal([B, C]);
    const y = tf.tensor1d([0, 1, 2], 'int32');
    const backend = webgpuInternals(tf.backend());
    const entry = storedData(backend, s.dataId) as { resource?: unknown };
    const buffer = entry.resource;
    const texture = backend.device.createTexture({
      size: [C, B],
      format: 'r32float',
      usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.TEXTURE_BINDING,
    });
    entry.resource = texture; // as FromPixels stores an imported image (tfjs-backend-webgpu 4.22)
    try {
      const n = countDispatches(() =>
        expect(() => distillationLoss(y, s, t)).toThrow(/input 'studentLogits'.*GPU texture/),
      );
      expect(n).toBe(0);
    } finally {
      entry.resource = buffer;
      texture.destroy();
    }
    await distillationLoss(y, s, t).data(); // and the op works again once it is a buffer
    tf.dispose([s, t, y]);
  });

  test('a tensor for which tfjs holds no data at all', () => {
    const backend = webgpuInternals(tf.backend());
    const s = tf.randomNormal([B, C]);
    const y = tf.tensor1d([0, 1, 2], 'int32');
    const empty = backend.makeTensorInfo([B, C], 'float32'); // neither values nor a buffer
    const n = countDispatches(() =>
      expect(() =>
        tf
          .engine()
          .runKernel(
            FUSED_DISTILLATION_LOSS,
            { labels: y, studentLogits: s, teacherLogits: empty as tf.Tensor },
            attrs,
          ),
      ).toThrow(/input 'teacherLogits'.*holds no data/),
    );
    expect(n).toBe(0);
    backend.disposeData(empty.dataId);
    tf.dispose([s, y]);
  });
});

describe('conversion dispatches', () => {
  test('+1 dispatch per input whose storage is int32/bool, none otherwise', async () => {
    const [B, C] = [16, 10];
    const before = tf.memory().numTensors;
    const idx = onGpu(
      tf.tensor1d(
        Array.from({ length: B }, (_, i) => i % C),
        'int32',
      ),
    );
    const si = onGpu(
      tf.tensor2d(
        Int32Array.from({ length: B * C }, (_, i) => ((i * 37) % 11) - 5),
        [B, C],
        'int32',
      ),
    );
    const s = onGpu(tf.randomNormal([B, C]));
    const t = onGpu(tf.randomNormal([B, C]));
    const hot = tf.oneHot(idx, C);
    const hotF = onGpu(tf.tensor2d(await hot.data(), [B, C], 'float32'));
    const [hotCast, sCast, tCast] = [hot.toFloat(), si.toFloat(), si.toFloat()];
    const count = (y: tf.Tensor, a: tf.Tensor, b: tf.Tensor) => {
      const outs: tf.Tensor[] = [];
      const n = countDispatches(() => {
        outs.push(distillationLoss(y, a, b));
      });
      return { n, out: outs[0]! };
    };
    const plain = count(hotF, s, t);
    const labelsCast = count(hotCast, s, t);
    const allCast = count(hotCast, sCast, tCast);
    expect([plain.n, labelsCast.n, allCast.n]).toEqual([1, 2, 4]);
    expect(await labelsCast.out.data()).toEqual(await plain.out.data());
    await allCast.out.data();
    tf.dispose([idx, si, s, t, hot, hotF, hotCast, sCast, tCast]);
    tf.dispose([plain.out, labelsCast.out, allCast.out]);
    expect(tf.memory().numTensors).toBe(before);
  });

  test('more elements than one grid dimension holds (2-D conversion grid), bit for bit', async () => {
    // 65 × 65536 one-hot int32 labels: 4,259,840 elements > 65535 workgroups × 64.
    const [B, C] = [65, 65_536];
    const before = liveDataIds();
    const idx = tf.tensor1d(
      Array.from({ length: B }, (_, i) => (i * 7919) % C),
      'int32',
    );
    const s = tf.randomNormal([B, C], 0, 2, 'float32', 5);
    const t = tf.randomNormal([B, C], 0, 2, 'float32', 6);
    const hot = tf.oneHot(idx, C);
    const cast = hot.toFloat();
    const fromHost = tf.tensor2d(oneHotOf(await idx.data(), C), [B, C]);
    const config = { reduction: 'none' as const };
    const a = distillationLoss(cast, s, t, config);
    const b = distillationLoss(fromHost, s, t, config);
    expect([...(await a.data())]).toEqual([...(await b.data())]);
    tf.dispose([idx, s, t, hot, cast, fromHost, a, b]);
    expect(liveDataIds()).toBe(before);
  });
});

describe('rank-N logits [..., C]: every leading index is a row', () => {
  const leading = [2, 3, 4];
  const C = 7;
  const B = 24;
  const spec: CaseSpec = {
    batch: B,
    classes: C,
    temperature: 3,
    alpha: 0.4,
    reduction: 'none',
    labelKind: 'index',
    seed: 77,
  };

  test.each(['webgpu', 'cpu'] as const)(
    "[2, 3, 4, 7] on %s: 'none' in the leading shape, gradients in the inputs' shapes, against the reference",
    async (backend) => {
      const inputs = makeInputs(spec);
      const ref = referenceFor(spec, inputs, null);
      const tol = tolerancesFor(spec, inputs, null, adapterOf(spec));
      await (backend === 'cpu' ? useCpu() : useWebGPU());
      try {
        const s = tf.tensor(inputs.student, [...leading, C]);
        const t = tf.tensor(inputs.teacher, [...leading, C]);
        const y = tf.tensor(inputs.labels, leading, 'int32');
        const out = tf.valueAndGrads((a: tf.Tensor, b: tf.Tensor) =>
          distillationLoss(y, a, b, { alpha: 0.4, temperature: 3, reduction: 'none' }),
        )([s, t]);
        expect(out.value.shape).toEqual(leading);
        expect(out.grads.map((g) => g.shape)).toEqual([
          [...leading, C],
          [...leading, C],
        ]);
        // The CPU composition has its own (float32, different order) roundings: 1e-5 abs.
        const slack = backend === 'cpu' ? 1e-5 : 0;
        const widen = (x: ArrayLike<number>) => Array.from(x, (v) => v + slack);
        expectClose('loss', await out.value.data(), ref.value, widen(tol.value), backend);
        const [gs, gt] = [await out.grads[0]!.data(), await out.grads[1]!.data()];
        expectClose('∂L/∂s', gs, ref.gradStudent, widen(tol.gradStudent), backend, C);
        expectClose('∂L/∂t', gt, ref.gradTeacher, widen(tol.gradTeacher), backend, C);
        tf.dispose([s, t, y, out.value, ...out.grads]);
      } finally {
        await useWebGPU();
      }
    },
  );

  test('shape errors name the leading shape, before any dispatch', () => {
    const s = tf.zeros([2, 3, C]);
    const cases: [() => unknown, RegExp][] = [
      [
        () => distillationLoss(tf.zeros([2, 4], 'int32'), s, s),
        /labels has shape \[2, 4\] but the logits' leading shape is \[2, 3\]/,
      ],
      [
        () => distillationLoss(tf.zeros([6], 'int32'), s, s),
        /int32 labels must have rank 2 \[2, 3\] \(class indices\), got int32 \[6\]/,
      ],
      [
        () => distillationLoss(tf.zeros([2, 3, C], 'int32'), s, s),
        /one-hot or soft labels must be float32/,
      ],
      [
        () => distillationLoss(tf.zeros([6, C]), s, s),
        /float32 labels must have rank 3 \[2, 3, 7\] \(one-hot or soft labels\), got float32 \[6, 7\]/,
      ],
      [
        () => distillationLoss(tf.zeros([2, 3], 'int32'), s, tf.zeros([3, 2, C])),
        /studentLogits has shape \[2, 3, 7\] but teacherLogits has shape \[3, 2, 7\]: they must match/,
      ],
      [
        () => distillationLoss(tf.zeros([2, 3], 'int32'), s, tf.zeros([2, 3, C + 128])),
        /teacher has 135 classes, student 7: pad the smaller with -Infinity to the same size \(see README/,
      ],
      [
        () => distillationLoss(tf.zeros([2, 0], 'int32'), tf.zeros([2, 0, C]), tf.zeros([2, 0, C])),
        /B ≥ 1 and C ≥ 1/,
      ],
    ];
    for (const [run, message] of cases) {
      let dispatches = -1;
      expect(() => {
        dispatches = countDispatches(() => run());
      }).toThrow(message);
      expect(dispatches).toBe(-1);
    }
    s.dispose();
  });
});
