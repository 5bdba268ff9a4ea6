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
 * Paths whose changes do not change what is measured: the results themselves and the docs.
 * Appending a run to the results table must not mark the next run as uncommitted code.
 */
const NOT_CODE = [':(exclude)bench/results', ':(exclude)README.md', ':(exclude)docs'];

/**
 * The short commit, with "-dirty" when tracked code differs from it: a figure measured on
 * uncommitted code must not be credited to the commit. `cwd`: the checkout (default: here).
 */
export function gitCommit(cwd?: string): string {
  const git = (args: string[]) => execFileSync('git', args, { cwd, encoding: 'utf8' }).trim();
  let commit: string;
  try {
    commit = git(['rev-parse', '--short=7', 'HEAD']);
  } catch {
    return 'unknown';
  }
  try {
    git(['diff', '--quiet', 'HEAD', '--', '.', ...NOT_CODE]);
    return commit;
  } catch {
    return `${commit}-dirty`;
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
