/**
 * The uniform `Params` has one layout in two languages: `struct Params` in
 * shaders/distill-common.wgsl and PARAMS_FIELDS in src/kernels/webgpu/distill-webgpu.ts, from
 * which params() builds the uniform (one value per field, in order; tfjs' makeUniforms packs
 * scalars 4 bytes apart, as WGSL lays out a struct of scalars). This test reads the WGSL file
 * and fails when the two disagree in names, order or types.
 */
import { readFileSync } from 'node:fs';
import { expect, test } from 'vitest';
import { PARAMS_FIELDS } from '../src/kernels/webgpu/distill-webgpu.js';

interface WgslField {
  name: string;
  type: string;
}

/** Splits at the commas outside template brackets (`array<f32, 4>` stays whole). */
function splitTopLevel(body: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < body.length; i++) {
    const ch = body[i];
    if (ch === '<' || ch === '(') depth++;
    else if (ch === '>' || ch === ')') depth--;
    else if (ch === ',' && depth === 0) {
      parts.push(body.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(body.slice(start));
  return parts;
}

/** The fields of `struct <name> { … }` in WGSL source, comments removed. */
function parseWgslStruct(source: string, name: string): WgslField[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/[^\n]*/g, '');
  const match = new RegExp(`\\bstruct\\s+${name}\\s*\\{([^}]*)\\}`).exec(code);
  if (!match) throw new Error(`struct ${name} not found`);
  return splitTopLevel(match[1]!)
    .map((f) => f.trim())
    .filter((f) => f.length > 0)
    .map((f) => {
      const field = /^((?:@\w+\([^)]*\)\s*)*)(\w+)\s*:\s*(.+)$/s.exec(f);
      if (!field) throw new Error(`cannot parse field '${f}' of struct ${name}`);
      if (field[1]!.trim()) {
        throw new Error(
          `field '${f}' of struct ${name} has layout attributes; params() packs plain scalars`,
        );
      }
      return { name: field[2]!, type: field[3]!.replace(/\s+/g, '') };
    });
}

const commonWgsl = () =>
  readFileSync(new URL('../shaders/distill-common.wgsl', import.meta.url), 'utf8');

test('PARAMS_FIELDS matches struct Params of shaders/distill-common.wgsl: names, order, types', () => {
  const wgsl = parseWgslStruct(commonWgsl(), 'Params');
  expect(
    PARAMS_FIELDS.map((f) => ({ name: f.name, type: f.type })),
    'PARAMS_FIELDS (src/kernels/webgpu/distill-webgpu.ts) vs struct Params (shaders/distill-common.wgsl)',
  ).toEqual(wgsl);
  // params() writes one 4-byte scalar per field: a vector, matrix or array would need padding.
  for (const f of wgsl) expect(['u32', 'i32', 'f32'], `type of Params.${f.name}`).toContain(f.type);
});

test('the struct parser reads fields, comments and trailing commas, and refuses attributes', () => {
  const src = `
    // struct Params { wrong: f32 }
    struct Params {
      a: u32, // first
      /* block */ b : f32,
      c: vec4<f32>,
      d: array<f32, 4>,
    }`;
  expect(parseWgslStruct(src, 'Params')).toEqual([
    { name: 'a', type: 'u32' },
    { name: 'b', type: 'f32' },
    { name: 'c', type: 'vec4<f32>' },
    { name: 'd', type: 'array<f32,4>' },
  ]);
  expect(() => parseWgslStruct('struct Params { @align(16) a: u32 }', 'Params')).toThrow(
    /layout attributes/,
  );
  expect(() => parseWgslStruct('struct Other { a: u32 }', 'Params')).toThrow(/not found/);
});
