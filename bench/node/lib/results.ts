/**
 * Node's side of the result files: writing them atomically (temp file + rename) and the run's
 * provenance (git commit, package versions), which the CLI passes to the shared report.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';

/** Writes `text` to `path` so that a reader never sees a partial file. */
export function writeFileAtomic(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

/**
 * The short commit, with "-dirty" when tracked files differ from it: a figure measured on
 * uncommitted code must not be credited to the commit.
 */
export const GIT_DESCRIBE = ['describe', '--always', '--dirty', '--abbrev=7'];

export function gitCommit(): string {
  try {
    return execFileSync('git', GIT_DESCRIBE, { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

export function versions(): Record<string, string> {
  const require = createRequire(import.meta.url);
  const version = (name: string) => {
    try {
      return (require(`${name}/package.json`) as { version: string }).version;
    } catch {
      return 'unknown';
    }
  };
  return {
    node: process.version,
    'tfjs-core': version('@tensorflow/tfjs-core'),
    'tfjs-backend-webgpu': version('@tensorflow/tfjs-backend-webgpu'),
    webgpu: version('webgpu'),
  };
}

/** The provenance fields of a report's meta, as Node sees them. */
export function nodeResultMeta(): { commit: string; versions: Record<string, string> } {
  return { commit: gitCommit(), versions: versions() };
}

export { fileStamp, toCsv } from '../../core/lib/csv.js';
