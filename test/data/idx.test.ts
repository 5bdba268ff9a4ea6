import { gzipSync } from 'node:zlib';
import { describe, expect, it, vi } from 'vitest';
import {
  IdxFormatError,
  assertLabelsInRange,
  decompressIfGzipped,
  gunzipWithDecompressionStream,
  isGzipped,
  loadMnistSplitFromBuffers,
  parseIdx,
  parseMnistImages,
  parseMnistLabels,
} from '../../bench/core/data/idx.js';

const SIDE = 28;
const PIXELS = SIDE * SIDE;

/** Builds an IDX buffer: 0, 0, dtype, rank, big-endian dims, payload. */
function idx(dims: readonly number[], payload: Uint8Array, dtype = 0x08): Uint8Array {
  const header = new Uint8Array(4 + 4 * dims.length);
  const view = new DataView(header.buffer);
  header[2] = dtype;
  header[3] = dims.length;
  dims.forEach((dim, i) => view.setUint32(4 + 4 * i, dim, false));
  const out = new Uint8Array(header.length + payload.length);
  out.set(header);
  out.set(payload, header.length);
  return out;
}

/** `count` images whose pixel i of image n is (n * 7 + i) mod 256, so every value appears. */
function imagePixels(count: number, side = SIDE): Uint8Array {
  return Uint8Array.from({ length: count * side * side }, (_, i) => (i + 7 * count) % 256);
}

function imagesFile(count: number, side = SIDE): Uint8Array {
  return idx([count, side, side], imagePixels(count, side));
}

function labelsFile(labels: readonly number[]): Uint8Array {
  return idx([labels.length], Uint8Array.from(labels));
}

function gzip(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(gzipSync(bytes));
}

