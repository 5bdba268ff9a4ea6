/**
 * The thread/workgroup plan, chosen from the problem size and the kind of adapter. Shared by
 * the forward and backward kernels (see the headers of shaders/distill_forward.wgsl and
 * shaders/distill_backward.wgsl).
 *
 * - 'gpu' (hardware adapters): parallelism first. Small C (≤ 64, MNIST's 10) is a thread per
 *   row; larger C gives each row up to a whole workgroup of 256 invocations that merge their
 *   partial sums in shared memory, so even B = 1 keeps the GPU busy.
 * - 'cpu' (software rasterisers: lavapipe, SwiftShader): a workgroup runs on one CPU thread,
 *   SIMD across invocations, and barriers are costly; the fastest plan measured there is a
 *   thread per row at every C, 64 invocations per workgroup (so that rows spread over cores),
 *   and long runs of chunks per backward invocation (bench/README section "Plans").
 */

/** Up to this many classes a row is one invocation's job on every adapter. */
export const THREAD_PER_ROW_MAX_CLASSES = 64;
/** WebGPU's guaranteed `maxComputeWorkgroupsPerDimension`. */
export const MAX_WORKGROUPS_PER_DIMENSION = 65_535;
/** Up to this many elements one workgroup runs the whole forward pass, reduction included. */
export const BATCH_IN_WORKGROUP_MAX_ELEMENTS = 1 << 18;

export type AdapterClass = 'gpu' | 'cpu';

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
  adapter: AdapterClass = 'gpu',
): DistillPlan {
  const adapterClass = adapterClassOverride?.(batch, classes, reduceToScalar) ?? adapter;
  const chunk = classes % 4 === 0 ? 4 : 1;
  const chunks = classes / chunk;
  let workgroupSize: number;
  let tileCols: number;
  let chunksPerThread: number;
  if (adapterClass === 'cpu') {
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
  const batchInWorkgroup = reduceToScalar && batch * classes <= BATCH_IN_WORKGROUP_MAX_ELEMENTS;
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

/** Software rasterisers report themselves in the adapter's vendor / architecture strings. */
export function classifyAdapter(
  info: { vendor?: string; architecture?: string } | undefined,
): AdapterClass {
  const text = `${info?.vendor ?? ''} ${info?.architecture ?? ''}`.toLowerCase();
  return /software|swiftshader|llvmpipe|lavapipe|cpu/.test(text) ? 'cpu' : 'gpu';
}
