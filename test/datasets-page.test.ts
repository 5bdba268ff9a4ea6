// The browser app's dataset loading (bench/page/data/datasets-page.ts) run in Node (fetch,
// Response, File, crypto.subtle and DecompressionStream are the web's own) against real local
// HTTP servers carrying the dataset plugin (bench/node/app-dataset-server.ts), with the real
// MNIST files: same-origin, a corrupt served file, 404 then download into the cache, a
// corrupt cache entry, picked files, abort; and the plugin's URL rules on a plain node:http
// server, on Vite's dev server and on `vite preview`, each with a sub-path base.
//
// MNIST comes from MNIST_DIR (default ../shared/data/mnist); a missing folder fails the file,
// as in test/data/mnist-node.test.ts: CI always provides it.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer, preview, type PreviewServer, type ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DATASETS,
  MNIST_CHECKSUMS,
  MNIST_FILES,
  MNIST_FILE_NAMES,
  verifyDigest,
  type MnistFileName,
} from '../bench/core/data/datasets.js';
import {
  datasetMiddleware,
  datasetServerPlugin,
  resolveDatasetDirs,
  type DatasetMiddleware,
} from '../bench/node/app-dataset-server.js';
import { DEBIAN_FASHION_MNIST_DIR } from '../bench/node/data/mnist-node.js';
import {
  DatasetLoadError,
  MemoryDatasetCache,
  datasetCacheKey,
  loadDatasetInPage,
  type DatasetProgress,
} from '../bench/page/data/datasets-page.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MNIST_DIR = path.resolve(ROOT, process.env.MNIST_DIR ?? '../shared/data/mnist');
const SMALL: MnistFileName = MNIST_FILES.testLabels;

let tmp: string;
let good: string; // <tmp>/good/mnist: the four real files (+ a README that must not be served)
let corrupt: string; // <tmp>/corrupt/mnist: the same, t10k-labels with one byte flipped
const real = {} as Record<MnistFileName, Uint8Array>;
let server: http.Server;
let origin: string;

/** Mounts: /good/ and /mirror/sub/ serve `good`, /corrupt/ `corrupt`, /none/ nothing. */
function mounts(): DatasetMiddleware[] {
  return [
    datasetMiddleware({ dirs: { mnist: good }, base: '/good/' }),
    datasetMiddleware({ dirs: { mnist: corrupt }, base: '/corrupt/' }),
    datasetMiddleware({ dirs: {}, base: '/none/' }),
    datasetMiddleware({ dirs: { mnist: good }, base: 'http://example.test/mirror/sub/' }),
  ];
}

/** A node:http server running the middlewares in order; what none of them takes is marked. */
async function listen(middlewares: DatasetMiddleware[]): Promise<http.Server> {
  const srv = http.createServer((req, res) => {
    const run = (i: number): void => {
      if (i === middlewares.length) {
        // A single-page-app host answering everything else with its index page.
        if (req.url?.startsWith('/spa/')) {
          res.writeHead(200, { 'Content-Type': 'text/html' }).end('<!doctype html><p>app</p>');
        } else {
          res.writeHead(404, { 'X-Fallthrough': '1' }).end('fallthrough');
        }
        return;
      }
      middlewares[i](req, res, () => run(i + 1));
    };
    run(0);
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return srv;
}

function portOf(srv: http.Server): number {
  return (srv.address() as AddressInfo).port;
}

/** A raw request: the path goes out exactly as written (no `..` or %-normalisation). */
function request(
  port: number,
  method: string,
  rawPath: string,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: rawPath }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function flipped(bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  out[Math.floor(out.length / 2)] ^= 0xff;
  return out;
}

function pickedFiles(
  overrides: Partial<Record<MnistFileName, Uint8Array | null>> = {},
  names: Partial<Record<MnistFileName, string>> = {},
): File[] {
  return MNIST_FILE_NAMES.flatMap((name) => {
    const bytes = name in overrides ? overrides[name] : real[name];
    return bytes ? [new File([bytes.slice()], names[name] ?? name)] : [];
  });
}

async function loadError(promise: Promise<unknown>): Promise<DatasetLoadError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DatasetLoadError);
  return error as DatasetLoadError;
}

