/**
 * The catalogue of MNIST-format datasets the benchmark knows (MNIST, Fashion-MNIST): names,
 * the four file names, the accepted checksums, the default download mirrors, counts and class
 * names; plus a checksum check on Web Crypto.
 *
 * Host-neutral on purpose (no Node imports): the Node loader (bench/node/data/mnist-node.ts),
 * the dev server's dataset plugin and the browser loader (bench/page/data/datasets-page.ts)
 * all read the same tables, so a file is accepted or rejected the same way everywhere.
 */

/** The datasets the benchmark knows; both use the same four file names and format. */
export type DatasetName = 'mnist' | 'fashion-mnist';

/** Every dataset name, in display order. */
export const DATASET_NAMES: readonly DatasetName[] = ['mnist', 'fashion-mnist'];

/** The four files of an MNIST-format dataset, by role. */
export const MNIST_FILES = {
  trainImages: 'train-images-idx3-ubyte.gz',
  trainLabels: 'train-labels-idx1-ubyte.gz',
  testImages: 't10k-images-idx3-ubyte.gz',
  testLabels: 't10k-labels-idx1-ubyte.gz',
} as const;

/** One of the four file names. */
export type MnistFileName = (typeof MNIST_FILES)[keyof typeof MNIST_FILES];

/** The four file names, train first. */
export const MNIST_FILE_NAMES: readonly MnistFileName[] = Object.values(MNIST_FILES);

/** Public mirror serving the canonical gzipped MNIST files (the ones in MNIST_CHECKSUMS). */
export const DEFAULT_MNIST_BASE_URL = 'https://storage.googleapis.com/cvdf-datasets/mnist/';

/**
 * Lowercase hex digests a file may have. A file matches an entry when every digest the
 * checker can compute matches, and at least one was computed (see {@link verifyDigest}).
 */
export interface FileDigests {
  readonly sha256?: string;
  readonly md5?: string;
}

/**
 * Accepted digests per file: a file is good when it matches any one entry. An empty list
 * means "structure only" (magic, dims, counts and length are still checked when parsing);
 * the built-in tables never use it.
 */
export type ChecksumTable = Readonly<Record<MnistFileName, readonly FileDigests[]>>;

/** Canonical MNIST checksums (LeCun et al.; as in shared/data/mnist/SHA256SUMS and MD5SUMS). */
export const MNIST_CHECKSUMS: ChecksumTable = {
  'train-images-idx3-ubyte.gz': [
    {
      sha256: '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609',
      md5: 'f68b3c2dcbeaaa9fbdd348bbdeb94873',
    },
  ],
  'train-labels-idx1-ubyte.gz': [
    {
      sha256: '3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c',
      md5: 'd53e105ee54ea40749a09fcbcd1e9432',
    },
  ],
  't10k-images-idx3-ubyte.gz': [
    {
      sha256: '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6',
      md5: '9fb629c4189551a2d022fa330f9573f3',
    },
  ],
  't10k-labels-idx1-ubyte.gz': [
    {
      sha256: 'f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6',
      md5: 'ec29112dd5afa0611ce80d1b7f02629c',
    },
  ],
};

/**
 * Fashion-MNIST checksums. Two gzip encodings of the same data are in circulation:
 *   - upstream's files (zalandoresearch/fashion-mnist; 26421880, 29515, 4422102 and 5148
 *     bytes): md5 as published in upstream's README, sha256 as pinned by TensorFlow Datasets
 *     and others for those same files;
 *   - Debian's `dataset-fashion-mnist` (0.0~git20200523.55506a9-1), whose .gz files were
 *     re-compressed without the embedded file name (24 bytes shorter, different digests). Those
 *     sha256 values were computed from the installed package, itself verified by apt.
 */
export const FASHION_MNIST_CHECKSUMS: ChecksumTable = {
  'train-images-idx3-ubyte.gz': [
    {
      sha256: '3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84',
      md5: '8d4fb7e6c68d591d4c3dfef9ec88bf0d',
    },
    { sha256: 'b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7' },
  ],
  'train-labels-idx1-ubyte.gz': [
    {
      sha256: 'a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845',
      md5: '25c81989df183df01b3e8a0aad5dffbe',
    },
    { sha256: '0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056' },
  ],
  't10k-images-idx3-ubyte.gz': [
    {
      sha256: '346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073',
      md5: 'bef4ecab320f06d8554ea6380940ec79',
    },
    { sha256: 'cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa' },
  ],
  't10k-labels-idx1-ubyte.gz': [
    {
      sha256: '67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5',
      md5: 'bb300cfdad3c16e7a12a480ee83cd310',
    },
    { sha256: '8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05' },
  ],
};

/** Class names of MNIST, by label. */
export const MNIST_CLASS_NAMES: readonly string[] = [
  '0',
  '1',
  '2',
  '3',
  '4',
  '5',
  '6',
  '7',
  '8',
  '9',
];

/** Class names of Fashion-MNIST, by label (as in upstream's README). */
export const FASHION_MNIST_CLASS_NAMES: readonly string[] = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

/** Everything the loaders and the app need to know about one dataset. */
export interface DatasetInfo {
  readonly name: DatasetName;
  /** Display name, e.g. 'Fashion-MNIST'. */
  readonly label: string;
  /** Environment variable naming a folder that holds the four files (Node CLI, dev server). */
  readonly dirEnv: string;
  /** Environment variable overriding the download mirror (Node CLI). */
  readonly baseUrlEnv: string;
  /**
   * Mirror the four files are downloaded from by default; undefined means "download only when
   * a base URL is configured" (the CLI and the page use the same default).
   */
  readonly defaultBaseUrl: string | undefined;
  readonly checksums: ChecksumTable;
  /** Examples per split. */
  readonly counts: { readonly train: number; readonly test: number };
  /** Class names by label (10 of them). */
  readonly classNames: readonly string[];
}

