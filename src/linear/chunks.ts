/**
 * How many rows the linear op takes at a time: as many as the memory budget and one storage
 * binding allow. The op's extra memory (beyond its inputs and the gradients it returns) is
 *
 *   fixed     = H · V · 4          the weight gradient's previous partial sum (under a tape)
 *             + rows · H · 4       the hidden gradient's chunks, before they are joined
 *   per chunk = c · V · 4 · k      the `[c, V]` tensors of one chunk at their peak
 *
 * where k counts those tensors (logits, the teacher's, the loss gradient, and the transform's
 * forward and backward intermediates; {@link workingTensorsPerRow}). c is the largest count with
 * fixed + per chunk ≤ memoryBudgetBytes and c · V · 4 ≤ the binding limit.
 */
import type { HeadTransform } from './config.js';
import type { LinearShapes } from './inputs.js';

/**
 * How the op differentiates: not at all (no tape), in the forward pass at unit upstream
 * gradient ('eager'), or in the backward pass with the upstream gradients ('recompute'; with
 * components, one backward per output differentiated).
 */
export type LinearGradients = 'none' | 'eager' | 'recompute' | 'recompute-components';

/** The rows per chunk and what the op may hold. */
export interface LinearChunkPlan {
  readonly rowsPerChunk: number;
  readonly chunks: number;
  /** `[c, V]` float32 tensors alive at one chunk's peak. */
  readonly workingTensors: number;
  /** The bound on the op's extra bytes: fixed + rowsPerChunk · V · 4 · workingTensors. */
  readonly peakExtraBytes: number;
}

/**
 * `[c, V]` tensors alive at a chunk's peak (counted from the ops, checked by measurement in
 * test/linear-memory.test.ts): the logits and the teacher's; under a tape the loss gradient and
 * its chain through the transform; each transform step adds its output and, under a tape, the
 * intermediates its gradient reads.
 */
export function workingTensorsPerRow(
  shapes: LinearShapes,
  transform: HeadTransform,
  gradients: LinearGradients,
): number {
  const capped = transform.softCap !== null;
  const transformed = capped || transform.logitScale !== 1;
  // The raw logits, the teacher's logits or rows, and a margin of two for what is not `[c, V]`
  // but adds up (row statistics, `[c, H]` products, uniforms, buffers awaiting release).
  let k = 4;
  // The transformed logits; with a soft cap the mask and three intermediates of its tidy.
  if (transformed) k += 1 + (capped ? 4 : 0);
  if (gradients !== 'none') {
    // The loss gradient; its chain through the transform (and that chain's intermediates).
    k += 1 + (transformed ? 1 : 0) + (capped ? 3 : 0);
    // Recomputed with upstream gradients: the loss gradient scaled by them; with components,
    // one more for the sum over the outputs.
    if (gradients === 'recompute') k += 1;
    if (gradients === 'recompute-components') k += 3;
  }
  // Dense labels: the chunk's slice of them.
  if (shapes.labelKind === 'dense') k += 1;
  // A teacher head's raw logits beside its transformed ones, and its transform's intermediates.
  if (shapes.teacherKind === 'head') k += transformed ? 1 + (capped ? 4 : 0) : 0;
  return k;
}

/** The chunk plan, or an error naming the budget or the binding limit that cannot be met. */
export function planLinearChunks(
  shapes: LinearShapes,
  transform: HeadTransform,
  gradients: LinearGradients,
  memoryBudgetBytes: number,
  bindingLimitBytes: number,
  op: string,
): LinearChunkPlan {
  const { rows, hiddenSize, vocab } = shapes;
  const rowBytes = vocab * 4;
  const k = workingTensorsPerRow(shapes, transform, gradients);
  const withGradients = gradients !== 'none';
  const fixed = withGradients ? hiddenSize * vocab * 4 + rows * hiddenSize * 4 : 0;
  const byBudget = Math.floor((memoryBudgetBytes - fixed) / (rowBytes * k));
  if (byBudget < 1) {
    throw new RangeError(
      `${op}: config.memoryBudgetBytes (${memoryBudgetBytes}) is below the least this call needs: ` +
        `${fixed + rowBytes * k} bytes (${fixed} fixed${
          withGradients
            ? ': the weight gradient ' + `[${hiddenSize}, ${vocab}] and the hidden gradient`
            : ''
        }, and ${k} rows of ${vocab} ` +
        'floats for one row at a time)',
    );
  }
  const byBinding = Math.floor(bindingLimitBytes / rowBytes);
  const rowsPerChunk = Math.min(rows, byBudget, byBinding);
  return {
    rowsPerChunk,
    chunks: Math.ceil(rows / rowsPerChunk),
    workingTensors: k,
    peakExtraBytes: fixed + rowsPerChunk * rowBytes * k,
  };
}