beforeAll(async () => {
  expect(existsSync(MNIST_DIR), `MNIST folder ${MNIST_DIR} is missing (set MNIST_DIR)`).toBe(true);
  tmp = await mkdtemp(path.join(os.tmpdir(), 'datasets-page-test-'));
  good = path.join(tmp, 'good', 'mnist');
  corrupt = path.join(tmp, 'corrupt', 'mnist');
  await mkdir(good, { recursive: true });
  await mkdir(corrupt, { recursive: true });
  for (const file of MNIST_FILE_NAMES) {
    await copyFile(path.join(MNIST_DIR, file), path.join(good, file));
    real[file] = new Uint8Array(await readFile(path.join(good, file)));
    const bytes = file === SMALL ? flipped(real[file]) : real[file];
    await writeFile(path.join(corrupt, file), bytes);
  }
  await writeFile(path.join(good, 'README.md'), 'not a dataset file');
  await writeFile(path.join(tmp, 'good', 'secret.txt'), 'SECRET');
  server = await listen(mounts());
  origin = `http://127.0.0.1:${portOf(server)}`;
});

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('loadDatasetInPage', () => {
  it('loads MNIST from the same-origin folder, verified, with progress', async () => {
    const events: DatasetProgress[] = [];
    const cache = new MemoryDatasetCache();
    const data = await loadDatasetInPage({
      dataset: 'mnist',
      sameOriginBase: `${origin}/good/datasets/mnist/`,
      downloadBase: `${origin}/none/datasets/mnist/`,
      cache,
      onProgress: (ev) => events.push({ ...ev }),
    });
    expect(data.train.count).toBe(60_000);
    expect(data.test.count).toBe(10_000);
    expect(data.train.images.length).toBe(60_000 * 784);
    expect(data.train.labels[0]).toBe(5);
    expect(data.test.labels[0]).toBe(7);
    expect(data.source).toBe(`same-origin ${origin}/good/datasets/mnist/`);
    expect(Object.values(data.origins)).toEqual(Array(4).fill('same-origin'));
    expect(cache.entries.size).toBe(0);
    const phases = new Set(events.map((ev) => ev.phase));
    expect([...phases].sort()).toEqual(['fetch', 'parse', 'verify']);
    const fetches = events.filter((ev) => ev.phase === 'fetch' && ev.file === SMALL);
    expect(fetches.at(-1)).toMatchObject({ loaded: real[SMALL].length, total: real[SMALL].length });
  });

  it('fails on a served file that fails its checksum, naming it, and never falls back', async () => {
    const cache = new MemoryDatasetCache();
    await cache.put(datasetCacheKey('mnist', SMALL), real[SMALL]);
    const events: DatasetProgress[] = [];
    const error = await loadError(
      loadDatasetInPage({
        dataset: 'mnist',
        sameOriginBase: `${origin}/corrupt/datasets/mnist/`,
        downloadBase: `${origin}/good/datasets/mnist/`,
        cache,
        onProgress: (ev) => events.push(ev),
      }),
    );
    expect(error.kind).toBe('checksum');
    expect(error.file).toBe(SMALL);
    expect(error.expectedSha256).toEqual([MNIST_CHECKSUMS[SMALL][0].sha256]);
    expect(error.actualSha256).toBe(sha256(flipped(real[SMALL])));
    expect(error.message).toContain(`${origin}/corrupt/datasets/mnist/${SMALL}`);
    expect(error.message).toContain(`expected sha256 ${MNIST_CHECKSUMS[SMALL][0].sha256}`);
    expect(error.message).toContain(`got sha256 ${sha256(flipped(real[SMALL]))}`);
    expect(error.message).toContain('MNIST_DIR');
    // Neither the cache nor the mirror was consulted.
    expect(events.every((ev) => ev.source.startsWith('same-origin'))).toBe(true);
    expect(events.some((ev) => ev.phase === 'parse')).toBe(false);
  });

  it('moves on from a 404 to the download, verifies it and fills the cache', async () => {
    const cache = new MemoryDatasetCache();
    const events: DatasetProgress[] = [];
    const mirror = `${origin}/mirror/sub/datasets/mnist`; // no trailing slash: added
    const data = await loadDatasetInPage({
      dataset: 'mnist',
      sameOriginBase: `${origin}/none/datasets/mnist/`,
      downloadBase: mirror,
      cache,
      onProgress: (ev) => events.push({ ...ev }),
    });
    expect(data.train.count).toBe(60_000);
    expect(data.test.count).toBe(10_000);
    expect(data.train.labels[0]).toBe(5);
    expect(data.source).toBe(`downloaded from ${mirror}`);
    expect(Object.values(data.origins)).toEqual(Array(4).fill('download'));
    expect([...cache.entries.keys()].sort()).toEqual(
      MNIST_FILE_NAMES.map((file) => `mnist/${file}`).sort(),
    );
    for (const file of MNIST_FILE_NAMES) {
      expect(sha256(cache.entries.get(`mnist/${file}`)!)).toBe(MNIST_CHECKSUMS[file][0].sha256);
    }
    const trainImages = events.filter(
      (ev) => ev.phase === 'fetch' && ev.file === MNIST_FILES.trainImages && ev.loaded > 0,
    );
    expect(trainImages.length).toBeGreaterThan(1); // streamed
    expect(trainImages.at(-1)).toMatchObject({
      loaded: real[MNIST_FILES.trainImages].length,
      total: real[MNIST_FILES.trainImages].length,
      source: `download ${mirror}`,
    });
    expect(
      events
        .filter((ev) => ev.phase === 'cache')
        .map((ev) => ev.file)
        .sort(),
    ).toEqual([...MNIST_FILE_NAMES].sort());
  });

  it('re-verifies cache entries: good ones are used, a corrupt one is replaced', async () => {
    const cache = new MemoryDatasetCache();
    for (const file of MNIST_FILE_NAMES) {
      await cache.put(
        datasetCacheKey('mnist', file),
        file === SMALL ? flipped(real[file]) : real[file],
      );
    }
    const data = await loadDatasetInPage({
      dataset: 'mnist',
      sameOriginBase: `${origin}/none/datasets/mnist/`,
      downloadBase: `${origin}/mirror/sub/datasets/mnist/`,
      cache,
    });
    expect(data.test.count).toBe(10_000);
    expect(data.test.labels[0]).toBe(7);
    expect(data.origins[SMALL]).toBe('download');
    for (const file of MNIST_FILE_NAMES.filter((f) => f !== SMALL)) {
      expect(data.origins[file]).toBe('cache');
    }
    expect(sha256(cache.entries.get(`mnist/${SMALL}`)!)).toBe(MNIST_CHECKSUMS[SMALL][0].sha256);
    expect(data.source).toContain(`${SMALL}: downloaded from`);
  });

  it('fails with what to do when nothing serves the files and the download fails', async () => {
    const error = await loadError(
      loadDatasetInPage({
        dataset: 'mnist',
        sameOriginBase: `${origin}/none/datasets/mnist/`,
        downloadBase: `${origin}/none/datasets/mnist/`,
        cache: null,
      }),
    );
    expect(error.kind).toBe('http');
    expect(error.file).toBe(SMALL);
    expect(error.message).toContain('HTTP 404');
    expect(error.message).toContain('Pick the four MNIST files');

    // An SPA fallback's HTML page is "not served"; Fashion-MNIST has no default mirror.
    const fashion = await loadError(
      loadDatasetInPage({
        dataset: 'fashion-mnist',
        sameOriginBase: `${origin}/spa/datasets/fashion-mnist/`,
        cache: new MemoryDatasetCache(),
      }),
    );
    expect(fashion.kind).toBe('unavailable');
    expect(fashion.message).toContain('HTML page');
    expect(fashion.message).toContain('FASHION_MNIST_DIR');
  });

  it('loads the four picked files, recognising a renamed one by its checksum', async () => {
    const data = await loadDatasetInPage({
      dataset: 'mnist',
      files: pickedFiles({}, { [MNIST_FILES.trainImages]: 'train-images-idx3-ubyte (1).gz' }),
      sameOriginBase: `${origin}/corrupt/datasets/mnist/`, // never consulted
      cache: null,
    });
    expect(data.train.count).toBe(60_000);
    expect(data.train.labels[0]).toBe(5);
    expect(Object.values(data.origins)).toEqual(Array(4).fill('picked'));
    expect(data.source).toContain('picked files');
  });

  it('rejects a corrupt, an unknown or a missing picked file, naming it', async () => {
    const wrong = await loadError(
      loadDatasetInPage({
        dataset: 'mnist',
        files: pickedFiles({ [SMALL]: flipped(real[SMALL]) }),
      }),
    );
    expect(wrong.kind).toBe('checksum');
    expect(wrong.file).toBe(SMALL);
    expect(wrong.message).toContain(`the picked file ${SMALL}`);
    expect(wrong.message).toContain(`expected sha256 ${MNIST_CHECKSUMS[SMALL][0].sha256}`);

    const unknown = await loadError(
      loadDatasetInPage({
        dataset: 'mnist',
        files: [...pickedFiles(), new File([new Uint8Array([1, 2, 3])], 'notes.txt')],
      }),
    );
    expect(unknown.kind).toBe('unknown-file');
    expect(unknown.file).toBe('notes.txt');

    const missing = await loadError(
      loadDatasetInPage({
        dataset: 'mnist',
        files: pickedFiles({ [MNIST_FILES.trainLabels]: null }),
        sameOriginBase: `${origin}/good/datasets/mnist/`, // picked files are the only source
      }),
    );
    expect(missing.kind).toBe('missing');
    expect(missing.file).toBe(MNIST_FILES.trainLabels);
    expect(missing.message).toContain(`${MNIST_FILES.trainLabels} was not among the picked files`);

    const digits = await loadError(
      loadDatasetInPage({ dataset: 'fashion-mnist', files: pickedFiles() }),
    );
    expect(digits.kind).toBe('checksum');
    expect(digits.message).toContain(`it is MNIST's`);
  });

  // Debian's dataset-fashion-mnist package; CI installs it, elsewhere it may be absent.
  it.skipIf(!existsSync(DEBIAN_FASHION_MNIST_DIR) && !process.env.CI)(
    "loads Fashion-MNIST (Debian's files) through the plugin",
    async () => {
      const srv = await listen([
        datasetMiddleware({ dirs: { 'fashion-mnist': DEBIAN_FASHION_MNIST_DIR } }),
      ]);
      try {
        const data = await loadDatasetInPage({
          dataset: 'fashion-mnist',
          sameOriginBase: `http://127.0.0.1:${portOf(srv)}/datasets/fashion-mnist/`,
          cache: null,
        });
        expect(data.train.count).toBe(60_000);
        expect(data.test.count).toBe(10_000);
        expect(data.train.labels[0]).toBe(9); // Ankle boot
        expect(DATASETS['fashion-mnist'].classNames[data.train.labels[0]]).toBe('Ankle boot');
      } finally {
        await new Promise((resolve) => srv.close(resolve));
      }
    },
  );

  it('stops on abort, before or during the fetch', async () => {
    const before = new AbortController();
    before.abort();
    await expect(
      loadDatasetInPage({
        dataset: 'mnist',
        sameOriginBase: `${origin}/good/datasets/mnist/`,
        signal: before.signal,
      }),
    ).rejects.toMatchObject({ name: 'AbortError' });

    const during = new AbortController();
    const cache = new MemoryDatasetCache();
    await expect(
      loadDatasetInPage({
        dataset: 'mnist',
        sameOriginBase: `${origin}/none/datasets/mnist/`,
        downloadBase: `${origin}/good/datasets/mnist/`,
        cache,
        signal: during.signal,
        onProgress: (ev) => {
          if (ev.phase === 'fetch' && ev.file === MNIST_FILES.trainImages && ev.loaded > 0) {
            during.abort();
          }
        },
      }),
    ).rejects.toMatchObject({ name: 'AbortError' });
    expect(cache.entries.has(`mnist/${MNIST_FILES.trainImages}`)).toBe(false);
  });
});