/** The catalogue, by dataset name. */
export const DATASETS: Readonly<Record<DatasetName, DatasetInfo>> = {
  mnist: {
    name: 'mnist',
    label: 'MNIST',
    dirEnv: 'MNIST_DIR',
    baseUrlEnv: 'MNIST_BASE_URL',
    defaultBaseUrl: DEFAULT_MNIST_BASE_URL,
    checksums: MNIST_CHECKSUMS,
    counts: { train: 60_000, test: 10_000 },
    classNames: MNIST_CLASS_NAMES,
  },
  'fashion-mnist': {
    name: 'fashion-mnist',
    label: 'Fashion-MNIST',
    // Its own variables, so that a MNIST_DIR set for the digits never feeds digits to a
    // fashion run (the checksums would reject them, but with a confusing message).
    dirEnv: 'FASHION_MNIST_DIR',
    baseUrlEnv: 'FASHION_MNIST_BASE_URL',
    // This project hard-codes a single public mirror (MNIST's); Fashion-MNIST downloads need
    // a configured base URL. Debian's package or a picked folder is the usual source.
    defaultBaseUrl: undefined,
    checksums: FASHION_MNIST_CHECKSUMS,
    counts: { train: 60_000, test: 10_000 },
    classNames: FASHION_MNIST_CLASS_NAMES,
  },
};

/** True for 'mnist' and 'fashion-mnist'. */
export function isDatasetName(value: unknown): value is DatasetName {
  return typeof value === 'string' && (DATASET_NAMES as readonly string[]).includes(value);
}

/** True when `value` is exactly one of the four file names. */
export function isMnistFileName(value: unknown): value is MnistFileName {
  return typeof value === 'string' && (MNIST_FILE_NAMES as readonly string[]).includes(value);
}

// ---------------------------------------------------------------------------------------------
// Checksums

/** The digests computed for a file: sha256 always, md5 when the host provided an md5. */
export interface ComputedDigests {
  readonly sha256: string;
  readonly md5?: string;
}

/** Outcome of {@link verifyDigest}. */
export interface DigestCheck {
  /** True when the bytes match one accepted entry (or the list is empty). */
  readonly ok: boolean;
  readonly actual: ComputedDigests;
  /** The accepted entries, as given. */
  readonly expected: readonly FileDigests[];
}

/** Options of {@link verifyDigest}. */
export interface VerifyDigestOptions {
  /**
   * Computes a lowercase hex md5 (Web Crypto has none; Node passes node:crypto's). Without it
   * md5 values in the table are not checked, and an entry carrying only an md5 never matches.
   */
  md5?: (bytes: Uint8Array) => string | Promise<string>;
}

/** Lowercase hex sha256 of `bytes`, with Web Crypto (Node ≥ 20 and every current browser). */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const subtle = globalThis.crypto?.subtle;
  if (subtle === undefined) {
    throw new Error(
      'crypto.subtle is unavailable (the page must be served over https or from localhost)',
    );
  }
  const digest = await subtle.digest('SHA-256', arrayBufferBacked(bytes));
  return toHex(new Uint8Array(digest));
}

/**
 * Checks `bytes` against the accepted digests of one file. An entry matches when at least one
 * of its digests was computed and every computed one is equal: sha256 is always computed, md5
 * only when `options.md5` is given. An empty `digests` list accepts anything (structure-only
 * tables, for tests and custom mirrors).
 */
export async function verifyDigest(
  bytes: Uint8Array,
  digests: readonly FileDigests[],
  options: VerifyDigestOptions = {},
): Promise<DigestCheck> {
  const sha256 = await sha256Hex(bytes);
  const wantsMd5 = options.md5 !== undefined && digests.some((entry) => entry.md5 !== undefined);
  const actual: ComputedDigests =
    wantsMd5 && options.md5 ? { sha256, md5: await options.md5(bytes) } : { sha256 };
  const ok = digests.length === 0 || digests.some((entry) => entryMatches(entry, actual));
  return { ok, actual, expected: digests };
}

/** Digests for messages: `sha256 <hex> / md5 <hex>`. */
export function formatDigests(digests: FileDigests): string {
  const parts: string[] = [];
  if (digests.sha256 !== undefined) parts.push(`sha256 ${digests.sha256}`);
  if (digests.md5 !== undefined) parts.push(`md5 ${digests.md5}`);
  return parts.join(' / ');
}

/**
 * Which catalogued file these digests belong to, if any: lets a loader say "this is
 * Fashion-MNIST's t10k-labels" when a user picks the wrong file.
 */
export function identifyFile(
  actual: ComputedDigests,
): { dataset: DatasetName; file: MnistFileName } | undefined {
  for (const dataset of DATASET_NAMES) {
    for (const file of MNIST_FILE_NAMES) {
      if (DATASETS[dataset].checksums[file].some((entry) => entryMatches(entry, actual))) {
        return { dataset, file };
      }
    }
  }
  return undefined;
}

function entryMatches(entry: FileDigests, actual: ComputedDigests): boolean {
  let checked = 0;
  if (entry.sha256 !== undefined) {
    if (entry.sha256 !== actual.sha256) return false;
    checked++;
  }
  if (entry.md5 !== undefined && actual.md5 !== undefined) {
    if (entry.md5 !== actual.md5) return false;
    checked++;
  }
  return checked > 0;
}

function toHex(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) out += byte.toString(16).padStart(2, '0');
  return out;
}

/** Web Crypto takes only ArrayBuffer-backed views; copy the rare SharedArrayBuffer-backed one. */
function arrayBufferBacked(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : bytes.slice();
}
