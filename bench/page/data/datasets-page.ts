/**
 * MNIST / Fashion-MNIST for the browser app: finds the four IDX files, verifies every one
 * against the catalogue's sha256 (bench/core/data/datasets.ts) and decodes them with the
 * shared parser (bench/core/data/idx.ts, gunzip through DecompressionStream).
 *
 * Where the files come from:
 *   - the files the user picked, when any are given: only these. A missing, unknown or corrupt
 *     one is an error naming it; nothing else is tried.
 *   - otherwise, file by file:
 *       1. the same-origin folder (`./datasets/<dataset>/`, served read-only by the dev server,
 *          `vite preview` and the headless runner). "Not served here" (404, 403, 410, or an
 *          HTML page from a single-page-app fallback) moves on; a file that is served but fails
 *          its checksum is an error, never a reason to fall back.
 *       2. the browser cache (Cache Storage). Entries are re-verified before use; a corrupt one
 *          is deleted and fetched again.
 *       3. a download from the dataset's mirror (the CLI's, by default), streamed with
 *          progress, verified, then stored in the cache.
 *
 * Nothing is returned unless all four files passed their checksum and the parser's checks.
 * DOM only: no Node APIs (Node ≥ 20 has every web API used here, which the tests rely on).
 */
import {
  DATASETS,
  MNIST_FILES,
  MNIST_FILE_NAMES,
  formatDigests,
  identifyFile,
  verifyDigest,
  type DatasetName,
  type DigestCheck,
  type MnistFileName,
} from '../../core/data/datasets.js';
import { IdxFormatError, loadMnistSplitFromBuffers } from '../../core/data/idx.js';
import type { HostSplit } from '../../core/protocol/data.js';

/** Name of the Cache Storage cache holding verified dataset files. */
export const DATASET_CACHE_NAME = 'tfjs-fused-distill-datasets-v1';

/** How the browser cache is named in progress events and `source`. */
const CACHE_LABEL = `browser cache (${DATASET_CACHE_NAME})`;

/** Where one file came from. */
export type DatasetSourceKind = 'picked' | 'same-origin' | 'cache' | 'download';

/** A progress report; `total` is null when the size is unknown. */
export interface DatasetProgress {
  /** One of the four file names (for 'parse': the split's image file). */
  file: string;
  loaded: number;
  total: number | null;
  phase: 'fetch' | 'verify' | 'cache' | 'parse';
  /** Human-readable origin, e.g. `download https://…/` or `same-origin ./datasets/mnist/`. */
  source: string;
}

/** A store of verified files, by key `<dataset>/<file name>`. Entries are re-verified on read. */
export interface DatasetCache {
  get(key: string): Promise<Uint8Array | undefined>;
  put(key: string, bytes: Uint8Array): Promise<void>;
  delete(key: string): Promise<void>;
}

/** Options of {@link loadDatasetInPage}. */
export interface LoadDatasetInPageOptions {
  dataset: DatasetName;
  /** The four files picked by the user; when non-empty, the only source. */
  files?: ArrayLike<File>;
  /** Folder served by the dev server; default `./datasets/<dataset>/` (relative to the page). */
  sameOriginBase?: string;
  /** Mirror to download from; default the catalogue's (the CLI's). */
  downloadBase?: string;
  /** Verified-file cache; default Cache Storage when the page has it, null for none. */
  cache?: DatasetCache | null;
  onProgress?(ev: DatasetProgress): void;
  signal?: AbortSignal;
}

/** Both splits, verified and decoded. */
export interface LoadedDataset {
  dataset: DatasetName;
  train: HostSplit;
  test: HostSplit;
  /** Human-readable origin of the files (for the report). */
  source: string;
  /** Where each file came from. */
  origins: Record<MnistFileName, DatasetSourceKind>;
}

