/**
 * The dataset server of the browser app, as a Vite plugin: the dev server (`configureServer`)
 * and `vite preview` (`configurePreviewServer`, used by the headless runner) serve the four
 * files of each dataset, read-only, from a local folder, at
 *
 *     <base>datasets/<dataset>/<file>     dataset: mnist | fashion-mnist
 *                                         file: one of the four .gz names, exactly
 *
 * and nothing else: any other path under `<base>datasets/` (other names, directories, encoded
 * or `..` segments) is a 404, methods other than GET and HEAD a 405, and a dataset without a
 * folder answers 404 for its files (the page then tries its cache and the download). The page
 * (bench/page/data/datasets-page.ts) checksum-verifies everything it receives.
 *
 * {@link resolveDatasetDirs} picks each dataset's folder the way the Node loader does
 * (bench/node/data/mnist-node.ts), without downloading anything.
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import type { Plugin, PreviewServer, ViteDevServer } from 'vite';
import {
  DATASETS,
  DATASET_NAMES,
  MNIST_FILE_NAMES,
  isDatasetName,
  isMnistFileName,
  type DatasetName,
} from '../core/data/datasets.js';
import { DEBIAN_FASHION_MNIST_DIR, defaultCacheRoot } from './data/mnist-node.js';

/** A folder per dataset; a dataset without one is not served. */
export type DatasetDirs = Partial<Record<DatasetName, string>>;

/** Options of {@link datasetServerPlugin}. */
export interface DatasetServerOptions {
  dirs: DatasetDirs;
}

/** A Connect-style middleware (what Vite's `server.middlewares.use` takes). */
export type DatasetMiddleware = (
  req: IncomingMessage & { originalUrl?: string },
  res: ServerResponse,
  next: (error?: unknown) => void,
) => void;

/** The Vite plugin: the dataset middleware on the dev server and on `vite preview`. */
export function datasetServerPlugin(options: DatasetServerOptions): Plugin {
  const dirs = { ...options.dirs };
  return {
    name: 'tfjs-fused-distill:datasets',
    configureServer(server: ViteDevServer) {
      // Added before Vite's own middlewares: it sees the URL with the base still in it, and
      // answers every /datasets/ path itself (Vite's SPA fallback would answer index.html).
      server.middlewares.use(datasetMiddleware({ dirs, base: server.config.base }));
    },
    configurePreviewServer(server: PreviewServer) {
      server.middlewares.use(datasetMiddleware({ dirs, base: server.config.base }));
    },
  };
}

/**
 * The middleware alone (for a plain `node:http` server or tests). `base` is Vite's public
 * base: '/' (default), '/sub/path/', a relative './' (served at '/') or a full URL (its path).
 */
export function datasetMiddleware(options: {
  dirs: DatasetDirs;
  base?: string;
}): DatasetMiddleware {
  const prefix = `${basePath(options.base)}datasets`;
  const dirs = { ...options.dirs };
  const inScope = (pathname: string): boolean =>
    pathname === prefix || pathname.startsWith(`${prefix}/`);

  return (req, res, next) => {
    const url = req.originalUrl ?? req.url ?? '/';
    const raw = url.split(/[?#]/, 1)[0];
    let decoded = raw;
    try {
      decoded = decodeURIComponent(raw);
    } catch {
      // Malformed escapes: judged on the raw path alone.
    }
    const normalized = path.posix.normalize(decoded);
    if (!inScope(raw) && !inScope(decoded) && !inScope(normalized)) {
      next();
      return;
    }
    // From here on this middleware owns the request; it never calls next().
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'method not allowed', { Allow: 'GET, HEAD' });
      return;
    }
    // Exactly <prefix>/<dataset>/<file>, compared on the raw path: no decoding, no `..`.
    const parts = raw.slice(prefix.length + 1).split('/');
    if (parts.length !== 2 || raw !== `${prefix}/${parts[0]}/${parts[1]}`) {
      send(res, 404, 'not found');
      return;
    }
    const [dataset, file] = parts;
    const dir = isDatasetName(dataset) ? dirs[dataset] : undefined;
    if (dir === undefined || !isMnistFileName(file)) {
      send(res, 404, 'not found');
      return;
    }
    serveFile(path.join(dir, file), req, res).catch((error: unknown) => {
      if (!res.headersSent) send(res, 500, 'could not read the file');
      else res.destroy(error instanceof Error ? error : undefined);
    });
  };
}

