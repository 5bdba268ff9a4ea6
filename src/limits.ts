/**
 * What the device must allow for the fused kernels and for the composition on WebGPU, checked
 * on shapes alone before anything is dispatched.
 */
import { ROW_STATS_WIDTH } from './kernels/names.js';
import { effectiveBindingLimit, rowChunks } from './kernels/plan.js';
import { deviceLimit, maxStorageBufferBindingSize } from './tfjs-internals.js';
import type { CheckedShapes } from './validate.js';

/**
 * What the device must allow, checked before anything is dispatched (a RangeError that says
 * which limit and by how much). Inputs larger than one storage binding are split into row
 * chunks (src/kernels/plan.ts, rowChunks), so the binding limit constrains only a single row
 * and the per-row arrays; each `[rows, C]` gradient is one buffer, within maxBufferSize.
 */
export function checkDeviceLimits(shapes: CheckedShapes, op: string): void {
  const { batch, classes } = shapes;
  const what = `inputs of shape [${[...shapes.leadingShape, classes].join(', ')}]`;
  const bindingLimit = maxStorageBufferBindingSize();
  const statsBytes = batch * ROW_STATS_WIDTH * 4;
  if (statsBytes > bindingLimit) {
    throw new RangeError(
      `${op}: ${what} have ${batch} rows, whose row statistics (${statsBytes} bytes) exceed this ` +
        `device's maxStorageBufferBindingSize (${bindingLimit}): at most ` +
        `${Math.floor(bindingLimit / (ROW_STATS_WIDTH * 4))} rows per call`,
    );
  }
  const bufferBytes = batch * classes * 4;
  const bufferLimit = deviceLimit('maxBufferSize');
  if (bufferBytes > bufferLimit) {
    throw new RangeError(
      `${op}: ${what} need ${bufferBytes}-byte gradient buffers, more than this device's ` +
        `maxBufferSize (${bufferLimit}); split the batch into calls of at most ` +
        `${Math.floor(bufferLimit / (classes * 4))} rows`,
    );
  }
  try {
    rowChunks(
      batch,
      classes,
      effectiveBindingLimit(bindingLimit),
      deviceLimit('minStorageBufferOffsetAlignment'),
    );
  } catch (err) {
    throw new RangeError(`${op}: ${what}: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }
}