/** Why a load failed; the message says which file, which source and what to do. */
export type DatasetLoadErrorKind =
  | 'missing'
  | 'unknown-file'
  | 'duplicate'
  | 'checksum'
  | 'http'
  | 'network'
  | 'format'
  | 'unavailable';

/** A dataset could not be loaded; never accompanied by data. */
export class DatasetLoadError extends Error {
  readonly kind: DatasetLoadErrorKind;
  /** The file concerned, when one is. */
  readonly file: string | undefined;
  /** The source concerned, when one is. */
  readonly source: string | undefined;
  /** For 'checksum': the accepted sha256 values and the one found. */
  readonly expectedSha256: readonly string[] | undefined;
  readonly actualSha256: string | undefined;

  constructor(
    kind: DatasetLoadErrorKind,
    message: string,
    details: {
      file?: string;
      source?: string;
      expectedSha256?: readonly string[];
      actualSha256?: string;
      cause?: unknown;
    } = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = 'DatasetLoadError';
    this.kind = kind;
    this.file = details.file;
    this.source = details.source;
    this.expectedSha256 = details.expectedSha256;
    this.actualSha256 = details.actualSha256;
  }
}

/**
 * Loads both splits of a dataset in the page, from the sources described in this module's
 * header, and returns them only when every file passed its checksum and the parser's checks.
 * @throws DatasetLoadError when a file is missing, corrupt or cannot be fetched.
 * @throws the signal's reason when `signal` aborts.
 */
export async function loadDatasetInPage(options: LoadDatasetInPageOptions): Promise<LoadedDataset> {
  const info = DATASETS[options.dataset];
  if (info === undefined) {
    throw new DatasetLoadError('unavailable', `unknown dataset ${String(options.dataset)}`);
  }
  options.signal?.throwIfAborted();
  const context: Context = {
    dataset: options.dataset,
    progress: options.onProgress ?? (() => undefined),
    signal: options.signal,
  };

  let located: Located;
  if (options.files !== undefined && options.files.length > 0) {
    located = await fromPickedFiles(context, Array.from(options.files));
  } else {
    const cache = options.cache === undefined ? await openBrowserDatasetCache() : options.cache;
    located = await fromSources(context, {
      sameOriginBase: options.sameOriginBase ?? `./datasets/${options.dataset}/`,
      downloadBase: options.downloadBase ?? info.defaultBaseUrl,
      cache: cache ?? undefined,
    });
  }

  const split = async (
    name: 'train' | 'test',
    images: MnistFileName,
    labels: MnistFileName,
  ): Promise<HostSplit> => {
    context.signal?.throwIfAborted();
    context.progress({
      file: images,
      loaded: 0,
      total: null,
      phase: 'parse',
      source: located.source,
    });
    try {
      const parsed = await loadMnistSplitFromBuffers({
        name,
        imagesBytes: located.bytes[images],
        labelsBytes: located.bytes[labels],
        imagesName: `${images} (${located.describe(images)})`,
        labelsName: `${labels} (${located.describe(labels)})`,
        expectedCount: info.counts[name],
      });
      return { images: parsed.images, labels: parsed.labels, count: parsed.count };
    } catch (error) {
      if (!(error instanceof IdxFormatError)) throw error;
      throw new DatasetLoadError('format', `${info.label}: ${error.message}`, {
        cause: error,
      });
    }
  };
  // Sequential: the train split alone decodes to 188 MB of float32.
  const test = await split('test', MNIST_FILES.testImages, MNIST_FILES.testLabels);
  const train = await split('train', MNIST_FILES.trainImages, MNIST_FILES.trainLabels);
  context.signal?.throwIfAborted();
  return {
    dataset: options.dataset,
    train,
    test,
    source: located.source,
    origins: located.origins,
  };
}

/**
 * The Cache Storage cache {@link DATASET_CACHE_NAME}, or undefined where the page has none
 * (insecure context, some private modes, Node).
 */
