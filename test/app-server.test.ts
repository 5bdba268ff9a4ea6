/**
 * How the app is served: the dev server (`npm run app`) listens on 127.0.0.1 and serves the app,
 * its sources and the dataset folder, nothing else of the machine; the static build
 * (`npm run build:app`) works from a sub-path of any static host, where it runs the kernel
 * benchmark and opens a result file written by the CLI (`npm run bench:kernel` on Node's adapter), with no failed request and no console
 * error. Headless Chromium (SwiftShader) as in test/app.test.ts.
 */
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import {
  createReadStream,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser } from 'puppeteer-core';
import { build, createServer, type ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { appViteConfig } from '../bench/node/app-vite.config.js';
import { launchChromium } from '../bench/node/lib/chromium.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const MNIST_DIR = path.resolve(ROOT, process.env.MNIST_DIR ?? '../shared/data/mnist');
const work = mkdtempSync(path.join(tmpdir(), 'app-server-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the dev server', () => {
  let server: ViteDevServer;
  let base: string;
  beforeAll(async () => {
    server = await createServer({
      ...appViteConfig({ port: 0, datasetDirs: { mnist: MNIST_DIR } }),
      logLevel: 'silent',
    });
    await server.listen();
    const address = server.httpServer!.address() as AddressInfo;
    expect(address.address, 'listens on loopback only').toBe('127.0.0.1');
    base = `http://127.0.0.1:${address.port}`;
  }, 60_000);
  afterAll(() => server?.close());

  test('serves the app and the dataset files', async () => {
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('tfjs-fused-distill');
    const file = 't10k-labels-idx1-ubyte.gz';
    const res = await fetch(`${base}/datasets/mnist/${file}`);
    expect(res.status).toBe(200);
    const served = createHash('sha256')
      .update(Buffer.from(await res.arrayBuffer()))
      .digest('hex');
    const onDisk = createHash('sha256')
      .update(readFileSync(path.join(MNIST_DIR, file)))
      .digest('hex');
    expect(served).toBe(onDisk);
  });

  test.each([
    '/@fs' + path.join(ROOT, 'package.json'),
    '/@fs' + path.join(ROOT, '.git/config'),
    '/@fs' + path.join(ROOT, 'bench/node/app-vite.config.ts'),
    '/@fs' + path.join(ROOT, 'README.md'),
    '/@fs' + path.join(MNIST_DIR, 'SHA256SUMS'),
    '/@fs/etc/passwd',
    '/../../package.json',
    '/%2e%2e/%2e%2e/package.json',
    '/datasets/mnist/SHA256SUMS',
    '/datasets/mnist/..%2f..%2fpackage.json',
  ])('refuses %s', async (url) => {
    const res = await fetch(`${base}${url}`);
    const text = await res.text();
    // Vite answers a path outside its root with 403, or with the app's index page (an SPA
    // fallback, 200): never with the file itself.
    expect([403, 404, 200]).toContain(res.status);
    expect(text).not.toMatch(
      /"devDependencies"|\[core\]|root:x:0:0|defineConfig|^# tfjs-fused-distill/m,
    );
    if (res.status === 200) expect(text).toContain('<!doctype html>');
  });
});

describe('the static build from a sub-path', () => {
  const SUB = '/some/sub/path/';
  let server: Server;
  let browser: Browser | undefined;
  let origin: string;
  const requests: string[] = [];

  beforeAll(async () => {
    const outDir = path.join(work, 'dist');
    await build({ ...appViteConfig({ outDir, datasetDirs: {} }), logLevel: 'warn' });
    // A plain static host: files under SUB, nothing else (no dataset folder, no fallback).
    server = createHttpServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      requests.push(url.pathname);
      const rel = url.pathname.startsWith(SUB)
        ? url.pathname.slice(SUB.length) || 'index.html'
        : null;
      const file = rel === null ? null : path.join(outDir, rel);
      if (!file || !file.startsWith(outDir) || !existsSync(file) || !statSync(file).isFile()) {
        res.writeHead(404).end();
        return;
      }
      const type = file.endsWith('.html')
        ? 'text/html'
        : file.endsWith('.js')
          ? 'text/javascript'
          : file.endsWith('.css')
            ? 'text/css'
            : 'application/octet-stream';
      res.writeHead(200, { 'Content-Type': type });
      createReadStream(file).pipe(res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await launchChromium(path.join(work, 'profile'), 'app-static');
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    server?.close();
  });

  test('runs the kernel benchmark and opens a CLI result file', async () => {
    const page = await browser!.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${String(e)}`));
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push(`HTTP ${r.status()} ${r.url()}`);
    });
    await page.goto(`${origin}${SUB}?autorun=kernel&shapes=64x10&windows=3`);
    await page.waitForFunction(
      () => {
        const s = (window as unknown as { __benchState?: { status: string } }).__benchState;
        return s?.status === 'done' || s?.status === 'failed';
      },
      { timeout: 180_000 },
    );
    const state = await page.evaluate(
      () => (window as unknown as { __benchState: unknown }).__benchState,
    );
    expect(state, problems.join('\n')).toEqual({ status: 'done', task: 'kernel' });
    const rows = await page.$$eval('#panel-kernel tbody tr', (trs) =>
      trs.map((tr) => tr.textContent),
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatch(/^64×10/);
    // Every request stayed under the sub-path (relative asset URLs).
    expect(requests.filter((p) => !p.startsWith(SUB))).toEqual([]);

    // A result file written by the CLI (`npm run bench:kernel`, on Node's adapter): the viewer
    // draws the same table.
    const fixture = await kernelCliResult();
    const cli = JSON.parse(readFileSync(fixture, 'utf8')) as { results: { classes: number }[] };
    await page.click('#tab-open');
    const input = await page.$('#panel-open input[type=file]');
    await (input as unknown as { uploadFile(p: string): Promise<void> }).uploadFile(fixture);
    await page.waitForFunction(() => document.querySelectorAll('#panel-open tbody tr').length > 0, {
      timeout: 30_000,
    });
    const shapes = await page.$$eval('#panel-open tbody tr td:first-child', (tds) =>
      tds.map((td) => td.textContent),
    );
    expect(shapes).toEqual(cli.results.map((r) => `64×${r.classes}`));
    expect(await page.$eval('#panel-open .status', (n) => n.textContent)).toContain(
      'kernel-benchmark',
    );
    expect(await page.$eval('#panel-open', (n) => n.textContent)).toContain('lavapipe');

    // A file that is not a result file is refused with a message, not drawn.
    const wrong = path.join(work, 'package.json');
    writeFileSync(wrong, readFileSync(path.join(ROOT, 'package.json')));
    await (input as unknown as { uploadFile(p: string): Promise<void> }).uploadFile(wrong);
    await page.waitForFunction(
      () => document.querySelector('#panel-open .status')?.getAttribute('data-kind') === 'error',
      { timeout: 30_000 },
    );
    expect(await page.$eval('#panel-open .status', (n) => n.textContent)).toMatch(
      /not a result file of this benchmark/,
    );
    expect(problems).toEqual([]);
  }, 240_000);
  test('a lost GPU device stops the run, says so and offers a restart; nothing hangs', async () => {
    const page = await browser!.newPage();
    // Test instrumentation only: keep the device tfjs requests, to destroy it mid-run (the one
    // way a page can make WebGPU lose a device).
    await page.evaluateOnNewDocument(() => {
      const request = GPUAdapter.prototype.requestDevice;
      GPUAdapter.prototype.requestDevice = async function (this: GPUAdapter, ...args) {
        const device = await request.apply(this, args);
        (window as unknown as { __testDevice: GPUDevice }).__testDevice = device;
        return device;
      };
    });
    await page.goto(`${origin}${SUB}?autorun=kernel&shapes=64x10,256x32768&windows=50`);
    await page.waitForFunction(
      () =>
        (window as unknown as { __benchState?: { status: string } }).__benchState?.status ===
          'running' || document.querySelector('#panel-kernel tbody tr') !== null,
      { timeout: 120_000 },
    );
    await page.evaluate(() =>
      (window as unknown as { __testDevice: GPUDevice }).__testDevice.destroy(),
    );
    // The run fails (its reads reject) and the loss is reported, in either order.
    await page.waitForFunction(
      () =>
        (window as unknown as { __benchState?: { status: string } }).__benchState?.status ===
          'failed' &&
        (document.querySelector('#banner')?.textContent ?? '').includes('GPU device was lost'),
      { timeout: 60_000 },
    );
    expect(await page.$eval('#banner', (n) => (n as HTMLElement).hidden)).toBe(false);
    expect(await page.$eval('#banner button', (b) => b.textContent)).toMatch(/Restart/);
    // No new run can start on the lost device.
    expect(await page.$eval('#panel-kernel button', (b) => (b as HTMLButtonElement).disabled)).toBe(
      true,
    );
    await page.close();
  }, 240_000);
});

/** Runs `npm run bench:kernel`'s CLI on Node's adapter (lavapipe); returns its JSON file. */
async function kernelCliResult(): Promise<string> {
  const out = path.join(work, 'cli');
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'bench/node/kernel.ts',
      '--shapes',
      '64x10,64x1000',
      '--windows',
      '3',
      '--out',
      out,
    ],
    {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TSX_TSCONFIG_PATH: 'tsconfig.run.json' },
    },
  );
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  expect(code, output).toBe(0);
  const json = readdirSync(out).find((f) => f.endsWith('.json'));
  expect(json, output).toBeDefined();
  return path.join(out, json!);
}