describe('verifyDigest', () => {
  it('checks sha256 with Web Crypto; md5 only when the host computes it', async () => {
    const bytes = real[SMALL];
    const table = MNIST_CHECKSUMS[SMALL];
    expect((await verifyDigest(bytes, table)).ok).toBe(true);
    expect((await verifyDigest(flipped(bytes), table)).ok).toBe(false);
    const md5 = (b: Uint8Array): string => createHash('md5').update(b).digest('hex');
    expect((await verifyDigest(bytes, table, { md5 })).actual.md5).toBe(table[0].md5);
    // An md5-only entry cannot be verified without md5, so it never matches there.
    expect((await verifyDigest(bytes, [{ md5: table[0].md5 }])).ok).toBe(false);
    expect((await verifyDigest(bytes, [{ md5: table[0].md5 }], { md5 })).ok).toBe(true);
    expect((await verifyDigest(bytes, [{ sha256: table[0].sha256, md5: '0' }], { md5 })).ok).toBe(
      false,
    );
    // Every catalogued file has a sha256 (the page requires one).
    for (const info of Object.values(DATASETS)) {
      for (const file of MNIST_FILE_NAMES) {
        expect(info.checksums[file].some((entry) => entry.sha256 !== undefined)).toBe(true);
      }
    }
  });
});

