/**
 * Every TypeScript block of README.md (```ts or ```typescript) compiles as an app would write
 * it: `strict` and `noUncheckedIndexedAccess`, `tfjs-fused-distill` mapped to the package
 * source. Each block is its own module in a scratch folder under node_modules/.cache (so that
 * the repository's node_modules resolve), type-checked by one `tsc` run. Only errors in the
 * blocks count here; the source itself is checked by `npm run typecheck`.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, test } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Block {
  /** 1-based README line of the first line of code. */
  readonly line: number;
  readonly code: string;
}

/** The ```ts / ```typescript blocks of a Markdown text, with where they start. */
export function typescriptBlocks(markdown: string): Block[] {
  const lines = markdown.split(/\r?\n/);
  const blocks: Block[] = [];
  let open: { fence: string; line: number; code: string[] } | undefined;
  let other: string | undefined; // the fence of a non-TypeScript block being skipped
  lines.forEach((text, i) => {
    if (open) {
      if (text.trim() === open.fence) {
        blocks.push({ line: open.line, code: open.code.join('\n') + '\n' });
        open = undefined;
      } else {
        open.code.push(text);
      }
      return;
    }
    if (other) {
      if (text.trim() === other) other = undefined;
      return;
    }
    const m = /^\s*(`{3,}|~{3,})\s*([\w+-]*)/.exec(text);
    if (!m) return;
    const fence = m[1]!;
    if (/^(ts|typescript)$/i.test(m[2]!)) open = { fence, line: i + 2, code: [] };
    else other = fence;
  });
  return blocks;
}

test('the block extractor finds ts and typescript blocks and skips the others', () => {
  const md = [
    '# x', // 1
    '```sh', // 2
    '```ts inside a sh block is not a block', // 3
    '```', // 4
    '```ts', // 5
    'const a = 1;', // 6
    '```', // 7
    '~~~typescript', // 8
    'const b = 2;', // 9
    '~~~', // 10
    '```', // 11
    'plain', // 12
    '```', // 13
  ].join('\n');
  expect(typescriptBlocks(md)).toEqual([
    { line: 6, code: 'const a = 1;\n' },
    { line: 9, code: 'const b = 2;\n' },
  ]);
});

/**
 * Type-checks the blocks in one tsc run and returns the errors inside them, as
 * "README.md:line:col: error TSxxxx: …" (the README's own line numbers).
 */
async function typeCheckBlocks(blocks: readonly Block[]): Promise<string[]> {
  const cache = path.join(ROOT, 'node_modules', '.cache');
  mkdirSync(cache, { recursive: true });
  const dir = mkdtempSync(path.join(cache, 'readme-examples-'));
  try {
    const starts = new Map<string, number>();
    const files = blocks.map((b) => {
      const file = `readme-line-${b.line}.ts`;
      starts.set(path.join(dir, file), b.line);
      // `export {}` makes a block without imports a module too (top-level await is allowed).
      writeFileSync(path.join(dir, file), `${b.code}export {};\n`);
      return file;
    });
    const tsconfig = {
      compilerOptions: {
        target: 'ES2022',
        module: 'ESNext',
        moduleResolution: 'Bundler',
        lib: ['ES2022', 'DOM'],
        types: ['node', '@webgpu/types', 'vite/client'],
        strict: true,
        noUncheckedIndexedAccess: true,
        esModuleInterop: true,
        isolatedModules: true,
        skipLibCheck: true,
        noEmit: true,
        paths: { 'tfjs-fused-distill': [path.join(ROOT, 'src/index.ts')] },
      },
      files,
    };
    writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify(tsconfig, null, 2));
    const tsc = path.join(ROOT, 'node_modules/typescript/bin/tsc');
    let output = '';
    try {
      await promisify(execFile)(process.execPath, [tsc, '-p', dir, '--pretty', 'false'], {
        cwd: dir,
        maxBuffer: 16 * 1024 * 1024,
      });
      return [];
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      output = `${e.stdout ?? ''}${e.stderr ?? ''}` || e.message;
    }
    // tsc prints "file(line,col): error TSxxxx: …" (continuation lines indented), or
    // "error TSxxxx: …" for a configuration error. Errors inside the package source are left
    // to `npm run typecheck`; every other error counts.
    const errors: string[] = [];
    let sourceErrors = 0;
    for (const l of output.split('\n')) {
      const m = /^(.+)\((\d+),(\d+)\): (error TS\d+.*)$/.exec(l);
      if (m) {
        const file = path.resolve(dir, m[1]!);
        const start = starts.get(file);
        if (start !== undefined) {
          errors.push(`README.md:${start + Number(m[2]) - 1}:${m[3]}: ${m[4]}`);
        } else if (file.startsWith(path.join(ROOT, 'src') + path.sep)) {
          sourceErrors++;
        } else {
          errors.push(l);
        }
      } else if (/^error TS\d+/.test(l)) {
        errors.push(l);
      }
    }
    if (errors.length === 0 && sourceErrors === 0) {
      throw new Error(`tsc failed without a diagnostic:\n${output}`);
    }
    return errors;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('the check catches a type error and names its README line', async () => {
  const md = [
    '```ts',
    "import { distillationLoss } from 'tfjs-fused-distill';",
    'const n: number = distillationLoss;',
    '```',
  ].join('\n');
  const errors = await typeCheckBlocks(typescriptBlocks(md));
  expect(errors).toHaveLength(1);
  expect(errors[0]).toMatch(/^README\.md:3:7: error TS2322/);
}, 180_000);

test("README.md's TypeScript examples type-check under strict and noUncheckedIndexedAccess", async () => {
  const blocks = typescriptBlocks(readFileSync(path.join(ROOT, 'README.md'), 'utf8'));
  expect(blocks.length, 'README.md has no ```ts blocks').toBeGreaterThan(0);
  const errors = await typeCheckBlocks(blocks);
  expect(errors, `README TypeScript examples do not compile:\n${errors.join('\n')}`).toEqual([]);
}, 180_000);
