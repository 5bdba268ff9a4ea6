/**
 * The thread/workgroup plan, chosen from the problem size and the kind of adapter. Shared by
 * the forward and backward kernels (see the headers of shaders/distill-forward.wgsl and
 * shaders/distill-backward.wgsl).
 *
 * - 'hardware' (hardware adapters): parallelism first. Small C (≤ 64, MNIST's 10) is a thread per
 *   row; larger C gives each row up to a whole workgroup of 256 invocations that merge their
 *   partial sums in shared memory, so even B = 1 keeps the GPU busy.
 * - 'software' (software rasterisers: lavapipe, SwiftShader): a workgroup runs on one CPU thread,
 *   SIMD across invocations, and barriers are costly; the fastest plan measured there is a
 *   thread per row at every C, 64 invocations per workgroup (so that rows spread over cores),
 *   and long runs of chunks per backward invocation (docs/kernels.md, "Plans").
 */

/** Up to this many classes a row is one invocation's job on every adapter. */
export const THREAD_PER_ROW_MAX_CLASSES = 64;
/** WebGPU's guaranteed `maxComputeWorkgroupsPerDimension`. */
export const MAX_WORKGROUPS_PER_DIMENSION = 65_535;
/** Up to this many elements one workgroup runs the whole forward pass, reduction included. */
export const BATCH_IN_WORKGROUP_MAX_ELEMENTS = 1 << 18;

export type AdapterClass = 'hardware' | 'software';

export interface DistillPlan {
  readonly adapterClass: AdapterClass;
  /** Classes per load: 4 (vec4, every row 16-byte aligned: C % 4 == 0) or 1. */
  readonly chunk: 1 | 4;
  /** Invocations per workgroup (a WGSL override). */
  readonly workgroupSize: number;
  /** Invocations that share one row: 1 (thread per row) … workgroupSize (workgroup per row). */
  readonly tileCols: number;
  /** Rows per workgroup: workgroupSize / tileCols. */
  readonly tileRows: number;
  /** Backward: chunks of a row that one invocation handles. */
  readonly chunksPerThread: number;
  /** Forward: one workgroup visits every row and reduces the batch itself (one dispatch). */
  readonly batchInWorkgroup: boolean;
  /** Forward grid (y walks rows) when not batchInWorkgroup, else [1, 1, 1]. */
  readonly forwardGrid: readonly [number, number, number];
  /** Backward grid: x covers a row's chunks, y walks rows. */
  readonly backwardGrid: readonly [number, number, number];
}

function nextPowerOfTwo(n: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(1, n)));
}

type PlanOverride = (batch: number, classes: number, reduceToScalar: boolean) => AdapterClass;
let adapterClassOverride: PlanOverride | null = null;

/**
 * Tests only: forces the plan of the given adapter class, so that every plan is exercised on
 * whichever adapter runs the suite. `null` restores the adapter's own choice.
 */
export function overrideAdapterClassForTesting(override: PlanOverride | null): void {
  adapterClassOverride = override;
}

/**
 * Picks the plan for a `[batch, classes]` problem.
 * @param reduceToScalar whether the forward output is a scalar ('mean' / 'sum').
 */
export function choosePlan(
  batch: number,
  classes: number,
  reduceToScalar: boolean,
  adapter: AdapterClass = 'hardware',
): DistillPlan {
  const adapterClass = adapterClassOverride?.(batch, classes, reduceToScalar) ?? adapter;
  const chunk = classes % 4 === 0 ? 4 : 1;
  const chunks = classes / chunk;
  let workgroupSize: number;
  let tileCols: number;
  let chunksPerThread: number;
  if (adapterClass === 'software') {
    workgroupSize = 64;
    tileCols = 1;
    chunksPerThread = 16;
  } else {
    workgroupSize = 256;
    chunksPerThread = 4;
    tileCols =
      classes <= THREAD_PER_ROW_MAX_CLASSES
        ? 1
        : Math.min(workgroupSize, nextPowerOfTwo(Math.ceil(chunks / chunksPerThread)));
  }
  const tileRows = workgroupSize / tileCols;
  const gridRows = Math.min(Math.ceil(batch / tileRows), MAX_WORKGROUPS_PER_DIMENSION);
  // One workgroup reduces the batch only when the rows are one chunk (a single dispatch sees them
  // all); see rowChunks().
  const batchInWorkgroup =
    reduceToScalar &&
    batch * classes <= BATCH_IN_WORKGROUP_MAX_ELEMENTS &&
    (bindingLimitOverride === null || batch * classes * 4 <= bindingLimitOverride);
  const colSpans = Math.ceil(chunks / (tileCols * chunksPerThread));
  return {
    adapterClass,
    chunk,
    workgroupSize,
    tileCols,
    tileRows,
    chunksPerThread,
    batchInWorkgroup,
    forwardGrid: batchInWorkgroup ? [1, 1, 1] : [1, gridRows, 1],
    backwardGrid: [colSpans, gridRows, 1],
  };
}

