/**
 * The row statistics have one layout in two languages: ROW_STATS_WIDTH floats per row in
 * src/kernels/names.ts (the size of the rowStats tensor the kernels write) and `struct
 * StoredRowStats` in shaders/distill-common.wgsl, the element type every kernel binds the
 * statistics as. These tests read the WGSL files (no GPU) and fail when the struct's stride
 * is not ROW_STATS_WIDTH floats, or when a kernel reads or writes the statistics other than a
 * whole row at a time (an offset into a flat array would bypass the struct).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { expect, test } from 'vitest';
import { ROW_STATS_WIDTH } from '../src/kernels/names.js';

const shadersDir = new URL('../shaders/', import.meta.url);

/** Each shader file's code, comments removed. */
function shaderCode(): Map<string, string> {
  const files = readdirSync(shadersDir).filter((f) => f.endsWith('.wgsl'));
  return new Map(
    files.map((f) => [
      f,
      readFileSync(new URL(f, shadersDir), 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '')
        .replace(/\/\/[^\n]*/g, ''),
    ]),
  );
}

test('struct StoredRowStats is ROW_STATS_WIDTH plain f32 fields (a row stride of that many floats)', () => {
  const common = shaderCode().get('distill-common.wgsl');
  expect(common).toBeDefined();
  const body = /\bstruct\s+StoredRowStats\s*\{([^}]*)\}/.exec(common!);
  expect(body, 'struct StoredRowStats in distill-common.wgsl').not.toBeNull();
  const fields = body![1]!
    .split(',')
    .map((f) => f.trim())
    .filter((f) => f.length > 0);
  // f32 fields without layout attributes (@size, @align) pack 4 bytes apart with no padding:
  // the struct's size, and so the array's stride, is 4 bytes per field.
  for (const field of fields) expect(field).toMatch(/^\w+\s*:\s*f32$/);
  expect(fields).toHaveLength(ROW_STATS_WIDTH);
});

test('every kernel binds the row statistics as array<StoredRowStats>', () => {
  const declaring: string[] = [];
  for (const [file, code] of shaderCode()) {
    for (const m of code.matchAll(/var\s*<\s*storage[^>]*>\s*stats\s*:\s*([^;]+);/g)) {
      declaring.push(file);
      expect(m[1]!.replace(/\s+/g, ''), file).toBe('array<StoredRowStats>');
    }
  }
  expect(declaring.sort()).toEqual(
    expect.arrayContaining([
      'distill-backward.wgsl',
      'distill-components.wgsl',
      'distill-forward.wgsl',
      'distill-sparse.wgsl',
    ]),
  );
});

test('no shader indexes the row statistics with an offset: only stats[row]', () => {
  const indices: string[] = [];
  for (const [file, code] of shaderCode()) {
    expect(code, file).not.toMatch(/\bSTATS_STRIDE\b/);
    for (const m of code.matchAll(/\bstats\s*\[([^\]]*)\]/g)) {
      indices.push(m[1]!);
      // a row variable, never an expression such as `row * 12u + 3u` or a literal
      expect(m[1]!.trim(), `${file}: stats[${m[1]}]`).toMatch(/^[A-Za-z_]\w*$/);
    }
  }
  // the reads and writes of the kernels (finishRow, backward, sparse backward, components)
  expect(indices.length).toBeGreaterThanOrEqual(4);
});
