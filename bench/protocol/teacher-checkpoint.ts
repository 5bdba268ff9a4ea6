/**
 * Teacher checkpoints: a trained teacher's weights saved to a JSON file (`--save-teacher`)
 * and loaded back (`--teacher`), so that runs can skip training the teacher.
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../lib/results.js';
import { buildConvNet } from '../models.js';

/** The `format` field of a teacher checkpoint file. */
export const TEACHER_CHECKPOINT_FORMAT = 'tfjs-fused-distill/teacher-weights@1';

/** What a checkpoint records about how its teacher was trained. */
export interface TeacherCheckpointInfo {
  dataset: string;
  filters: [number, number];
  trainImages: number;
  epochs: number;
  batchSize: number;
  seed: number;
  testAccuracy: number | null;
}

/**
 * A teacher checkpoint: JSON with the architecture (the convnet's filters), the weight shapes
 * in `getWeights()` order and the float32 weights, little-endian, concatenated, base64. tfjs'
 * own `file://` IO handlers need tfjs-node, which does not install on these machines.
 */
export interface TeacherCheckpoint extends TeacherCheckpointInfo {
  format: typeof TEACHER_CHECKPOINT_FORMAT;
  savedAt: string;
  weights: { name: string; shape: number[] }[];
  byteOrder: 'little-endian';
  data: string;
}

/** A teacher loaded from a checkpoint. */
export interface LoadedTeacher {
  model: tfl.Sequential;
  info: TeacherCheckpointInfo;
  path: string;
}

/** Writes `model`'s weights as a {@link TeacherCheckpoint}, atomically (temp file + rename). */
export async function saveTeacherCheckpoint(
  path: string,
  model: tfl.LayersModel,
  info: TeacherCheckpointInfo,
): Promise<void> {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
    throw new Error('saveTeacherCheckpoint: only little-endian hosts are supported');
  }
  const values = model.getWeights();
  const arrays = await Promise.all(values.map((w) => w.data() as Promise<Float32Array>));
  const total = arrays.reduce((n, a) => n + a.length, 0);
  const flat = new Float32Array(total);
  let offset = 0;
  for (const a of arrays) {
    flat.set(a, offset);
    offset += a.length;
  }
  const file: TeacherCheckpoint = {
    format: TEACHER_CHECKPOINT_FORMAT,
    ...info,
    savedAt: new Date().toISOString(),
    weights: model.weights.map((w, i) => ({ name: w.originalName, shape: [...values[i].shape] })),
    byteOrder: 'little-endian',
    data: Buffer.from(flat.buffer, flat.byteOffset, flat.byteLength).toString('base64'),
  };
  writeFileAtomic(path, JSON.stringify(file) + '\n');
}

/**
 * Reads a {@link TeacherCheckpoint} and rebuilds the teacher with its weights.
 *
 * @throws Error when the file is not such a checkpoint or its shapes do not match the
 *   architecture it names.
 */
export function loadTeacherCheckpoint(path: string): LoadedTeacher {
  const file = JSON.parse(readFileSync(path, 'utf8')) as Partial<TeacherCheckpoint>;
  if (file.format !== TEACHER_CHECKPOINT_FORMAT || !file.filters || !file.weights || !file.data) {
    throw new Error(`${path}: not a teacher checkpoint (format ${String(file.format)})`);
  }
  const bytes = Buffer.from(file.data, 'base64');
  const flat = new Float32Array(
    bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length),
  );
  const model = buildConvNet({ filters: file.filters, name: 'teacher' });
  try {
    const expected = model.getWeights().map((w) => w.shape);
    const shapes = file.weights.map((w) => w.shape);
    const same =
      expected.length === shapes.length &&
      expected.every((s, i) => tf.util.arraysEqual(s, shapes[i]));
    const needed = shapes.reduce((n, s) => n + tf.util.sizeFromShape(s), 0);
    if (!same || needed !== flat.length) {
      throw new Error(`${path}: weight shapes do not match a [${file.filters}] teacher`);
    }
    let offset = 0;
    const tensors = shapes.map((s) => {
      const size = tf.util.sizeFromShape(s);
      const t = tf.tensor(flat.subarray(offset, offset + size), s, 'float32');
      offset += size;
      return t;
    });
    model.setWeights(tensors);
    tf.dispose(tensors);
  } catch (err) {
    model.dispose();
    throw err;
  }
  const info: TeacherCheckpointInfo = {
    dataset: file.dataset ?? 'unknown',
    filters: [file.filters[0], file.filters[1]],
    trainImages: file.trainImages ?? NaN,
    epochs: file.epochs ?? NaN,
    batchSize: file.batchSize ?? NaN,
    seed: file.seed ?? NaN,
    testAccuracy: file.testAccuracy ?? null,
  };
  return { model, info, path };
}