export async function openBrowserDatasetCache(
  name: string = DATASET_CACHE_NAME,
): Promise<DatasetCache | undefined> {
  if (typeof caches === 'undefined') return undefined;
  let cache: Cache;
  try {
    cache = await caches.open(name);
  } catch {
    return undefined;
  }
  // Cache Storage keys are http(s) requests; a reserved host keeps them clear of real URLs.
  const request = (key: string): string =>
    `https://dataset-cache.invalid/${key.split('/').map(encodeURIComponent).join('/')}`;
  return {
    async get(key) {
      const response = await cache.match(request(key));
      return response === undefined ? undefined : new Uint8Array(await response.arrayBuffer());
    },
    async put(key, bytes) {
      const body = new Blob([arrayBufferBacked(bytes)], { type: 'application/gzip' });
      await cache.put(request(key), new Response(body));
    },
    async delete(key) {
      await cache.delete(request(key));
    },
  };
}

/** An in-memory {@link DatasetCache} (tests, or a page without Cache Storage). */
export class MemoryDatasetCache implements DatasetCache {
  readonly entries = new Map<string, Uint8Array>();

  async get(key: string): Promise<Uint8Array | undefined> {
    const bytes = this.entries.get(key);
    return bytes === undefined ? undefined : bytes.slice();
  }

  async put(key: string, bytes: Uint8Array): Promise<void> {
    this.entries.set(key, bytes.slice());
  }

  async delete(key: string): Promise<void> {
    this.entries.delete(key);
  }
}

/** The cache key of one file. */
export function datasetCacheKey(dataset: DatasetName, file: MnistFileName): string {
  return `${dataset}/${file}`;
}

// ---------------------------------------------------------------------------------------------

interface Context {
  dataset: DatasetName;
  progress: (ev: DatasetProgress) => void;
  signal: AbortSignal | undefined;
}

interface Located {
  bytes: Record<MnistFileName, Uint8Array>;
  origins: Record<MnistFileName, DatasetSourceKind>;
  source: string;
  describe(file: MnistFileName): string;
}

/** Smallest first, so a bad source fails before the 10 MB train images are fetched. */
const FETCH_ORDER: readonly MnistFileName[] = [
  MNIST_FILES.testLabels,
  MNIST_FILES.trainLabels,
  MNIST_FILES.testImages,
  MNIST_FILES.trainImages,
];

/** The user's files: matched by name, else recognised by checksum (a browser may rename). */
async function fromPickedFiles(context: Context, picked: readonly File[]): Promise<Located> {
  const info = DATASETS[context.dataset];
  const source = `picked files (${picked.map((file) => file.name).join(', ')})`;
  const byName = new Map<MnistFileName, File>();
  const unnamed: File[] = [];
  for (const file of picked) {
    const role = MNIST_FILE_NAMES.find((name) => name === file.name);
    if (role === undefined) {
      unnamed.push(file);
    } else if (byName.has(role)) {
      throw new DatasetLoadError(
        'duplicate',
        `${role} was picked twice; pick each of ${MNIST_FILE_NAMES.join(', ')} once.`,
        { file: role, source },
      );
    } else {
      byName.set(role, file);
    }
  }

  const bytes = new Map<MnistFileName, Uint8Array>();
  for (const [role, file] of byName) {
    const data = await readPicked(context, file, role, source);
    await verifyOrThrow(context, role, data, `the picked file ${file.name}`, source);
    bytes.set(role, data);
  }
  for (const file of unnamed) {
    const data = await readPicked(context, file, file.name, source);
    context.progress({ ...fileEvent(file.name, data.length, source), phase: 'verify' });
    const check = await verifyDigest(data, []);
    const known = identifyFile(check.actual);
    if (known === undefined || known.dataset !== context.dataset || bytes.has(known.file)) {
      const what =
        known === undefined
          ? 'its name and checksum match none of them'
          : known.dataset !== context.dataset
            ? `it is ${DATASETS[known.dataset].label}'s ${known.file}`
            : `it duplicates ${known.file}`;
      throw new DatasetLoadError(
        known !== undefined && known.dataset === context.dataset ? 'duplicate' : 'unknown-file',
        `The picked file ${file.name} is not one of ${info.label}'s files ` +
          `(${MNIST_FILE_NAMES.join(', ')}): ${what}. Pick the four ${info.label} files.`,
        { file: file.name, source, actualSha256: check.actual.sha256 },
      );
    }
    bytes.set(known.file, data);
  }

  const missing = MNIST_FILE_NAMES.filter((name) => !bytes.has(name));
  if (missing.length > 0) {
    throw new DatasetLoadError(
      'missing',
      `${info.label}: ${missing.join(', ')} ${missing.length === 1 ? 'was' : 'were'} not ` +
        `among the picked files. Pick all four: ${MNIST_FILE_NAMES.join(', ')}.`,
      { file: missing[0], source },
    );
  }
  return located(
    bytes,
    () => 'picked',
    source,
    () => 'picked file',
  );
}

