/**
 * IDX parsing for MNIST-format datasets (MNIST, Fashion-MNIST).
 *
 * Runtime-agnostic on purpose: no Node imports, so the browser benchmark and the Node one
 * share the exact same parser and validation. Gzip is undone with the web-standard
 * `DecompressionStream('gzip')` (Node ≥ 18 and every current browser) unless the caller
 * injects its own `gunzip`.
 *
 * IDX layout (big-endian): two zero bytes, a dtype byte (0x08 = uint8), a rank byte, then
 * `rank` uint32 dimension sizes, then the payload in row-major order. Read as one uint32 the
 * first four bytes give the "magic number": 2051 = 0x0803 for rank-3 uint8 images and
 * 2049 = 0x0801 for rank-1 uint8 labels.
 */

/** IDX dtype byte for unsigned bytes, the only dtype MNIST uses. */
export const IDX_DTYPE_UINT8 = 0x08;
/** Magic number of an MNIST image file: uint8, rank 3 ([N, 28, 28]). */
export const MNIST_IMAGES_MAGIC = 2051;
/** Magic number of an MNIST label file: uint8, rank 1 ([N]). */
export const MNIST_LABELS_MAGIC = 2049;
/** Height and width of an MNIST image. */
export const MNIST_IMAGE_SIDE = 28;
/** Pixels per MNIST image (28 × 28). */
export const MNIST_PIXELS_PER_IMAGE = MNIST_IMAGE_SIDE * MNIST_IMAGE_SIDE;
/** Number of label classes (digits 0..9, or the ten Fashion-MNIST garment classes). */
export const MNIST_NUM_CLASSES = 10;

const GZIP_MAGIC = [0x1f, 0x8b] as const;
const IDX_PREAMBLE_BYTES = 4;
const IDX_DIM_BYTES = 4;

/** A malformed, truncated or unexpected IDX file; the message names the file. */
export class IdxFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IdxFormatError';
  }
}

/** Decompresses a whole gzip stream. May be synchronous (e.g. Node's `zlib.gunzipSync`). */
export type Gunzip = (bytes: Uint8Array) => Uint8Array | Promise<Uint8Array>;

/** A parsed IDX array: its magic number, dimension sizes and raw uint8 payload. */
export interface IdxArray {
  readonly magic: number;
  readonly dims: readonly number[];
  /** Row-major payload, a view into the input buffer (not a copy). */
  readonly data: Uint8Array;
}

/** One split of an MNIST-format dataset, ready to become tensors. */
export interface MnistSplit {
  /** Pixels scaled to [0, 1], `count * 784` values in NHWC order. */
  readonly images: Float32Array;
  /** Class indices in [0, 9], one per image. */
  readonly labels: Int32Array;
  /** Number of examples. */
  readonly count: number;
  /** Shape of `images` as an NHWC tensor. */
  readonly shape: readonly [number, number, number, number];
}

/** True when `bytes` start with the gzip magic bytes 0x1f 0x8b. */
export function isGzipped(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === GZIP_MAGIC[0] && bytes[1] === GZIP_MAGIC[1];
}

/** Gunzips with the web-standard `DecompressionStream`, available in Node ≥ 18 and browsers. */
export async function gunzipWithDecompressionStream(bytes: Uint8Array): Promise<Uint8Array> {
  const input = new ReadableStream<BufferSource>({
    start(controller) {
      controller.enqueue(backedByArrayBuffer(bytes));
      controller.close();
    },
  });
  const output = input.pipeThrough(new DecompressionStream('gzip'));
  return new Uint8Array(await new Response(output).arrayBuffer());
}

/**
 * Returns the raw IDX bytes of a file that may or may not be gzipped (detected by magic bytes).
 * @param name Names the file in error messages.
 * @param gunzip Decompressor to use; defaults to {@link gunzipWithDecompressionStream}.
 */
