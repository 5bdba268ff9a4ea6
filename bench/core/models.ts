/**
 * The teacher and student of the Keras "Knowledge Distillation" example
 * (https://keras.io/examples/vision/knowledge_distillation/), rebuilt with tfjs-layers.
 *
 * Both are the same small convnet with different widths:
 *
 *   Input [B, 28, 28, 1]
 *   → Conv2D(f1, 3×3, strides 2, 'same')            [B, 14, 14, f1]
 *   → LeakyReLU(α = 0.2)
 *   → MaxPooling2D(2×2, strides 1, 'same')           [B, 14, 14, f1]
 *   → Conv2D(f2, 3×3, strides 2, 'same')             [B, 7, 7, f2]
 *   → Flatten                                         [B, 49·f2]
 *   → Dense(10)                                       [B, 10]  logits (no softmax)
 *
 * teacher: f = [256, 512] → 1,433,610 parameters; student: f = [16, 32] → 20,490 parameters
 * (70× fewer). A narrower teacher (e.g. [64, 128]) serves the quick benchmark preset and the
 * tests, since the full one is slow on the CPU backend.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

/** MNIST images: height, width, channels. */
export const MNIST_INPUT_SHAPE = [28, 28, 1] as const;
/** MNIST classes. */
export const MNIST_CLASSES = 10;

/** Filter counts of the two conv layers in the Keras example. */
export const TEACHER_FILTERS = [256, 512] as const;
export const STUDENT_FILTERS = [16, 32] as const;

/** `countParams()` of the full-width models (asserted by test/models.test.ts). */
export const TEACHER_PARAMS = 1_433_610;
export const STUDENT_PARAMS = 20_490;

/** Options of {@link buildConvNet}. */
export interface ConvNetOptions {
  /** Filters of the first and second conv layer. */
  filters: readonly [number, number];
  /**
   * Seed of the glorotUniform kernel initializers: two builds with the same seed have
   * bit-identical weights. Omitted: unseeded (a fresh random init each build, as in Keras).
   */
  seed?: number;
  /** Model name (tfjs-layers makes layer names unique by itself). */
  name?: string;
  /** Input shape `[H, W, C]`, default MNIST's `[28, 28, 1]`. */
  inputShape?: readonly [number, number, number];
  /** Number of output logits, default 10. */
  classes?: number;
}

/** Options of {@link buildTeacher} / {@link buildStudent}. */
export interface ModelOptions {
  /**
   * Width multiplier applied to the default filter counts (rounded, at least 1).
   * Ignored when `filters` is given. Default 1.
   */
  width?: number;
  /** Explicit filter counts, e.g. `[64, 128]` for the quick preset's narrower teacher. */
  filters?: readonly [number, number];
  /** See {@link ConvNetOptions.seed}. */
  seed?: number;
  /** Model name, default 'teacher' / 'student'. */
  name?: string;
}

/**
 * A kernel initializer for the `index`-th weighted layer. Each layer gets its own seed
 * (`seed + index`): one seed for all layers would make the first values of every kernel come
 * from the same random stream, i.e. correlated across layers.
 */
function kernelInit(
  seed: number | undefined,
  index: number,
): ReturnType<typeof tfl.initializers.glorotUniform> {
  return tfl.initializers.glorotUniform(seed === undefined ? {} : { seed: seed + index });
}

/**
 * The Keras example's convnet with the given widths.
 *
 * @returns an un-compiled model mapping float32 `[B, 28, 28, 1]` images to `[B, 10]` logits.
 */
export function buildConvNet(options: ConvNetOptions): tfl.Sequential {
  const { filters, seed, inputShape = MNIST_INPUT_SHAPE, classes = MNIST_CLASSES } = options;
  for (const f of filters) {
    if (!Number.isInteger(f) || f < 1) {
      throw new RangeError(`buildConvNet: filters must be positive integers, got [${filters}]`);
    }
  }
  // Biases use the Keras/tfjs default 'zeros' initializer: deterministic already.
  return tfl.sequential({
    name: options.name,
    layers: [
      tfl.layers.conv2d({
        inputShape: [...inputShape],
        filters: filters[0],
        kernelSize: 3,
        strides: 2,
        padding: 'same',
        kernelInitializer: kernelInit(seed, 0),
      }),
      tfl.layers.leakyReLU({ alpha: 0.2 }),
      tfl.layers.maxPooling2d({ poolSize: 2, strides: 1, padding: 'same' }),
      tfl.layers.conv2d({
        filters: filters[1],
        kernelSize: 3,
        strides: 2,
        padding: 'same',
        kernelInitializer: kernelInit(seed, 1),
      }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: classes, kernelInitializer: kernelInit(seed, 2) }),
    ],
  });
}