async function readPicked(
  context: Context,
  file: File,
  label: string,
  source: string,
): Promise<Uint8Array> {
  context.signal?.throwIfAborted();
  context.progress({ ...fileEvent(label, 0, source), total: file.size, phase: 'fetch' });
  const data = new Uint8Array(await file.arrayBuffer());
  context.signal?.throwIfAborted();
  context.progress({ ...fileEvent(label, data.length, source), phase: 'fetch' });
  return data;
}

interface SourceSettings {
  sameOriginBase: string;
  downloadBase: string | undefined;
  cache: DatasetCache | undefined;
}

/** Same-origin folder → cache → download, file by file. */
async function fromSources(context: Context, settings: SourceSettings): Promise<Located> {
  const info = DATASETS[context.dataset];
  const sameOrigin = resolveBase(settings.sameOriginBase, 'sameOriginBase');
  const sameOriginLabel = `same-origin ${settings.sameOriginBase}`;
  const downloadLabel =
    settings.downloadBase === undefined ? undefined : `download ${settings.downloadBase}`;
  const bytes = new Map<MnistFileName, Uint8Array>();
  const origins = new Map<MnistFileName, DatasetSourceKind>();
  const notServed: string[] = [];

  for (const file of FETCH_ORDER) {
    // 1. The same-origin folder.
    const url = new URL(file, sameOrigin).href;
    const served = await fetchFile(context, url, file, sameOriginLabel, 'same-origin');
    if (served.kind === 'ok') {
      await verifyOrThrow(context, file, served.bytes, url, sameOriginLabel);
      bytes.set(file, served.bytes);
      origins.set(file, 'same-origin');
      continue;
    }
    notServed.push(`${url}: ${served.why}`);

    // 2. The browser cache, re-verified.
    const key = datasetCacheKey(context.dataset, file);
    const cached = await readCache(settings.cache, key);
    if (cached !== undefined) {
      context.progress({ ...fileEvent(file, cached.length, CACHE_LABEL), phase: 'verify' });
      const check = await verifyDigest(cached, info.checksums[file]);
      if (check.ok) {
        bytes.set(file, cached);
        origins.set(file, 'cache');
        continue;
      }
      // A corrupt entry (disk error, older build's bug): drop it and fetch again.
      await settings.cache?.delete(key).catch(() => undefined);
    }

    // 3. A download from the mirror, verified, then cached.
    if (settings.downloadBase === undefined || downloadLabel === undefined) {
      throw new DatasetLoadError(
        'unavailable',
        `${info.label} is not available here: ${file} is not served by this page's server ` +
          `(${notServed[notServed.length - 1]}), not in the browser cache, and ${info.label} ` +
          `has no default download mirror. Pick the four files, or run the dev server with ` +
          `${info.dirEnv} pointing at a folder holding them.`,
        { file, source: sameOriginLabel },
      );
    }
    const downloadUrl = new URL(file, resolveBase(withSlash(settings.downloadBase), 'downloadBase'))
      .href;
    const downloaded = await fetchFile(context, downloadUrl, file, downloadLabel, 'download');
    if (downloaded.kind !== 'ok') {
      throw new DatasetLoadError(
        'http',
        `Could not download ${file} from ${downloadUrl}: ${downloaded.why}. ` +
          advice(context.dataset),
        { file, source: downloadLabel },
      );
    }
    await verifyOrThrow(context, file, downloaded.bytes, downloadUrl, downloadLabel);
    if (settings.cache !== undefined) {
      context.progress({
        ...fileEvent(file, downloaded.bytes.length, CACHE_LABEL),
        phase: 'cache',
      });
      // A full or unavailable cache costs a download next time, nothing more.
      await settings.cache.put(key, downloaded.bytes).catch(() => undefined);
    }
    bytes.set(file, downloaded.bytes);
    origins.set(file, 'download');
  }

  const labelOf = (kind: DatasetSourceKind): string =>
    kind === 'same-origin'
      ? sameOriginLabel
      : kind === 'cache'
        ? CACHE_LABEL
        : `downloaded from ${settings.downloadBase}`;
  const kinds = [...new Set(MNIST_FILE_NAMES.map((file) => origins.get(file)!))];
  const source =
    kinds.length === 1
      ? labelOf(kinds[0])
      : MNIST_FILE_NAMES.map((file) => `${file}: ${labelOf(origins.get(file)!)}`).join('; ');
  return located(
    bytes,
    (file) => origins.get(file)!,
    source,
    (file) => labelOf(origins.get(file)!),
  );
}

