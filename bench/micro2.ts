import { readFileSync } from 'node:fs';
import { installNodeWebGPU } from '../tools/webgpu-node.js';
installNodeWebGPU();
const gpu = (globalThis as any).navigator.gpu as GPU;
const adapter = (await gpu.requestAdapter())!;
const device = await adapter.requestDevice({ requiredLimits: { maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize } });
device.addEventListener('uncapturederror', (e: any) => console.error('GPU error', e.error?.message));
const rd = (f: string) => readFileSync(`shaders/${f}`, 'utf8');
const variant = process.argv[2] ?? '';
const B = 256, C = 32768, N = B * C;
const usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
const mk = (n: number) => device.createBuffer({ size: Math.max(16, n * 4), usage });
const s = mk(N), t = mk(N), lab = mk(B), ph = mk(4), ph2 = mk(4), losses = mk(B), stats = mk(B * 8), dy = mk(1), gS = mk(N);
const init = new Float32Array(N).map((_, i) => Math.sin(i) * 4);
device.queue.writeBuffer(s, 0, init); device.queue.writeBuffer(t, 0, init.map((x) => x * 0.7));
device.queue.writeBuffer(lab, 0, new Int32Array(B).map((_, i) => i * 13));
device.queue.writeBuffer(dy, 0, new Float32Array([1, 0, 0, 0]));
const params = device.createBuffer({ size: 32, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
const pb = new ArrayBuffer(32); const u = new Uint32Array(pb), f = new Float32Array(pb);
u[0] = B; u[1] = C; f[2] = 0.1; f[3] = 0.1; f[4] = 0.9 * 100; f[5] = 1 / B; u[6] = 0; u[7] = Number(process.env.GRIDROWS ?? B);
device.queue.writeBuffer(params, 0, pb);
const staging = device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
const pre = rd('distill_chunk_vec4.wgsl') + rd('distill_common.wgsl');
function pipe(code: string, constants: Record<string, number>) {
  return device.createComputePipeline({ layout: 'auto', compute: { module: device.createShaderModule({ code: pre + code }), entryPoint: 'main', constants } });
}
async function time(name: string, p: GPUComputePipeline, bufs: GPUBuffer[], grid: [number, number]) {
  const bg = device.createBindGroup({ layout: p.getBindGroupLayout(0), entries: bufs.map((buffer, binding) => ({ binding, resource: { buffer } })) });
  const run = async (n: number) => {
    const e = device.createCommandEncoder(); const pass = e.beginComputePass(); pass.setPipeline(p); pass.setBindGroup(0, bg);
    for (let i = 0; i < n; i++) pass.dispatchWorkgroups(grid[0], grid[1]);
    pass.end(); e.copyBufferToBuffer(stats, 0, staging, 0, 16); device.queue.submit([e.finish()]);
    await staging.mapAsync(GPUMapMode.READ); staging.unmap();
  };
  await run(1); const ts: number[] = [];
  for (let r = 0; r < 5; r++) { const t0 = performance.now(); await run(4); ts.push((performance.now() - t0) / 4); }
  ts.sort((x, y) => x - y); console.log(name.padEnd(30), ts[2]!.toFixed(1), 'ms');
}
const fwdSrc = rd(process.env.FWD ?? 'distill_forward.wgsl'), bwdSrc = rd(process.env.BWD ?? 'distill_backward.wgsl');
{
  const pf = pipe(fwdSrc, { TILE_COLS: 256, DENSE_LABELS: 0, BATCH_IN_WORKGROUP: 0 });
  const pbw = pipe(bwdSrc, { TILE_COLS: 256, DENSE_LABELS: 0, WRITE_STUDENT_GRAD: 1, WRITE_TEACHER_GRAD: 0 });
  const bgf = device.createBindGroup({ layout: pf.getBindGroupLayout(0), entries: [s, t, lab, ph, params, losses, stats].map((buffer, binding) => ({ binding, resource: { buffer } })) });
  const bgb = device.createBindGroup({ layout: pbw.getBindGroupLayout(0), entries: [s, t, lab, ph, params, stats, dy, gS, ph2].map((buffer, binding) => ({ binding, resource: { buffer } })) });
  for (const sep of [false, true]) {
    const ts: number[] = [];
    for (let r = 0; r < 6; r++) {
      const t0 = performance.now();
      const e = device.createCommandEncoder();
      for (let i = 0; i < 4; i++) {
        let pass = e.beginComputePass(); pass.setPipeline(pf); pass.setBindGroup(0, bgf); pass.dispatchWorkgroups(1, 256);
        if (sep) { pass.end(); pass = e.beginComputePass(); }
        pass.setPipeline(pbw); pass.setBindGroup(0, bgb); pass.dispatchWorkgroups(8, 256); pass.end();
      }
      e.copyBufferToBuffer(stats, 0, staging, 0, 16); device.queue.submit([e.finish()]);
      await staging.mapAsync(GPUMapMode.READ); staging.unmap();
      ts.push((performance.now() - t0) / 4);
    }
    ts.sort((x, y) => x - y); console.log('fwd+bwd sequence', sep ? 'separate passes' : 'one pass', ts[3]!.toFixed(1));
  }
}
const WG = Number(process.env.WG ?? 256), CPT = Number(process.env.CPT ?? 4);
for (const tc of (process.env.TCS ?? '256').split(',').map(Number)) {
  const rowsPerWg = WG / tc;
  await time(`forward wg ${WG} tile ${tc}`, pipe(fwdSrc, { WORKGROUP_SIZE: WG, TILE_COLS: tc, DENSE_LABELS: 0, BATCH_IN_WORKGROUP: 0 }), [s, t, lab, ph, params, losses, stats], [1, Math.ceil(B / rowsPerWg)]);
  const spans = Math.ceil(8192 / (tc * CPT));
  await time(`backward wg ${WG} tile ${tc} cpt ${CPT}`, pipe(bwdSrc, { WORKGROUP_SIZE: WG, CHUNKS_PER_THREAD: CPT, TILE_COLS: tc, DENSE_LABELS: 0, WRITE_STUDENT_GRAD: 1, WRITE_TEACHER_GRAD: 0 }), [s, t, lab, ph, params, stats, dy, gS, ph2], [spans, Math.ceil(B / rowsPerWg)]);
}
if (process.env.FUSED) {
  await time('fused fwd+grad tile 1', pipe(rd('zz_fused.wgsl'), { WORKGROUP_SIZE: WG, TILE_COLS: 1, DENSE_LABELS: 0, BATCH_IN_WORKGROUP: 0 }), [s, t, lab, ph, params, losses, stats, gS], [1, Math.ceil(B / WG)]);
}
process.exit(0);
