/**
 * Times the memory ceiling (bench/core/memory-ceiling.wgsl: `o = a + b`, the least traffic a
 * loss+gradient pass can have) on the device that tfjs uses, with the same fencing discipline
 * as the loss timings: many dispatches, one fence per window. Where the device has
 * 'timestamp-query', also on the GPU clock: one pass per window with timestampWrites.
 *
 * The host supplies the WGSL source (Node reads the file; a page imports it with Vite's `?raw`),
 * so this module reads no files.
 */
import { spread, type Spread } from './stats.js';

/** The ceiling's time per dispatch on both clocks. */
export interface MemoryCeilingTimes {
  /** Wall clock, one fence per window: ms per dispatch. */
  readonly wall: Spread;
  /**
   * GPU timestamps: the pass time of a window's dispatches (one pass) divided by their count,
   * ms; null without 'timestamp-query'.
   */
  readonly gpu: Spread | null;
}

async function fence(device: GPUDevice, probe: GPUBuffer, staging: GPUBuffer): Promise<void> {
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(probe, 0, staging, 0, 16);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  staging.unmap();
}

/**
 * Median and spread of one `o = a + b` pass over `elements` floats, in ms, on the wall clock
 * and (with 'timestamp-query') the GPU clock.
 * @param shader the WGSL source of bench/core/memory-ceiling.wgsl.
 * @param callsPerWindow dispatches between two fences.
 */
export async function measureMemoryCeiling(
  device: GPUDevice,
  shader: string,
  elements: number,
  windows: number,
  callsPerWindow: number,
  signal?: AbortSignal,
): Promise<MemoryCeilingTimes> {
  const vec4s = Math.ceil(elements / 4);
  const bytes = vec4s * 16;
  if (bytes > device.limits.maxBufferSize) {
    throw new RangeError(
      `memory ceiling: ${bytes}-byte arrays exceed this adapter's maxBufferSize ` +
        `(${device.limits.maxBufferSize})`,
    );
  }
  // Arrays larger than one binding may hold are bound in chunks (offsets 256-byte aligned),
  // one dispatch per chunk: the same traffic, a few more dispatches.
  const align = Math.max(256, device.limits.minStorageBufferOffsetAlignment);
  const chunkBytes = Math.floor(device.limits.maxStorageBufferBindingSize / align) * align;
  const chunks: { offset: number; size: number }[] = [];
  for (let offset = 0; offset < bytes; offset += chunkBytes) {
    chunks.push({ offset, size: Math.min(chunkBytes, bytes - offset) });
  }
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const [a, b, o] = [0, 1, 2].map(() => device.createBuffer({ size: bytes, usage }));
  const counts = chunks.map(({ size }) => {
    const count = device.createBuffer({
      size: 16,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    });
    device.queue.writeBuffer(count, 0, new Uint32Array([size / 16, 0, 0, 0]));
    return count;
  });
  const staging = device.createBuffer({
    size: 16,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const timestamps = device.features.has('timestamp-query');
  const querySet = timestamps ? device.createQuerySet({ type: 'timestamp', count: 2 }) : null;
  const resolve = timestamps
    ? device.createBuffer({
        size: 16,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      })
    : null;
  const pipeline = device.createComputePipeline({
    layout: 'auto',
    compute: { module: device.createShaderModule({ code: shader }), entryPoint: 'main' },
  });
  const bound = chunks.map(({ offset, size }, i) => {
    const groups = Math.ceil(size / 16 / 256);
    const gridX = Math.min(groups, 65_535);
    return {
      bindGroup: device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [
          ...[a!, b!, o!].map((buffer, binding) => ({
            binding,
            resource: { buffer, offset, size },
          })),
          { binding: 3, resource: { buffer: counts[i]! } },
        ],
      }),
      gridX,
      gridY: Math.ceil(groups / gridX),
    };
  });
  const run = (n: number, timed: boolean) => {
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass(
      timed && querySet
        ? { timestampWrites: { querySet, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } }
        : {},
    );
    pass.setPipeline(pipeline);
    for (let i = 0; i < n; i++) {
      for (const { bindGroup, gridX, gridY } of bound) {
        pass.setBindGroup(0, bindGroup);
        pass.dispatchWorkgroups(gridX, gridY);
      }
    }
    pass.end();
    if (timed && querySet && resolve) {
      encoder.resolveQuerySet(querySet, 0, 2, resolve, 0);
      encoder.copyBufferToBuffer(resolve, 0, staging, 0, 16);
    }
    device.queue.submit([encoder.finish()]);
  };
  try {
    run(2, false);
    await fence(device, o!, staging);
    const wall: number[] = [];
    for (let w = 0; w < windows && !signal?.aborted; w++) {
      const t0 = performance.now();
      run(callsPerWindow, false);
      await fence(device, o!, staging);
      wall.push((performance.now() - t0) / callsPerWindow);
    }
    const gpu: number[] = [];
    for (let w = 0; querySet && w < windows && !signal?.aborted; w++) {
      run(callsPerWindow, true);
      await staging.mapAsync(GPUMapMode.READ);
      const [begin, end] = new BigUint64Array(staging.getMappedRange(0, 16));
      staging.unmap();
      gpu.push(Number(end! - begin!) / 1e6 / callsPerWindow);
    }
    return { wall: spread(wall), gpu: gpu.length > 0 ? spread(gpu) : null };
  } finally {
    for (const buffer of [a, b, o, ...counts, staging, resolve]) buffer?.destroy();
    querySet?.destroy();
  }
}
