/**
 * The documentation holds: every TypeScript block of README.md and docs/*.md (```ts or
 * ```typescript) compiles as an app would write it, and every relative link between them
 * resolves.
 *
 * Blocks: `strict` and `noUncheckedIndexedAccess`, `tfjs-fused-distill` and its `/validation`
 * subpath mapped to the package source. Each block is its own module in a scratch folder under
 * node_modules/.cache (so that the repository's node_modules resolve), all type-checked by one
 * `tsc` run; an error is named by its Markdown file and line. Only errors in the blocks count
 * here; the source itself is checked by `npm run typecheck`.
 *
 * Links: every relative link or image target outside code points to an existing file or folder,
 * and every `#anchor` (in the same file or another Markdown file) to one of its headings, with
 * GitHub's heading ids.
 */
import { execFile } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect, test } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** README.md and docs/*.md, relative to the repository root. */
function markdownFiles(): string[] {
  const docs = readdirSync(path.join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`);
  return ['README.md', ...docs];
}

function readMarkdown(file: string): string {
  return readFileSync(path.join(ROOT, file), 'utf8');
}

interface Block {
  /** The Markdown file, relative to the repository root. */
  readonly file: string;
  /** 1-based line of the block's first line of code in that file. */
  readonly line: number;
  readonly code: string;
}

/**
 * Walks a Markdown text line by line, telling `onFence` about each fenced block (its info
 * string, the 1-based line of its first line of content, its lines) and `onText` about every
 * line outside fences.
 */
function walkMarkdown(
  markdown: string,
  onFence: (info: string, line: number, lines: string[]) => void,
  onText: (text: string, line: number) => void = () => undefined,
): void {
  const lines = markdown.split(/\r?\n/);
  let open: { fence: string; info: string; line: number; lines: string[] } | undefined;
  lines.forEach((text, i) => {
    if (open) {
      if (text.trim() === open.fence) {
        onFence(open.info, open.line, open.lines);
        open = undefined;
      } else {
        open.lines.push(text);
      }
      return;
    }
    const m = /^\s*(`{3,}|~{3,})\s*([\w+-]*)/.exec(text);
    if (m) open = { fence: m[1]!, info: m[2]!, line: i + 2, lines: [] };
    else onText(text, i + 1);
  });
}

