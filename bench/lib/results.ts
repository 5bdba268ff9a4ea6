/** Writing result files atomically (temp file + rename), with the run's provenance. */
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

export function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
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

/** One CSV line per row; values are quoted only when they need to be. */
export function toCsv(rows: readonly Record<string, string | number | boolean>[]): string {
  if (rows.length === 0) return '';
  const header = Object.keys(rows[0]!);
  const cell = (v: unknown) => {
    const s = String(v);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return (
    [header.join(','), ...rows.map((r) => header.map((h) => cell(r[h])).join(','))].join('\n') +
    '\n'
  );
}

/** A timestamp usable in a file name: 2026-11-28T08-20-07Z. */
export function fileStamp(date = new Date()): string {
  return date
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replace(/:/g, '-');
}
