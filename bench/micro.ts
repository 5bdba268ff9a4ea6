import { installNodeWebGPU } from '../tools/webgpu-node.js';
installNodeWebGPU();
const gpu = (globalThis as any).navigator.gpu as GPU;
const adapter = (await gpu.requestAdapter())!;
const device = await adapter.requestDevice({ requiredLimits: { maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize } });
const N = 256 * 32768;
const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
const a = device.createBuffer({ size: N * 4, usage }), b = device.createBuffer({ size: N * 4, usage }), o = device.createBuffer({ size: N * 4, usage });
const init = new Float32Array(N).map((_, i) => Math.sin(i) * 4);
device.queue.writeBuffer(a, 0, init); device.queue.writeBuffer(b, 0, init);
const staging = device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
async function bench(name: string, body: string, vec = 1, wg = 256) {
  const T = vec === 4 ? 'vec4<f32>' : 'f32';
  const code = `@group(0) @binding(0) var<storage, read> a: array<${T}>;
@group(0) @binding(1) var<storage, read> b: array<${T}>;
@group(0) @binding(2) var<storage, read_write> o: array<${T}>;
@compute @workgroup_size(${wg}) fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) g: vec3<u32>) {
  let i = gid.x + gid.y * g.x * ${wg}u;
  if (i >= ${N / vec}u) { return; }
  let x = a[i]; let y = b[i];
  ${body}
}`;
  const p = device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code }), entryPoint: 'main' } });
  const bg = device.createBindGroup({ layout: p.getBindGroupLayout(0), entries: [a, b, o].map((buffer, binding) => ({ binding, resource: { buffer } })) });
  const groups = N / vec / wg; const gx = Math.min(groups, 32768), gy = groups / gx;
  const run = async (n: number) => {
    const e = device.createCommandEncoder(); const pass = e.beginComputePass(); pass.setPipeline(p); pass.setBindGroup(0, bg);
    for (let i = 0; i < n; i++) pass.dispatchWorkgroups(gx, gy);
    pass.end(); e.copyBufferToBuffer(o, 0, staging, 0, 16); device.queue.submit([e.finish()]);
    await staging.mapAsync(GPUMapMode.READ); staging.unmap();
  };
  await run(1);
  const ts: number[] = [];
  for (let r = 0; r < 5; r++) { const t0 = performance.now(); await run(4); ts.push((performance.now() - t0) / 4); }
  ts.sort((x, y) => x - y); console.log(name.padEnd(30), ts[2]!.toFixed(1), 'ms');
}
await bench('add scalar', 'o[i] = x + y;');
await bench('add vec4', 'o[i] = x + y;', 4);
await bench('1 exp scalar', 'o[i] = exp(x) + y;');
await bench('3 exp scalar', 'o[i] = exp(x) + exp(y * 0.1) + exp(x * 0.1);');
await bench('3 exp vec4', 'o[i] = exp(x) + exp(y * 0.1) + exp(x * 0.1);', 4);
await bench('3 exp2 scalar', 'o[i] = exp2(x) + exp2(y * 0.1) + exp2(x * 0.1);');
await bench('3 exp vec4 wg64', 'o[i] = exp(x) + exp(y * 0.1) + exp(x * 0.1);', 4, 64);
process.exit(0);
