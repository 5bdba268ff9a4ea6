/**
 * Times the memory ceiling (bench/node/memory_ceiling.wgsl) on the device that tfjs uses, with the
 * same fencing discipline as the op benchmarks: many dispatches, one fence per window.
 */
import { readFileSync } from 'node:fs';
import { spread, type Spread } from '../../core/lib/stats.js';

const SOURCE = readFileSync(new URL('../memory_ceiling.wgsl', import.meta.url), 'utf8');

async function fence(device: GPUDevice, probe: GPUBuffer, staging: GPUBuffer): Promise<void> {
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(probe, 0, staging, 0, 16);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  staging.unmap();
}

/**
 * Median and spread of one `o = a + b` pass over `elements` floats, in ms.
 * @param callsPerWindow dispatches between two fences.
 */
export async function measureMemoryCeiling(
  device: GPUDevice,
  elements: number,
  windows: number,
  callsPerWindow: number,
): Promise<Spread> {
  const vec4s = Math.ceil(elements / 4);
  const bytes = vec4s * 16;
  const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const [a, b, o] = [0, 1, 2].map(() => device.createBuffer({ size: bytes, usage }));
  const count = device.createBuffer({
    size: 16,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(count, 0, new Uint32Array([vec4s, 0, 0, 0]));
  const staging = device.createBuffer({
    size: 16,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const pipeline = device.createComputePipeline({
    layout: 'auto',
    compute: { module: device.createShaderModule({ code: SOURCE }), entryPoint: 'main' },
  });
  const bindGroup = device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [a!, b!, o!, count].map((buffer, binding) => ({ binding, resource: { buffer } })),
  });
  const groups = Math.ceil(vec4s / 256);
  const gridX = Math.min(groups, 65_535);
  const gridY = Math.ceil(groups / gridX);
  const run = (n: number) => {
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, bindGroup);
    for (let i = 0; i < n; i++) pass.dispatchWorkgroups(gridX, gridY);
    pass.end();
    device.queue.submit([encoder.finish()]);
  };
  run(2);
  await fence(device, o!, staging);
  const samples: number[] = [];
  for (let w = 0; w < windows; w++) {
    const t0 = performance.now();
    run(callsPerWindow);
    await fence(device, o!, staging);
    samples.push((performance.now() - t0) / callsPerWindow);
  }
  for (const buffer of [a, b, o, count, staging]) buffer!.destroy();
  return spread(samples);
}
