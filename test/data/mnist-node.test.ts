import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  DEBIAN_FASHION_MNIST_DIR,
  MNIST_FILES,
  MnistDataError,
  MnistUnavailableError,
  defaultCacheRoot,
  loadMnist,
  type ChecksumTable,
  type LoadMnistOptions,
  type MnistFileName,
} from '../../bench/node/data/mnist-node.js';

const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const ALL_FILES = Object.values(MNIST_FILES);
const COUNTS = { train: 3, test: 2 };
const TRAIN_LABELS = [5, 0, 4];
const TEST_LABELS = [7, 2];

// ---------------------------------------------------------------------------------------------
// A tiny MNIST-format dataset (3 train, 2 test images) with its own checksum table.

function idx(dims: readonly number[], payload: Uint8Array): Uint8Array {
  const header = new Uint8Array(4 + 4 * dims.length);
  header[2] = 0x08;
  header[3] = dims.length;
  dims.forEach((dim, i) => new DataView(header.buffer).setUint32(4 + 4 * i, dim, false));
  return new Uint8Array(Buffer.concat([header, payload]));
}

function gzippedImages(count: number, seed: number): Uint8Array {
  const pixels = Uint8Array.from({ length: count * 784 }, (_, i) => (i * seed) % 256);
  return new Uint8Array(gzipSync(idx([count, 28, 28], pixels)));
}

function gzippedLabels(labels: readonly number[]): Uint8Array {
  return new Uint8Array(gzipSync(idx([labels.length], Uint8Array.from(labels))));
}

const FIXTURE: Record<MnistFileName, Uint8Array> = {
  [MNIST_FILES.trainImages]: gzippedImages(COUNTS.train, 3),
  [MNIST_FILES.trainLabels]: gzippedLabels(TRAIN_LABELS),
  [MNIST_FILES.testImages]: gzippedImages(COUNTS.test, 5),
  [MNIST_FILES.testLabels]: gzippedLabels(TEST_LABELS),
};

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

const FIXTURE_CHECKSUMS = Object.fromEntries(
  ALL_FILES.map((file) => [file, [{ sha256: sha256(FIXTURE[file]) }]]),
) as unknown as ChecksumTable;

async function writeFixture(dir: string, files: readonly MnistFileName[] = ALL_FILES) {
  await mkdir(dir, { recursive: true });
  await Promise.all(files.map((file) => writeFile(path.join(dir, file), FIXTURE[file])));
}

// ---------------------------------------------------------------------------------------------
// A local mirror on 127.0.0.1 whose behaviour per file is chosen by each test.

type Behaviour = 'good' | 'corrupt' | 'truncated' | 'missing' | 'stall';

const behaviour = new Map<string, Behaviour>();
const requests: string[] = [];
let server: http.Server;
let baseUrl: string;

function serve(req: http.IncomingMessage, res: http.ServerResponse): void {
  const file = path.posix.basename(req.url ?? '') as MnistFileName;
  requests.push(file);
  const body = FIXTURE[file];
  const mode = behaviour.get(file) ?? 'good';
  if (body === undefined || mode === 'missing') {
    res.writeHead(404).end('not found');
    return;
  }
  res.writeHead(200, { 'Content-Length': body.length, 'Content-Type': 'application/gzip' });
  if (mode === 'good') {
    res.end(body);
  } else if (mode === 'corrupt') {
    const corrupt = Uint8Array.from(body);
    corrupt[corrupt.length - 5] ^= 0xff;
    res.end(corrupt);
  } else if (mode === 'truncated') {
    res.write(body.subarray(0, body.length >> 1), () => res.socket?.destroy());
  } else {
    res.flushHeaders(); // 'stall': headers, then silence
  }
}

