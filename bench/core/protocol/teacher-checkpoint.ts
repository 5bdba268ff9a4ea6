/**
 * Teacher checkpoints: a trained teacher's weights as a JSON object, encoded here and decoded
 * back into a model, so that runs can skip training the teacher. Storing them is the host's:
 * bench/node/teacher-checkpoint-file.ts writes and reads files (`--save-teacher`, `--teacher`).
 */
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
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

/** `model`'s weights as a {@link TeacherCheckpoint}. */
export async function encodeTeacherCheckpoint(
  model: tfl.LayersModel,
  info: TeacherCheckpointInfo,
): Promise<TeacherCheckpoint> {
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
    data: toBase64(new Uint8Array(flat.buffer, flat.byteOffset, flat.byteLength)),
  };
  return file;
}

/**
 * Rebuilds the teacher from a parsed {@link TeacherCheckpoint}; `path` names where it came
 * from (in messages and in the result).
 *
 * @throws Error when the object is not such a checkpoint or its shapes do not match the
 *   architecture it names.
 */
export function decodeTeacherCheckpoint(parsed: unknown, path: string): LoadedTeacher {
  const file = parsed as Partial<TeacherCheckpoint>;
  if (file.format !== TEACHER_CHECKPOINT_FORMAT || !file.filters || !file.weights || !file.data) {
    throw new Error(`${path}: not a teacher checkpoint (format ${String(file.format)})`);
  }
  const bytes = fromBase64(file.data);
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

/** Standard base64 (with padding) of `bytes`, via `btoa`, which Node and browsers both have. */
function toBase64(bytes: Uint8Array): string {
  const chunk = 0x8000;
  let binary = '';
  for (let i = 0; i < bytes.length; i += chunk) {
    binary += String.fromCharCode(...bytes.subarray(i, i + chunk));
  }
  return btoa(binary);
}

/** The bytes of a base64 string, via `atob`. */
function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
