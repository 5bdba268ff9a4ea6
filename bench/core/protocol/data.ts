/**
 * The benchmark's data in host memory and on the backend: splits and their subsets, the
 * seeded per-epoch example order, and batches gathered from it and uploaded one at a time.
 *
 * Host data: images stay in host memory and each batch is uploaded as its own tensor, as a
 * Keras `fit` on NumPy arrays does. 60,000 MNIST images are 188 MB as float32, more than the
 * 128 MiB a storage buffer may hold on many adapters.
 */
import * as tf from '@tensorflow/tfjs-core';
import { mulberry32 } from 'tfjs-fused-distill/validation';

/** Floats per MNIST image (28 × 28 × 1). */
const PIXELS = 28 * 28;

/** One split in host memory: `count × 784` floats in [0, 1] and `count` int32 labels. */
export interface HostSplit {
  images: Float32Array;
  labels: Int32Array;
  count: number;
}

/** The data of a run, already limited to the preset's subsets. */
export interface BenchData {
  /** Dataset name, e.g. 'mnist'. */
  name: string;
  /** Where the files came from (for the report). */
  source: string;
  train: HostSplit;
  test: HostSplit;
}

/**
 * The first `limit` examples of `split` (views, no copy); the whole split for null.
 * MNIST's files are already in random order, so a prefix is a fair sample.
 *
 * @throws RangeError when the split holds fewer than `limit` examples.
 */
export function limitSplit(split: HostSplit, limit: number | null): HostSplit {
  if (limit === null || limit === split.count) return split;
  if (limit > split.count) {
    throw new RangeError(`asked for ${limit} examples but the split holds ${split.count}`);
  }
  return {
    images: split.images.subarray(0, limit * PIXELS),
    labels: split.labels.subarray(0, limit),
    count: limit,
  };
}

/**
 * The example order of one epoch: a Fisher–Yates shuffle seeded by (`seed`, `epoch`), so
 * every run given the same seed sees the same batches in the same order.
 */
export function epochOrder(count: number, seed: number, epoch: number): Int32Array {
  const order = new Int32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  const rng = mulberry32(Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(epoch, 0xc2b2ae35));
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const tmp = order[i];
    order[i] = order[j];
    order[j] = tmp;
  }
  return order;
}

/** A batch on the backend, with the example indices it was gathered from. */
export interface Batch {
  x: tf.Tensor4D;
  y: tf.Tensor1D;
  indices: Int32Array;
}

/** Gathers `order[start .. start + batchSize)` (fewer at the end) and uploads it. */
export function makeBatch(
  split: HostSplit,
  order: Int32Array,
  start: number,
  batchSize: number,
): Batch {
  const size = Math.min(batchSize, order.length - start);
  const indices = order.subarray(start, start + size);
  const pixels = new Float32Array(size * PIXELS);
  const labels = new Int32Array(size);
  for (let i = 0; i < size; i++) {
    const j = indices[i];
    pixels.set(split.images.subarray(j * PIXELS, (j + 1) * PIXELS), i * PIXELS);
    labels[i] = split.labels[j];
  }
  return {
    x: tf.tensor4d(pixels, [size, 28, 28, 1]),
    y: tf.tensor1d(labels, 'int32'),
    indices,
  };
}

/** The whole split as tensors (the test set: 10,000 images are 31 MB). */
export function splitTensors(split: HostSplit): { x: tf.Tensor4D; y: tf.Tensor1D } {
  return {
    x: tf.tensor4d(split.images, [split.count, 28, 28, 1]),
    y: tf.tensor1d(split.labels, 'int32'),
  };
}