/**
 * The analytic parameter count of {@link buildConvNet} (checked against `countParams()` in
 * the tests), so reports can print model sizes without building a model.
 */
export function convNetParamCount(
  filters: readonly [number, number],
  inputShape: readonly [number, number, number] = MNIST_INPUT_SHAPE,
  classes = MNIST_CLASSES,
): number {
  const [h, w, c] = inputShape;
  const [f1, f2] = filters;
  // 'same' padding with stride 2: ceil(n / 2); the stride-1 max pool keeps the size.
  const h2 = Math.ceil(Math.ceil(h / 2) / 2);
  const w2 = Math.ceil(Math.ceil(w / 2) / 2);
  const conv1 = 3 * 3 * c * f1 + f1;
  const conv2 = 3 * 3 * f1 * f2 + f2;
  const dense = h2 * w2 * f2 * classes + classes;
  return conv1 + conv2 + dense;
}

function resolveFilters(
  defaults: readonly [number, number],
  options: ModelOptions,
): [number, number] {
  if (options.filters) return [options.filters[0], options.filters[1]];
  const width = options.width ?? 1;
  if (!Number.isFinite(width) || width <= 0) {
    throw new RangeError(`width must be a finite number > 0, got ${String(width)}`);
  }
  return [
    Math.max(1, Math.round(defaults[0] * width)),
    Math.max(1, Math.round(defaults[1] * width)),
  ];
}

/**
 * The teacher: filters [256, 512] × `width` (or `filters`), 1,433,610 parameters at width 1.
 *
 * @returns `[B, 28, 28, 1]` → `[B, 10]` logits.
 */
export function buildTeacher(options: ModelOptions = {}): tfl.Sequential {
  return buildConvNet({
    filters: resolveFilters(TEACHER_FILTERS, options),
    seed: options.seed,
    name: options.name ?? 'teacher',
  });
}

/**
 * The student: filters [16, 32] × `width` (or `filters`), 20,490 parameters at width 1.
 *
 * @returns `[B, 28, 28, 1]` → `[B, 10]` logits.
 */
export function buildStudent(options: ModelOptions = {}): tfl.Sequential {
  return buildConvNet({
    filters: resolveFilters(STUDENT_FILTERS, options),
    seed: options.seed,
    name: options.name ?? 'student',
  });
}

/**
 * A snapshot of `model`'s weights (trainable and not), in `getWeights()` order.
 *
 * `getWeights()` returns the live variables, which the optimizer later reassigns; the clones
 * keep the values of now. The caller owns the returned tensors (`tf.dispose` them).
 */
export function cloneWeights(model: tfl.LayersModel): tf.Tensor[] {
  return model.getWeights().map((w) => w.clone());
}

/**
 * Copies `src`'s weights into `dst` (same architecture), e.g. to start the distilled student
 * and the from-scratch student from identical weights. Later training of either model does
 * not affect the other: optimizers assign new tensors to the variables, never write in place.
 */
export function setWeightsFrom(dst: tfl.LayersModel, src: tfl.LayersModel): void {
  const weights = src.getWeights();
  const shapes = dst.getWeights().map((w) => w.shape);
  if (
    shapes.length !== weights.length ||
    shapes.some((s, i) => !tf.util.arraysEqual(s, weights[i].shape))
  ) {
    throw new Error(
      `setWeightsFrom: architectures differ (${dst.name}: ${shapes.length} weights, ` +
        `${src.name}: ${weights.length})`,
    );
  }
  // setWeights assigns copies (the variables share the data by reference count).
  dst.setWeights(weights);
}
