/**
 * Node-side MNIST / Fashion-MNIST loading: find the four IDX files, verify them, download them
 * into a user cache when they are missing, then decode them with the runtime-agnostic parser.
 *
 * Where the files come from, in order:
 *   1. an explicit directory (`dataDir`, filled by the CLI from `--data-dir`, else the env
 *      variable `MNIST_DIR` / `FASHION_MNIST_DIR`). When given it is the only source: a
 *      missing or corrupt file there is an error, never a reason to fall back or download.
 *   2. the user cache, `${XDG_CACHE_HOME:-~/.cache}/tfjs-fused-distill/<dataset>`;
 *   3. read-only system copies (Debian's `dataset-fashion-mnist` package, fashion-mnist only);
 *   4. a download from `baseUrl` (env `MNIST_BASE_URL` / `FASHION_MNIST_BASE_URL`) into the
 *      cache: streamed to a temp file in the cache directory, fsynced, checksum-verified and
 *      only then renamed to its final name, so a failed download never leaves a final file.
 *
 * Every file read from a directory is checksum-verified before it is parsed.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import cliProgress from 'cli-progress';
import { loadMnistSplitFromBuffers, type Gunzip, type MnistSplit } from '../../core/data/idx.js';
import {
  DATASETS,
  MNIST_FILES,
  MNIST_FILE_NAMES,
  formatDigests,
  verifyDigest,
  type ChecksumTable,
  type DatasetName,
  type FileDigests,
  type MnistFileName,
} from '../../core/data/datasets.js';

// The catalogue lives in bench/core/data/datasets.ts (shared with the browser app); these
// re-exports keep this module's public surface unchanged for its importers.
export {
  DEFAULT_MNIST_BASE_URL,
  FASHION_MNIST_CHECKSUMS,
  MNIST_CHECKSUMS,
  MNIST_FILES,
  type ChecksumTable,
  type FileDigests,
  type MnistFileName,
} from '../../core/data/datasets.js';

/** The datasets this loader knows; both use the same four file names and format. */
export type MnistDataset = DatasetName;

const ALL_FILES: readonly MnistFileName[] = MNIST_FILE_NAMES;

/** Where Debian's `dataset-fashion-mnist` package installs the four files. */
export const DEBIAN_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** Per-dataset defaults: env variable names, checksums, download mirror, system copies. */
interface DatasetProfile {
  readonly label: string;
  readonly dirEnv: string;
  readonly baseUrlEnv: string;
  /** No default mirror means: download only when a base URL is configured. */
  readonly defaultBaseUrl: string | undefined;
  readonly checksums: ChecksumTable;
  readonly systemDirs: readonly string[];
  readonly counts: { readonly train: number; readonly test: number };
}

const PROFILES: Readonly<Record<MnistDataset, DatasetProfile>> = {
  mnist: { ...DATASETS.mnist, systemDirs: [] },
  'fashion-mnist': { ...DATASETS['fashion-mnist'], systemDirs: [DEBIAN_FASHION_MNIST_DIR] },
};

/** How {@link loadMnist} found its files. */
export type MnistSourceKind = 'explicit' | 'cache' | 'system' | 'download';

/** Options of {@link loadMnist} and {@link locateMnistFiles}. */
export interface LoadMnistOptions {
  /** Which dataset; default 'mnist'. */
  dataset?: MnistDataset;
  /** Directory holding the four files (CLI `--data-dir`). Overrides the env variable. */
  dataDir?: string;
  /** Cache root; files go to `<cacheDir>/<dataset>`. Default: {@link defaultCacheRoot}. */
  cacheDir?: string;
  /** Mirror to download from; overrides the env variable and the built-in default. */
  baseUrl?: string;
  /** Allow downloading missing files into the cache. Default true. */
  download?: boolean;
  /** Show a progress bar while downloading. Default: only when stderr is a TTY. */
  progress?: boolean;
  /** Stream for the progress bar. Default process.stderr. */
  progressStream?: NodeJS.WritableStream;
  /** One-line notices (e.g. "downloading X"). Default: write to stderr. */
  log?: (line: string) => void;
  /** Accepted checksums; default the dataset's canonical table. For tests and custom mirrors. */
  checksums?: ChecksumTable;
  /** Example counts the files must hold; default 60000 / 10000. For tests. */
  expectedCounts?: { train: number; test: number };
  /** Read-only extra directories tried after the cache. Default: the dataset's system copies. */
  systemDirs?: readonly string[];
  /** Environment to read MNIST_DIR, XDG_CACHE_HOME etc. from. Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Abort a download that receives nothing for this long. Default 60 s. */
  stallTimeoutMs?: number;
  /** Decompressor handed to the IDX parser; default DecompressionStream. */
  gunzip?: Gunzip;
}

