/**
 * The thread/workgroup plan, chosen from the problem size. Shared by the forward and backward
 * kernels (see the headers of shaders/distill_forward.wgsl and distill_backward.wgsl).
 */

/** Invocations per workgroup in every distillation kernel (the WGSL files hard-code it too). */
export const WORKGROUP_SIZE = 256;
/** Chunks each backward invocation handles per row (shaders/distill_backward.wgsl). */
export const CHUNKS_PER_THREAD = 4;
/** Up to this many classes a row is one invocation's job (no barriers inside a row). */
export const THREAD_PER_ROW_MAX_CLASSES = 64;
/** WebGPU's guaranteed `maxComputeWorkgroupsPerDimension`. */
export const MAX_WORKGROUPS_PER_DIMENSION = 65_535;
/** Up to this many elements one workgroup runs the whole forward pass, reduction included. */
export const BATCH_IN_WORKGROUP_MAX_ELEMENTS = 1 << 18;

export interface DistillPlan {
  /** Classes per load: 4 (vec4, rows 16-byte aligned: C % 4 == 0) or 1. */
  readonly chunk: 1 | 4;
  /** Invocations that share one row: 1 (thread per row) … 256 (workgroup per row). */
  readonly tileCols: number;
  /** Rows per workgroup: 256 / tileCols. */
  readonly tileRows: number;
  /** Forward: one workgroup visits every row and reduces the batch itself (one dispatch). */
  readonly batchInWorkgroup: boolean;
  /** Forward grid (y walks rows) when not batchInWorkgroup. */
  readonly forwardGrid: readonly [number, number, number];
  /** Backward grid: x covers a row's classes, y walks rows. */
  readonly backwardGrid: readonly [number, number, number];
}

function nextPowerOfTwo(n: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(1, n)));
}

/**
 * Picks the plan for a `[batch, classes]` problem.
 * @param reduceToScalar whether the forward output is a scalar ('mean' / 'sum').
 */
export function choosePlan(batch: number, classes: number, reduceToScalar: boolean): DistillPlan {
  const chunk = classes % 4 === 0 ? 4 : 1;
  const chunks = classes / chunk;
  const tileCols =
    classes <= THREAD_PER_ROW_MAX_CLASSES
      ? 1
      : Math.min(WORKGROUP_SIZE, nextPowerOfTwo(Math.ceil(chunks / CHUNKS_PER_THREAD)));
  const tileRows = WORKGROUP_SIZE / tileCols;
  const rowGroups = Math.ceil(batch / tileRows);
  const gridRows = Math.min(rowGroups, MAX_WORKGROUPS_PER_DIMENSION);
  const batchInWorkgroup = reduceToScalar && batch * classes <= BATCH_IN_WORKGROUP_MAX_ELEMENTS;
  const colSpans = Math.ceil(chunks / (tileCols * CHUNKS_PER_THREAD));
  return {
    chunk,
    tileCols,
    tileRows,
    batchInWorkgroup,
    forwardGrid: batchInWorkgroup ? [1, 1, 1] : [1, gridRows, 1],
    backwardGrid: [colSpans, gridRows, 1],
  };
}