type Fetched = { kind: 'ok'; bytes: Uint8Array } | { kind: 'not-served'; why: string };

/** Statuses a static host answers for a file it does not have (S3 answers 403). */
const NOT_SERVED_STATUSES = new Set([403, 404, 410]);

/**
 * Fetches one file with streamed progress. Same-origin: "not served" for a 404-like status or
 * an HTML page; a network error is an error. Download: every failure is "not served" with the
 * reason, and a network error says what it may be (offline, CORS).
 */
async function fetchFile(
  context: Context,
  url: string,
  file: MnistFileName,
  source: string,
  kind: 'same-origin' | 'download',
): Promise<Fetched> {
  context.signal?.throwIfAborted();
  context.progress({ file, loaded: 0, total: null, phase: 'fetch', source });
  let response: Response;
  try {
    response = await fetch(url, { signal: context.signal, cache: 'no-store' });
  } catch (error) {
    context.signal?.throwIfAborted();
    const reason =
      kind === 'download'
        ? 'network error (offline, or the mirror does not allow cross-origin requests)'
        : 'network error';
    throw new DatasetLoadError(
      'network',
      `Could not fetch ${file} from ${url}: ${reason}: ${describe(error)}. ${advice(context.dataset)}`,
      { file, source, cause: error },
    );
  }
  if (!response.ok) {
    await response.body?.cancel().catch(() => undefined);
    const why = `HTTP ${response.status}`;
    if (kind === 'download' || NOT_SERVED_STATUSES.has(response.status)) {
      return { kind: 'not-served', why };
    }
    throw new DatasetLoadError(
      'http',
      `Could not fetch ${file} from ${url}: ${why}. ${advice(context.dataset)}`,
      { file, source },
    );
  }
  const type = response.headers.get('content-type') ?? '';
  if (kind === 'same-origin' && /^text\/html\b/i.test(type)) {
    // A single-page-app fallback answering every path with index.html.
    await response.body?.cancel().catch(() => undefined);
    return { kind: 'not-served', why: 'the server answered with an HTML page' };
  }
  const length = Number(response.headers.get('content-length') ?? NaN);
  const total = Number.isFinite(length) && length > 0 ? length : null;
  const chunks: Uint8Array[] = [];
  let loaded = 0;
  try {
    if (response.body === null) throw new Error('empty response body');
    const reader = response.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      loaded += value.length;
      context.progress({ file, loaded, total, phase: 'fetch', source });
    }
  } catch (error) {
    context.signal?.throwIfAborted();
    throw new DatasetLoadError(
      'network',
      `Fetching ${file} from ${url} was interrupted after ${loaded} bytes: ${describe(error)}. ` +
        advice(context.dataset),
      { file, source, cause: error },
    );
  }
  return { kind: 'ok', bytes: concat(chunks, loaded) };
}