beforeAll(async () => {
  server = http.createServer(serve);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mnist/`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

let tmp: string;
let cacheRoot: string;
let cacheDir: string;

beforeEach(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'mnist-node-test-'));
  cacheRoot = path.join(tmp, 'cache');
  cacheDir = path.join(cacheRoot, 'mnist');
  behaviour.clear();
  requests.length = 0;
});

afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Options for the tiny fixture: temp cache, local mirror, no real env, no system dirs. */
function options(extra: LoadMnistOptions = {}): LoadMnistOptions {
  return {
    cacheDir: cacheRoot,
    baseUrl,
    checksums: FIXTURE_CHECKSUMS,
    expectedCounts: COUNTS,
    progress: false,
    log: () => undefined,
    env: {},
    systemDirs: [],
    ...extra,
  };
}

async function listDir(dir: string): Promise<string[]> {
  return existsSync(dir) ? (await readdir(dir)).sort() : [];
}

function expectFixtureData(data: Awaited<ReturnType<typeof loadMnist>>): void {
  expect(data.train.count).toBe(COUNTS.train);
  expect(data.test.count).toBe(COUNTS.test);
  expect(data.train.images.length).toBe(COUNTS.train * 784);
  expect(Array.from(data.train.labels)).toEqual(TRAIN_LABELS);
  expect(Array.from(data.test.labels)).toEqual(TEST_LABELS);
  expect(data.train.images[1]).toBeCloseTo(3 / 255, 7);
  expect(data.train.images.every((v) => v >= 0 && v <= 1)).toBe(true);
}

// ---------------------------------------------------------------------------------------------

describe('explicit directory', () => {
  it('loads from dataDir without touching the cache or the network', async () => {
    const dir = path.join(tmp, 'data');
    await writeFixture(dir);
    const data = await loadMnist(options({ dataDir: dir }));
    expectFixtureData(data);
    expect(data.sourceKind).toBe('explicit');
    expect(data.source).toBe(`directory ${dir} (--data-dir)`);
    expect(requests).toEqual([]);
    expect(await listDir(cacheRoot)).toEqual([]);
  });

  it('reads MNIST_DIR from the environment; dataDir wins over it', async () => {
    const fromEnv = path.join(tmp, 'env');
    await writeFixture(fromEnv);
    const viaEnv = await loadMnist(options({ env: { MNIST_DIR: fromEnv } }));
    expect(viaEnv.source).toBe(`directory ${fromEnv} (MNIST_DIR)`);

    const fromFlag = path.join(tmp, 'flag');
    await writeFixture(fromFlag);
    const viaFlag = await loadMnist(options({ dataDir: fromFlag, env: { MNIST_DIR: fromEnv } }));
    expect(viaFlag.dir).toBe(fromFlag);
  });

  it('fails on a missing file instead of falling back or downloading', async () => {
    const dir = path.join(tmp, 'partial');
    await writeFixture(dir, [MNIST_FILES.trainImages, MNIST_FILES.trainLabels]);
    const error = await loadMnist(options({ dataDir: dir })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MnistDataError);
    expect((error as Error).message).toContain(
      `MNIST directory ${dir} (from --data-dir) is missing ` +
        `${MNIST_FILES.testImages}, ${MNIST_FILES.testLabels}`,
    );
    expect(requests).toEqual([]);
    expect(await listDir(dir)).toEqual([MNIST_FILES.trainImages, MNIST_FILES.trainLabels].sort());
  });

  it('says so when the directory does not exist', async () => {
    const dir = path.join(tmp, 'nowhere');
    await expect(loadMnist(options({ env: { MNIST_DIR: dir } }))).rejects.toThrow(
      `MNIST directory ${dir} (from MNIST_DIR) does not exist. Point --data-dir PATH or MNIST_DIR`,
    );
    expect(requests).toEqual([]);
  });

  it('fails on a truncated file, naming its path and both checksums, and leaves it alone', async () => {
    const dir = path.join(tmp, 'bad');
    await writeFixture(dir);
    const file = path.join(dir, MNIST_FILES.testImages);
    const truncated = FIXTURE[MNIST_FILES.testImages].subarray(0, 30);
    await writeFile(file, truncated);
    const error = await loadMnist(options({ dataDir: dir })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MnistDataError);
    const message = (error as Error).message;
    expect(message).toContain(`checksum mismatch for ${file} (30 bytes`);
    expect(message).toContain(`expected sha256 ${sha256(FIXTURE[MNIST_FILES.testImages])}`);
    expect(message).toContain(`got sha256 ${sha256(truncated)}`);
    expect(requests).toEqual([]);
    expect(new Uint8Array(await readFile(file))).toEqual(truncated);
  });

  it('accepts a file matching any one entry of the checksum table', async () => {
    const dir = path.join(tmp, 'data');
    await writeFixture(dir);
    const checksums = Object.fromEntries(
      ALL_FILES.map((file) => [file, [{ md5: '0'.repeat(32) }, ...FIXTURE_CHECKSUMS[file]]]),
    ) as unknown as ChecksumTable;
    expectFixtureData(await loadMnist(options({ dataDir: dir, checksums })));
  });
});

describe('cache', () => {
  it('uses a complete cache without downloading', async () => {
    await writeFixture(cacheDir);
    const data = await loadMnist(options());
    expectFixtureData(data);
    expect(data.sourceKind).toBe('cache');
    expect(data.source).toBe(`cache ${cacheDir}`);
    expect(requests).toEqual([]);
  });

  it('rejects a corrupt cached file, naming it', async () => {
    await writeFixture(cacheDir);
    const file = path.join(cacheDir, MNIST_FILES.trainLabels);
    await writeFile(file, 'garbage');
    await expect(loadMnist(options())).rejects.toThrow(`checksum mismatch for ${file} (7 bytes`);
    expect(requests).toEqual([]);
  });

  it('defaults to $XDG_CACHE_HOME/tfjs-fused-distill, else ~/.cache/tfjs-fused-distill', () => {
    expect(defaultCacheRoot({ XDG_CACHE_HOME: '/xdg' })).toBe('/xdg/tfjs-fused-distill');
    const home = path.join(os.homedir(), '.cache', 'tfjs-fused-distill');
    expect(defaultCacheRoot({})).toBe(home);
    // The XDG spec says relative values are invalid and must be ignored.
    expect(defaultCacheRoot({ XDG_CACHE_HOME: 'relative' })).toBe(home);
  });

  it('puts the cache under XDG_CACHE_HOME when no cacheDir is given', async () => {
    const xdg = path.join(tmp, 'xdg');
    const data = await loadMnist(options({ cacheDir: undefined, env: { XDG_CACHE_HOME: xdg } }));
    expect(data.dir).toBe(path.join(xdg, 'tfjs-fused-distill', 'mnist'));
  });
});

describe('download', () => {
  it('downloads into the cache atomically, then reuses the cache', async () => {
    const data = await loadMnist(options());
    expectFixtureData(data);
    expect(data.sourceKind).toBe('download');
    expect(data.dir).toBe(cacheDir);
    expect(requests.sort()).toEqual([...ALL_FILES].sort());
    expect(await listDir(cacheDir)).toEqual([...ALL_FILES].sort()); // no temp files left
    for (const file of ALL_FILES) {
      expect(new Uint8Array(await readFile(path.join(cacheDir, file)))).toEqual(FIXTURE[file]);
    }

    requests.length = 0;
    expect((await loadMnist(options())).sourceKind).toBe('cache');
    expect(requests).toEqual([]);
  });

  it('downloads only the files missing from the cache', async () => {
    await writeFixture(cacheDir, [MNIST_FILES.trainImages, MNIST_FILES.testImages]);
    await loadMnist(options());
    expect(requests.sort()).toEqual([MNIST_FILES.testLabels, MNIST_FILES.trainLabels].sort());
  });

  it('reads the mirror from MNIST_BASE_URL', async () => {
    const data = await loadMnist(options({ baseUrl: undefined, env: { MNIST_BASE_URL: baseUrl } }));
    expect(data.source).toBe(`downloaded from ${baseUrl} to ${cacheDir}`);
  });

  it('rejects a download with a wrong checksum and leaves no file with the final name', async () => {
    behaviour.set(MNIST_FILES.trainImages, 'corrupt');
    const error = await loadMnist(options()).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MnistDataError);
    expect((error as Error).message).toMatch(
      new RegExp(`checksum mismatch for download of ${baseUrl}${MNIST_FILES.trainImages}`),
    );
    expect((error as Error).message).toContain(sha256(FIXTURE[MNIST_FILES.trainImages]));
    expect(await listDir(cacheDir)).not.toContain(MNIST_FILES.trainImages);
    expect((await listDir(cacheDir)).filter((f) => f.endsWith('.part'))).toEqual([]);
  });

  it('rejects a truncated response and leaves no file behind', async () => {
    behaviour.set(MNIST_FILES.trainImages, 'truncated');
    await expect(loadMnist(options())).rejects.toThrow(
      new RegExp(`download of ${baseUrl}${MNIST_FILES.trainImages} (was interrupted|is truncated)`),
    );
    expect(await listDir(cacheDir)).toEqual([]); // train-images is the first file fetched
  });

  it('aborts a download that stalls', async () => {
    behaviour.set(MNIST_FILES.trainImages, 'stall');
    await expect(loadMnist(options({ stallTimeoutMs: 200 }))).rejects.toThrow(
      /was interrupted after 0 of \d+ bytes/,
    );
    expect(await listDir(cacheDir)).toEqual([]);
  });

  it('reports an HTTP error', async () => {
    behaviour.set(MNIST_FILES.testLabels, 'missing');
    await expect(loadMnist(options())).rejects.toThrow(
      `download of ${baseUrl}${MNIST_FILES.testLabels} failed: HTTP 404`,
    );
    expect(await listDir(cacheDir)).not.toContain(MNIST_FILES.testLabels);
  });

  it('draws a progress bar when asked', async () => {
    const stream = new PassThrough();
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    await loadMnist(options({ progress: true, progressStream: stream }));
    const output = Buffer.concat(chunks).toString();
    expect(output).toContain(MNIST_FILES.trainImages);
    expect(output).toContain('100%');
  });

  it('logs one line per file when there is no bar', async () => {
    const lines: string[] = [];
    await loadMnist(options({ log: (line) => lines.push(line) }));
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^downloading http:\/\/127\.0\.0\.1:\d+\/mnist\/train-images/);
  });
});

describe('offline', () => {
  it('says where it looked and how to point at a folder when the mirror is unreachable', async () => {
    const gone = http.createServer();
    await new Promise<void>((resolve) => gone.listen(0, '127.0.0.1', resolve));
    const deadUrl = `http://127.0.0.1:${(gone.address() as AddressInfo).port}/`;
    await new Promise((resolve) => gone.close(resolve));

    const error = await loadMnist(options({ baseUrl: deadUrl })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MnistUnavailableError);
    const message = (error as Error).message;
    expect(message).toContain(`could not reach ${deadUrl}${MNIST_FILES.trainImages}`);
    expect(message).toContain(`cache ${cacheDir}: missing ${ALL_FILES.join(', ')}`);
    expect(message).toContain('MNIST_DIR: not set');
    expect(message).toContain('--data-dir PATH');
    expect(message).toContain('MNIST_DIR environment variable');
    expect(await listDir(cacheDir)).toEqual([]);
  });

  it('does not download when download is false', async () => {
    await expect(loadMnist(options({ download: false }))).rejects.toThrow(
      /MNIST is not available: no local copy, and downloading is disabled/,
    );
    expect(requests).toEqual([]);
  });
});