describe('parseIdx', () => {
  it('reads dims and returns the payload as a view', () => {
    const parsed = parseIdx(idx([2, 3], Uint8Array.from([1, 2, 3, 4, 5, 6])), 'x');
    expect(parsed.magic).toBe(0x0802);
    expect(parsed.dims).toEqual([2, 3]);
    expect(Array.from(parsed.data)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('handles a buffer that is a subarray at a non-zero offset', () => {
    const file = labelsFile([3, 1, 4]);
    const padded = new Uint8Array(file.length + 5);
    padded.set(file, 5);
    expect(parseIdx(padded.subarray(5), 'x').dims).toEqual([3]);
  });

  it('rejects bytes that are too short for a header', () => {
    expect(() => parseIdx(Uint8Array.from([0, 0, 8]), 'tiny.idx')).toThrow(
      /tiny\.idx: 3 bytes is too short/,
    );
  });

  it('rejects non-zero leading bytes', () => {
    const file = labelsFile([1]);
    file[0] = 0x12;
    expect(() => parseIdx(file, 'weird.idx')).toThrow(/weird\.idx: not an IDX file/);
  });

  it('rejects dtypes other than uint8', () => {
    const file = idx([1], Uint8Array.from([0, 0, 0, 0]), 0x0d);
    expect(() => parseIdx(file, 'floats.idx')).toThrow(/floats\.idx: IDX dtype 0x0d/);
  });

  it('rejects a header cut inside the dims', () => {
    const file = imagesFile(1).subarray(0, 10);
    expect(() => parseIdx(file, 'cut.idx')).toThrow(/rank 3 needs 16 bytes, file has 10/);
  });

  it('rejects a truncated payload, naming the file and both byte counts', () => {
    const file = imagesFile(3);
    const truncated = file.subarray(0, file.length - 100);
    expect(() => parseIdx(truncated, 'train-images')).toThrow(
      `train-images: IDX payload truncated: dims [3, 28, 28] need ${3 * PIXELS} bytes, ` +
        `found ${3 * PIXELS - 100}`,
    );
  });

  it('rejects trailing bytes after the payload', () => {
    const file = labelsFile([1, 2]);
    const longer = new Uint8Array(file.length + 1);
    longer.set(file);
    expect(() => parseIdx(longer, 'labels')).toThrow(/payload has trailing bytes.*need 2.*found 3/);
  });
});

describe('gzip handling', () => {
  it('detects gzip by its magic bytes', () => {
    expect(isGzipped(gzip(labelsFile([1])))).toBe(true);
    expect(isGzipped(labelsFile([1]))).toBe(false);
    expect(isGzipped(new Uint8Array([0x1f]))).toBe(false);
  });

  it('round-trips through DecompressionStream', async () => {
    const raw = imagesFile(2);
    expect(await gunzipWithDecompressionStream(gzip(raw))).toEqual(raw);
  });

  it('passes raw bytes through untouched', async () => {
    const raw = labelsFile([1, 2]);
    expect(await decompressIfGzipped(raw, 'raw')).toBe(raw);
  });

  it('uses an injected gunzip when given', async () => {
    const raw = labelsFile([1, 2]);
    const gunzip = vi.fn(() => raw);
    expect(await decompressIfGzipped(gzip(raw), 'x', gunzip)).toBe(raw);
    expect(gunzip).toHaveBeenCalledOnce();
  });

  it('names the file when the gzip stream is corrupt', async () => {
    const broken = gzip(imagesFile(3)).subarray(0, 40);
    await expect(decompressIfGzipped(broken, 'broken.gz')).rejects.toThrow(
      /broken\.gz: could not gunzip 40 bytes/,
    );
  });
});

describe('parseMnistImages / parseMnistLabels', () => {
  it('normalizes pixels to [0, 1] as float32', () => {
    const { images, count } = parseMnistImages(imagesFile(3), 'imgs', 3);
    expect(count).toBe(3);
    expect(images).toBeInstanceOf(Float32Array);
    expect(images.length).toBe(3 * PIXELS);
    const pixels = imagePixels(3);
    for (const i of [0, 1, 100, 3 * PIXELS - 1]) {
      expect(images[i]).toBeCloseTo(pixels[i] / 255, 7);
    }
    expect(Math.min(...images)).toBe(0);
    expect(Math.max(...images)).toBe(1);
  });

  it('returns labels as Int32Array', () => {
    const labels = parseMnistLabels(labelsFile([5, 0, 4]), 'lbls', 3);
    expect(labels).toBeInstanceOf(Int32Array);
    expect(Array.from(labels)).toEqual([5, 0, 4]);
  });

  it('rejects a label file given as images (bad magic)', () => {
    expect(() => parseMnistImages(labelsFile([1, 2]), 'swapped')).toThrow(
      /swapped: magic number 2049 \(rank 1\), expected 2051 for MNIST images/,
    );
  });

  it('rejects an image file given as labels (bad magic)', () => {
    expect(() => parseMnistLabels(imagesFile(1), 'swapped')).toThrow(
      /swapped: magic number 2051 \(rank 3\), expected 2049 for MNIST labels/,
    );
  });

  it('rejects images that are not 28×28', () => {
    expect(() => parseMnistImages(imagesFile(2, 27), 'small')).toThrow(
      /small: images are 27×27, expected 28×28/,
    );
    const wide = idx([1, 28, 32], new Uint8Array(28 * 32));
    expect(() => parseMnistImages(wide, 'wide')).toThrow(/28×32/);
  });

  it('rejects an unexpected count', () => {
    expect(() => parseMnistImages(imagesFile(3), 'imgs', 60000)).toThrow(
      /imgs: holds 3 images, expected 60000/,
    );
    expect(() => parseMnistLabels(labelsFile([1]), 'lbls', 2)).toThrow(
      /lbls: holds 1 labels, expected 2/,
    );
  });
});

describe('assertLabelsInRange', () => {
  it('accepts 0..9', () => {
    expect(() => assertLabelsInRange(Int32Array.from([0, 9, 5]), 'ok')).not.toThrow();
  });

  it('names the first label outside [0, 9]', () => {
    expect(() => assertLabelsInRange(Int32Array.from([0, 10, 11]), 'bad')).toThrow(
      'bad: label 10 at index 1 is outside [0, 9]',
    );
    expect(() => assertLabelsInRange(Int32Array.from([-1]), 'neg')).toThrow(/label -1/);
  });
});

describe('loadMnistSplitFromBuffers', () => {
  const labels = [5, 0, 4];

  it.each([
    ['gzipped', true],
    ['raw', false],
  ])('loads a %s split', async (_kind, zipped) => {
    const wrap = zipped ? gzip : (bytes: Uint8Array) => bytes;
    const split = await loadMnistSplitFromBuffers({
      name: 'train',
      imagesBytes: wrap(imagesFile(3)),
      labelsBytes: wrap(labelsFile(labels)),
      expectedCount: 3,
    });
    expect(split.count).toBe(3);
    expect(split.shape).toEqual([3, 28, 28, 1]);
    expect(split.images.length).toBe(3 * PIXELS);
    expect(Array.from(split.labels)).toEqual(labels);
  });

  it('rejects mismatched image and label counts', async () => {
    await expect(
      loadMnistSplitFromBuffers({
        name: 'test',
        imagesBytes: imagesFile(3),
        labelsBytes: labelsFile([1, 2]),
      }),
    ).rejects.toThrow(/test: test images holds 3 images but test labels holds 2 labels/);
  });

  it('rejects out-of-range labels', async () => {
    await expect(
      loadMnistSplitFromBuffers({
        name: 'train',
        imagesBytes: imagesFile(2),
        labelsBytes: labelsFile([1, 200]),
        labelsName: 'my-labels.gz',
      }),
    ).rejects.toThrow('my-labels.gz: label 200 at index 1 is outside [0, 9]');
  });

  it('names the file in a truncated-payload error from a gzipped file', async () => {
    const file = imagesFile(3);
    const error = await loadMnistSplitFromBuffers({
      name: 'train',
      imagesBytes: gzip(file.subarray(0, file.length - 1)),
      labelsBytes: gzip(labelsFile(labels)),
      imagesName: '/data/train-images-idx3-ubyte.gz',
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IdxFormatError);
    expect((error as Error).message).toBe(
      '/data/train-images-idx3-ubyte.gz: IDX payload truncated: dims [3, 28, 28] need 2352 ' +
        'bytes, found 2351',
    );
  });

  it('enforces the expected count on both files', async () => {
    await expect(
      loadMnistSplitFromBuffers({
        name: 'train',
        imagesBytes: imagesFile(3),
        labelsBytes: labelsFile(labels),
        expectedCount: 4,
      }),
    ).rejects.toThrow(/train images: holds 3 images, expected 4/);
  });
});