/** The ```ts / ```typescript blocks of a Markdown text, with where they start. */
export function typescriptBlocks(markdown: string, file = 'README.md'): Block[] {
  const blocks: Block[] = [];
  walkMarkdown(markdown, (info, line, lines) => {
    if (/^(ts|typescript)$/i.test(info)) blocks.push({ file, line, code: lines.join('\n') + '\n' });
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
  expect(typescriptBlocks(md, 'docs/x.md')).toEqual([
    { file: 'docs/x.md', line: 6, code: 'const a = 1;\n' },
    { file: 'docs/x.md', line: 9, code: 'const b = 2;\n' },
  ]);
});

/**
 * Type-checks the blocks in one tsc run and returns the errors inside them, as
 * "FILE.md:line:col: error TSxxxx: …" (the Markdown file's own line numbers).
 */
async function typeCheckBlocks(blocks: readonly Block[]): Promise<string[]> {
  const cache = path.join(ROOT, 'node_modules', '.cache');
  mkdirSync(cache, { recursive: true });
  const dir = mkdtempSync(path.join(cache, 'readme-examples-'));
  try {
    const starts = new Map<string, Block>();
    const files = blocks.map((b) => {
      const file = `${b.file.replace(/[^\w]/g, '-')}-line-${b.line}.ts`;
      starts.set(path.join(dir, file), b);
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
        paths: {
          'tfjs-fused-distill': [path.join(ROOT, 'src/index.ts')],
          'tfjs-fused-distill/validation': [path.join(ROOT, 'src/validation/index.ts')],
        },
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
        const block = starts.get(file);
        if (block !== undefined) {
          errors.push(`${block.file}:${block.line + Number(m[2]) - 1}:${m[3]}: ${m[4]}`);
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

test('the check catches a type error and names its file and line', async () => {
  const md = [
    '```ts',
    "import { distillationLoss } from 'tfjs-fused-distill';",
    "import { validationSuite } from 'tfjs-fused-distill/validation';",
    'const n: number = distillationLoss;',
    "const m: number = validationSuite('quick');",
    '```',
  ].join('\n');
  const errors = await typeCheckBlocks(typescriptBlocks(md, 'docs/x.md'));
  expect(errors).toHaveLength(2);
  expect(errors[0]).toMatch(/^docs\/x\.md:4:7: error TS2322/);
  expect(errors[1]).toMatch(/^docs\/x\.md:5:7: error TS2322/);
}, 180_000);

test('the TypeScript examples of README.md and docs/*.md type-check under strict and noUncheckedIndexedAccess', async () => {
  const files = markdownFiles();
  const blocks = files.flatMap((file) => typescriptBlocks(readMarkdown(file), file));
  for (const file of ['README.md', 'docs/loss.md']) {
    expect(
      blocks.some((b) => b.file === file),
      `${file} has no \`\`\`ts blocks`,
    ).toBe(true);
  }
  const errors = await typeCheckBlocks(blocks);
  expect(errors, `TypeScript examples do not compile:\n${errors.join('\n')}`).toEqual([]);
}, 180_000);

// ---------------------------------------------------------------------------------------------
// Links

/** GitHub's id of a heading: lower case, punctuation and symbols dropped, spaces to hyphens. */
export function headingId(heading: string): string {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1') // a link's text
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** The ids of a Markdown text's headings; a repeated id gets -1, -2, … as on GitHub. */
export function headingIds(markdown: string): Set<string> {
  const ids = new Set<string>();
  const seen = new Map<string, number>();
  walkMarkdown(
    markdown,
    () => undefined,
    (text) => {
      const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(text);
      if (!m) return;
      const id = headingId(m[1]!);
      const n = seen.get(id) ?? 0;
      seen.set(id, n + 1);
      ids.add(n === 0 ? id : `${id}-${n}`);
    },
  );
  return ids;
}

/** The targets of the inline links and images outside code, with their lines. */
export function linkTargets(markdown: string): { line: number; target: string }[] {
  const links: { line: number; target: string }[] = [];
  walkMarkdown(
    markdown,
    () => undefined,
    (text, line) => {
      const prose = text.replace(/(`+)[^`]*?\1/g, 'code');
      for (const m of prose.matchAll(/\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) {
        links.push({ line, target: m[1]! });
      }
    },
  );
  return links;
}

/**
 * The broken relative links of `markdown`, the text of the Markdown file `file` (relative to
 * the repository root): "file:line: target: why". Absolute URLs are not followed.
 */
export function brokenLinks(file: string, markdown: string): string[] {
  const broken: string[] = [];
  for (const { line, target } of linkTargets(markdown)) {
    if (/^[a-z][a-z+.-]*:/i.test(target)) continue; // https:, mailto:, …
    const hash = target.indexOf('#');
    const pathPart = decodeURI(hash < 0 ? target : target.slice(0, hash));
    const anchor = hash < 0 ? undefined : target.slice(hash + 1);
    const resolved = pathPart === '' ? file : path.posix.join(path.posix.dirname(file), pathPart);
    const where = `${file}:${line}: ${target}`;
    const exists = resolved === file || existsSync(path.join(ROOT, resolved));
    if (resolved.startsWith('..') || !exists) {
      broken.push(`${where}: no such file`);
      continue;
    }
    if (anchor === undefined) continue;
    if (!resolved.endsWith('.md')) {
      broken.push(`${where}: an anchor into a file that is not Markdown`);
      continue;
    }
    const text = resolved === file ? markdown : readMarkdown(resolved);
    if (!headingIds(text).has(decodeURIComponent(anchor))) {
      broken.push(`${where}: no heading with id '${anchor}' in ${resolved}`);
    }
  }
  return broken;
}

test("heading ids follow GitHub's rules", () => {
  expect(headingId('KL without cancellation, at every temperature')).toBe(
    'kl-without-cancellation-at-every-temperature',
  );
  expect(headingId("The Distiller's top-K cache")).toBe('the-distillers-top-k-cache');
  expect(headingId('From dense logits: `topKTeacher`')).toBe('from-dense-logits-topkteacher');
  expect(headingId('The stock composition: [link](x.md) × 2')).toBe(
    'the-stock-composition-link--2',
  );
  expect([...headingIds('# A\n## A\n```sh\n# not a heading\n```\n### B c')]).toEqual([
    'a',
    'a-1',
    'b-c',
  ]);
});

test('the link check finds missing files and anchors, and ignores code and URLs', () => {
  const md = [
    '# Here', // 1
    '[ok](loss.md) and ![img](vocab-sweep.svg) and [up](../README.md#quick-start)', // 2
    '[same file](#here), [URL](https://example.com/x.md#nope)', // 3
    '[missing](no-such-file.md), [bad anchor](loss.md#no-such-heading)', // 4
    '`[in code](no-such-file.md)`', // 5
    '```sh', // 6
    '[in a block](no-such-file.md)', // 7
    '```', // 8
    '[bad local](#nowhere) [outside](../../etc/passwd)', // 9
  ].join('\n');
  expect(brokenLinks('docs/x.md', md)).toEqual([
    'docs/x.md:4: no-such-file.md: no such file',
    "docs/x.md:4: loss.md#no-such-heading: no heading with id 'no-such-heading' in docs/loss.md",
    "docs/x.md:9: #nowhere: no heading with id 'nowhere' in docs/x.md",
    'docs/x.md:9: ../../etc/passwd: no such file',
  ]);
});

test('every relative link of README.md and docs/*.md resolves, anchors included', () => {
  const files = markdownFiles();
  const links = files.flatMap((file) => linkTargets(readMarkdown(file)));
  expect(links.length, 'no links found').toBeGreaterThan(0);
  const broken = files.flatMap((file) => brokenLinks(file, readMarkdown(file)));
  expect(broken, `broken links:\n${broken.join('\n')}`).toEqual([]);
});