/** The four verified files, as bytes, and where they came from. */
export interface LocatedMnistFiles {
  readonly dataset: MnistDataset;
  readonly kind: MnistSourceKind;
  /** Directory the files were read from (for 'download': the cache they were saved to). */
  readonly dir: string;
  /** Human-readable origin, for logs and result files. */
  readonly source: string;
  readonly bytes: Readonly<Record<MnistFileName, Uint8Array>>;
}

/** A decoded dataset. Images are `count * 784` floats in [0, 1]; labels are Int32 in [0, 9]. */
export interface MnistData {
  readonly dataset: MnistDataset;
  readonly train: MnistSplit;
  readonly test: MnistSplit;
  /** Human-readable origin, e.g. `cache /home/me/.cache/tfjs-fused-distill/mnist`. */
  readonly source: string;
  readonly sourceKind: MnistSourceKind;
  /** Directory the files were read from. */
  readonly dir: string;
}

/** A file failed verification, a directory is incomplete, or a download failed. */
export class MnistDataError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MnistDataError';
  }
}

/** No usable local copy and no way to download one; the message lists every place tried. */
export class MnistUnavailableError extends MnistDataError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MnistUnavailableError';
  }
}

/** The connection itself failed (refused, DNS, unreachable): we are offline for this mirror. */
class NetworkUnreachableError extends Error {
  constructor(
    readonly url: string,
    message: string,
    options: { cause: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The cache root: `$XDG_CACHE_HOME/tfjs-fused-distill` when XDG_CACHE_HOME is an absolute path
 * (as the XDG spec requires), else `~/.cache/tfjs-fused-distill`.
 */
export function defaultCacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CACHE_HOME;
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.cache');
  return path.join(base, 'tfjs-fused-distill');
}

/**
 * Loads and validates both splits of MNIST (or Fashion-MNIST), locating or downloading the
 * files as described in this module's header.
 * @throws MnistUnavailableError when no local copy exists and none can be downloaded.
 * @throws MnistDataError on a checksum mismatch, an incomplete explicit directory or a failed
 *   download; IdxFormatError (from bench/core/data/idx.js) on a structurally bad file.
 */
export async function loadMnist(options: LoadMnistOptions = {}): Promise<MnistData> {
  const located = await locateMnistFiles(options);
  const profile = PROFILES[located.dataset];
  const counts = options.expectedCounts ?? profile.counts;
  const fileName = (file: MnistFileName): string => path.join(located.dir, file);
  const [train, test] = await Promise.all([
    loadMnistSplitFromBuffers({
      name: 'train',
      imagesBytes: located.bytes[MNIST_FILES.trainImages],
      labelsBytes: located.bytes[MNIST_FILES.trainLabels],
      imagesName: fileName(MNIST_FILES.trainImages),
      labelsName: fileName(MNIST_FILES.trainLabels),
      expectedCount: counts.train,
      gunzip: options.gunzip,
    }),
    loadMnistSplitFromBuffers({
      name: 'test',
      imagesBytes: located.bytes[MNIST_FILES.testImages],
      labelsBytes: located.bytes[MNIST_FILES.testLabels],
      imagesName: fileName(MNIST_FILES.testImages),
      labelsName: fileName(MNIST_FILES.testLabels),
      expectedCount: counts.test,
      gunzip: options.gunzip,
    }),
  ]);
  return {
    dataset: located.dataset,
    train,
    test,
    source: located.source,
    sourceKind: located.kind,
    dir: located.dir,
  };
}

/**
 * Finds the four files (explicit dir → cache → system copies → download into the cache) and
 * returns their checksum-verified bytes, without decoding them.
 * @throws see {@link loadMnist}.
 */
export async function locateMnistFiles(options: LoadMnistOptions = {}): Promise<LocatedMnistFiles> {
  const dataset = options.dataset ?? 'mnist';
  const profile = PROFILES[dataset];
  const env = options.env ?? process.env;
  const checksums = options.checksums ?? profile.checksums;

  const cacheDir = path.join(options.cacheDir ?? defaultCacheRoot(env), dataset);

  const explicitDir = options.dataDir ?? nonEmpty(env[profile.dirEnv]);
  if (explicitDir !== undefined) {
    const via = options.dataDir !== undefined ? '--data-dir' : profile.dirEnv;
    return readExplicitDir(dataset, path.resolve(explicitDir), via, checksums, cacheDir);
  }

  const cached = await readPresentFiles(cacheDir, checksums);
  const missing = ALL_FILES.filter((file) => !cached.has(file));
  if (missing.length === 0) {
    return located(dataset, 'cache', cacheDir, `cache ${cacheDir}`, cached);
  }

  const systemDirs = options.systemDirs ?? profile.systemDirs;
  for (const dir of systemDirs) {
    const system = await readPresentFiles(dir, checksums);
    if (system.size === ALL_FILES.length) {
      return located(dataset, 'system', dir, `system copy ${dir}`, system);
    }
  }

  const baseUrl = options.baseUrl ?? nonEmpty(env[profile.baseUrlEnv]) ?? profile.defaultBaseUrl;
  const looked = describePlacesLooked(profile, cacheDir, missing, systemDirs);
  if (options.download === false || baseUrl === undefined) {
    const why =
      options.download === false
        ? 'downloading is disabled'
        : `no download mirror is configured (set ${profile.baseUrlEnv})`;
    throw unavailable(profile, looked, why);
  }
  try {
    for (const file of missing) {
      const url = new URL(file, withTrailingSlash(baseUrl)).href;
      const dest = path.join(cacheDir, file);
      cached.set(
        file,
        await downloadVerified(url, dest, checksums[file], downloadSettings(options)),
      );
    }
  } catch (error) {
    if (!(error instanceof NetworkUnreachableError)) throw error;
    throw unavailable(profile, looked, `could not reach ${error.url}: ${error.message}`, error);
  }
  const source = `downloaded from ${baseUrl} to ${cacheDir}`;
  return located(dataset, 'download', cacheDir, source, cached);
}

function downloadSettings(options: LoadMnistOptions): DownloadSettings {
  return {
    progress: options.progress ?? Boolean(process.stderr.isTTY),
    progressStream: options.progressStream ?? process.stderr,
    log: options.log ?? ((line) => process.stderr.write(`${line}\n`)),
    stallTimeoutMs: options.stallTimeoutMs ?? 60_000,
  };
}

/** An explicit directory must hold all four files; it is never written to. */
async function readExplicitDir(
  dataset: MnistDataset,
  dir: string,
  via: string,
  checksums: ChecksumTable,
  cacheDir: string,
): Promise<LocatedMnistFiles> {
  const found = await readPresentFiles(dir, checksums);
  const missing = ALL_FILES.filter((file) => !found.has(file));
  if (missing.length > 0) {
    const { label, dirEnv } = PROFILES[dataset];
    const problem = existsSync(dir) ? `is missing ${missing.join(', ')}` : 'does not exist';
    throw new MnistDataError(
      `${label} directory ${dir} (from ${via}) ${problem}. ` +
        `Point --data-dir PATH or ${dirEnv} at a folder holding all of ${ALL_FILES.join(', ')}, ` +
        `or unset it to use the cache at ${cacheDir}.`,
    );
  }
  return located(dataset, 'explicit', dir, `directory ${dir} (${via})`, found);
}

/** Reads and verifies whichever of the four files exist in `dir`; absent ones are skipped. */
async function readPresentFiles(
  dir: string,
  checksums: ChecksumTable,
): Promise<Map<MnistFileName, Uint8Array>> {
  const found = new Map<MnistFileName, Uint8Array>();
  for (const file of ALL_FILES) {
    const filePath = path.join(dir, file);
    const bytes = await readIfExists(filePath);
    if (bytes === undefined) continue;
    await verifyChecksum(bytes, checksums[file], filePath);
    found.set(file, bytes);
  }
  return found;
}

/** The file's bytes, or undefined when it (or its directory) does not exist. */
async function readIfExists(filePath: string): Promise<Uint8Array | undefined> {
  try {
    const buffer = await readFile(filePath);
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw error;
  }
}

/** @throws MnistDataError naming the file, its size and both the expected and actual digests. */
async function verifyChecksum(
  bytes: Uint8Array,
  accepted: readonly FileDigests[],
  where: string,
): Promise<void> {
  const check = await verifyDigest(bytes, accepted, { md5: md5Hex });
  if (check.ok) return;
  const expected = accepted.map(formatDigests).join(' or ');
  throw new MnistDataError(
    `checksum mismatch for ${where} (${bytes.length} bytes; truncated or corrupt?): ` +
      `expected ${expected}, got ${formatDigests(check.actual)}. Replace or delete the file.`,
  );
}

function md5Hex(bytes: Uint8Array): string {
  return createHash('md5').update(bytes).digest('hex');
}

interface DownloadSettings {
  progress: boolean;
  progressStream: NodeJS.WritableStream;
  log: (line: string) => void;
  stallTimeoutMs: number;
}

/**
 * Downloads `url` to `dest` atomically: temp file in the same directory, fsync, checksum,
 * rename. On any failure the temp file is removed, so `dest` either appears whole or not at all.
 * @returns the verified bytes.
 */
async function downloadVerified(
  url: string,
  dest: string,
  accepted: readonly FileDigests[],
  settings: DownloadSettings,
): Promise<Uint8Array> {
  const tempPath = `${dest}.${process.pid}.${randomBytes(6).toString('hex')}.part`;
  let handle: FileHandle | undefined;
  try {
    await mkdir(path.dirname(dest), { recursive: true });
    handle = await open(tempPath, 'wx');
    const bytes = await streamToFile(url, handle, dest, settings);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await verifyChecksum(bytes, accepted, `download of ${url}`);
    await rename(tempPath, dest);
    await syncDirectory(path.dirname(dest));
    return bytes;
  } catch (error) {
    await handle?.close().catch(() => undefined);
    await rm(tempPath, { force: true });
    throw error;
  }
}

/** Streams the response body into `handle` and returns everything received. */
async function streamToFile(
  url: string,
  handle: FileHandle,
  destination: string,
  settings: DownloadSettings,
): Promise<Uint8Array> {
  const stall = new StallTimer(settings.stallTimeoutMs);
  try {
    const response = await fetchOrUnreachable(url, stall.signal);
    if (!response.ok || response.body === null) {
      throw new MnistDataError(`download of ${url} failed: HTTP ${response.status}`);
    }
    const total = Number(response.headers.get('content-length') ?? NaN);
    const reporter = startProgress(url, destination, total, settings);
    const chunks: Uint8Array[] = [];
    let received = 0;
    try {
      const reader = response.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        stall.reset();
        await handle.write(value);
        chunks.push(value);
        received += value.length;
        reporter.update(received);
      }
    } catch (error) {
      throw new MnistDataError(
        `download of ${url} was interrupted after ${received} of ${describeSize(total)}: ` +
          describeError(error),
        { cause: error },
      );
    } finally {
      reporter.stop();
    }
    if (Number.isFinite(total) && received !== total) {
      throw new MnistDataError(
        `download of ${url} is truncated: got ${received} of ${total} bytes`,
      );
    }
    return concat(chunks, received);
  } finally {
    stall.clear();
  }
}

/** `fetch`, with connection-level failures (refused, DNS, unreachable) told apart from HTTP ones. */
async function fetchOrUnreachable(url: string, signal: AbortSignal): Promise<Response> {
  try {
    return await fetch(url, { signal });
  } catch (error) {
    throw new NetworkUnreachableError(url, describeError(error), { cause: error });
  }
}

/** Aborts a request that makes no progress for `timeoutMs`; reset on every chunk. */
class StallTimer {
  private readonly controller = new AbortController();
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly timeoutMs: number) {
    this.reset();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  reset(): void {
    this.clear();
    this.timer = setTimeout(() => {
      this.controller.abort(new Error(`no data for ${this.timeoutMs} ms`));
    }, this.timeoutMs);
  }

  clear(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

interface ProgressReporter {
  update(received: number): void;
  stop(): void;
}

/** A cli-progress bar when asked for and the size is known; otherwise a single log line. */
function startProgress(
  url: string,
  destination: string,
  total: number,
  settings: DownloadSettings,
): ProgressReporter {
  const file = path.basename(destination);
  if (!settings.progress || !Number.isFinite(total) || total <= 0) {
    settings.log(`downloading ${url} (${describeSize(total)}) to ${destination}`);
    return { update: () => undefined, stop: () => undefined };
  }
  const bar = new cliProgress.SingleBar({
    format: `${file} [{bar}] {percentage}% | {receivedMb}/{totalMb} MB | ETA {eta}s`,
    stream: settings.progressStream,
    noTTYOutput: true,
    hideCursor: null,
  });
  const mb = (bytes: number): string => (bytes / 1e6).toFixed(1);
  bar.start(total, 0, { receivedMb: mb(0), totalMb: mb(total) });
  return {
    update: (received) => bar.update(received, { receivedMb: mb(received) }),
    stop: () => bar.stop(),
  };
}

/** Flushes the rename itself to disk; not every platform can open a directory, so best effort. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // Directory fsync is unsupported on some platforms (Windows); the rename already happened.
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

function describePlacesLooked(
  profile: DatasetProfile,
  cacheDir: string,
  missing: readonly MnistFileName[],
  systemDirs: readonly string[],
): string[] {
  return [
    `--data-dir: not given; ${profile.dirEnv}: not set`,
    `cache ${cacheDir}: missing ${missing.join(', ')}`,
    ...systemDirs.map((dir) => `system copy ${dir}: absent or incomplete`),
  ];
}

function unavailable(
  profile: DatasetProfile,
  looked: readonly string[],
  why: string,
  cause?: unknown,
): MnistUnavailableError {
  return new MnistUnavailableError(
    `${profile.label} is not available: no local copy, and ${why}.\n` +
      `Looked in:\n${looked.map((line) => `  - ${line}`).join('\n')}\n` +
      `Point it at a folder holding ${ALL_FILES.join(', ')} with --data-dir PATH ` +
      `or the ${profile.dirEnv} environment variable.`,
    { cause },
  );
}

function located(
  dataset: MnistDataset,
  kind: MnistSourceKind,
  dir: string,
  source: string,
  files: ReadonlyMap<MnistFileName, Uint8Array>,
): LocatedMnistFiles {
  const bytes = Object.fromEntries(ALL_FILES.map((file) => [file, files.get(file)])) as Record<
    MnistFileName,
    Uint8Array
  >;
  return { dataset, kind, dir, source, bytes };
}

function concat(chunks: readonly Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

function withTrailingSlash(url: string): string {
  return url.endsWith('/') ? url : `${url}/`;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

function describeSize(bytes: number): string {
  return Number.isFinite(bytes) ? `${bytes} bytes` : 'unknown size';
}

/** fetch wraps socket errors as `TypeError: fetch failed` with the useful part in `cause`. */
function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${error.message}${cause}`;
}
