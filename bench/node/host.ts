/** The Node host of the shared protocol (bench/core/): what only Node can do, passed in. */
import type { RunHost } from '../core/protocol.js';
import { writeTeacherCheckpoint } from './teacher-checkpoint-file.js';

export const nodeRunHost: RunHost = {
  saveTeacherCheckpoint: writeTeacherCheckpoint,
  // The next macrotask turn, after pending I/O and signal callbacks (SIGINT's abort).
  yieldToEventLoop: () => new Promise((resolve) => setImmediate(resolve)),
};