export async function decompressIfGzipped(
  bytes: Uint8Array,
  name: string,
  gunzip: Gunzip = gunzipWithDecompressionStream,
): Promise<Uint8Array> {
  if (!isGzipped(bytes)) return bytes;
  try {
    return await gunzip(bytes);
  } catch (error) {
    throw new IdxFormatError(
      `${name}: could not gunzip ${bytes.length} bytes (corrupt or truncated gzip): ${describe(error)}`,
    );
  }
}

/**
 * Parses an uncompressed uint8 IDX buffer and checks that the payload length equals the
 * product of its dimensions.
 * @param name Names the file in error messages.
 * @throws IdxFormatError on a bad preamble, a non-uint8 dtype, a short header or a payload of
 *   the wrong length.
 */
export function parseIdx(raw: Uint8Array, name: string): IdxArray {
  if (raw.length < IDX_PREAMBLE_BYTES) {
    throw new IdxFormatError(`${name}: ${raw.length} bytes is too short for an IDX header`);
  }
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const magic = view.getUint32(0, false);
  if (raw[0] !== 0 || raw[1] !== 0) {
    throw new IdxFormatError(`${name}: not an IDX file (magic number ${magic}, bad first bytes)`);
  }
  if (raw[2] !== IDX_DTYPE_UINT8) {
    throw new IdxFormatError(
      `${name}: IDX dtype 0x${hex(raw[2])} is not supported (only uint8, 0x08; magic ${magic})`,
    );
  }
  const rank = raw[3];
  const headerBytes = IDX_PREAMBLE_BYTES + IDX_DIM_BYTES * rank;
  if (raw.length < headerBytes) {
    throw new IdxFormatError(
      `${name}: IDX header of rank ${rank} needs ${headerBytes} bytes, file has ${raw.length}`,
    );
  }
  const dims = Array.from({ length: rank }, (_, i) =>
    view.getUint32(IDX_PREAMBLE_BYTES + IDX_DIM_BYTES * i, false),
  );
  const expectedPayload = dims.reduce((product, dim) => product * dim, 1);
  const actualPayload = raw.length - headerBytes;
  if (actualPayload !== expectedPayload) {
    const problem = actualPayload < expectedPayload ? 'truncated' : 'has trailing bytes';
    throw new IdxFormatError(
      `${name}: IDX payload ${problem}: dims [${dims.join(', ')}] need ${expectedPayload} bytes, ` +
        `found ${actualPayload}`,
    );
  }
  return { magic, dims, data: raw.subarray(headerBytes) };
}

/**
 * Parses an uncompressed MNIST image file into float32 pixels scaled to [0, 1].
 * @param expectedCount When given, the number of images the file must hold.
 * @throws IdxFormatError on a wrong magic number, image size or count.
 */
export function parseMnistImages(
  raw: Uint8Array,
  name: string,
  expectedCount?: number,
): { images: Float32Array; count: number } {
  const idx = parseIdx(raw, name);
  expectMagic(idx, MNIST_IMAGES_MAGIC, 'images', name);
  const [count, rows, cols] = idx.dims;
  if (rows !== MNIST_IMAGE_SIDE || cols !== MNIST_IMAGE_SIDE) {
    throw new IdxFormatError(
      `${name}: images are ${rows}×${cols}, expected ${MNIST_IMAGE_SIDE}×${MNIST_IMAGE_SIDE}`,
    );
  }
  expectCount(count, expectedCount, 'images', name);
  return { images: normalizePixels(idx.data), count };
}

/**
 * Parses an uncompressed MNIST label file.
 * @param expectedCount When given, the number of labels the file must hold.
 * @throws IdxFormatError on a wrong magic number or count.
 */
export function parseMnistLabels(
  raw: Uint8Array,
  name: string,
  expectedCount?: number,
): Int32Array {
  const idx = parseIdx(raw, name);
  expectMagic(idx, MNIST_LABELS_MAGIC, 'labels', name);
  expectCount(idx.dims[0], expectedCount, 'labels', name);
  return new Int32Array(idx.data);
}