async function serveFile(
  filePath: string,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  let size: number;
  try {
    const info = await stat(filePath);
    if (!info.isFile()) {
      send(res, 404, 'not found');
      return;
    }
    size = info.size;
  } catch {
    send(res, 404, 'not found');
    return;
  }
  res.writeHead(200, {
    'Content-Type': 'application/gzip',
    'Content-Length': String(size),
    'Cache-Control': 'no-cache',
    'X-Content-Type-Options': 'nosniff',
  });
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  await new Promise<void>((resolve, reject) => {
    const stream = createReadStream(filePath);
    stream.on('error', reject);
    res.on('close', () => {
      stream.destroy();
      resolve();
    });
    stream.pipe(res);
  });
}

function send(
  res: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(text)),
    'X-Content-Type-Options': 'nosniff',
    ...headers,
  });
  res.end(text);
}

/** Vite's base as an absolute path ending in '/'. */
function basePath(base: string | undefined): string {
  if (base === undefined || base === '' || base.startsWith('.')) return '/';
  let pathname = base;
  if (/^[a-z][a-z\d+.-]*:/i.test(base)) {
    try {
      pathname = new URL(base).pathname;
    } catch {
      return '/';
    }
  }
  if (!pathname.startsWith('/')) pathname = `/${pathname}`;
  return pathname.endsWith('/') ? pathname : `${pathname}/`;
}

// ---------------------------------------------------------------------------------------------

/** What {@link resolveDatasetDirs} found. */
export interface ResolvedDatasetDirs {
  /** The folder to serve, per dataset that has one. */
  dirs: DatasetDirs;
  /** Datasets with no folder (the page will use its cache, the download or picked files). */
  missing: DatasetName[];
  /** One line per dataset saying where its files are served from, or why not. */
  notes: Record<DatasetName, string>;
  /**
   * Explicitly configured folders (MNIST_DIR / FASHION_MNIST_DIR) that do not hold the four
   * files: not served, and worth failing on, as the Node loader does.
   */
  problems: string[];
}

/** Options of {@link resolveDatasetDirs}; the defaults are the Node loader's. */
export interface ResolveDatasetDirsOptions {
  /** Cache root (`<root>/<dataset>`); default {@link defaultCacheRoot}(env). */
  cacheRoot?: string;
  /** Read-only system copies per dataset; default Debian's fashion-mnist folder. */
  systemDirs?: Partial<Record<DatasetName, readonly string[]>>;
}

/**
 * Chooses each dataset's folder as the Node loader would, without downloading or verifying
 * (the page verifies): the env variable's folder when set (MNIST_DIR, FASHION_MNIST_DIR),
 * else the user cache when it holds all four files, else a system copy that does.
 */
export function resolveDatasetDirs(
  env: NodeJS.ProcessEnv = process.env,
  options: ResolveDatasetDirsOptions = {},
): ResolvedDatasetDirs {
  const cacheRoot = options.cacheRoot ?? defaultCacheRoot(env);
  const systemDirs: Partial<Record<DatasetName, readonly string[]>> = options.systemDirs ?? {
    'fashion-mnist': [DEBIAN_FASHION_MNIST_DIR],
  };
  const dirs: DatasetDirs = {};
  const missing: DatasetName[] = [];
  const problems: string[] = [];
  const notes = {} as Record<DatasetName, string>;

  for (const dataset of DATASET_NAMES) {
    const info = DATASETS[dataset];
    const explicit = env[info.dirEnv];
    if (explicit !== undefined && explicit !== '') {
      const dir = path.resolve(explicit);
      const absent = missingFiles(dir);
      if (absent.length === 0) {
        dirs[dataset] = dir;
        notes[dataset] = `${info.label}: ${dir} (${info.dirEnv})`;
      } else {
        missing.push(dataset);
        const problem =
          `${info.label}: ${info.dirEnv}=${explicit} ` +
          (existsSync(dir) ? `is missing ${absent.join(', ')}` : 'does not exist');
        problems.push(problem);
        notes[dataset] = `${problem}; not served`;
      }
      continue;
    }
    const candidates = [
      { dir: path.join(cacheRoot, dataset), what: 'cache' },
      ...(systemDirs[dataset] ?? []).map((dir) => ({ dir, what: 'system copy' })),
    ];
    const found = candidates.find(({ dir }) => missingFiles(dir).length === 0);
    if (found !== undefined) {
      dirs[dataset] = found.dir;
      notes[dataset] = `${info.label}: ${found.dir} (${found.what})`;
    } else {
      missing.push(dataset);
      notes[dataset] =
        `${info.label}: not served (${info.dirEnv} not set; none of ` +
        `${candidates.map(({ dir }) => dir).join(', ')} holds the four files)`;
    }
  }
  return { dirs, missing, notes, problems };
}

function missingFiles(dir: string): string[] {
  return MNIST_FILE_NAMES.filter((file) => {
    try {
      return !statSync(path.join(dir, file)).isFile();
    } catch {
      return true;
    }
  });
}