describe('dataset server middleware', () => {
  const traversal = [
    '/good/datasets/mnist/../secret.txt',
    '/good/datasets/mnist/../../package.json',
    '/good/datasets/mnist/../../../../../../etc/passwd',
    '/good/datasets/mnist/%2e%2e/secret.txt',
    '/good/datasets/mnist/%2E%2E%2Fsecret.txt',
    '/good/datasets/mnist/..%2fsecret.txt',
    '/good/datasets/mnist%2f..%2fsecret.txt',
    '/good/datasets/%2e%2e/good/secret.txt',
    '/good/%64atasets/mnist/../secret.txt',
    '/good/datasets/mnist/..\\secret.txt',
    '/good/datasets/mnist/%5c..%5csecret.txt',
    `/good/datasets/mnist/${SMALL}%00`,
    `/good/datasets/mnist/./${SMALL}`,
    `/good/datasets/mnist//${SMALL}`,
    `/good/datasets/mnist/%74${SMALL.slice(1)}`,
  ];

  it.each(traversal)('404s %s', async (rawPath) => {
    const res = await request(portOf(server), 'GET', rawPath);
    expect(res.status).toBe(404);
    expect(res.headers['x-fallthrough']).toBeUndefined();
    expect(res.body.toString()).not.toMatch(/SECRET|"name"|root:/);
  });

  it('serves exactly the four files, read-only, and nothing else under datasets/', async () => {
    const port = portOf(server);
    const get = await request(port, 'GET', `/good/datasets/mnist/${SMALL}?v=1`);
    expect(get.status).toBe(200);
    expect(get.headers['content-type']).toBe('application/gzip');
    expect(get.headers['content-length']).toBe(String(real[SMALL].length));
    expect(get.headers['content-encoding']).toBeUndefined();
    expect(sha256(get.body)).toBe(sha256(real[SMALL]));

    const head = await request(port, 'HEAD', `/good/datasets/mnist/${MNIST_FILES.trainImages}`);
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(real[MNIST_FILES.trainImages].length));
    expect(head.body.length).toBe(0);

    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const res = await request(port, method, `/good/datasets/mnist/${SMALL}`);
      expect(res.status).toBe(405);
      expect(res.headers.allow).toBe('GET, HEAD');
    }
    for (const rawPath of [
      '/good/datasets/mnist/README.md',
      '/good/datasets/mnist/',
      '/good/datasets/mnist',
      '/good/datasets/',
      '/good/datasets',
      `/good/datasets/MNIST/${SMALL}`,
      `/good/datasets/fashion-mnist/${SMALL}`, // no folder for it
      `/good/datasets/mnist/${SMALL}/`,
      `/none/datasets/mnist/${SMALL}`,
    ]) {
      const res = await request(port, 'GET', rawPath);
      expect(res.status, rawPath).toBe(404);
      expect(res.headers['x-fallthrough'], rawPath).toBeUndefined();
    }
    // Outside <base>datasets/ the middleware stays out of the way.
    for (const rawPath of ['/good/index.html', `/datasets/mnist/${SMALL}`, '/good/datasetsx']) {
      const res = await request(port, 'GET', rawPath);
      expect(res.headers['x-fallthrough'], rawPath).toBe('1');
    }
    // The base's path is what counts, also for a full-URL base.
    const mirror = await request(port, 'GET', `/mirror/sub/datasets/mnist/${SMALL}`);
    expect(mirror.status).toBe(200);
  });

  it('resolveDatasetDirs follows the Node loader: env folder, else cache, else system copy', () => {
    const cacheRoot = path.join(tmp, 'cache-root');
    const fromEnv = resolveDatasetDirs(
      { MNIST_DIR: good, FASHION_MNIST_DIR: path.join(tmp, 'nowhere') },
      { cacheRoot },
    );
    expect(fromEnv.dirs).toEqual({ mnist: good });
    expect(fromEnv.missing).toEqual(['fashion-mnist']);
    expect(fromEnv.problems).toEqual([
      `Fashion-MNIST: FASHION_MNIST_DIR=${path.join(tmp, 'nowhere')} does not exist`,
    ]);

    const fromCache = resolveDatasetDirs(
      {},
      { cacheRoot: tmp, systemDirs: { 'fashion-mnist': [corrupt] } },
    );
    // <tmp>/mnist does not exist; the "system copy" is taken without verifying (the page does).
    expect(fromCache.dirs).toEqual({ 'fashion-mnist': corrupt });
    expect(fromCache.missing).toEqual(['mnist']);
    expect(fromCache.notes.mnist).toContain('MNIST_DIR not set');

    const cached = resolveDatasetDirs({}, { cacheRoot: path.join(tmp, 'good'), systemDirs: {} });
    expect(cached.dirs).toEqual({ mnist: good });
    expect(cached.notes.mnist).toContain('(cache)');
  });
});