/** @throws DatasetLoadError ('checksum') with the expected and actual sha256 and what to do. */
async function verifyOrThrow(
  context: Context,
  file: MnistFileName,
  bytes: Uint8Array,
  where: string,
  source: string,
): Promise<DigestCheck> {
  const info = DATASETS[context.dataset];
  context.signal?.throwIfAborted();
  context.progress({ file, loaded: bytes.length, total: bytes.length, phase: 'verify', source });
  const accepted = info.checksums[file].filter((entry) => entry.sha256 !== undefined);
  const check = await verifyDigest(bytes, accepted);
  // An empty list would accept anything; the catalogue always has sha256 values.
  if (check.ok && accepted.length > 0) return check;
  const expected = accepted.map((entry) => entry.sha256!);
  const known = identifyFile(check.actual);
  const hint =
    known === undefined
      ? 'truncated or corrupt?'
      : `it is ${DATASETS[known.dataset].label}'s ${known.file}`;
  throw new DatasetLoadError(
    'checksum',
    `Checksum mismatch for ${file} from ${where} (${bytes.length} bytes; ${hint}): expected ` +
      `${accepted.map(formatDigests).join(' or ')}, got sha256 ${check.actual.sha256}. ` +
      `Nothing was loaded. ${advice(context.dataset)}`,
    { file, source, expectedSha256: expected, actualSha256: check.actual.sha256 },
  );
}

async function readCache(
  cache: DatasetCache | undefined,
  key: string,
): Promise<Uint8Array | undefined> {
  if (cache === undefined) return undefined;
  try {
    return await cache.get(key);
  } catch {
    return undefined;
  }
}

function advice(dataset: DatasetName): string {
  const info = DATASETS[dataset];
  return (
    `Pick the four ${info.label} files (${MNIST_FILE_NAMES.join(', ')}), or run the dev ` +
    `server with ${info.dirEnv} set to a folder holding them.`
  );
}

function located(
  files: ReadonlyMap<MnistFileName, Uint8Array>,
  originOf: (file: MnistFileName) => DatasetSourceKind,
  source: string,
  describeFile: (file: MnistFileName) => string,
): Located {
  const bytes = {} as Record<MnistFileName, Uint8Array>;
  const origins = {} as Record<MnistFileName, DatasetSourceKind>;
  for (const file of MNIST_FILE_NAMES) {
    bytes[file] = files.get(file)!;
    origins[file] = originOf(file);
  }
  return { bytes, origins, source, describe: describeFile };
}

function fileEvent(file: string, size: number, source: string): Omit<DatasetProgress, 'phase'> {
  return { file, loaded: size, total: size, source };
}

/** Resolves a base against the page; in a page without `location` it must be absolute. */
function resolveBase(base: string, option: string): URL {
  const page = typeof location === 'undefined' ? undefined : location.href;
  try {
    return new URL(base, page);
  } catch (error) {
    throw new DatasetLoadError(
      'unavailable',
      `${option} ${base} is not a valid URL${page === undefined ? ' (no page to resolve it against)' : ''}`,
      { cause: error },
    );
  }
}

function withSlash(url: string): string {
  return url.endsWith('/') ? url : `${url}/`;
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

function arrayBufferBacked(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : bytes.slice();
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${error.message}${cause}`;
}