describe('fashion-mnist', () => {
  const fashion = (extra: LoadMnistOptions = {}) => options({ dataset: 'fashion-mnist', ...extra });

  it('caches under its own name and uses FASHION_MNIST_DIR, not MNIST_DIR', async () => {
    const digits = path.join(tmp, 'digits');
    const clothes = path.join(tmp, 'clothes');
    await writeFixture(clothes);
    const data = await loadMnist(
      fashion({ env: { MNIST_DIR: digits, FASHION_MNIST_DIR: clothes } }),
    );
    expect(data.dataset).toBe('fashion-mnist');
    expect(data.source).toBe(`directory ${clothes} (FASHION_MNIST_DIR)`);

    const downloaded = await loadMnist(fashion({ env: { MNIST_DIR: digits } }));
    expect(downloaded.dir).toBe(path.join(cacheRoot, 'fashion-mnist'));
  });

  it('falls back to a system copy after the cache', async () => {
    const system = path.join(tmp, 'usr-share');
    await writeFixture(system);
    const data = await loadMnist(fashion({ systemDirs: [path.join(tmp, 'absent'), system] }));
    expect(data.sourceKind).toBe('system');
    expect(data.source).toBe(`system copy ${system}`);
    expect(requests).toEqual([]);
  });

  it('has no default mirror, and says so', async () => {
    await expect(loadMnist(fashion({ baseUrl: undefined }))).rejects.toThrow(
      /no download mirror is configured \(set FASHION_MNIST_BASE_URL\)/,
    );
  });

  // Optional on a developer's machine; CI (.ci/run installs the package) must run it.
  it.skipIf(!existsSync(DEBIAN_FASHION_MNIST_DIR) && !process.env.CI)(
    "loads Debian's dataset-fashion-mnist package with its checksums",
    async () => {
      const data = await loadMnist({
        dataset: 'fashion-mnist',
        cacheDir: cacheRoot,
        download: false,
        env: {},
      });
      expect(data.sourceKind).toBe('system');
      expect([data.train.count, data.test.count]).toEqual([60000, 10000]);
      expect(labelHistogram(data.train.labels)).toEqual(new Array(10).fill(6000));
      expect(labelHistogram(data.test.labels)).toEqual(new Array(10).fill(1000));
    },
  );
});