describe('the plugin on Vite servers with a sub-path base', () => {
  let app: string;

  beforeAll(async () => {
    app = path.join(tmp, 'app');
    await mkdir(path.join(app, 'dist'), { recursive: true });
    await writeFile(path.join(app, 'index.html'), '<!doctype html><title>app</title>');
    await writeFile(path.join(app, 'dist', 'index.html'), '<!doctype html><title>app</title>');
    await writeFile(path.join(app, 'secret.txt'), 'SECRET');
  });

  async function check(port: number, base: string): Promise<void> {
    const ok = await request(port, 'GET', `${base}datasets/mnist/${SMALL}`);
    expect(ok.status).toBe(200);
    expect(ok.headers['content-type']).toBe('application/gzip');
    expect(sha256(ok.body)).toBe(sha256(real[SMALL]));
    const head = await request(port, 'HEAD', `${base}datasets/mnist/${SMALL}`);
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
    // Vite's SPA fallback would answer these with index.html (200); the plugin answers 404.
    for (const rawPath of [
      `${base}datasets/mnist/README.md`,
      `${base}datasets/fashion-mnist/${SMALL}`,
      `${base}datasets/mnist/../../secret.txt`,
      `${base}datasets/mnist/%2e%2e/%2e%2e/secret.txt`,
    ]) {
      const res = await request(port, 'GET', rawPath);
      expect(res.status, rawPath).toBe(404);
      expect(res.body.toString(), rawPath).not.toMatch(/SECRET|<title>/);
    }
    expect((await request(port, 'POST', `${base}datasets/mnist/${SMALL}`)).status).toBe(405);
    // Without the base, Vite itself refuses (not the dataset folder).
    expect((await request(port, 'GET', `/datasets/mnist/${SMALL}`)).status).toBe(404);
  }

  it('dev server (configureServer)', async () => {
    let dev: ViteDevServer | undefined;
    try {
      dev = await createServer({
        configFile: false,
        root: app,
        base: '/app/sub/',
        logLevel: 'silent',
        plugins: [datasetServerPlugin({ dirs: { mnist: good } })],
        server: { host: '127.0.0.1', port: 0, watch: null, ws: false },
      });
      await dev.listen();
      await check(portOf(dev.httpServer as http.Server), '/app/sub/');
    } finally {
      await dev?.close();
    }
  });

  it('preview server (configurePreviewServer)', async () => {
    let srv: PreviewServer | undefined;
    try {
      srv = await preview({
        configFile: false,
        root: app,
        base: '/app/',
        logLevel: 'silent',
        build: { outDir: 'dist' },
        plugins: [datasetServerPlugin({ dirs: { mnist: good } })],
        preview: { host: '127.0.0.1', port: 0, open: false },
      });
      await check(portOf(srv.httpServer as http.Server), '/app/');
    } finally {
      await srv?.close();
    }
  });
});