// ---------------------------------------------------------------------------------------------
// Row chunks: inputs larger than one storage binding

let bindingLimitOverride: number | null = null;

/**
 * Tests only: caps the bytes of one storage binding below the device's
 * `maxStorageBufferBindingSize`, so that small inputs are split into many chunks (every chunk
 * boundary and the cross-chunk reduction exercised cheaply on any adapter). `null` restores the
 * device's limit.
 */
export function overrideBindingLimitForTesting(bytes: number | null): void {
  bindingLimitOverride = bytes;
}

/** The binding limit in force: the device's, or the test override when smaller. */
export function effectiveBindingLimit(deviceLimit: number): number {
  return bindingLimitOverride === null ? deviceLimit : Math.min(deviceLimit, bindingLimitOverride);
}

/**
 * One dispatch's share of the rows of a `[rows, C]` problem. Every `[rows, C]` array (logits,
 * dense labels, gradients) is bound from `offsetBytes` (a multiple of the device's
 * `minStorageBufferOffsetAlignment`) for `sizeBytes`; the chunk's first row starts
 * `headElements` floats after the binding's start (0 when its byte offset is itself aligned).
 * Per-row arrays (labels, losses, statistics, dy) are bound whole and indexed by global row.
 */
export interface RowChunk {
  readonly firstRow: number;
  readonly rows: number;
  readonly offsetBytes: number;
  readonly sizeBytes: number;
  readonly headElements: number;
}

/**
 * Splits `batch` rows of `classes` floats into chunks whose bindings fit `limitBytes`, each
 * starting at the aligned offset at or before its first row. One chunk (offset 0) when the
 * whole array fits: then every dispatch is what it would be without chunking. Throws a
 * RangeError when a single row (plus the alignment slack) does not fit.
 */
export function rowChunks(
  batch: number,
  classes: number,
  limitBytes: number,
  alignmentBytes: number,
): RowChunk[] {
  const rowBytes = 4 * classes;
  if (batch * rowBytes <= limitBytes) {
    return [
      { firstRow: 0, rows: batch, offsetBytes: 0, sizeBytes: batch * rowBytes, headElements: 0 },
    ];
  }
  const chunks: RowChunk[] = [];
  for (let firstRow = 0; firstRow < batch;) {
    const start = firstRow * rowBytes;
    const offsetBytes = Math.floor(start / alignmentBytes) * alignmentBytes;
    const headBytes = start - offsetBytes;
    const rows = Math.min(batch - firstRow, Math.floor((limitBytes - headBytes) / rowBytes));
    if (rows < 1) {
      throw new RangeError(
        `a row of ${classes} float32 classes (${rowBytes} bytes, plus up to ${alignmentBytes - 4} ` +
          `bytes of alignment) does not fit one storage binding of ${limitBytes} bytes`,
      );
    }
    chunks.push({
      firstRow,
      rows,
      offsetBytes,
      sizeBytes: headBytes + rows * rowBytes,
      headElements: headBytes / 4,
    });
    firstRow += rows;
  }
  return chunks;
}

/** The fields of a `GPUAdapterInfo` the classification reads, all optional. */
export interface AdapterInfoLike {
  readonly vendor?: string;
  readonly architecture?: string;
  readonly device?: string;
  readonly description?: string;
  /** A browser's own mark for a software fallback adapter. */
  readonly isFallbackAdapter?: boolean;
}

/**
 * 'software' for software rasterisers (SwiftShader, lavapipe/llvmpipe, WARP-like "cpu"
 * adapters, a browser's fallback adapter), which report themselves in the adapter's strings;
 * 'hardware' otherwise. The one classifier: the kernels' plan and the benchmarks' presets both
 * use it.
 */
export function classifyAdapter(info: AdapterInfoLike | undefined): AdapterClass {
  if (info?.isFallbackAdapter === true) return 'software';
  const text = [info?.vendor, info?.architecture, info?.device, info?.description]
    .filter(Boolean)
    .join(' ')
    .toLowerCase();
  return /software|swiftshader|llvmpipe|lavapipe|cpu/.test(text) ? 'software' : 'hardware';
}