/**
 * Throws unless every label is a class index in `[0, numClasses - 1]`.
 * @throws IdxFormatError naming the first offending index and value.
 */
export function assertLabelsInRange(
  labels: Int32Array,
  name: string,
  numClasses: number = MNIST_NUM_CLASSES,
): void {
  const bad = labels.findIndex((label) => label < 0 || label >= numClasses);
  if (bad !== -1) {
    throw new IdxFormatError(
      `${name}: label ${labels[bad]} at index ${bad} is outside [0, ${numClasses - 1}]`,
    );
  }
}

/** Input of {@link loadMnistSplitFromBuffers}. */
export interface MnistSplitBuffers {
  /** Contents of the image file, gzipped or raw. */
  imagesBytes: Uint8Array;
  /** Contents of the label file, gzipped or raw. */
  labelsBytes: Uint8Array;
  /** Split name for messages, e.g. 'train'. */
  name: string;
  /** Names the image file in errors (e.g. its path); defaults to `<name> images`. */
  imagesName?: string;
  /** Names the label file in errors; defaults to `<name> labels`. */
  labelsName?: string;
  /** When given, both files must hold exactly this many examples. */
  expectedCount?: number;
  /** Decompressor for gzipped input; defaults to {@link gunzipWithDecompressionStream}. */
  gunzip?: Gunzip;
}

/**
 * Decodes one split (images + labels) from file contents and validates it: IDX structure,
 * magic numbers, 28×28 images, matching and expected counts, labels in [0, 9].
 * @throws IdxFormatError naming the offending file.
 */
export async function loadMnistSplitFromBuffers(buffers: MnistSplitBuffers): Promise<MnistSplit> {
  const imagesName = buffers.imagesName ?? `${buffers.name} images`;
  const labelsName = buffers.labelsName ?? `${buffers.name} labels`;
  const [rawImages, rawLabels] = await Promise.all([
    decompressIfGzipped(buffers.imagesBytes, imagesName, buffers.gunzip),
    decompressIfGzipped(buffers.labelsBytes, labelsName, buffers.gunzip),
  ]);
  const { images, count } = parseMnistImages(rawImages, imagesName, buffers.expectedCount);
  const labels = parseMnistLabels(rawLabels, labelsName, buffers.expectedCount);
  if (labels.length !== count) {
    throw new IdxFormatError(
      `${buffers.name}: ${imagesName} holds ${count} images but ${labelsName} holds ` +
        `${labels.length} labels`,
    );
  }
  assertLabelsInRange(labels, labelsName);
  return {
    images,
    labels,
    count,
    shape: [count, MNIST_IMAGE_SIDE, MNIST_IMAGE_SIDE, 1],
  };
}

function expectMagic(idx: IdxArray, magic: number, kind: string, name: string): void {
  if (idx.magic !== magic) {
    throw new IdxFormatError(
      `${name}: magic number ${idx.magic} (rank ${idx.dims.length}), expected ${magic} ` +
        `for MNIST ${kind}`,
    );
  }
}

function expectCount(
  count: number,
  expectedCount: number | undefined,
  kind: string,
  name: string,
): void {
  if (expectedCount !== undefined && count !== expectedCount) {
    throw new IdxFormatError(`${name}: holds ${count} ${kind}, expected ${expectedCount}`);
  }
}

/** uint8 → float32 in [0, 1]. Division (not × 1/255) keeps 255 → exactly 1. */
function normalizePixels(pixels: Uint8Array): Float32Array {
  const out = new Float32Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) out[i] = pixels[i] / 255;
  return out;
}

/** Streams only take ArrayBuffer-backed views; copy the rare SharedArrayBuffer-backed one. */
function backedByArrayBuffer(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : bytes.slice();
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0');
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