function labelHistogram(labels: Int32Array): number[] {
  const counts = new Array<number>(10).fill(0);
  for (const label of labels) counts[label]++;
  return counts;
}

describe('real MNIST', () => {
  // Must fail, not skip, when the folder is missing: CI always provides it.
  const dir = path.resolve(REPO_ROOT, process.env.MNIST_DIR ?? '../shared/data/mnist');

  it(`loads the canonical files from ${dir}`, async () => {
    expect(existsSync(dir), `MNIST folder ${dir} is missing (set MNIST_DIR)`).toBe(true);
    const data = await loadMnist({ dataDir: dir, download: false, cacheDir: cacheRoot });
    expect(data.train.count).toBe(60000);
    expect(data.test.count).toBe(10000);
    expect(data.train.images.length).toBe(60000 * 784);
    expect(data.test.images.length).toBe(10000 * 784);
    expect(Array.from(data.train.labels.subarray(0, 10))).toEqual([5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    expect(labelHistogram(data.train.labels)).toEqual([
      5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949,
    ]);
    expect(labelHistogram(data.test.labels)).toEqual([
      980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009,
    ]);
    for (const split of [data.train, data.test]) {
      let min = Infinity;
      let max = -Infinity;
      for (const v of split.images) {
        min = Math.min(min, v);
        max = Math.max(max, v);
      }
      expect([min, max]).toEqual([0, 1]);
    }
  });
});
