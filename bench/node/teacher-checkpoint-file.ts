/** Teacher checkpoints as files in Node: `--save-teacher` writes one, `--teacher` reads one. */
import type * as tfl from '@tensorflow/tfjs-layers';
import { readFileSync } from 'node:fs';
import {
  decodeTeacherCheckpoint,
  encodeTeacherCheckpoint,
  type LoadedTeacher,
  type TeacherCheckpoint,
  type TeacherCheckpointInfo,
} from '../core/protocol/teacher-checkpoint.js';
import { writeFileAtomic } from './lib/results.js';

/** Writes a checkpoint to `path`, atomically (temp file + rename). */
export function writeTeacherCheckpoint(path: string, checkpoint: TeacherCheckpoint): void {
  writeFileAtomic(path, JSON.stringify(checkpoint) + '\n');
}

/** Writes `model`'s weights as a {@link TeacherCheckpoint} to `path`, atomically. */
export async function saveTeacherCheckpoint(
  path: string,
  model: tfl.LayersModel,
  info: TeacherCheckpointInfo,
): Promise<void> {
  writeTeacherCheckpoint(path, await encodeTeacherCheckpoint(model, info));
}

/**
 * Reads a {@link TeacherCheckpoint} file and rebuilds the teacher with its weights.
 *
 * @throws Error when the file is not such a checkpoint or its shapes do not match the
 *   architecture it names.
 */
export function loadTeacherCheckpoint(path: string): LoadedTeacher {
  return decodeTeacherCheckpoint(JSON.parse(readFileSync(path, 'utf8')), path);
}
